package storetest

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/store"
)

// RunCounters runs the counters suite. Keys are unique per test, so one
// backend may serve every case.
func RunCounters(t *testing.T, newCounters func(t *testing.T) store.Counters) {
	ctx := context.Background()
	// Far from now, so that a backend deleting ended counters by the wall
	// clock leaves these alone.
	end := time.Now().Add(time.Hour).Truncate(time.Second)
	// limit is the key k with a long window "n" and a short one named
	// short, as the service builds them: a minute within an hour.
	limit := func(t *testing.T, k string, long int64, short string, max int64) store.Limit {
		return store.Limit{Key: t.Name() + "/" + k, Windows: []store.Window{{Name: "n", Max: long}, {Name: short, Max: max}}, ExpiresAt: end}
	}
	want := func(t *testing.T, what string, got []int64, want ...int64) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Fatalf("%s: counts %v, want %v", what, got, want)
		}
	}
	add := func(t *testing.T, c store.Counters, l store.Limit, delta int64) []int64 {
		t.Helper()
		n, err := c.Add(ctx, l, delta)
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
		return n
	}
	reserve := func(t *testing.T, c store.Counters, l store.Limit) ([]int64, bool) {
		t.Helper()
		n, ok, err := c.Reserve(ctx, l)
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		return n, ok
	}

	t.Run("AddCounts", func(t *testing.T) {
		c := newCounters(t)
		a := limit(t, "a", 5, "w60_1", 3)
		for i := range 5 {
			want(t, "Add", add(t, c, a, 1), int64(i+1), int64(i+1))
		}
		// The short window moved on: the long one keeps counting.
		next := limit(t, "a", 5, "w60_2", 3)
		want(t, "Add in the next short window", add(t, c, next, 1), 6, 1)
		want(t, "Add -2 in the first short window", add(t, c, a, -2), 4, 3)
		want(t, "Add 0 in the next", add(t, c, next, 0), 4, 1)
		// Another key is another counter.
		want(t, "Add to another key", add(t, c, limit(t, "b", 5, "w60_1", 3), 1), 1, 1)
	})
	t.Run("NeverBelowZero", func(t *testing.T) {
		c := newCounters(t)
		a := limit(t, "a", 5, "w60_1", 3)
		want(t, "Add -1 on a missing counter", add(t, c, a, -1), 0, 0)
		want(t, "then Add 1", add(t, c, a, 1), 1, 1)
		// A window that cannot take the whole delta stops the call: no
		// window changes.
		next := limit(t, "a", 5, "w60_2", 3)
		want(t, "Add -1 where the short window is at zero", add(t, c, next, -1), 1, 0)
		want(t, "the long window", add(t, c, a, 0), 1, 1)
	})
	t.Run("ReserveUntilFull", func(t *testing.T) {
		c := newCounters(t)
		a := limit(t, "a", 5, "w60_1", 3)
		add(t, c, a, 1) // a failure counted by Add
		for i := range 2 {
			n, ok := reserve(t, c, a)
			if !ok {
				t.Fatalf("reservation %d refused: %v", i+1, n)
			}
			want(t, "Reserve", n, int64(i+2), int64(i+2))
		}
		for range 2 {
			n, ok := reserve(t, c, a)
			if ok {
				t.Fatal("reservation past the short window's Max succeeded")
			}
			want(t, "refused Reserve", n, 3, 3)
		}
		// The next short window has room until the long one is full.
		next := limit(t, "a", 5, "w60_2", 3)
		for i := range 2 {
			n, ok := reserve(t, c, next)
			if !ok {
				t.Fatalf("reservation %d in the next short window refused: %v", i+1, n)
			}
			want(t, "Reserve in the next short window", n, int64(4+i), int64(i+1))
		}
		if n, ok := reserve(t, c, next); ok {
			t.Fatalf("reservation past the long window's Max succeeded: %v", n)
		}
		want(t, "one given back", add(t, c, a, -1), 4, 2)
		if n, ok := reserve(t, c, next); !ok {
			t.Fatalf("after a release: %v refused", n)
		}
	})
	t.Run("NoRoom", func(t *testing.T) {
		// A window with Max 0 (the limiter lowers Max by one while an
		// attempt it let through unreserved may yet fail) has no room, even
		// when nothing was counted in it yet.
		c := newCounters(t)
		a := limit(t, "a", 5, "w60_1", 0)
		if n, ok := reserve(t, c, a); ok {
			t.Fatalf("reservation in a window with Max 0 succeeded: %v", n)
		}
		want(t, "after the refusal", add(t, c, a, 0), 0, 0)
	})
	for _, tc := range []struct {
		name        string
		long, short int64
	}{{"ConcurrentReserveShortFull", 50, 10}, {"ConcurrentReserveLongFull", 10, 50}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCounters(t)
			a := limit(t, "a", tc.long, "w60_1", tc.short)
			var (
				wg sync.WaitGroup
				ok atomic.Int64
			)
			errs := make([]error, Concurrency)
			for i := range Concurrency {
				wg.Go(func() {
					_, got, err := c.Reserve(ctx, a)
					errs[i] = err
					if got {
						ok.Add(1)
					}
				})
			}
			wg.Wait()
			for _, err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			room := min(tc.long, tc.short)
			if ok.Load() != room {
				t.Fatalf("%d of %d concurrent reservations succeeded, want exactly %d", ok.Load(), Concurrency, room)
			}
			want(t, "after the race", add(t, c, a, 0), room, room)
		})
	}
}
