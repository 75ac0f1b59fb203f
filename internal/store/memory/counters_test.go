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

// TestReleasedCountersAreDropped: reservations given back leave nothing behind.
func TestReleasedCountersAreDropped(t *testing.T) {
	c := &Counters{}
	ctx := context.Background()
	for i := range 1000 {
		l := store.Limit{Key: fmt.Sprintf("account-%d", i), Windows: []store.Window{{Name: "n", Max: 20}, {Name: "w60_1", Max: 5}}, ExpiresAt: time.Now().Add(time.Hour)}
		if _, ok, err := c.Reserve(ctx, l); err != nil || !ok {
			t.Fatal(ok, err)
		}
		if _, err := c.Add(ctx, l, -1); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(c.m); n != 0 {
		t.Fatalf("%d counters kept after every reservation was given back", n)
	}
}
