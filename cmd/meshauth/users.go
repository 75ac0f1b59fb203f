package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"os"
	"strings"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/meshauth/meshauth/internal/login/static"
)

// MinPasswordLength is the fewest characters users add accepts in a
// password (OWASP's Authentication Cheat Sheet asks for at least 8 with
// multi-factor authentication, more without; a passphrase of 12 is easy to
// type and hard to guess).
const MinPasswordLength = 12

// console is a command's standard streams. password reads one line from
// the terminal without echoing it; it is nil when standard input is not a
// terminal, and the password is then read from standard input.
type console struct {
	in       io.Reader
	out, err io.Writer
	password func() ([]byte, error)
}

// stdConsole is the process's own: a terminal on standard input is asked
// for passwords without echo.
func stdConsole() console {
	c := console{in: os.Stdin, out: os.Stdout, err: os.Stderr}
	if fd := int(os.Stdin.Fd()); term.IsTerminal(fd) {
		c.password = func() ([]byte, error) {
			b, err := term.ReadPassword(fd)
			fmt.Fprintln(os.Stderr) // the newline the terminal did not echo
			return b, err
		}
	}
	return c
}

const usersUsage = `Usage:
  meshauth users add -file F -email E [-customer-id ID [-replace]]
      Add a user, or give an existing one (the same email, whatever its case)
      a new password. On a terminal the password is asked for twice without
      echo; otherwise it is the first line of standard input, never an
      argument. At least 12 characters. A new user needs -customer-id; an
      existing one keeps its customer id, and another one is refused unless
      -replace is given.
  meshauth users remove -file F -email E
      Remove a user.
  meshauth users list -file F
      List the users: email, customer id, and "disabled" for disabled ones.

A running meshauth reads its STATIC_USERS_FILE again within a second of a
change: no restart is needed.

Flags:
`

// users manages the static provider's users file.
func users(args []string, c console) error {
	if len(args) == 0 {
		fmt.Fprint(c.err, usersUsage)
		return errors.New("users: want add, remove or list")
	}
	sub := args[0]
	fs := flag.NewFlagSet("users "+sub, flag.ContinueOnError)
	fs.SetOutput(c.out)
	file := fs.String("file", "users.json", "the users file")
	email := fs.String("email", "", "the user's email address, such as ada@example.com")
	customerID := fs.String("customer-id", "", "the customer id the platform knows the user by (required for a new user)")
	replace := fs.Bool("replace", false, "add: give an existing user the -customer-id given, though it differs")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usersUsage)
		fs.PrintDefaults()
	}
	switch sub {
	case "-h", "-help", "--help", "help":
		fs.Usage()
		return nil
	}
	if err := fs.Parse(args[1:]); errors.Is(err, flag.ErrHelp) {
		return nil // the usage is printed, as asked
	} else if err != nil {
		return fmt.Errorf("users %s: %w", sub, err)
	}
	if fs.NArg() > 0 {
		// Most likely a password typed on the command line, where other users
		// can see it: refuse rather than ignore it.
		return fmt.Errorf("users %s: unexpected argument; the password is read from standard input, never from arguments", sub)
	}
	switch sub {
	case "add":
		if err := checkEmail(*email); err != nil {
			return fmt.Errorf("users add: %w", err)
		}
		password, err := readPassword(c)
		if err != nil {
			return fmt.Errorf("users add: %w", err)
		}
		u, added, err := static.Put(*file, static.Change{Email: *email, CustomerID: *customerID, Password: password, ReplaceID: *replace})
		switch {
		case errors.Is(err, static.ErrCustomerIDChange):
			return fmt.Errorf("users add: %w; -customer-id %s would make the account log in as another customer: leave -customer-id out to change the password only, or add -replace to change the id", err, *customerID)
		case errors.Is(err, static.ErrNewUserNeedsID):
			return fmt.Errorf("users add: %w: give it with -customer-id", err)
		case err != nil:
			return fmt.Errorf("users add: %w", err)
		case added:
			fmt.Fprintf(c.out, "added %s (customer %s) to %s\n", u.Email, u.CustomerID, *file)
		default:
			fmt.Fprintf(c.out, "updated %s (customer %s) in %s\n", u.Email, u.CustomerID, *file)
		}
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
		fmt.Fprintf(c.out, "removed %s from %s\n", *email, *file)
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
			fmt.Fprintf(c.out, "%s\t%s%s\n", u.Email, u.CustomerID, state)
		}
	default:
		return fmt.Errorf("users: unknown command %q; want add, remove or list", sub)
	}
	return nil
}

// checkEmail refuses what is not a bare email address: a display name,
// angle brackets, a list, a missing local part or domain.
func checkEmail(email string) error {
	if email == "" {
		return errors.New("-email is required")
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Name != "" || a.Address != strings.TrimSpace(email) || !strings.Contains(a.Address, "@") {
		return errors.New("-email must be an email address alone, such as ada@example.com")
	}
	return nil
}

// readPassword asks the terminal twice, without echo, or reads the first
// line of standard input, and checks the length.
func readPassword(c console) (string, error) {
	if c.password == nil {
		line, err := bufio.NewReader(c.in).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", fmt.Errorf("read password: %w", err)
		}
		return checkPassword(strings.TrimRight(line, "\r\n"))
	}
	fmt.Fprintf(c.err, "Password (at least %d characters): ", MinPasswordLength)
	first, err := c.password()
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if _, err := checkPassword(string(first)); err != nil {
		return "", err
	}
	fmt.Fprint(c.err, "Password again: ")
	again, err := c.password()
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if string(first) != string(again) {
		return "", errors.New("the passwords do not match; nothing was saved")
	}
	return string(first), nil
}

func checkPassword(p string) (string, error) {
	if utf8.RuneCountInString(p) < MinPasswordLength {
		return "", fmt.Errorf("the password must be at least %d characters", MinPasswordLength)
	}
	return p, nil
}
