// Package static checks credentials against a JSON file of users with argon2id
// or bcrypt password hashes: for development and for small shops.
package static

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/meshauth/meshauth/internal/login"
)

var (
	_ login.Service        = (*Provider)(nil)
	_ login.IdentityMapper = (*Provider)(nil)
)

// User is one entry of the users file.
type User struct {
	Email        string         `json:"email"`
	CustomerID   string         `json:"customer_id"`
	PasswordHash string         `json:"password_hash"`
	Claims       map[string]any `json:"claims,omitempty"`
	// Role and Status go into the access token (see login.Identity); an
	// INACTIVE user gets ACCOUNT_INACTIVE once the password is right.
	Role   string `json:"role,omitempty"`
	Status string `json:"status,omitempty"`
	// Disabled users cannot log in; their logins fail like a wrong password.
	Disabled bool `json:"disabled,omitempty"`
}

// File is the users file: {"users": [...]}.
type File struct {
	Users []User `json:"users"`
}

// Provider is the static login.Service.
type Provider struct {
	users map[string]User // by normalized email
	// dummy is checked for unknown emails so that the time a login takes does
	// not tell whether the email exists (see dummyHash).
	dummy string
	// onCheck, when set, is told of every hash Login checks (for tests).
	onCheck func(hash string)
}

// New checks the users and returns a Provider for them.
func New(users []User) (*Provider, error) {
	return newProvider(users, timeCheck)
}

// newProvider is New with the measurement dummyHash uses.
func newProvider(users []User, measure func(hash string) time.Duration) (*Provider, error) {
	byEmail, err := index(users)
	if err != nil {
		return nil, usersError{err}
	}
	p := &Provider{users: byEmail}
	if p.dummy, err = dummyHash(users, measure); err != nil {
		return nil, err
	}
	return p, nil
}

// index checks the users and returns them by normalized email.
func index(users []User) (map[string]User, error) {
	byEmail := make(map[string]User, len(users))
	var errs []error
	for i, u := range users {
		email := login.NormalizeEmail(u.Email)
		switch {
		case email == "":
			errs = append(errs, fmt.Errorf("user %d: email is empty", i+1))
		case u.CustomerID == "":
			errs = append(errs, fmt.Errorf("user %s: customer_id is empty", email))
		case byEmail[email].Email != "":
			errs = append(errs, fmt.Errorf("user %s: listed twice", email))
		}
		if err := validHash(u.PasswordHash); err != nil {
			errs = append(errs, fmt.Errorf("user %s: %w", email, err))
		}
		byEmail[email] = u
	}
	return byEmail, errors.Join(errs...)
}

// errInvalidUsers matches the errors of a file whose users are invalid.
var errInvalidUsers = errors.New("invalid users")

// usersError is index's error, as it reads, matching errInvalidUsers.
type usersError struct{ error }

func (e usersError) Unwrap() error      { return e.error }
func (usersError) Is(target error) bool { return target == errInvalidUsers }

// dummyPassword is what dummy hashes hash; no login ever matches them.
const dummyPassword = "meshauth dummy password"

// dummyHash returns the hash an unknown email is checked against, so that
// its login takes as long as the slowest account's: a dummy cheaper than
// some accounts' hashes tells those accounts apart from unknown emails
// (bcrypt accounts took twice as long as unknown emails checked against
// argon2id).
//
// Within a kind the costliest parameters of the file are copied: bcrypt's
// highest cost; argon2id's parameters of the hash argon2Params.costlier
// ranks first. Between bcrypt and argon2id no formula says which is slower:
// that depends on the machine (bcrypt is bound by the CPU, argon2id by
// memory bandwidth). When the file holds both, each dummy is checked twice
// with measure, on the machine that serves, once when the file is loaded,
// and the slower kind's dummy is kept. Accounts of the faster kind still
// answer faster than unknown emails; rehashing them (users add) removes
// that difference. With no users the dummy has HashPassword's parameters.
func dummyHash(users []User, measure func(hash string) time.Duration) (string, error) {
	bcryptCost, argon := 0, argon2Params{}
	for _, u := range users {
		switch kindOf(u.PasswordHash) {
		case kindBcrypt:
			if c, err := bcrypt.Cost([]byte(u.PasswordHash)); err == nil && c > bcryptCost {
				bcryptCost = c
			}
		case kindArgon2id:
			if a, err := parseArgon2id(u.PasswordHash); err == nil && (argon.threads == 0 || a.costlier(argon)) {
				argon = a
			}
		}
	}
	var dummies []string
	if bcryptCost > 0 {
		h, err := bcrypt.GenerateFromPassword([]byte(dummyPassword), bcryptCost)
		if err != nil {
			return "", err
		}
		dummies = append(dummies, string(h))
	}
	if argon.threads > 0 {
		h, err := hashArgon2id(dummyPassword, argon)
		if err != nil {
			return "", err
		}
		dummies = append(dummies, h)
	}
	switch len(dummies) {
	case 0:
		return HashPassword(dummyPassword)
	case 1:
		return dummies[0], nil
	}
	slowest, most := "", time.Duration(-1)
	for _, d := range dummies {
		// The faster of two checks: the first may pay for a cold cache
		// or for the allocation of argon2id's memory.
		if t := min(measure(d), measure(d)); t > most {
			slowest, most = d, t
		}
	}
	return slowest, nil
}

// timeCheck is how long one check of a password against hash takes.
func timeCheck(hash string) time.Duration {
	start := time.Now()
	_, _ = checkHash(hash, "meshauth timing password")
	return time.Since(start)
}

// Load reads a users file and returns a Provider for it.
func Load(path string) (*Provider, error) {
	f, err := ReadFile(path)
	if err != nil {
		return nil, err
	}
	p, err := New(f.Users)
	if err != nil {
		return nil, fmt.Errorf("users file %s: %w", path, err)
	}
	return p, nil
}

// Login implements login.Service. An unknown email, a disabled user and a
// wrong password all give login.ErrInvalidCredentials after one hash check.
func (p *Provider) Login(_ context.Context, email, password string) (login.Identity, error) {
	u, ok := p.users[login.NormalizeEmail(email)]
	if !ok {
		_, _ = p.check(p.dummy, password)
		return login.Identity{}, login.ErrInvalidCredentials
	}
	match, err := p.check(u.PasswordHash, password)
	if err != nil {
		return login.Identity{}, fmt.Errorf("check password: %w", err)
	}
	if !match || u.Disabled {
		return login.Identity{}, login.ErrInvalidCredentials
	}
	return identity(u), nil
}

// check is checkHash, reported to onCheck.
func (p *Provider) check(hash, password string) (bool, error) {
	if p.onCheck != nil {
		p.onCheck(hash)
	}
	return checkHash(hash, password)
}

func identity(u User) login.Identity {
	return login.Identity{CustomerID: u.CustomerID, NumericID: login.IsNumericID(u.CustomerID), Claims: u.Claims, Role: u.Role, Status: u.Status}
}

// MapIdentity implements login.IdentityMapper: the user whose email is the
// external identity's verified email. An unverified email never matches.
func (p *Provider) MapIdentity(_ context.Context, ext login.External) (login.Identity, error) {
	u, ok := p.users[login.NormalizeEmail(ext.Email)]
	if !ok || !ext.EmailVerified || ext.Email == "" || u.Disabled {
		return login.Identity{}, login.ErrUnknownCustomer
	}
	return identity(u), nil
}

// ReadFile reads a users file. A missing file is an error (errors.Is
// os.ErrNotExist), so that a mistyped path never reads as "no users".
func ReadFile(path string) (File, error) {
	var f File
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("read users file: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("users file %s: %w", path, err)
	}
	return f, nil
}

// WriteFile replaces the users file atomically, readable by its owner only.
func WriteFile(path string, f File) error {
	f.Users = slices.Clone(f.Users)
	sort.Slice(f.Users, func(i, j int) bool { return f.Users[i].Email < f.Users[j].Email })
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".users-*.json")
	if err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write users file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write users file: %w", err)
	}
	return os.Rename(tmp.Name(), path)
}

// ErrCustomerIDChange is Put's refusal to give a user of the file another
// customer id without Change.ReplaceID: the id is who the account logs in
// as, and a case-only difference in the email must never change it.
var ErrCustomerIDChange = errors.New("the user has another customer id")

// ErrNewUserNeedsID is Put's refusal to add a user without a customer id.
var ErrNewUserNeedsID = errors.New("a new user needs a customer id")

// Change is a user added, or given a new password, by Put.
type Change struct {
	Email    string
	Password string
	// CustomerID is required for a new user. For a user the file has (the
	// same email in any case of A-Z), empty keeps the id, and another id is
	// refused with ErrCustomerIDChange unless ReplaceID.
	CustomerID string
	ReplaceID  bool
}

// Put adds a user to the file at path, creating the file, or gives the
// user with the same email a new password (hashed with argon2id), keeping
// its customer id (unless c.ReplaceID), claims, role, status and state.
// It returns the user as saved and whether it is new.
func Put(path string, c Change) (User, bool, error) {
	if c.Password == "" {
		return User{}, false, errors.New("password is empty")
	}
	f, err := ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		f, err = File{}, nil // the first user makes the file
	}
	if err != nil {
		return User{}, false, err
	}
	u := User{Email: login.NormalizeEmail(c.Email), CustomerID: c.CustomerID}
	i := slices.IndexFunc(f.Users, func(old User) bool { return login.NormalizeEmail(old.Email) == u.Email })
	added := i < 0
	if !added {
		old := f.Users[i]
		switch {
		case c.CustomerID == "":
			u.CustomerID = old.CustomerID
		case c.CustomerID != old.CustomerID && !c.ReplaceID:
			return User{}, false, fmt.Errorf("%w: %s is customer %s", ErrCustomerIDChange, u.Email, old.CustomerID)
		}
		u.Claims, u.Role, u.Status, u.Disabled = old.Claims, old.Role, old.Status, old.Disabled
	} else if u.CustomerID == "" {
		return User{}, false, fmt.Errorf("%w: %s is not in the file", ErrNewUserNeedsID, u.Email)
	}
	if u.PasswordHash, err = HashPassword(c.Password); err != nil {
		return User{}, false, err
	}
	if _, err := index([]User{u}); err != nil {
		return User{}, false, err
	}
	if added {
		f.Users = append(f.Users, u)
	} else {
		f.Users[i] = u
	}
	return u, added, WriteFile(path, f)
}

// Remove deletes the user with the email from the file at path. It reports
// whether the user was there.
func Remove(path, email string) (bool, error) {
	f, err := ReadFile(path)
	if err != nil {
		return false, err
	}
	email = login.NormalizeEmail(email)
	kept := f.Users[:0]
	for _, u := range f.Users {
		if login.NormalizeEmail(u.Email) != email {
			kept = append(kept, u)
		}
	}
	if len(kept) == len(f.Users) {
		return false, nil
	}
	f.Users = kept
	return true, WriteFile(path, f)
}
