package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/meshauth/meshauth/internal/login/static"
)

const password = "s3cret-Passw0rd with spaces"

// run calls users with stdin, not a terminal, and returns its stdout.
func run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := users(args, console{in: strings.NewReader(stdin), out: &out, err: io.Discard})
	return out.String(), err
}

// fakeTerminal answers password prompts from its lines, in turn, and
// records that it was asked.
type fakeTerminal struct {
	lines []string
	asked int
}

func (f *fakeTerminal) readPassword() ([]byte, error) {
	if f.asked >= len(f.lines) {
		return nil, io.EOF
	}
	f.asked++
	return []byte(f.lines[f.asked-1]), nil
}

// TestUsersAddPromptsOnATerminal: on a terminal, users add asks for the
// password without echo (the terminal reads it), twice, on standard error;
// standard input is not read. Two different answers save nothing.
func TestUsersAddPromptsOnATerminal(t *testing.T) {
	tests := []struct {
		name    string
		lines   []string
		wantErr string
	}{
		{"confirmed", []string{password, password}, ""},
		{"mismatch", []string{password, password + "x"}, "do not match"},
		{"too short", []string{"short-pw", "short-pw"}, "at least 12"},
		{"no answer", nil, "read password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "users.json")
			term := &fakeTerminal{lines: tt.lines}
			var out, prompts bytes.Buffer
			err := users([]string{"add", "-file", file, "-email", "ada@example.com", "-customer-id", "1"},
				console{in: strings.NewReader("stdin-is-not-read\n"), out: &out, err: &prompts, password: term.readPassword})
			if !strings.Contains(prompts.String(), "Password") {
				t.Errorf("no prompt: %q", prompts.String())
			}
			if confirm := tt.wantErr == "" || tt.wantErr == "do not match"; confirm != strings.Contains(prompts.String(), "again") {
				t.Errorf("prompts %q: asked to confirm %v, want %v", prompts.String(), !confirm, confirm)
			}
			for _, text := range []string{out.String(), prompts.String(), fmt.Sprint(err)} {
				if strings.Contains(text, password) || strings.Contains(text, "short-pw") {
					t.Errorf("the password is echoed: %q", text)
				}
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("users add = %v, want an error saying %q", err, tt.wantErr)
				}
				if _, statErr := os.Stat(file); !errors.Is(statErr, os.ErrNotExist) {
					t.Error("users file written despite the error")
				}
				return
			}
			if err != nil {
				t.Fatalf("users add: %v", err)
			}
			p, err := static.Load(file)
			if err != nil {
				t.Fatal(err)
			}
			if id, err := p.Login(context.Background(), "ada@example.com", password); err != nil || id.CustomerID != "1" {
				t.Errorf("login with the typed password: %+v, %v", id, err)
			}
		})
	}
}

// TestUsersAddRefusesBadInput: an email that is not a bare address and a
// password shorter than the stated minimum are refused, and nothing is
// written.
func TestUsersAddRefusesBadInput(t *testing.T) {
	tests := []struct {
		name, email, password, want string
	}{
		{"no domain", "ada", password, "-email"},
		{"no local part", "@example.com", password, "-email"},
		{"a display name", "Ada <ada@example.com>", password, "-email"},
		{"two addresses", "ada@example.com, bob@example.com", password, "-email"},
		{"a space", "ada lovelace@example.com", password, "-email"},
		{"short password", "ada@example.com", "elevenchars", "at least 12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "users.json")
			out, err := run(t, tt.password+"\n", "add", "-file", file, "-email", tt.email, "-customer-id", "1")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("users add = %v (stdout %q), want an error naming %q", err, out, tt.want)
			}
			if strings.Contains(err.Error(), tt.password) {
				t.Error("the error shows the password")
			}
			if _, statErr := os.Stat(file); !errors.Is(statErr, os.ErrNotExist) {
				t.Error("users file written despite the error")
			}
		})
	}
}

// TestUsersAddKeepsCustomerIDs: adding an email that is in the file, in
// any case, changes its password and keeps its customer id, claims and
// state; a different -customer-id is refused unless -replace says so.
func TestUsersAddKeepsCustomerIDs(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.json")
	const newPassword = "a brand new passphrase"
	if _, err := run(t, password+"\n", "add", "-file", file, "-email", "ada@example.com", "-customer-id", "1001"); err != nil {
		t.Fatal(err)
	}
	login := func(pw string) string {
		t.Helper()
		p, err := static.Load(file)
		if err != nil {
			t.Fatal(err)
		}
		id, err := p.Login(context.Background(), "ada@example.com", pw)
		if err != nil {
			return err.Error()
		}
		return id.CustomerID
	}

	out, err := run(t, newPassword+"\n", "add", "-file", file, "-email", "ADA@Example.com")
	if err != nil {
		t.Fatalf("users add for an existing email without -customer-id: %v", err)
	}
	if !strings.Contains(out, "updated") || !strings.Contains(out, "1001") {
		t.Errorf("stdout %q does not say that the password of customer 1001 was updated", out)
	}
	if got := login(newPassword); got != "1001" {
		t.Fatalf("after the update, login gives %s, want customer 1001", got)
	}

	if _, err := run(t, newPassword+"\n", "add", "-file", file, "-email", "Ada@example.com", "-customer-id", "1001"); err != nil {
		t.Errorf("the same customer id again: %v", err)
	}
	_, err = run(t, password+"\n", "add", "-file", file, "-email", "Ada@example.com", "-customer-id", "2002")
	if err == nil || !strings.Contains(err.Error(), "-replace") || !strings.Contains(err.Error(), "1001") {
		t.Fatalf("a different customer id = %v, want a refusal naming 1001 and -replace", err)
	}
	if got := login(newPassword); got != "1001" {
		t.Fatalf("after the refusal, login gives %s, want customer 1001 and the password unchanged", got)
	}

	out, err = run(t, password+"\n", "add", "-file", file, "-email", "ada@example.com", "-customer-id", "2002", "-replace")
	if err != nil {
		t.Fatalf("-replace: %v", err)
	}
	if !strings.Contains(out, "2002") {
		t.Errorf("stdout %q does not name the new customer id", out)
	}
	if got := login(password); got != "2002" {
		t.Fatalf("after -replace, login gives %s, want customer 2002", got)
	}
}

// TestUsersHelp: -h prints the usage on standard output and succeeds.
func TestUsersHelp(t *testing.T) {
	for _, args := range [][]string{{"add", "-h"}, {"list", "-help"}, {"remove", "--help"}, {"-h"}} {
		out, err := run(t, "", args...)
		if err != nil {
			t.Errorf("users %v: %v", args, err)
		}
		if !strings.Contains(out, "Usage") || !strings.Contains(out, "-file") {
			t.Errorf("users %v printed %q, want the usage", args, out)
		}
	}
	out, _ := run(t, "", "add", "-h")
	if !strings.Contains(out, "12") || !strings.Contains(out, "-replace") {
		t.Errorf("users add -h does not state the password minimum or -replace:\n%s", out)
	}
}

func TestUsersAdd(t *testing.T) {
	tests := []struct {
		name, stdin string
	}{
		{"newline", password + "\n"},
		{"CRLF", password + "\r\n"},
		{"no newline", password},
		{"only the first line", password + "\nsecond line\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "users.json")
			out, err := run(t, tt.stdin, "add", "-file", file, "-email", "Ada@Example.com", "-customer-id", "c-42")
			if err != nil {
				t.Fatalf("users add: %v", err)
			}
			if strings.Contains(out, password) {
				t.Errorf("stdout %q contains the password", out)
			}
			if !strings.Contains(out, "ada@example.com") || !strings.Contains(out, "c-42") || !strings.Contains(out, file) {
				t.Errorf("stdout %q does not say what was saved where", out)
			}
			info, err := os.Stat(file)
			if err != nil {
				t.Fatalf("users file: %v", err)
			}
			if perm := info.Mode().Perm(); perm != 0o600 {
				t.Errorf("users file mode = %v, want 0600", perm)
			}
			raw, _ := os.ReadFile(file)
			if bytes.Contains(raw, []byte(password)) {
				t.Error("users file contains the password in clear")
			}
			p, err := static.Load(file)
			if err != nil {
				t.Fatalf("static.Load: %v", err)
			}
			id, err := p.Login(context.Background(), "ada@example.com", password)
			if err != nil || id.CustomerID != "c-42" {
				t.Errorf("Login with the stdin password = %+v, %v; want customer c-42", id, err)
			}
		})
	}
}

// TestUsersAddIgnoresPasswordArguments pins that the password comes from
// stdin: a password given as an argument does not become the password.
// TestUsersAddRefusesPasswordArguments: a password typed on the command line
// (where other users can see it) is refused, not silently ignored.
func TestUsersAddRefusesPasswordArguments(t *testing.T) {
	file := filepath.Join(t.TempDir(), "users.json")
	out, err := run(t, "from stdin\n", "add", "-file", file, "-email", "a@example.com", "-customer-id", "a", "from-args")
	if err == nil {
		t.Fatal("users add accepted a stray argument")
	}
	if strings.Contains(err.Error(), "from-args") || strings.Contains(out, "from-args") {
		t.Error("the stray argument is echoed")
	}
	if _, statErr := os.Stat(file); !errors.Is(statErr, os.ErrNotExist) {
		t.Errorf("users file written despite the error: %v", statErr)
	}
}

func TestUsersErrors(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "users.json")
	tests := []struct {
		name  string
		stdin string
		args  []string
	}{
		{"no subcommand", "", nil},
		{"unknown subcommand", "", []string{"rename", "-file", file}},
		{"unknown flag", password + "\n", []string{"add", "-file", file, "-email", "a@x.io", "-customer-id", "c", "-password", password}},
		{"add without email", password + "\n", []string{"add", "-file", file, "-customer-id", "c"}},
		{"add without customer id", password + "\n", []string{"add", "-file", file, "-email", "a@x.io"}},
		{"add with empty password", "\n", []string{"add", "-file", file, "-email", "a@x.io", "-customer-id", "c"}},
		{"add with no stdin", "", []string{"add", "-file", file, "-email", "a@x.io", "-customer-id", "c"}},
		{"remove without email", "", []string{"remove", "-file", file}},
		{"remove from a missing file", "", []string{"remove", "-file", file, "-email", "a@x.io"}},
		{"list an unreadable file", "", []string{"list", "-file", dir}},
		// A mistyped path is not an empty users file.
		{"list a missing file", "", []string{"list", "-file", file}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := run(t, tt.stdin, tt.args...)
			if err == nil {
				t.Fatalf("users %v succeeded (stdout %q), want error", tt.args, out)
			}
			if strings.Contains(err.Error(), password) || strings.Contains(out, password) {
				t.Errorf("output %q or error %q contains the password", out, err)
			}
			if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("users file created by a failed command (stat: %v)", err)
			}
		})
	}
}

func writeUsers(t *testing.T, file string) {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	err = static.WriteFile(file, static.File{Users: []static.User{
		{Email: "bob@example.com", CustomerID: "c-bob", PasswordHash: string(h), Disabled: true},
		{Email: "amy@example.com", CustomerID: "c-amy", PasswordHash: string(h)},
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func TestUsersList(t *testing.T) {
	tests := []struct {
		name, want string
		setup      bool
	}{
		{"users", "amy@example.com\tc-amy\nbob@example.com\tc-bob\tdisabled\n", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "users.json")
			if tt.setup {
				writeUsers(t, file)
			}
			out, err := run(t, "", "list", "-file", file)
			if err != nil {
				t.Fatalf("users list: %v", err)
			}
			if out != tt.want {
				t.Errorf("users list printed %q, want %q", out, tt.want)
			}
			if strings.Contains(out, "$2a$") {
				t.Error("users list printed a password hash")
			}
		})
	}
}

func TestUsersRemove(t *testing.T) {
	tests := []struct {
		name, email string
		wantErr     bool
		wantList    string
	}{
		{"present", "amy@example.com", false, "bob@example.com\tc-bob\tdisabled\n"},
		{"case-insensitive", "BOB@example.com", false, "amy@example.com\tc-amy\n"},
		{"unknown email", "eve@example.com", true, "amy@example.com\tc-amy\nbob@example.com\tc-bob\tdisabled\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			file := filepath.Join(t.TempDir(), "users.json")
			writeUsers(t, file)
			out, err := run(t, "", "remove", "-file", file, "-email", tt.email)
			if (err != nil) != tt.wantErr {
				t.Fatalf("users remove = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr && !strings.Contains(err.Error(), tt.email) {
				t.Errorf("error %q does not name %s", err, tt.email)
			}
			if !tt.wantErr && !strings.Contains(out, "removed "+tt.email) {
				t.Errorf("stdout %q does not confirm the removal", out)
			}
			list, err := run(t, "", "list", "-file", file)
			if err != nil {
				t.Fatal(err)
			}
			if list != tt.wantList {
				t.Errorf("after remove, list = %q, want %q", list, tt.wantList)
			}
		})
	}
}
