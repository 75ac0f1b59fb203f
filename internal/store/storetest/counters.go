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
	limit := func(t *testing.T, k string, max int64) store.Limit {
		return store.Limit{Key: t.Name() + "/" + k, Max: max, ExpiresAt: end}
	}
	acquire := func(t *testing.T, c store.Counters, limits ...store.Limit) []int {
		t.Helper()
		full, err := c.Acquire(ctx, limits)
		if err != nil {
			t.Fatalf("Acquire: %v", err)
		}
		return full
	}

	t.Run("AcquireUntilFull", func(t *testing.T) {
		c := newCounters(t)
		a := limit(t, "a", 3)
		for i := range 3 {
			if full := acquire(t, c, a); full != nil {
				t.Fatalf("acquisition %d refused: %v", i+1, full)
			}
		}
		for range 2 {
			if full := acquire(t, c, a); !slices.Equal(full, []int{0}) {
				t.Fatalf("acquisition past Max: full = %v, want [0]", full)
			}
		}
	})
	t.Run("AtomicAcrossLimits", func(t *testing.T) {
		c := newCounters(t)
		small, big := limit(t, "small", 1), limit(t, "big", 10)
		if full := acquire(t, c, big, small); full != nil {
			t.Fatalf("first: %v", full)
		}
		// small is full: nothing may change, big included.
		for range 5 {
			if full := acquire(t, c, big, small); !slices.Equal(full, []int{1}) {
				t.Fatalf("full = %v, want [1]", full)
			}
		}
		// big has room for exactly 9 more.
		for i := range 9 {
			if full := acquire(t, c, big); full != nil {
				t.Fatalf("big refused at %d: a refused acquisition changed it", i+2)
			}
		}
		if full := acquire(t, c, big); !slices.Equal(full, []int{0}) {
			t.Fatalf("big past 10: %v", full)
		}
	})
	t.Run("Release", func(t *testing.T) {
		c := newCounters(t)
		a, b := limit(t, "a", 2), limit(t, "b", 2)
		acquire(t, c, a, b)
		acquire(t, c, a, b)
		if full := acquire(t, c, a, b); !slices.Equal(full, []int{0, 1}) {
			t.Fatalf("full = %v, want [0 1]", full)
		}
		if err := c.Release(ctx, []store.Limit{a, b}); err != nil {
			t.Fatal(err)
		}
		if full := acquire(t, c, a, b); full != nil {
			t.Fatalf("after Release: %v", full)
		}
		// Releasing a counter that never existed is harmless.
		if err := c.Release(ctx, []store.Limit{limit(t, "never", 1)}); err != nil {
			t.Fatalf("Release of a missing counter: %v", err)
		}
		if full := acquire(t, c, limit(t, "never", 1)); full != nil {
			t.Fatalf("a released missing counter went below zero or was created full: %v", full)
		}
	})
	t.Run("ConcurrentAcquire", func(t *testing.T) {
		c := newCounters(t)
		const max = 10
		a, b := limit(t, "a", max), limit(t, "b", 100)
		var (
			wg sync.WaitGroup
			ok atomic.Int64
		)
		errs := make([]error, Concurrency)
		for i := range Concurrency {
			wg.Add(1)
			go func() {
				defer wg.Done()
				full, err := c.Acquire(ctx, []store.Limit{a, b})
				errs[i] = err
				if err == nil && full == nil {
					ok.Add(1)
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if ok.Load() != max {
			t.Fatalf("%d of %d concurrent acquisitions succeeded, want exactly %d", ok.Load(), Concurrency, max)
		}
		// b counted only the successful ones: 90 more fit.
		for i := range 100 - max {
			if full := acquire(t, c, b); full != nil {
				t.Fatalf("b refused at %d: refused acquisitions changed it", max+i+1)
			}
		}
	})
}
