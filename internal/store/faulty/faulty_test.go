package faulty

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/embedded"
	"github.com/meshauth/meshauth/internal/store/storetest"
)

// TestConformanceWithoutFaults: with no fault set the wrapper changes
// nothing, so tests that set faults test the inner store's behaviour.
func TestConformanceWithoutFaults(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := embedded.Open(t.TempDir()) // Run closes it, through the wrapper
		if err != nil {
			t.Fatal(err)
		}
		return New(s)
	})
}

func open(t *testing.T) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var (
	t0      = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	h0, h1  = bytes.Repeat([]byte{0}, 32), bytes.Repeat([]byte{1}, 32)
	session = store.Session{ID: "s1", CustomerID: "c1", TokenHash: h0, CreatedAt: t0, RefreshedAt: t0, ExpiresAt: t0.Add(time.Hour)}
	rotate  = store.Rotation{From: h0, To: h1, Now: t0.Add(time.Minute), ExpiresAt: t0.Add(2 * time.Hour)}
)

func TestErrSkipsTheInnerStore(t *testing.T) {
	ctx := context.Background()
	inner := open(t)
	s := New(inner)
	boom := errors.New("boom")
	s.Set(Create, Fault{Err: store.ErrUnavailable})
	if err := s.Create(ctx, session); !errors.Is(err, store.ErrUnavailable) {
		t.Fatalf("Create = %v, want ErrUnavailable", err)
	}
	if _, err := inner.Get(ctx, "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a failed Create wrote: Get = %v", err)
	}
	s.Clear(Create)
	if err := s.Create(ctx, session); err != nil {
		t.Fatalf("Create after Clear: %v", err)
	}
	s.Set(Rotate, Fault{Err: boom})
	if _, err := s.Rotate(ctx, "s1", rotate); !errors.Is(err, boom) {
		t.Fatalf("Rotate = %v, want boom", err)
	}
	// Other kinds of call are not affected.
	if got, err := s.Get(ctx, "s1"); err != nil || !bytes.Equal(got.TokenHash, h0) {
		t.Fatalf("Get = %+v, %v; want the session unrotated", got, err)
	}
	if c := s.Calls(Rotate); c != 1 {
		t.Fatalf("Calls(Rotate) = %d, want 1", c)
	}
}

func TestLoseResponseWritesThenFails(t *testing.T) {
	ctx := context.Background()
	inner := open(t)
	s := New(inner)
	s.Set(Create, Fault{LoseResponse: true})
	if err := s.Create(ctx, session); !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, ErrResponseLost) {
		t.Fatalf("Create = %v, want ErrResponseLost wrapping ErrUnavailable", err)
	}
	s.Set(Rotate, Fault{LoseResponse: true})
	got, err := s.Rotate(ctx, "s1", rotate)
	if !errors.Is(err, store.ErrUnavailable) || got.ID != "" {
		t.Fatalf("Rotate = %+v, %v; want no session and ErrUnavailable", got, err)
	}
	cur, err := inner.Get(ctx, "s1")
	if err != nil || !bytes.Equal(cur.TokenHash, h1) || !bytes.Equal(cur.PrevTokenHash, h0) {
		t.Fatalf("inner session = %+v, %v; want the rotation applied", cur, err)
	}
}

func TestTimes(t *testing.T) {
	ctx := context.Background()
	s := New(open(t))
	s.Set(Get, Fault{Err: store.ErrUnavailable, Times: 2})
	var errs []error
	for range 4 {
		_, err := s.Get(ctx, "missing")
		errs = append(errs, err)
	}
	for i, want := range []error{store.ErrUnavailable, store.ErrUnavailable, store.ErrNotFound, store.ErrNotFound} {
		if !errors.Is(errs[i], want) {
			t.Errorf("call %d = %v, want %v", i+1, errs[i], want)
		}
	}
}

func TestLatencyHonoursTheContext(t *testing.T) {
	inner := open(t)
	s := New(inner)
	s.Set(Create, Fault{Latency: time.Minute})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Create(ctx, session)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Create = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Create took %v with a 20ms deadline", took)
	}
	if _, err := inner.Get(context.Background(), "s1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a call that timed out before reaching the store wrote: Get = %v", err)
	}

	// Without a deadline the call is delayed, then made.
	s.Set(Create, Fault{Latency: 20 * time.Millisecond})
	start = time.Now()
	if err := s.Create(context.Background(), session); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("Create took %v, want at least the 20ms latency", took)
	}
	if _, err := inner.Get(context.Background(), "s1"); err != nil {
		t.Fatalf("the delayed Create did not write: %v", err)
	}
}
