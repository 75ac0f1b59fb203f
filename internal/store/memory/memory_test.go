package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/memory"
	"github.com/meshauth/meshauth/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) store.Store { return memory.New() })
}

func TestSweepDeletesOnlyExpired(t *testing.T) {
	ctx := context.Background()
	s := memory.New()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for id, exp := range map[string]time.Time{"old": now.Add(-time.Second), "edge": now, "live": now.Add(time.Second)} {
		if err := s.Create(ctx, store.Session{ID: id, CustomerID: "c", TokenHash: []byte(id), ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.Sweep(now); n != 2 {
		t.Fatalf("swept %d, want 2 (old and edge)", n)
	}
	list, _ := s.ListByCustomer(ctx, "c")
	if len(list) != 1 || list[0].ID != "live" {
		t.Fatalf("left %v, want only live", list)
	}
}
