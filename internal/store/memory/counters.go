package memory

import (
	"context"
	"sync"
	"time"

	"github.com/meshauth/meshauth/internal/store"
)

var _ store.Counters = (*Counters)(nil)

// pruneEvery is how many calls pass between sweeps of ended counters.
const pruneEvery = 1024

// Counters is an in-process store.Counters. The zero value is ready to use.
type Counters struct {
	mu    sync.Mutex
	m     map[string]*counter
	calls int
}

// counter is one Limit's windows, by name.
type counter struct {
	n   map[string]int64
	exp time.Time
}

// get returns l's counter, after dropping now and then the counters whose
// end has passed by the wall clock. The caller holds mu.
func (c *Counters) get(l store.Limit) *counter {
	if c.m == nil {
		c.m = map[string]*counter{}
	}
	if c.calls++; c.calls%pruneEvery == 0 {
		now := time.Now()
		for k, e := range c.m {
			if !now.Before(e.exp) {
				delete(c.m, k)
			}
		}
	}
	e, ok := c.m[l.Key]
	if !ok {
		e = &counter{n: map[string]int64{}, exp: l.ExpiresAt}
	}
	return e
}

// counts returns e's counts of l's windows, in order.
func (e *counter) counts(l store.Limit) []int64 {
	out := make([]int64, len(l.Windows))
	for i, w := range l.Windows {
		out[i] = e.n[w.Name]
	}
	return out
}

// add adds delta to l's windows of e, keeps e under l's key, or drops it
// once every window is at zero: the many accounts that never fail cost no
// memory. The caller holds mu.
func (c *Counters) add(l store.Limit, e *counter, delta int64) []int64 {
	for _, w := range l.Windows {
		if n := e.n[w.Name] + delta; n > 0 {
			e.n[w.Name] = n
		} else {
			delete(e.n, w.Name)
		}
	}
	if len(e.n) == 0 {
		delete(c.m, l.Key)
	} else {
		c.m[l.Key] = e
	}
	return e.counts(l)
}

// Add implements store.Counters under one lock.
func (c *Counters) Add(_ context.Context, l store.Limit, delta int64) ([]int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.get(l)
	for _, w := range l.Windows {
		if e.n[w.Name]+delta < 0 {
			return e.counts(l), nil
		}
	}
	return c.add(l, e, delta), nil
}

// Reserve implements store.Counters under one lock.
func (c *Counters) Reserve(_ context.Context, l store.Limit) ([]int64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.get(l)
	for _, w := range l.Windows {
		if e.n[w.Name] >= w.Max {
			return e.counts(l), false, nil
		}
	}
	return c.add(l, e, 1), true, nil
}
