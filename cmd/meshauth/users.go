package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/meshauth/meshauth/internal/login/static"
)

// users manages the static provider's users file. Passwords are read from
// stdin (one line), never from arguments, which other users can see.
func users(args []string, stdin io.Reader, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("users: want add, remove or list")
	}
	sub := args[0]
	fs := flag.NewFlagSet("users "+sub, flag.ContinueOnError)
	file := fs.String("file", "users.json", "users file")
	email := fs.String("email", "", "the user's email")
	customerID := fs.String("customer-id", "", "the customer id the platform knows the user by")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		// Most likely a password typed on the command line, where other users
		// can see it: refuse rather than ignore it.
		return fmt.Errorf("users %s: unexpected argument; the password is read from standard input, never from arguments", sub)
	}
	switch sub {
	case "add":
		if *email == "" || *customerID == "" {
			return errors.New("users add: -email and -customer-id are required")
		}
		password, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("users add: read password: %w", err)
		}
		password = strings.TrimRight(password, "\r\n")
		if err := static.Put(*file, *email, *customerID, password); err != nil {
			return fmt.Errorf("users add: %w", err)
		}
		fmt.Fprintf(stdout, "saved %s in %s\n", *email, *file)
	case "remove":
		if *email == "" {
			return errors.New("users remove: -email is required")
		}
		found, err := static.Remove(*file, *email)
		if err != nil {
			return fmt.Errorf("users remove: %w", err)
		}
		if !found {
			return fmt.Errorf("users remove: %s is not in %s", *email, *file)
		}
		fmt.Fprintf(stdout, "removed %s from %s\n", *email, *file)
	case "list":
		f, err := static.ReadFile(*file)
		if err != nil {
			return fmt.Errorf("users list: %w", err)
		}
		for _, u := range f.Users {
			state := ""
			if u.Disabled {
				state = "\tdisabled"
			}
			fmt.Fprintf(stdout, "%s\t%s%s\n", u.Email, u.CustomerID, state)
		}
	default:
		return fmt.Errorf("users: unknown command %q; want add, remove or list", sub)
	}
	return nil
}
