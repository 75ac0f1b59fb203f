// Package store defines how sessions are kept: small interfaces, the Session
// type and the sentinel errors every backend returns. Backends live in the
// sub-packages and all pass the conformance suite in storetest.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Sentinel errors. Backends wrap them; callers test with errors.Is.
var (
	// ErrNotFound: no session has the given id.
	ErrNotFound = errors.New("session not found")
	// ErrAlreadyExists: Create found a session with the same id.
	ErrAlreadyExists = errors.New("session already exists")
	// ErrConflict: a conditional write lost, because the presented refresh-token
	// hash is no longer current or the session has expired.
	ErrConflict = errors.New("session changed or expired")
	// ErrUnavailable: the backend could not be reached or answered too slowly.
	ErrUnavailable = errors.New("session store unavailable")
)

// Session is one customer session: a chain of refresh tokens of which only
// the keyed hashes of the current one and its immediate predecessor are kept.
type Session struct {
	ID         string
	CustomerID string
	// NumericCustomerID: the login provider gave CustomerID as a JSON
	// integer, so access tokens carry it as a number.
	NumericCustomerID bool `json:",omitempty"`
	// TokenHash is the keyed hash of the current refresh token.
	TokenHash []byte
	// PrevTokenHash is the keyed hash of the token TokenHash replaced; nil
	// before the first rotation.
	PrevTokenHash []byte `json:",omitempty"`
	// RotatedAt is when TokenHash replaced PrevTokenHash.
	RotatedAt time.Time
	CreatedAt time.Time
	// RefreshedAt is the last successful rotation, or CreatedAt.
	RefreshedAt time.Time
	// ExpiresAt is when the session ends unless it is rotated before.
	ExpiresAt  time.Time
	RememberMe bool
	// Claims are extra access-token claims from the login provider, as JSON.
	Claims    json.RawMessage `json:",omitempty"`
	UserAgent string          `json:",omitempty"`
	IP        string          `json:",omitempty"`
}

// Expired reports whether the session has ended at now.
func (s Session) Expired(now time.Time) bool { return !now.Before(s.ExpiresAt) }

// Rotation is the conditional update at the heart of a refresh.
type Rotation struct {
	// From is the hash the caller presented; it must be the current one.
	From []byte
	// To becomes the current hash; From becomes the previous one.
	To []byte
	// Now is the caller's clock: the session must not have expired at Now,
	// and RotatedAt and RefreshedAt are set to it.
	Now time.Time
	// ExpiresAt is the session's new end.
	ExpiresAt time.Time
}

// Sessions is the storage the token flow needs: start, rotate, end.
type Sessions interface {
	// Create stores a new session, or returns ErrAlreadyExists.
	Create(ctx context.Context, s Session) error
	// Get returns the session with the given id, or ErrNotFound. Expired
	// sessions may still be returned; callers check Expired.
	Get(ctx context.Context, id string) (Session, error)
	// Rotate MUST be atomic: if the session's current hash equals r.From and it
	// has not expired at r.Now, it applies r and returns the updated session.
	// Otherwise it changes nothing and returns the session as it stands with
	// ErrConflict, from the same atomic step, so that the caller can tell a
	// concurrent rotation from reuse without a second read. A missing session
	// gives ErrNotFound. Hashes are compared in constant time.
	Rotate(ctx context.Context, id string, r Rotation) (Session, error)
	// Extend sets the session's ExpiresAt and returns the updated session, or ErrNotFound.
	Extend(ctx context.Context, id string, expiresAt time.Time) (Session, error)
	// Delete removes the session and returns it as it was, or ErrNotFound.
	Delete(ctx context.Context, id string) (Session, error)
}

// Customers finds and ends sessions by customer.
type Customers interface {
	// ListByCustomer returns every stored session of the customer, in no set order.
	ListByCustomer(ctx context.Context, customerID string) ([]Session, error)
	// DeleteByCustomer removes every session of the customer and returns how many.
	DeleteByCustomer(ctx context.Context, customerID string) (int, error)
	// TrimByCustomer ends the customer's least recently refreshed sessions
	// beyond keep (LeastRecent decides which) and returns how many it ended.
	// A session created a moment ago by another instance may not be counted
	// yet, so under concurrent logins the customer may briefly hold a few
	// more.
	TrimByCustomer(ctx context.Context, customerID string, keep int) (int, error)
}

// LeastRecent returns the sessions of list beyond the keep most recently
// refreshed (ties broken by id, so every backend picks the same).
func LeastRecent(list []Session, keep int) []Session {
	if len(list) <= keep {
		return nil
	}
	sorted := slices.Clone(list)
	slices.SortFunc(sorted, func(a, b Session) int {
		if c := a.RefreshedAt.Compare(b.RefreshedAt); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return sorted[:len(sorted)-keep]
}

// Store is a whole backend, as main wires it.
type Store interface {
	Sessions
	Customers
	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the backend.
	Close() error
}

// LegacySessions are the sessions of the GraphQL Mesh auth module that
// meshauth replaces, kept in that module's table until they have all ended.
type LegacySessions interface {
	// DeleteLegacy MUST be atomic: it removes the row of customerID and
	// tokenHash (the module's hash of its refresh token) and returns
	// ErrNotFound when there is none, so that of concurrent callers exactly
	// one consumes a row.
	DeleteLegacy(ctx context.Context, customerID, tokenHash string) error
}

// Limit is one subject's counters (an account, an address) in one window
// of a rate limit's longest length: that window's count and the counts of
// the shorter windows current within it, kept together so that one call
// counts them all.
type Limit struct {
	// Key names the subject and the longest window.
	Key string
	// Windows are the counters the call touches, each named uniquely
	// within Key. A shorter window's name changes as it moves on, so a
	// counter holds at most one count per shorter window that saw a call.
	Windows []Window
	// ExpiresAt ends the longest window; the backend may delete the
	// counters afterwards.
	ExpiresAt time.Time
}

// Window is one counter of a Limit, which may reach Max.
type Window struct {
	Name string
	Max  int64
}

// Counters count failed attempts, such as wrong passwords, against limits,
// in windows that end by themselves. Every instance of the service sharing
// a backend shares its counters. Each call touches the windows of one
// Limit and MUST be atomic on them; no call spans limits.
type Counters interface {
	// Add adds delta to every window of l, creating each at zero, and
	// returns the counts after the addition, in the order of l.Windows. A
	// negative delta applies only when every window can take it without
	// going below zero; otherwise nothing changes.
	Add(ctx context.Context, l Limit, delta int64) ([]int64, error)
	// Reserve adds one to every window of l when each is below its Max and
	// returns the new counts and true; otherwise it changes nothing and
	// returns the counts as they stand and false. So of N concurrent
	// reservations exactly as many succeed as there is room for.
	Reserve(ctx context.Context, l Limit) ([]int64, bool, error)
}

// AppendAddr appends the 4 or 16 bytes of the address ip to b, for a
// backend to store it compactly, and reports true, when those bytes read
// back (netip.AddrFromSlice) as exactly ip; otherwise it returns b and
// false, and ip is to be kept as text.
func AppendAddr(b []byte, ip string) ([]byte, bool) {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || a.String() != ip {
		return b, false
	}
	b, err = a.AppendBinary(b)
	return b, err == nil
}
