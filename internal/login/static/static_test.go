package static

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"

	"github.com/meshauth/meshauth/internal/login"
)

const password = "correct horse battery staple"

// cheapArgon2 is a valid argon2id PHC string with minimal cost: full-cost
// argon2id takes tens of milliseconds, so only the tests of HashPassword and
// Put pay it.
func cheapArgon2(pw string) string {
	salt := []byte("0123456789abcdef")
	key := argon2.IDKey([]byte(pw), salt, 1, 64, 1, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=64,t=1,p=1$%s$%s", b64.EncodeToString(salt), b64.EncodeToString(key))
}

func bcryptHash(t *testing.T, pw string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword(password)
	if err != nil {
		t.Fatalf("HashPassword: %v", err)
	}
	const prefix = "$argon2id$v=19$m=19456,t=2,p=1$"
	if !strings.HasPrefix(h, prefix) {
		t.Fatalf("hash %q does not start with %q", h, prefix)
	}
	p, err := parseArgon2id(h)
	if err != nil {
		t.Fatalf("parse own hash: %v", err)
	}
	if len(p.salt) != 16 || len(p.key) != 32 {
		t.Errorf("salt %d bytes, key %d bytes; want 16 and 32", len(p.salt), len(p.key))
	}
	if strings.Contains(h, password) {
		t.Error("hash contains the password")
	}
	for _, tt := range []struct {
		name, pw string
		want     bool
	}{{"right password", password, true}, {"wrong password", password + "!", false}} {
		t.Run(tt.name, func(t *testing.T) {
			if got, err := checkHash(h, tt.pw); err != nil || got != tt.want {
				t.Errorf("checkHash = %v, %v; want %v, nil", got, err, tt.want)
			}
		})
	}
	t.Run("salted", func(t *testing.T) {
		again, err := HashPassword(password)
		if err != nil {
			t.Fatal(err)
		}
		if again == h {
			t.Error("two hashes of the same password are equal")
		}
	})
}

func TestCheckHash(t *testing.T) {
	bc := bcryptHash(t, password)
	tests := []struct {
		name, hash, pw string
		want, wantErr  bool
	}{
		{"argon2id right", cheapArgon2(password), password, true, false},
		{"argon2id wrong", cheapArgon2(password), "Correct horse battery staple", false, false},
		{"argon2id empty password", cheapArgon2(password), "", false, false},
		{"bcrypt $2a$ right", bc, password, true, false},
		{"bcrypt $2a$ wrong", bc, password + " ", false, false},
		{"bcrypt $2b$ right", "$2b$" + bc[4:], password, true, false},
		{"bcrypt $2y$ right", "$2y$" + bc[4:], password, true, false},
		{"bcrypt truncated", bc[:20], password, false, true},
		{"plain text", password, password, false, true},
		{"empty", "", "", false, true},
		{"argon2i", strings.Replace(cheapArgon2(password), "argon2id", "argon2i", 1), password, false, true},
		{"sha-crypt", "$5$rounds=5000$salt$hash", password, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := checkHash(tt.hash, tt.pw)
			if got != tt.want || (err != nil) != tt.wantErr {
				t.Errorf("checkHash = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), tt.pw) && tt.pw != "" {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestMalformedArgon2Rejected(t *testing.T) {
	good := cheapArgon2(password)
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=..,t=..,p=.., salt, key
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	b64 := base64.RawStdEncoding.EncodeToString
	tests := []struct{ name, hash string }{
		{"missing key", strings.Join(parts[:5], "$")},
		{"extra part", good + "$x"},
		{"version 16", with(2, "v=16")},
		{"no version", with(2, "19")},
		{"zero memory", with(3, "m=0,t=1,p=1")},
		{"huge memory", with(3, "m=4194305,t=1,p=1")},
		{"zero time", with(3, "m=64,t=0,p=1")},
		{"too many passes", with(3, "m=64,t=17,p=1")},
		{"zero threads", with(3, "m=64,t=1,p=0")},
		{"params garbled", with(3, "m=64;t=1;p=1")},
		{"salt not base64", with(4, "!!!!")},
		{"salt padded", with(4, base64.StdEncoding.EncodeToString([]byte("0123456789abcdef")))},
		{"salt too short", with(4, b64([]byte("1234567")))},
		{"key not base64", with(5, "***")},
		{"key too short", with(5, b64(make([]byte, 15)))},
		{"key too long", with(5, b64(make([]byte, 65)))},
	}
	if ok, err := checkHash(good, password); !ok || err != nil {
		t.Fatalf("control: checkHash(good) = %v, %v", ok, err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if ok, err := checkHash(tt.hash, password); ok || err == nil {
				t.Errorf("checkHash(%q) = %v, %v; want false and an error", tt.hash, ok, err)
			}
			if _, err := New([]User{{Email: "a@example.com", CustomerID: "c1", PasswordHash: tt.hash}}); err == nil {
				t.Errorf("New accepted hash %q", tt.hash)
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	ok := cheapArgon2(password)
	_, err := New([]User{
		{Email: "ada@example.com", CustomerID: "c1", PasswordHash: ok},
		{Email: " ADA@Example.com ", CustomerID: "c2", PasswordHash: ok},
		{Email: "bob@example.com", CustomerID: "", PasswordHash: ok},
		{Email: "  ", CustomerID: "c4", PasswordHash: ok},
		{Email: "cy@example.com", CustomerID: "c5", PasswordHash: "md5:abc"},
		{Email: "dee@example.com", CustomerID: "c6", PasswordHash: "$argon2id$v=19$m=0,t=1,p=1$AAAA$AAAA"},
	})
	if err == nil {
		t.Fatal("New accepted invalid users")
	}
	for _, want := range []string{
		"ada@example.com: listed twice",
		"bob@example.com: customer_id is empty",
		"user 4: email is empty",
		"cy@example.com: unsupported password hash",
		"dee@example.com: malformed argon2id hash",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not report %q:\n%v", want, err)
		}
	}
}

func TestLogin(t *testing.T) {
	claims := map[string]any{"group": "wholesale"}
	p, err := New([]User{
		{Email: "Ada@Example.com", CustomerID: "c-ada", PasswordHash: cheapArgon2(password), Claims: claims},
		{Email: "bob@example.com", CustomerID: "c-bob", PasswordHash: bcryptHash(t, password)},
		{Email: "cy@example.com", CustomerID: "c-cy", PasswordHash: cheapArgon2(password), Disabled: true},
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	tests := []struct {
		name, email, pw string
		want            login.Identity
		wantErr         error
	}{
		{"argon2id user", "ada@example.com", password, login.Identity{CustomerID: "c-ada", Claims: claims}, nil},
		{"bcrypt user", "bob@example.com", password, login.Identity{CustomerID: "c-bob"}, nil},
		{"email case and space ignored", "  ADA@example.COM\t", password, login.Identity{CustomerID: "c-ada", Claims: claims}, nil},
		{"wrong password", "ada@example.com", "correct horse battery stapler", login.Identity{}, login.ErrInvalidCredentials},
		{"password is case-sensitive", "bob@example.com", strings.ToUpper(password), login.Identity{}, login.ErrInvalidCredentials},
		{"password is not trimmed", "bob@example.com", password + " ", login.Identity{}, login.ErrInvalidCredentials},
		{"empty password", "ada@example.com", "", login.Identity{}, login.ErrInvalidCredentials},
		{"unknown email", "eve@example.com", password, login.Identity{}, login.ErrInvalidCredentials},
		{"empty email", "", password, login.Identity{}, login.ErrInvalidCredentials},
		{"disabled user with the right password", "cy@example.com", password, login.Identity{}, login.ErrInvalidCredentials},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := p.Login(context.Background(), tt.email, tt.pw)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("Login error = %v, want %v", err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Login = %+v, want %+v", got, tt.want)
			}
			if err != nil && tt.pw != "" && strings.Contains(err.Error(), tt.pw) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

// TestLookalikeEmailsDoNotMatch: Unicode case folding maps U+0130 (İ) to i
// and the Kelvin sign (U+212A) to k, so a login or a verified ID-token email
// for another address named alice's or kate's account. Only A-Z fold.
func TestLookalikeEmailsDoNotMatch(t *testing.T) {
	p, err := New([]User{
		{Email: "alice@example.com", CustomerID: "c-alice", PasswordHash: cheapArgon2(password)},
		{Email: "kate@example.com", CustomerID: "c-kate", PasswordHash: cheapArgon2(password)},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, email := range []string{"alİce@example.com", "\u212Aate@example.com", "\u212AATE@EXAMPLE.COM", "ALİCE@example.com", "alice@example.com\u00A0"} {
		t.Run(email, func(t *testing.T) {
			if id, err := p.Login(ctx, email, password); !errors.Is(err, login.ErrInvalidCredentials) {
				t.Errorf("Login = %+v, %v; want ErrInvalidCredentials", id, err)
			}
			if id, err := p.MapIdentity(ctx, login.External{Issuer: "https://id.example", Subject: "s", Email: email, EmailVerified: true}); !errors.Is(err, login.ErrUnknownCustomer) {
				t.Errorf("MapIdentity = %+v, %v; want ErrUnknownCustomer", id, err)
			}
		})
	}
	for email, want := range map[string]string{"ALICE@example.com": "c-alice", " Kate@Example.com ": "c-kate"} {
		if id, err := p.Login(ctx, email, password); err != nil || id.CustomerID != want {
			t.Errorf("Login(%q) = %+v, %v; want %s", email, id, err, want)
		}
		if id, err := p.MapIdentity(ctx, login.External{Email: email, EmailVerified: true}); err != nil || id.CustomerID != want {
			t.Errorf("MapIdentity(%q) = %+v, %v; want %s", email, id, err, want)
		}
	}
}

// TestPutKeepsLookalikesApart: users add for a lookalike of an existing
// email adds a user; it does not replace the existing one.
func TestPutKeepsLookalikesApart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	kate := User{Email: "kate@example.com", CustomerID: "c-kate", PasswordHash: cheapArgon2("k")}
	if err := WriteFile(path, File{Users: []User{kate}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Put(path, Change{Email: "\u212Aate@example.com", CustomerID: "c-other", Password: "other password"}); err != nil {
		t.Fatal(err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Users) != 2 || !reflect.DeepEqual(f.Users[0], kate) { // sorted: K (U+212A) after k
		t.Fatalf("file holds %+v; want kate untouched beside the new user", f.Users)
	}
	// Removing the lookalike (its ASCII letters in another case) leaves kate.
	if found, err := Remove(path, "\u212AATE@example.com"); err != nil || !found {
		t.Fatalf("Remove = %v, %v; want true", found, err)
	}
	if f, err = ReadFile(path); err != nil || len(f.Users) != 1 || !reflect.DeepEqual(f.Users[0], kate) {
		t.Fatalf("file holds %+v, %v; want kate alone", f.Users, err)
	}
}

// TestLoginErrorNeverContainsPassword covers the errors other than
// ErrInvalidCredentials, which New normally prevents: hashes it cannot read.
func TestLoginErrorNeverContainsPassword(t *testing.T) {
	const pw = "hunter2-$2a$-argon2id-m=19456"
	p := &Provider{dummy: cheapArgon2("dummy"), users: map[string]User{
		"a@example.com": {Email: "a@example.com", CustomerID: "a", PasswordHash: "$2a$04$" + pw},
		"b@example.com": {Email: "b@example.com", CustomerID: "b", PasswordHash: "$argon2id$" + pw},
		"c@example.com": {Email: "c@example.com", CustomerID: "c", PasswordHash: pw},
	}}
	for email := range p.users {
		t.Run(email, func(t *testing.T) {
			_, err := p.Login(context.Background(), email, pw)
			if err == nil || errors.Is(err, login.ErrInvalidCredentials) {
				t.Fatalf("Login error = %v, want an unreadable-hash error", err)
			}
			if strings.Contains(err.Error(), pw) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestReadWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users.json")

	// A missing file is an error, never "no users": a mistyped path must
	// not read as an empty file.
	if f, err := ReadFile(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("ReadFile(missing) = %+v, %v; want an error that is os.ErrNotExist", f, err)
	}

	in := File{Users: []User{
		{Email: "zed@example.com", CustomerID: "z", PasswordHash: cheapArgon2("z"), Disabled: true},
		{Email: "amy@example.com", CustomerID: "a", PasswordHash: cheapArgon2("a"), Claims: map[string]any{"tier": "gold"}},
	}}
	if err := WriteFile(path, in); err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o600 {
		t.Errorf("users file mode = %v, want 0600", perm)
	}
	got, err := ReadFile(path)
	if err != nil {
		t.Fatalf("ReadFile: %v", err)
	}
	if len(got.Users) != 2 || got.Users[0].Email != "amy@example.com" || got.Users[1].Email != "zed@example.com" {
		t.Fatalf("ReadFile = %+v, want amy then zed", got.Users)
	}
	if in.Users[0].Email != "zed@example.com" {
		t.Error("WriteFile reordered the caller's slice")
	}
	if !reflect.DeepEqual(got.Users[0], in.Users[1]) || !reflect.DeepEqual(got.Users[1], in.Users[0]) {
		t.Errorf("users did not round-trip:\n got %+v\nwant %+v", got.Users, in.Users)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the users file (no temp files)", len(entries))
	}
}

func TestLoadRejectsBadFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	dup := fmt.Sprintf(`{"users":[{"email":"a@x.io","customer_id":"1","password_hash":%q},{"email":"A@x.io","customer_id":"2","password_hash":%q}]}`,
		cheapArgon2("a"), cheapArgon2("b"))
	tests := []struct{ name, path string }{
		{"not JSON", write("garbage.json", "users: [a, b]")},
		{"wrong shape", write("shape.json", `{"users": {"email": "a@x.io"}}`)},
		{"bad hash", write("hash.json", `{"users":[{"email":"a@x.io","customer_id":"1","password_hash":"plain"}]}`)},
		{"duplicate users", write("dup.json", dup)},
		{"a directory", dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if p, err := Load(tt.path); err == nil {
				t.Fatalf("Load = %v, want error", p)
			}
		})
	}
}

func TestLoadAndLogin(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	if err := WriteFile(path, File{Users: []User{{Email: "amy@example.com", CustomerID: "a", PasswordHash: bcryptHash(t, password)}}}); err != nil {
		t.Fatal(err)
	}
	p, err := Load(path)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	if id, err := p.Login(context.Background(), "amy@example.com", password); err != nil || id.CustomerID != "a" {
		t.Errorf("Login = %+v, %v; want customer a", id, err)
	}
}

func TestPut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	keep := User{Email: "keep@example.com", CustomerID: "k", PasswordHash: cheapArgon2("k")}
	old := User{Email: "ada@example.com", CustomerID: "c-old", PasswordHash: cheapArgon2("old"), Claims: map[string]any{"group": "vip"}, Disabled: true}
	if err := WriteFile(path, File{Users: []User{keep, old}}); err != nil {
		t.Fatal(err)
	}

	// Replace, addressed with another case: the customer id stays unless
	// ReplaceID; then add a new user.
	if _, _, err := Put(path, Change{Email: " ADA@example.com ", CustomerID: "c-new", Password: "new password"}); !errors.Is(err, ErrCustomerIDChange) {
		t.Fatalf("Put with another customer id = %v, want ErrCustomerIDChange", err)
	}
	if u, added, err := Put(path, Change{Email: "Ada@example.com", Password: "kept id"}); err != nil || added || u.CustomerID != "c-old" {
		t.Fatalf("Put (new password) = %+v, %v, %v; want c-old kept", u, added, err)
	}
	if _, added, err := Put(path, Change{Email: " ADA@example.com ", CustomerID: "c-new", Password: "new password", ReplaceID: true}); err != nil || added {
		t.Fatalf("Put (replace) = %v, %v", added, err)
	}
	if _, added, err := Put(path, Change{Email: "New@Example.com", CustomerID: "c-3", Password: "third password"}); err != nil || !added {
		t.Fatalf("Put (add) = %v, %v", added, err)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	byEmail := map[string]User{}
	for _, u := range f.Users {
		byEmail[u.Email] = u
	}
	if len(f.Users) != 3 || len(byEmail) != 3 {
		t.Fatalf("file holds %+v, want keep, ada and new once each", f.Users)
	}
	ada, added := byEmail["ada@example.com"], byEmail["new@example.com"]
	if ada.CustomerID != "c-new" || !ada.Disabled || !reflect.DeepEqual(ada.Claims, old.Claims) {
		t.Errorf("replaced user = %+v; want new customer id, claims and disabled kept", ada)
	}
	if !reflect.DeepEqual(byEmail["keep@example.com"], keep) {
		t.Errorf("untouched user changed: %+v", byEmail["keep@example.com"])
	}
	if added.CustomerID != "c-3" || added.Disabled || added.Claims != nil {
		t.Errorf("added user = %+v", added)
	}
	for _, c := range []struct {
		u      User
		pw     string
		wantOK bool
	}{{ada, "new password", true}, {ada, "old", false}, {added, "third password", true}} {
		if !strings.HasPrefix(c.u.PasswordHash, "$argon2id$v=19$m=19456,t=2,p=1$") {
			t.Errorf("%s hash %q is not a new argon2id hash", c.u.Email, c.u.PasswordHash)
		}
		if ok, err := checkHash(c.u.PasswordHash, c.pw); ok != c.wantOK || err != nil {
			t.Errorf("%s with %q: checkHash = %v, %v; want %v", c.u.Email, c.pw, ok, err, c.wantOK)
		}
	}
	if info, err := os.Stat(path); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("users file mode: %v, %v; want 0600", info.Mode().Perm(), err)
	}
}

func TestPutRejects(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users.json")
	tests := []struct{ name, email, customerID, pw string }{
		{"empty password", "a@example.com", "c", ""},
		{"empty customer id", "a@example.com", "", "pw"},
		{"empty email", "  ", "c", "pw"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := Put(path, Change{Email: tt.email, CustomerID: tt.customerID, Password: tt.pw}); err == nil {
				t.Fatal("Put succeeded, want error")
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("users file exists after a rejected Put (stat: %v)", err)
			}
		})
	}
}

func TestRemove(t *testing.T) {
	users := []User{
		{Email: "amy@example.com", CustomerID: "a", PasswordHash: cheapArgon2("a")},
		{Email: "bob@example.com", CustomerID: "b", PasswordHash: cheapArgon2("b")},
	}
	tests := []struct {
		name, email string
		missing     bool // start with no file
		wantFound   bool
		wantLeft    []string
	}{
		{"present", "amy@example.com", false, true, []string{"bob@example.com"}},
		{"case and space ignored", " BOB@Example.com ", false, true, []string{"amy@example.com"}},
		{"not present", "eve@example.com", false, false, []string{"amy@example.com", "bob@example.com"}},
		{"no file", "amy@example.com", true, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "users.json")
			if !tt.missing {
				if err := WriteFile(path, File{Users: append([]User(nil), users...)}); err != nil {
					t.Fatal(err)
				}
			}
			found, err := Remove(path, tt.email)
			if tt.missing {
				if !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("Remove from a missing file = %v, %v; want os.ErrNotExist", found, err)
				}
				return
			}
			if err != nil || found != tt.wantFound {
				t.Fatalf("Remove = %v, %v; want %v, nil", found, err, tt.wantFound)
			}
			f, err := ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			var left []string
			for _, u := range f.Users {
				left = append(left, u.Email)
			}
			if !reflect.DeepEqual(left, tt.wantLeft) {
				t.Errorf("users left = %v, want %v", left, tt.wantLeft)
			}
		})
	}
}

// argon2Hash is an argon2id PHC string of pw with the given parameters.
func argon2Hash(pw string, m, tm uint32, p uint8, keyLen uint32) string {
	salt := []byte("fedcba9876543210")
	key := argon2.IDKey([]byte(pw), salt, tm, m, p, keyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", m, tm, p, b64.EncodeToString(salt), b64.EncodeToString(key))
}

func bcryptCost(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// TestDummyMatchesTheStrongestHash: the hash checked for an unknown email
// is of the kind and with the parameters of the file's costliest hash, so
// that an unknown email takes as long as the slowest account: with an
// argon2id dummy, bcrypt accounts answered twice as slowly as unknown
// emails, which told who had an account. Checked by the dummy's
// parameters, not by timing.
func TestDummyMatchesTheStrongestHash(t *testing.T) {
	tests := []struct {
		name   string
		hashes []string
		// want: "bcrypt" with cost, or "argon2id" with m, t, p and key length.
		kind          string
		cost          int
		m, tm, p, key uint32
	}{
		{"bcrypt users only", []string{bcryptCost(t, "a", 4), bcryptCost(t, "b", 5), bcryptCost(t, "c", 4)}, "bcrypt", 5, 0, 0, 0, 0},
		{"argon2id users only", []string{argon2Hash("a", 64, 1, 1, 32), argon2Hash("b", 128, 2, 1, 16), argon2Hash("c", 96, 2, 1, 32)}, "argon2id", 0, 128, 2, 1, 16},
		{"argon2id: fewer lanes is slower", []string{argon2Hash("a", 128, 1, 2, 32), argon2Hash("b", 128, 1, 1, 32)}, "argon2id", 0, 128, 1, 1, 32},
		{"no users: new hashes' parameters", nil, "argon2id", 0, argonMemoryKiB, argonTime, argonThreads, argonKeyLen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var users []User
			for i, h := range tt.hashes {
				users = append(users, User{Email: fmt.Sprintf("u%d@example.com", i), CustomerID: fmt.Sprint(i), PasswordHash: h})
			}
			p, err := New(users)
			if err != nil {
				t.Fatal(err)
			}
			switch tt.kind {
			case "bcrypt":
				if cost, err := bcrypt.Cost([]byte(p.dummy)); err != nil || cost != tt.cost {
					t.Errorf("dummy %.7s… cost %d, %v; want bcrypt cost %d", p.dummy, cost, err, tt.cost)
				}
			case "argon2id":
				a, err := parseArgon2id(p.dummy)
				if err != nil || a.memory != tt.m || a.time != tt.tm || uint32(a.threads) != tt.p || uint32(len(a.key)) != tt.key {
					t.Errorf("dummy %.10s… m=%d t=%d p=%d key %d, %v; want argon2id m=%d t=%d p=%d key %d",
						p.dummy, a.memory, a.time, a.threads, len(a.key), err, tt.m, tt.tm, tt.p, tt.key)
				}
			}
		})
	}
}

// TestUnknownEmailChecksTheSlowestKind: in a file holding both kinds, an
// unknown email costs one check of the dummy of the kind that is slower on
// this machine (measured once, when the file is loaded), and a known email
// one check of its own hash.
func TestUnknownEmailChecksTheSlowestKind(t *testing.T) {
	bc, ar := bcryptCost(t, password, 5), argon2Hash(password, 64, 1, 1, 32)
	users := []User{
		{Email: "bea@example.com", CustomerID: "1", PasswordHash: bc},
		{Email: "ari@example.com", CustomerID: "2", PasswordHash: ar},
	}
	for _, slower := range []string{"bcrypt", "argon2id"} {
		t.Run(slower+" slower", func(t *testing.T) {
			measured := map[string]int{}
			p, err := newProvider(users, func(hash string) time.Duration {
				k := kindOf(hash)
				measured[k]++
				if k == slower {
					return time.Second
				}
				return time.Millisecond
			})
			if err != nil {
				t.Fatal(err)
			}
			if measured["bcrypt"] == 0 || measured["argon2id"] == 0 {
				t.Errorf("measured %v; want both kinds", measured)
			}
			var checked []string
			p.onCheck = func(hash string) { checked = append(checked, hash) }
			if _, err := p.Login(context.Background(), "nobody@example.com", password); !errors.Is(err, login.ErrInvalidCredentials) {
				t.Fatalf("unknown email: %v", err)
			}
			if len(checked) != 1 || kindOf(checked[0]) != slower || checked[0] != p.dummy {
				t.Fatalf("unknown email checked %q; want one check of the %s dummy", checked, slower)
			}
			switch slower {
			case "bcrypt":
				if cost, _ := bcrypt.Cost([]byte(checked[0])); cost != 5 {
					t.Errorf("bcrypt dummy cost %d, want the file's 5", cost)
				}
			case "argon2id":
				if a, _ := parseArgon2id(checked[0]); a.memory != 64 || a.time != 1 || a.threads != 1 {
					t.Errorf("argon2id dummy m=%d t=%d p=%d, want the file's 64, 1, 1", a.memory, a.time, a.threads)
				}
			}
			checked = nil
			if _, err := p.Login(context.Background(), "bea@example.com", password); err != nil || len(checked) != 1 || checked[0] != bc {
				t.Fatalf("known email: %v, checked %q; want one check of its own hash", err, checked)
			}
		})
	}
	t.Run("one kind is not measured", func(t *testing.T) {
		if _, err := newProvider(users[:1], func(string) time.Duration { t.Error("measured"); return 0 }); err != nil {
			t.Fatal(err)
		}
	})
}
