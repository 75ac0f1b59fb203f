package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/storetest"
)

// TestConformanceFolding: the store's contract holds while the rotation
// log folds after nearly every write.
func TestConformanceFolding(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openFolding(t, t.TempDir(), 2, 1) })
}

// openFolding opens dir's store with the given fold thresholds, closed with
// the test.
func openFolding(t *testing.T, dir string, after, step int) *Store {
	t.Helper()
	s, err := open(dir, after, step)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// crash stops s as a killed process would: no fold, nothing but what its
// commits wrote.
func crash(t *testing.T, s *Store) {
	t.Helper()
	s.closed.Do(func() {
		close(s.stop)
		s.done.Wait()
		s.err = s.db.Close()
	})
}

// baseRecord is session id's value in the sessions bucket, and the number
// of entries in the log.
func baseRecord(t *testing.T, s *Store, id string) ([]byte, int) {
	t.Helper()
	var v []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucketSessions).Get([]byte(id)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v, logLen(t, s)
}

// logLen is the number of entries in the log.
func logLen(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketLog).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRotationsGoToTheLog: rotations and extensions leave the session's
// record as it was and append to the log, reads see the newest entry, and a
// fold writes the newest into the record and empties the log.
func TestRotationsGoToTheLog(t *testing.T) {
	ctx := context.Background()
	s := openFolding(t, t.TempDir(), 5, 5)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	sess := store.Session{ID: "s", CustomerID: "c", TokenHash: []byte("h0"), UserAgent: "agent", CreatedAt: now, RefreshedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.Create(ctx, sess); err != nil {
		t.Fatal(err)
	}
	created, _ := baseRecord(t, s, "s")
	for i := 1; i <= 3; i++ {
		r := store.Rotation{From: fmt.Appendf(nil, "h%d", i-1), To: fmt.Appendf(nil, "h%d", i), Now: now.Add(time.Duration(i) * time.Minute), ExpiresAt: now.Add(2 * time.Hour)}
		if _, err := s.Rotate(ctx, "s", r); err != nil {
			t.Fatal(err)
		}
	}
	ext, err := s.Extend(ctx, "s", now.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if v, n := baseRecord(t, s, "s"); !bytes.Equal(v, created) || n != 4 {
		t.Fatalf("after 3 rotations and an extension: record changed %v, %d log entries; want unchanged, 4", !bytes.Equal(v, created), n)
	}
	for _, got := range []store.Session{mustGet(t, s, "s"), listOne(t, s, "c")} {
		if string(got.TokenHash) != "h3" || string(got.PrevTokenHash) != "h2" || !got.ExpiresAt.Equal(now.Add(3*time.Hour)) || got.UserAgent != "agent" {
			t.Fatalf("read %+v, want the newest entry's", got)
		}
	}
	if _, err := s.Rotate(ctx, "s", store.Rotation{From: []byte("h2"), To: []byte("x"), Now: now.Add(5 * time.Minute), ExpiresAt: now.Add(2 * time.Hour)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rotation from an older hash: %v, want ErrConflict", err)
	}

	// The fifth entry reaches foldAfter: the writer folds all five once it
	// has answered.
	ext, err = s.Extend(ctx, "s", now.Add(4*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	waitForLog(t, s, 0)
	v, _ := baseRecord(t, s, "s")
	s.mu.RLock()
	newest := len(s.latest)
	s.mu.RUnlock()
	folded, agent, err := decodeSession("s", v)
	if err != nil || string(folded.TokenHash) != "h3" || !folded.ExpiresAt.Equal(ext.ExpiresAt) || agent == nil || newest != 0 {
		t.Fatalf("record after the fold: %+v, agent %x, %v; %d sessions still logged", folded, agent, err, newest)
	}
	mustEqual(t, mustGet(t, s, "s"), ext)
}

// waitForLog waits until the writer, which folds after answering, has left
// n entries in the log and published its fold: at most n sessions logged.
func waitForLog(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		s.mu.RLock()
		logged := len(s.latest)
		s.mu.RUnlock()
		if logLen(t, s) == n && logged <= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d log entries and %d sessions logged after 5 s, want %d", logLen(t, s), logged, n)
		}
	}
}

func listOne(t *testing.T, s *Store, customerID string) store.Session {
	t.Helper()
	list, err := s.ListByCustomer(context.Background(), customerID)
	if err != nil || len(list) != 1 {
		t.Fatalf("ListByCustomer(%s) = %v, %v", customerID, list, err)
	}
	return list[0]
}

// TestLogAfterCrash: after a crash, Open finds the rotations the log holds
// and folds them; an entry of a session deleted since, or of an earlier
// session whose id a new one took, is dropped: a tombstone follows them.
// The new session has the same start, as a session continued from a legacy
// token twice would.
func TestLogAfterCrash(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := open(dir, 1000, 1000)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, id := range []string{"kept", "deleted", "reused"} {
		if err := s.Create(ctx, store.Session{ID: id, CustomerID: "c", TokenHash: []byte("h0"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rotate(ctx, id, store.Rotation{From: []byte("h0"), To: []byte("h1"), Now: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	want, err := s.Rotate(ctx, "kept", store.Rotation{From: []byte("h1"), To: []byte("h2"), Now: now.Add(time.Minute), ExpiresAt: now.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"deleted", "reused"} {
		if _, err := s.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	again := store.Session{ID: "reused", CustomerID: "d", TokenHash: []byte("new"), CreatedAt: now, RefreshedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.Create(ctx, again); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "reused"); string(got.TokenHash) != "new" {
		t.Fatalf("the new session under a logged id reads %q", got.TokenHash)
	}
	if _, n := baseRecord(t, s, "kept"); n != 6 {
		t.Fatalf("%d log entries before the crash, want 6 (4 rotations, 2 tombstones)", n)
	}
	crash(t, s)

	s = openFolding(t, dir, 1000, 1000)
	if _, n := baseRecord(t, s, "kept"); n != 0 {
		t.Fatalf("%d log entries after Open, want 0", n)
	}
	mustEqual(t, mustGet(t, s, "kept"), want)
	if _, err := s.Get(ctx, "deleted"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted session after the crash: %v", err)
	}
	mustEqual(t, mustGet(t, s, "reused"), stored(again))
}

// TestReadAfterFold: a reader that took a session's newest entry, and finds
// it folded away (a newer one superseded it) when its transaction begins,
// reads again rather than fall back to the record, which is older than
// both.
func TestReadAfterFold(t *testing.T) {
	ctx := context.Background()
	s := openFolding(t, t.TempDir(), 2, 1)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.Create(ctx, store.Session{ID: "s", CustomerID: "c", TokenHash: []byte("h0"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	rotate := func(from, to string) {
		if _, err := s.Rotate(ctx, "s", store.Rotation{From: []byte(from), To: []byte(to), Now: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	rotate("h0", "h1") // one entry: below foldAfter
	testHookRead = func() {
		testHookRead = nil
		rotate("h1", "h2") // two: the writer folds the oldest, h1's, which h2's supersedes
		waitForLog(t, s, 1)
	}
	t.Cleanup(func() { testHookRead = nil })
	if got := mustGet(t, s, "s"); string(got.TokenHash) != "h2" {
		t.Fatalf("read %q after h1 and h2 were acknowledged", got.TokenHash)
	}
}

// TestReadsDuringFolds: while sessions rotate and the log folds after
// every few entries, no read (Get, ListByCustomer) returns a session older
// than its last rotation acknowledged before the read began, and Sweep
// deletes none of them, all under the race detector. The interleaving that
// a reader falling back to the record would get wrong is narrow here;
// TestReadAfterFold makes it happen every time.
func TestReadsDuringFolds(t *testing.T) {
	ctx := context.Background()
	s := openFolding(t, t.TempDir(), 3, 2)
	const sessions = 8
	var acked [sessions]atomic.Uint64
	hash := func(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }
	now := time.Now()
	for i := range sessions {
		// Created to end in 10 minutes; the rotations make it an hour.
		if err := s.Create(ctx, store.Session{ID: fmt.Sprint(i), CustomerID: fmt.Sprint(i), TokenHash: hash(0), CreatedAt: now, ExpiresAt: now.Add(10 * time.Minute)}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rotate(ctx, fmt.Sprint(i), store.Rotation{From: hash(0), To: hash(1), Now: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
		acked[i].Store(1)
	}
	stop := make(chan struct{})
	var writers, readers sync.WaitGroup
	for i := range sessions {
		writers.Add(1)
		go func() {
			defer writers.Done()
			for n := uint64(2); n <= 150; n++ {
				if _, err := s.Rotate(ctx, fmt.Sprint(i), store.Rotation{From: hash(n - 1), To: hash(n), Now: time.Now(), ExpiresAt: now.Add(time.Hour)}); err != nil {
					t.Error(err)
					return
				}
				acked[i].Store(n)
			}
		}()
	}
	check := func(i int, floor uint64, sess store.Session) {
		if got := binary.BigEndian.Uint64(sess.TokenHash); got < floor {
			t.Errorf("session %d read at rotation %d after rotation %d was acknowledged", i, got, floor)
		}
	}
	for r := range 3 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for k := 0; ; k++ {
				select {
				case <-stop:
					return
				default:
				}
				i := k % sessions
				floor := acked[i].Load()
				switch r {
				case 0:
					sess, err := s.Get(ctx, fmt.Sprint(i))
					if err != nil {
						t.Error(err)
						return
					}
					check(i, floor, sess)
				case 1:
					list, err := s.ListByCustomer(ctx, fmt.Sprint(i))
					if err != nil || len(list) != 1 {
						t.Errorf("ListByCustomer = %v, %v", list, err)
						return
					}
					check(i, floor, list[0])
				case 2:
					// Half an hour on, the records say every session
					// ended; their newest entries, that none did.
					if n, err := s.Sweep(now.Add(30 * time.Minute)); err != nil || n != 0 {
						t.Errorf("Sweep = %d, %v; want 0", n, err)
						return
					}
				}
			}
		}()
	}
	writers.Wait()
	close(stop)
	readers.Wait()
}

// appendDamaged appends a log entry whose id length overruns it, and one
// whose key is not a sequence (it sorts first).
func appendDamaged(t *testing.T, s *Store) {
	t.Helper()
	if err := s.update(func(tx *txn) error {
		log := tx.Bucket(bucketLog)
		seq, err := log.NextSequence()
		if err != nil {
			return err
		}
		tx.logged += 2
		return errors.Join(log.Put(seqKey(seq), []byte{0x7f, 'x'}), log.Put([]byte{0}, []byte("\x01s")))
	}); err != nil {
		t.Fatal(err)
	}
}

// TestFoldDropsDamagedEntries: a log entry that cannot be read does not
// hold the log up: a fold drops it, folds the others, and the next Sweep
// reports it once; after a crash the store still opens.
func TestFoldDropsDamagedEntries(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := open(dir, 4, 4)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := s.Create(ctx, store.Session{ID: "s", CustomerID: "c", TokenHash: []byte("h0"), CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	appendDamaged(t, s)
	for i := 1; i <= 2; i++ { // the fourth entry: the writer folds all four
		if _, err := s.Rotate(ctx, "s", store.Rotation{From: fmt.Appendf(nil, "h%d", i-1), To: fmt.Appendf(nil, "h%d", i), Now: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	waitForLog(t, s, 0) // past the damaged entry
	if got := mustGet(t, s, "s"); string(got.TokenHash) != "h2" {
		t.Fatalf("after the fold: %q", got.TokenHash)
	}
	if _, err := s.Sweep(now); !errors.Is(err, errRecord) || !strings.Contains(err.Error(), "2 damaged entries dropped") {
		t.Fatalf("Sweep after the fold: %v, want the damaged entry reported", err)
	}
	if _, err := s.Sweep(now); err != nil {
		t.Fatalf("second Sweep: %v, want it reported once", err)
	}

	appendDamaged(t, s)
	crash(t, s)
	s = openFolding(t, dir, 4, 4)
	if _, n := baseRecord(t, s, "s"); n != 0 {
		t.Fatalf("%d log entries after Open", n)
	}
	if _, err := s.Sweep(now); !errors.Is(err, errRecord) {
		t.Fatalf("Sweep after Open: %v, want the damaged entry reported", err)
	}
}

// TestSweepKeepsAgentOfReusedID: when a session ends and a new one takes
// its id between a sweep's taking the newest entries and its read, the
// sweep reads the old session's entry for that id; the new session's user
// agent text is still named, by its record, and kept.
func TestSweepKeepsAgentOfReusedID(t *testing.T) {
	ctx := context.Background()
	s := openFolding(t, t.TempDir(), 1000, 1000)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	old := store.Session{ID: "x", CustomerID: "c", TokenHash: []byte("h0"), UserAgent: "old-agent", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
	if err := s.Create(ctx, old); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Rotate(ctx, "x", store.Rotation{From: []byte("h0"), To: []byte("h1"), Now: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	testHookRead = func() {
		testHookRead = nil
		if _, err := s.Delete(ctx, "x"); err != nil {
			t.Error(err)
		}
		again := old
		again.UserAgent = "new-agent"
		if err := s.Create(ctx, again); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { testHookRead = nil })
	if _, err := s.Sweep(now); err != nil {
		t.Fatal(err)
	}
	if got := mustGet(t, s, "x"); got.UserAgent != "new-agent" {
		t.Fatalf("the new session's user agent %q; agents %v", got.UserAgent, agentTexts(t, s))
	}
}

// TestDeleteByCustomerCountsOnce: when its group fails and it runs again
// alone, DeleteByCustomer counts each session once.
func TestDeleteByCustomerCountsOnce(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	for _, id := range []string{"a", "b"} {
		if err := s.Create(ctx, store.Session{ID: id, CustomerID: "c", TokenHash: []byte(id), ExpiresAt: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	// Hold the writer, queue the deletion and a write that fails after
	// writing, then let them be committed as one group.
	held, release := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.update(func(*txn) error { close(held); <-release; return nil })
	}()
	<-held
	boom := errors.New("boom")
	failed := make(chan error, 1)
	go func() {
		failed <- s.update(func(tx *txn) error {
			if err := tx.Bucket(bucketSessions).Put([]byte("z"), []byte("{}")); err != nil {
				return err
			}
			return boom
		})
	}()
	var n int
	var err error
	deleted := make(chan struct{})
	go func() { n, err = s.DeleteByCustomer(ctx, "c"); close(deleted) }()
	time.Sleep(50 * time.Millisecond) // both wait for the writer
	close(release)
	<-deleted
	if e := <-failed; !errors.Is(e, boom) {
		t.Fatalf("the failing write: %v", e)
	}
	if err != nil || n != 2 {
		t.Fatalf("DeleteByCustomer = %d, %v; want 2", n, err)
	}
}
