package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/meshauth/meshauth/internal/login/static"
)

const password = "s3cret-Passw0rd with spaces"

// run calls users with stdin and returns its stdout.
func run(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	err := users(args, strings.NewReader(stdin), &out)
	return out.String(), err
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
			if !strings.Contains(out, "Ada@Example.com") || !strings.Contains(out, file) {
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
