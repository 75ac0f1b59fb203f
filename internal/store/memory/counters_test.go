package memory

import (
	"testing"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/storetest"
)

func TestCountersConformance(t *testing.T) {
	storetest.RunCounters(t, func(*testing.T) store.Counters { return &Counters{} })
}
