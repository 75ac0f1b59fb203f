package storetest

import (
	"context"
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
	limit := func(t *testing.T, k string, max int64) store.Limit {
		return store.Limit{Key: t.Name() + "/" + k, Max: max, ExpiresAt: end}
	}
	add := func(t *testing.T, c store.Counters, l store.Limit, delta int64) int64 {
		t.Helper()
		n, err := c.Add(ctx, l, delta)
		if err != nil {
			t.Fatalf("Add: %v", err)
		}
		return n
	}
	reserve := func(t *testing.T, c store.Counters, l store.Limit) (int64, bool) {
		t.Helper()
		n, ok, err := c.Reserve(ctx, l)
		if err != nil {
			t.Fatalf("Reserve: %v", err)
		}
		return n, ok
	}

	t.Run("AddCounts", func(t *testing.T) {
		c := newCounters(t)
		a := limit(t, "a", 3)
		for i := range 5 {
			if n := add(t, c, a, 1); n != int64(i+1) {
				t.Fatalf("Add %d returned %d", i+1, n)
			}
		}
		if n := add(t, c, a, -2); n != 3 {
			t.Fatalf("Add -2 returned %d, want 3", n)
		}
		// Another key is another counter.
		if n := add(t, c, limit(t, "b", 3), 1); n != 1 {
			t.Fatalf("a new counter starts at %d", n-1)
		}
	})
	t.Run("NeverBelowZero", func(t *testing.T) {
		c := newCounters(t)
		a := limit(t, "a", 3)
		if n := add(t, c, a, -1); n != 0 {
			t.Fatalf("Add -1 on a missing counter returned %d", n)
		}
		if n := add(t, c, a, 1); n != 1 {
			t.Fatalf("then Add 1 returned %d, want 1", n)
		}
	})
	t.Run("ReserveUntilFull", func(t *testing.T) {
		c := newCounters(t)
		a := limit(t, "a", 3)
		add(t, c, a, 1) // a failure counted by Add
		for i := range 2 {
			if n, ok := reserve(t, c, a); !ok || n != int64(i+2) {
				t.Fatalf("reservation %d: %d, %v", i+1, n, ok)
			}
		}
		for range 2 {
			if _, ok := reserve(t, c, a); ok {
				t.Fatal("reservation past Max succeeded")
			}
		}
		add(t, c, a, -1) // one given back
		if n, ok := reserve(t, c, a); !ok || n != 3 {
			t.Fatalf("after a release: %d, %v", n, ok)
		}
	})
	t.Run("ConcurrentReserve", func(t *testing.T) {
		c := newCounters(t)
		const max = 10
		a := limit(t, "a", max)
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
		if ok.Load() != max {
			t.Fatalf("%d of %d concurrent reservations succeeded, want exactly %d", ok.Load(), Concurrency, max)
		}
		if n := add(t, c, a, 0); n != max {
			t.Fatalf("counter at %d after the race, want %d", n, max)
		}
	})
}
