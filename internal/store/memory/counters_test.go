package memory

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/storetest"
)

func TestCountersConformance(t *testing.T) {
	storetest.RunCounters(t, func(*testing.T) store.Counters { return &Counters{} })
}

// TestReleasedCountersAreDropped: successful logins leave nothing behind.
func TestReleasedCountersAreDropped(t *testing.T) {
	c := &Counters{}
	ctx := context.Background()
	for i := range 1000 {
		l := []store.Limit{{Key: fmt.Sprintf("account-%d", i), Max: 5, ExpiresAt: time.Now().Add(time.Hour)}}
		if full, err := c.Acquire(ctx, l); err != nil || full != nil {
			t.Fatal(full, err)
		}
		if err := c.Release(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.m); n != 0 {
		t.Fatalf("%d counters kept after every attempt was released", n)
	}
}
