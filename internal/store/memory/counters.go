package memory

import (
	"context"
	"sync"
	"time"

	"github.com/meshauth/meshauth/internal/store"
)

var _ store.Counters = (*Counters)(nil)

// pruneEvery is how many acquisitions pass between sweeps of ended counters.
const pruneEvery = 1024

// Counters is an in-process store.Counters. The zero value is ready to use.
type Counters struct {
	mu       sync.Mutex
	m        map[string]counter
	acquired int
}

type counter struct {
	n   int64
	exp time.Time
}

// Acquire implements store.Counters under one lock. Counters whose end has
// passed by the wall clock are dropped now and then.
func (c *Counters) Acquire(_ context.Context, limits []store.Limit) ([]int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]counter{}
	}
	if c.acquired++; c.acquired%pruneEvery == 0 {
		now := time.Now()
		for k, e := range c.m {
			if !now.Before(e.exp) {
				delete(c.m, k)
			}
		}
	}
	var full []int
	for i, l := range limits {
		if c.m[l.Key].n >= l.Max {
			full = append(full, i)
		}
	}
	if len(full) > 0 {
		return full, nil
	}
	for _, l := range limits {
		e, ok := c.m[l.Key]
		if !ok {
			e.exp = l.ExpiresAt
		}
		e.n++
		c.m[l.Key] = e
	}
	return nil, nil
}

// Release implements store.Counters.
func (c *Counters) Release(_ context.Context, limits []store.Limit) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, l := range limits {
		switch e, ok := c.m[l.Key]; {
		case !ok:
		case e.n <= 1:
			// Nothing counted any more: keep no entry, so that the many
			// accounts that log in successfully cost no memory.
			delete(c.m, l.Key)
		default:
			e.n--
			c.m[l.Key] = e
		}
	}
	return nil
}
