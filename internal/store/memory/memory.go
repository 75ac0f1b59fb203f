// Package memory keeps sessions and counters in the process. Nothing survives
// a restart and nothing is shared with another instance: it is for tests and
// throwaway development runs (STORE=memory), and its counters are what the
// embedded store uses, since a single instance has no one to share them with.
package memory

import (
	"bytes"
	"context"
	"crypto/subtle"
	"sync"
	"time"

	"github.com/meshauth/meshauth/internal/store"
)

var (
	_ store.Store    = (*Store)(nil)
	_ store.Counters = (*Store)(nil)
)

// Store is an in-process store.Store. Every method runs under one lock, so
// Rotate is atomic. Expired sessions are dropped by Sweep.
type Store struct {
	Counters

	mu        sync.Mutex
	sessions  map[string]store.Session
	customers map[string]map[string]struct{} // customer id -> session ids
}

// New returns an empty Store.
func New() *Store {
	return &Store{sessions: map[string]store.Session{}, customers: map[string]map[string]struct{}{}}
}

// Ping implements store.Store; memory is always reachable.
func (s *Store) Ping(context.Context) error { return nil }

// Close implements store.Store; there is nothing to release.
func (s *Store) Close() error { return nil }

// Create implements store.Sessions.
func (s *Store) Create(_ context.Context, sess store.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[sess.ID]; ok {
		return store.ErrAlreadyExists
	}
	s.put(sess)
	return nil
}

// Get implements store.Sessions.
func (s *Store) Get(_ context.Context, id string) (store.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	return clone(sess), nil
}

// Rotate implements store.Sessions, atomically under the store's lock.
func (s *Store) Rotate(_ context.Context, id string, r store.Rotation) (store.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, ok := s.sessions[id]
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	if subtle.ConstantTimeCompare(old.TokenHash, r.From) != 1 || old.Expired(r.Now) {
		return clone(old), store.ErrConflict
	}
	sess := old
	sess.PrevTokenHash, sess.TokenHash = old.TokenHash, bytes.Clone(r.To)
	sess.RotatedAt, sess.RefreshedAt, sess.ExpiresAt = r.Now, r.Now, r.ExpiresAt
	s.sessions[id] = sess
	return clone(sess), nil
}

// Extend implements store.Sessions.
func (s *Store) Extend(_ context.Context, id string, expiresAt time.Time) (store.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	sess.ExpiresAt = expiresAt
	s.sessions[id] = sess
	return clone(sess), nil
}

// Delete implements store.Sessions.
func (s *Store) Delete(_ context.Context, id string) (store.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.sessions[id]
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	s.remove(sess)
	return sess, nil
}

// ListByCustomer implements store.Customers.
func (s *Store) ListByCustomer(_ context.Context, customerID string) ([]store.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Session
	for id := range s.customers[customerID] {
		out = append(out, clone(s.sessions[id]))
	}
	return out, nil
}

// DeleteByCustomer implements store.Customers.
func (s *Store) DeleteByCustomer(_ context.Context, customerID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ids := s.customers[customerID]
	n := len(ids)
	for id := range ids {
		s.remove(s.sessions[id])
	}
	return n, nil
}

// TrimByCustomer implements store.Customers.
func (s *Store) TrimByCustomer(_ context.Context, customerID string, keep int) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var list []store.Session
	for id := range s.customers[customerID] {
		list = append(list, s.sessions[id])
	}
	ended := store.LeastRecent(list, keep)
	for _, sess := range ended {
		s.remove(sess)
	}
	return len(ended), nil
}

// Sweep deletes the sessions that have expired at now and returns how many.
func (s *Store) Sweep(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, sess := range s.sessions {
		if sess.Expired(now) {
			s.remove(sess)
			n++
		}
	}
	return n
}

func (s *Store) put(sess store.Session) {
	sess = clone(sess)
	s.sessions[sess.ID] = sess
	ids := s.customers[sess.CustomerID]
	if ids == nil {
		ids = map[string]struct{}{}
		s.customers[sess.CustomerID] = ids
	}
	ids[sess.ID] = struct{}{}
}

func (s *Store) remove(sess store.Session) {
	delete(s.sessions, sess.ID)
	if ids := s.customers[sess.CustomerID]; ids != nil {
		delete(ids, sess.ID)
		if len(ids) == 0 {
			delete(s.customers, sess.CustomerID)
		}
	}
}

// clone copies the session's byte slices, so that no caller shares memory
// with the store.
func clone(s store.Session) store.Session {
	s.TokenHash = bytes.Clone(s.TokenHash)
	s.PrevTokenHash = bytes.Clone(s.PrevTokenHash)
	s.Claims = bytes.Clone(s.Claims)
	return s
}
