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
	m     map[string]counter
	calls int
}

type counter struct {
	n   int64
	exp time.Time
}

// get returns l's counter, after dropping now and then the counters whose
// end has passed by the wall clock. The caller holds mu.
func (c *Counters) get(l store.Limit) counter {
	if c.m == nil {
		c.m = map[string]counter{}
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
		e.exp = l.ExpiresAt
	}
	return e
}

// put stores e under l's key, or drops it at zero: the many accounts that
// never fail cost no memory.
func (c *Counters) put(l store.Limit, e counter) {
	if e.n <= 0 {
		delete(c.m, l.Key)
		return
	}
	c.m[l.Key] = e
}

// Add implements store.Counters under one lock.
func (c *Counters) Add(_ context.Context, l store.Limit, delta int64) (int64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.get(l)
	e.n = max(0, e.n+delta)
	c.put(l, e)
	return e.n, nil
}

// Reserve implements store.Counters under one lock.
func (c *Counters) Reserve(_ context.Context, l store.Limit) (int64, bool, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.get(l)
	if e.n >= l.Max {
		return e.n, false, nil
	}
	e.n++
	c.put(l, e)
	return e.n, true, nil
}
