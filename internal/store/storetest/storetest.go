// Package storetest is the conformance suite every session backend must pass.
// A backend's test calls Run with a constructor that returns a fresh, empty store.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/store"
)

// Concurrency is how many goroutines race to rotate the same token.
const Concurrency = 50

// base is a fixed clock; backends must keep times to the millisecond.
var base = time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)

func hash(s string) []byte { return []byte(fmt.Sprintf("%-32s", s)) }

func session(id, customer string) store.Session {
	return store.Session{
		ID:          id,
		CustomerID:  customer,
		TokenHash:   hash(id + "-t0"),
		CreatedAt:   base,
		RefreshedAt: base,
		ExpiresAt:   base.Add(15 * time.Minute),
		RememberMe:  true,
		Claims:      json.RawMessage(`{"group":"vip"}`),
		// A numeric customer id must keep its type across every write.
		NumericCustomerID: true,
		UserAgent:         "Mozilla/5.0",
		IP:                "192.0.2.1",
	}
}

// Run runs the suite. newStore must return an empty store; Run closes it.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		run  func(t *testing.T, s store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"CreateDuplicate", testCreateDuplicate},
		{"GetMissing", testGetMissing},
		{"Rotate", testRotate},
		{"RotateStaleHashConflicts", testRotateStale},
		{"RotateExpiredConflicts", testRotateExpired},
		{"RotateMissing", testRotateMissing},
		{"GraceAndReuseAreVisibleOnConflict", testGraceReuse},
		{"Extend", testExtend},
		{"Delete", testDelete},
		{"ListByCustomer", testList},
		{"DeleteByCustomer", testDeleteByCustomer},
		{"TrimByCustomer", testTrimByCustomer},
		{"ConcurrentRotateOneWinner", testConcurrentRotate},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.run(t, s)
		})
	}
}

func equal(t *testing.T, got, want store.Session) {
	t.Helper()
	if got.ID != want.ID || got.CustomerID != want.CustomerID ||
		!bytes.Equal(got.TokenHash, want.TokenHash) || !bytes.Equal(got.PrevTokenHash, want.PrevTokenHash) ||
		!got.RotatedAt.Equal(want.RotatedAt) || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.RefreshedAt.Equal(want.RefreshedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		got.RememberMe != want.RememberMe || got.UserAgent != want.UserAgent || got.IP != want.IP ||
		!jsonEqual(got.Claims, want.Claims) {
		t.Fatalf("session mismatch\n got: %+v\nwant: %+v", got, want)
	}
}

func jsonEqual(a, b json.RawMessage) bool {
	if len(a) == 0 || len(b) == 0 {
		return len(a) == len(b)
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	xa, _ := json.Marshal(x)
	ya, _ := json.Marshal(y)
	return bytes.Equal(xa, ya)
}

func mustCreate(t *testing.T, s store.Store, sess store.Session) {
	t.Helper()
	if err := s.Create(context.Background(), sess); err != nil {
		t.Fatalf("Create(%s): %v", sess.ID, err)
	}
}

func mustGet(t *testing.T, s store.Store, id string) store.Session {
	t.Helper()
	got, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatalf("Get(%s): %v", id, err)
	}
	return got
}

func testCreateGet(t *testing.T, s store.Store) {
	want := session("s1", "c1")
	mustCreate(t, s, want)
	equal(t, mustGet(t, s, "s1"), want)

	bare := store.Session{ID: "s2", CustomerID: "c1", TokenHash: hash("x"), CreatedAt: base, RefreshedAt: base, ExpiresAt: base.Add(time.Minute)}
	mustCreate(t, s, bare)
	equal(t, mustGet(t, s, "s2"), bare)
}

func testCreateDuplicate(t *testing.T, s store.Store) {
	mustCreate(t, s, session("s1", "c1"))
	other := session("s1", "c2")
	other.TokenHash = hash("other")
	if err := s.Create(context.Background(), other); !errors.Is(err, store.ErrAlreadyExists) {
		t.Fatalf("second Create: got %v, want ErrAlreadyExists", err)
	}
	equal(t, mustGet(t, s, "s1"), session("s1", "c1"))
}

func testGetMissing(t *testing.T, s store.Store) {
	if _, err := s.Get(context.Background(), "nope"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get missing: got %v, want ErrNotFound", err)
	}
}

func rotation(from, to string, now time.Time) store.Rotation {
	return store.Rotation{From: hash(from), To: hash(to), Now: now, ExpiresAt: now.Add(15 * time.Minute)}
}

func testRotate(t *testing.T, s store.Store) {
	orig := session("s1", "c1")
	mustCreate(t, s, orig)
	now := base.Add(5*time.Minute + 123*time.Millisecond)
	got, err := s.Rotate(context.Background(), "s1", rotation("s1-t0", "s1-t1", now))
	if err != nil {
		t.Fatalf("Rotate: %v", err)
	}
	want := orig
	want.TokenHash, want.PrevTokenHash = hash("s1-t1"), hash("s1-t0")
	want.RotatedAt, want.RefreshedAt, want.ExpiresAt = now, now, now.Add(15*time.Minute)
	equal(t, got, want)
	equal(t, mustGet(t, s, "s1"), want)
}

func testRotateStale(t *testing.T, s store.Store) {
	orig := session("s1", "c1")
	mustCreate(t, s, orig)
	got, err := s.Rotate(context.Background(), "s1", rotation("not-current", "s1-t1", base.Add(time.Minute)))
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Rotate with stale hash: got %v, want ErrConflict", err)
	}
	equal(t, got, orig)
	equal(t, mustGet(t, s, "s1"), orig)
}

func testRotateExpired(t *testing.T, s store.Store) {
	orig := session("s1", "c1")
	mustCreate(t, s, orig)
	for _, now := range []time.Time{orig.ExpiresAt, orig.ExpiresAt.Add(time.Millisecond), orig.ExpiresAt.Add(time.Hour)} {
		got, err := s.Rotate(context.Background(), "s1", rotation("s1-t0", "s1-t1", now))
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("Rotate at %v, after expiry %v: got %v, want ErrConflict", now, orig.ExpiresAt, err)
		}
		equal(t, got, orig)
	}
	equal(t, mustGet(t, s, "s1"), orig)
}

func testRotateMissing(t *testing.T, s store.Store) {
	if _, err := s.Rotate(context.Background(), "nope", rotation("a", "b", base)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Rotate missing: got %v, want ErrNotFound", err)
	}
}

// testGraceReuse checks what the token flow relies on to tell a concurrent
// rotation (predecessor presented again) from reuse (an older ancestor).
func testGraceReuse(t *testing.T, s store.Store) {
	ctx := context.Background()
	mustCreate(t, s, session("s1", "c1"))
	t1 := base.Add(time.Minute)
	if _, err := s.Rotate(ctx, "s1", rotation("s1-t0", "s1-t1", t1)); err != nil {
		t.Fatal(err)
	}
	// The predecessor again: conflict, and the answer names it as predecessor.
	got, err := s.Rotate(ctx, "s1", rotation("s1-t0", "s1-t1-again", t1.Add(time.Second)))
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("predecessor: got %v, want ErrConflict", err)
	}
	if !bytes.Equal(got.PrevTokenHash, hash("s1-t0")) || !bytes.Equal(got.TokenHash, hash("s1-t1")) || !got.RotatedAt.Equal(t1) {
		t.Fatalf("predecessor conflict returned %+v", got)
	}
	t2 := t1.Add(time.Minute)
	if _, err := s.Rotate(ctx, "s1", rotation("s1-t1", "s1-t2", t2)); err != nil {
		t.Fatal(err)
	}
	// The grandparent: conflict, and neither hash matches it.
	got, err = s.Rotate(ctx, "s1", rotation("s1-t0", "s1-tx", t2))
	if !errors.Is(err, store.ErrConflict) {
		t.Fatalf("ancestor: got %v, want ErrConflict", err)
	}
	if bytes.Equal(got.PrevTokenHash, hash("s1-t0")) || bytes.Equal(got.TokenHash, hash("s1-t0")) {
		t.Fatalf("ancestor still known: %+v", got)
	}
	if !bytes.Equal(got.TokenHash, hash("s1-t2")) || !bytes.Equal(got.PrevTokenHash, hash("s1-t1")) {
		t.Fatalf("ancestor conflict returned %+v", got)
	}
}

func testExtend(t *testing.T, s store.Store) {
	orig := session("s1", "c1")
	mustCreate(t, s, orig)
	for _, exp := range []time.Time{base.Add(48 * time.Hour), base.Add(time.Minute)} {
		got, err := s.Extend(context.Background(), "s1", exp)
		if err != nil {
			t.Fatal(err)
		}
		want := orig
		want.ExpiresAt = exp
		equal(t, got, want)
		equal(t, mustGet(t, s, "s1"), want)
	}
	if _, err := s.Extend(context.Background(), "nope", base); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Extend missing: got %v, want ErrNotFound", err)
	}
}

func testDelete(t *testing.T, s store.Store) {
	ctx := context.Background()
	orig := session("s1", "c1")
	mustCreate(t, s, orig)
	mustCreate(t, s, session("s2", "c1"))
	got, err := s.Delete(ctx, "s1")
	if err != nil {
		t.Fatal(err)
	}
	equal(t, got, orig)
	if _, err := s.Get(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after Delete: %v", err)
	}
	if _, err := s.Delete(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("second Delete: got %v, want ErrNotFound", err)
	}
	if _, err := s.Rotate(ctx, "s1", rotation("s1-t0", "s1-t1", base)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Rotate after Delete: got %v, want ErrNotFound", err)
	}
	mustGet(t, s, "s2")
	list, err := s.ListByCustomer(ctx, "c1")
	if err != nil || len(list) != 1 || list[0].ID != "s2" {
		t.Fatalf("ListByCustomer after Delete = %v, %v", list, err)
	}
}

func ids(list []store.Session) map[string]bool {
	m := map[string]bool{}
	for _, s := range list {
		m[s.ID] = true
	}
	return m
}

func testList(t *testing.T, s store.Store) {
	ctx := context.Background()
	// c1 is a prefix of c10: a backend keyed on prefixes must not mix them.
	for _, sess := range []store.Session{session("a", "c1"), session("b", "c1"), session("c", "c10"), session("d", "c2")} {
		mustCreate(t, s, sess)
	}
	// Rotating and extending must not duplicate or drop index entries.
	if _, err := s.Rotate(ctx, "a", rotation("a-t0", "a-t1", base.Add(time.Minute))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Extend(ctx, "b", base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for customer, want := range map[string][]string{"c1": {"a", "b"}, "c10": {"c"}, "c2": {"d"}, "c3": nil} {
		list, err := s.ListByCustomer(ctx, customer)
		if err != nil {
			t.Fatal(err)
		}
		got := ids(list)
		if len(list) != len(want) || len(got) != len(want) {
			t.Fatalf("ListByCustomer(%s) = %v, want %v", customer, got, want)
		}
		for _, id := range want {
			if !got[id] {
				t.Fatalf("ListByCustomer(%s) = %v, want %v", customer, got, want)
			}
		}
		for _, sess := range list {
			if sess.CustomerID != customer {
				t.Fatalf("ListByCustomer(%s) returned a session of %s", customer, sess.CustomerID)
			}
		}
	}
}

func testDeleteByCustomer(t *testing.T, s store.Store) {
	ctx := context.Background()
	// More than one DynamoDB batch (25) and one page of a small query.
	const many = 60
	for i := range many {
		mustCreate(t, s, session(fmt.Sprintf("x%02d", i), "c1"))
	}
	mustCreate(t, s, session("y", "c10"))
	n, err := s.DeleteByCustomer(ctx, "c1")
	if err != nil || n != many {
		t.Fatalf("DeleteByCustomer = %d, %v; want %d", n, err, many)
	}
	if list, err := s.ListByCustomer(ctx, "c1"); err != nil || len(list) != 0 {
		t.Fatalf("after DeleteByCustomer: %d sessions, %v", len(list), err)
	}
	if _, err := s.Get(ctx, "x00"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get after DeleteByCustomer: %v", err)
	}
	mustGet(t, s, "y")
	if n, err := s.DeleteByCustomer(ctx, "c1"); err != nil || n != 0 {
		t.Fatalf("second DeleteByCustomer = %d, %v", n, err)
	}
}

// testTrimByCustomer: the least recently refreshed sessions beyond keep end;
// the others, and other customers', stay.
func testTrimByCustomer(t *testing.T, s store.Store) {
	ctx := context.Background()
	for i := range 7 {
		sess := session(fmt.Sprintf("t%d", i), "c1")
		// t3 is the oldest by refresh, then t0, t1...; t6 the newest.
		sess.RefreshedAt = base.Add(time.Duration(i) * time.Minute)
		if i == 3 {
			sess.RefreshedAt = base.Add(-time.Hour)
		}
		mustCreate(t, s, sess)
	}
	mustCreate(t, s, session("other", "c2"))
	if n, err := s.TrimByCustomer(ctx, "c1", 7); err != nil || n != 0 {
		t.Fatalf("TrimByCustomer at the cap = %d, %v; want 0", n, err)
	}
	n, err := s.TrimByCustomer(ctx, "c1", 5)
	if err != nil || n != 2 {
		t.Fatalf("TrimByCustomer = %d, %v; want 2", n, err)
	}
	for _, gone := range []string{"t3", "t0"} {
		if _, err := s.Get(ctx, gone); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s, among the least recently refreshed, was kept: %v", gone, err)
		}
	}
	for _, kept := range []string{"t1", "t2", "t4", "t5", "t6", "other"} {
		mustGet(t, s, kept)
	}
}

// testConcurrentRotate races Concurrency rotations of the same hash: exactly
// one may win, and every loser must see the winner's hash as current and the
// raced hash as its predecessor.
func testConcurrentRotate(t *testing.T, s store.Store) {
	mustCreate(t, s, session("s1", "c1"))
	now := base.Add(time.Minute)
	var (
		wg      sync.WaitGroup
		start   = make(chan struct{})
		results = make([]store.Session, Concurrency)
		errs    = make([]error, Concurrency)
	)
	for i := range Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = s.Rotate(context.Background(), "s1", rotation("s1-t0", fmt.Sprintf("s1-t1-%d", i), now))
		}()
	}
	close(start)
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil:
			if winner >= 0 {
				t.Fatalf("rotations %d and %d both won", winner, i)
			}
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("rotation %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no rotation won")
	}
	want := hash(fmt.Sprintf("s1-t1-%d", winner))
	for i, got := range results {
		if !bytes.Equal(got.TokenHash, want) || !bytes.Equal(got.PrevTokenHash, hash("s1-t0")) {
			t.Fatalf("rotation %d saw current %q prev %q, want %q after s1-t0", i, got.TokenHash, got.PrevTokenHash, want)
		}
	}
	if got := mustGet(t, s, "s1"); !bytes.Equal(got.TokenHash, want) {
		t.Fatalf("stored hash %q, want winner's %q", got.TokenHash, want)
	}
}
