package embedded

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestSweepDeletesOnlyExpired(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for id, exp := range map[string]time.Time{"old": now.Add(-time.Second), "edge": now, "live": now.Add(time.Second)} {
		if err := s.Create(ctx, store.Session{ID: id, CustomerID: "c", TokenHash: []byte(id), ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	// A rotation moves the session's expiry entry: the old one must not linger.
	if _, err := s.Extend(ctx, "live", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(now)
	if err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1 (only the session that ended before now)", n, err)
	}
	if _, err := s.Get(ctx, "old"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("expired session still stored: %v", err)
	}
	if n, err := s.Sweep(now.Add(time.Second)); err != nil || n != 1 {
		t.Fatalf("Sweep at now+1s = %d, %v; want 1 (edge)", n, err)
	}
	if n, err := s.Sweep(now.Add(30 * time.Minute)); err != nil || n != 0 {
		t.Fatalf("Sweep at now+30m = %d, %v; want 0: live was extended", n, err)
	}
	if list, _ := s.ListByCustomer(ctx, "c"); len(list) != 1 || list[0].ID != "live" {
		t.Fatalf("remaining sessions = %v", list)
	}
}

func TestSessionsSurviveReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := store.Session{ID: "s", CustomerID: "c", TokenHash: []byte("h"), ExpiresAt: time.Now().Add(time.Hour)}
	if err := s.Create(context.Background(), want); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got, err := s.Get(context.Background(), "s"); err != nil || got.CustomerID != "c" {
		t.Fatalf("after reopen: %+v, %v", got, err)
	}
}

// TestGroupCommitIsolatesFailures: writes committed together each get their
// own answer, and a write that fails after writing part of itself is rolled
// back alone, without failing or undoing the others of its group.
func TestGroupCommitIsolatesFailures(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("s%02d", i)
			if i%10 == 0 {
				errs[i] = s.update(func(tx *bolt.Tx) error {
					if err := tx.Bucket(bucketSessions).Put([]byte(id), []byte("{}")); err != nil {
						return err
					}
					return boom // after a write: the write must not survive
				})
				return
			}
			errs[i] = s.Create(context.Background(), store.Session{ID: id, CustomerID: "c", TokenHash: []byte(id), ExpiresAt: time.Now().Add(time.Hour)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		_, getErr := s.Get(context.Background(), fmt.Sprintf("s%02d", i))
		if i%10 == 0 {
			if !errors.Is(err, boom) || !errors.Is(getErr, store.ErrNotFound) {
				t.Errorf("failing write %d: %v, and its half-write is %v", i, err, getErr)
			}
		} else if err != nil || getErr != nil {
			t.Errorf("write %d: %v, %v", i, err, getErr)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(context.Background(), store.Session{ID: "late"}); !errors.Is(err, errClosed) {
		t.Fatalf("write after Close: %v", err)
	}
}

// TestSweepPassesOverUnreadableRecords: a record Sweep cannot read is left
// and reported, and the sessions around it are swept all the same.
func TestSweepPassesOverUnreadableRecords(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"a", "c"} {
		if err := s.Create(ctx, store.Session{ID: id, CustomerID: "x", TokenHash: []byte(id), ExpiresAt: now.Add(-time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put([]byte("b"), []byte{0x7f}) }); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(now)
	if n != 2 || err == nil || !strings.Contains(err.Error(), "1 sessions could not be read") {
		t.Fatalf("Sweep = %d, %v; want 2 and an error about one unreadable session", n, err)
	}
}
