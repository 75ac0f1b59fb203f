// Package faulty wraps a store.Store to inject faults, per kind of call, for
// tests: added latency that honours the context, returned errors, and writes
// that succeed but whose response is lost. Without faults it passes every
// call through unchanged.
package faulty

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/meshauth/meshauth/internal/store"
)

var _ store.Store = (*Store)(nil)

// Op names a kind of call, after the store.Store method.
type Op string

// The kinds of call.
const (
	Create           Op = "Create"
	Get              Op = "Get"
	Rotate           Op = "Rotate"
	Extend           Op = "Extend"
	Delete           Op = "Delete"
	ListByCustomer   Op = "ListByCustomer"
	DeleteByCustomer Op = "DeleteByCustomer"
	TrimByCustomer   Op = "TrimByCustomer"
	Ping             Op = "Ping"
)

// ErrResponseLost is what a call with LoseResponse returns after the inner
// store has handled it. It wraps store.ErrUnavailable, as a timeout or a
// dropped connection after the request was sent would.
var ErrResponseLost = fmt.Errorf("response lost after the call was made: %w", store.ErrUnavailable)

// Fault is what happens to a call, in this order: the Latency, then Err, or
// the inner call and then LoseResponse. The zero Fault changes nothing.
type Fault struct {
	// Latency delays the call before it reaches the inner store. When ctx
	// ends first the call returns ctx's error, wrapped, and the inner store
	// is not called, so nothing is written.
	Latency time.Duration
	// Err, when set, is returned instead of calling the inner store.
	Err error
	// LoseResponse makes the call on the inner store, then discards its
	// result and returns ErrResponseLost: the write happened, the caller
	// does not know.
	LoseResponse bool
	// Times is how many calls the fault applies to before it clears itself;
	// zero means every call until Clear.
	Times int
}

// Store is a store.Store that injects the faults set on it into the calls it
// passes to an inner store. It is safe for concurrent use.
type Store struct {
	inner store.Store

	mu     sync.Mutex
	faults map[Op]Fault
	calls  map[Op]int
}

// New wraps inner, with no fault set.
func New(inner store.Store) *Store {
	return &Store{inner: inner, faults: map[Op]Fault{}, calls: map[Op]int{}}
}

// Inner returns the wrapped store, to inspect what a faulty call left behind.
func (s *Store) Inner() store.Store { return s.inner }

// Set makes f happen to the calls of kind op, replacing any fault set before.
func (s *Store) Set(op Op, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults[op] = f
}

// Clear removes the faults of the given kinds, or of every kind when none is given.
func (s *Store) Clear(ops ...Op) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(ops) == 0 {
		clear(s.faults)
		return
	}
	for _, op := range ops {
		delete(s.faults, op)
	}
}

// Calls returns how many calls of kind op were made, faulty or not.
func (s *Store) Calls(op Op) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// take counts a call of kind op and returns the fault for it, if any.
func (s *Store) take(op Op) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	f, ok := s.faults[op]
	if ok && f.Times > 0 {
		if f.Times == 1 {
			delete(s.faults, op)
		} else {
			left := f
			left.Times--
			s.faults[op] = left
		}
	}
	return f, ok
}

// do runs call under the fault set for op.
func do[T any](ctx context.Context, s *Store, op Op, call func() (T, error)) (T, error) {
	var zero T
	f, ok := s.take(op)
	if !ok {
		return call()
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return zero, fmt.Errorf("faulty %s: %w", op, ctx.Err())
		case <-t.C:
		}
	}
	if f.Err != nil {
		return zero, fmt.Errorf("faulty %s: %w", op, f.Err)
	}
	v, err := call()
	if f.LoseResponse {
		return zero, fmt.Errorf("faulty %s: %w", op, ErrResponseLost)
	}
	return v, err
}

// none is the result of the calls that return only an error.
type none struct{}

// Create is store.Sessions.Create under the fault set for Create.
func (s *Store) Create(ctx context.Context, sess store.Session) error {
	_, err := do(ctx, s, Create, func() (none, error) { return none{}, s.inner.Create(ctx, sess) })
	return err
}

// Get is store.Sessions.Get under the fault set for Get.
func (s *Store) Get(ctx context.Context, id string) (store.Session, error) {
	return do(ctx, s, Get, func() (store.Session, error) { return s.inner.Get(ctx, id) })
}

// Rotate is store.Sessions.Rotate under the fault set for Rotate.
func (s *Store) Rotate(ctx context.Context, id string, r store.Rotation) (store.Session, error) {
	return do(ctx, s, Rotate, func() (store.Session, error) { return s.inner.Rotate(ctx, id, r) })
}

// Extend is store.Sessions.Extend under the fault set for Extend.
func (s *Store) Extend(ctx context.Context, id string, expiresAt time.Time) (store.Session, error) {
	return do(ctx, s, Extend, func() (store.Session, error) { return s.inner.Extend(ctx, id, expiresAt) })
}

// Delete is store.Sessions.Delete under the fault set for Delete.
func (s *Store) Delete(ctx context.Context, id string) (store.Session, error) {
	return do(ctx, s, Delete, func() (store.Session, error) { return s.inner.Delete(ctx, id) })
}

// ListByCustomer is store.Customers.ListByCustomer under the fault set for ListByCustomer.
func (s *Store) ListByCustomer(ctx context.Context, customerID string) ([]store.Session, error) {
	return do(ctx, s, ListByCustomer, func() ([]store.Session, error) { return s.inner.ListByCustomer(ctx, customerID) })
}

// DeleteByCustomer is store.Customers.DeleteByCustomer under the fault set for DeleteByCustomer.
func (s *Store) DeleteByCustomer(ctx context.Context, customerID string) (int, error) {
	return do(ctx, s, DeleteByCustomer, func() (int, error) { return s.inner.DeleteByCustomer(ctx, customerID) })
}

// TrimByCustomer is store.Customers.TrimByCustomer under the fault set for TrimByCustomer.
func (s *Store) TrimByCustomer(ctx context.Context, customerID string, keep int) (int, error) {
	return do(ctx, s, TrimByCustomer, func() (int, error) { return s.inner.TrimByCustomer(ctx, customerID, keep) })
}

// Ping is store.Store.Ping under the fault set for Ping.
func (s *Store) Ping(ctx context.Context) error {
	_, err := do(ctx, s, Ping, func() (none, error) { return none{}, s.inner.Ping(ctx) })
	return err
}

// Close closes the inner store; it is never faulty.
func (s *Store) Close() error { return s.inner.Close() }
