package embedded

import (
	"bytes"
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
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// openTemp opens a store in a new temporary directory, closed with the test.
func openTemp(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestSweepDeletesOnlyExpired(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
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
	s := openTemp(t)
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 40)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("s%02d", i)
			if i%10 == 0 {
				errs[i] = s.update(func(tx *txn) error {
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
	s := openTemp(t)
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

// agentTexts returns the agents bucket: key (hex) -> text.
func agentTexts(t *testing.T, s *Store) map[string]string {
	t.Helper()
	out := map[string]string{}
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAgents).ForEach(func(k, v []byte) error {
			out[fmt.Sprintf("%x", k)] = string(v[8:])
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUserAgentStoredOnce: sessions with the same user agent keep its text
// once, in the agents bucket; their records name it, through rotations and
// extensions too, and every read and list gives it back. A record that
// held its text (version 1) keeps holding it.
func TestUserAgentStoredOnce(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	const chrome = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		sess := store.Session{ID: fmt.Sprintf("s%d", i), CustomerID: "c", TokenHash: []byte("t0"), UserAgent: chrome, ExpiresAt: now.Add(time.Hour)}
		if i == 19 {
			sess.UserAgent = "" // none: nothing to keep
		}
		if err := s.Create(ctx, sess); err != nil {
			t.Fatal(err)
		}
	}
	// A version-1 record, as a binary from before wrote it.
	inline := store.Session{ID: "v1", CustomerID: "c", TokenHash: []byte("t0"), UserAgent: "inline-agent", ExpiresAt: now.Add(time.Hour)}
	if err := s.update(func(tx *txn) error {
		return errors.Join(tx.Bucket(bucketSessions).Put([]byte("v1"), encodeSession(inline, nil)),
			tx.Bucket(bucketCustomers).Put(customerKey("c", "v1"), nil))
	}); err != nil {
		t.Fatal(err)
	}
	if texts := agentTexts(t, s); len(texts) != 1 || texts[fmt.Sprintf("%x", agentKey(chrome))] != chrome {
		t.Fatalf("agents bucket %v, want the one text", texts)
	}
	for _, id := range []string{"s0", "s1", "v1"} {
		if _, err := s.Rotate(ctx, id, store.Rotation{From: []byte("t0"), To: []byte("t1"), Now: now, ExpiresAt: now.Add(2 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Extend(ctx, "s2", now.Add(3*time.Hour)); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"s0", "s1", "s2", "s3"} {
		if v := rawRecord(t, s, id); v[0] != recordV2 || bytes.Contains(v, []byte("Mozilla")) {
			t.Fatalf("%s's record holds the text: %q", id, v)
		}
	}
	if v := rawRecord(t, s, "v1"); v[0] != recordV1 || !bytes.Contains(v, []byte("inline-agent")) {
		t.Fatalf("a rotated version-1 record no longer holds its text: %q", v)
	}
	list, err := s.ListByCustomer(ctx, "c")
	if err != nil || len(list) != 21 {
		t.Fatalf("ListByCustomer: %d, %v", len(list), err)
	}
	want := map[string]string{"s19": "", "v1": "inline-agent"}
	for _, sess := range list {
		w, ok := want[sess.ID]
		if !ok {
			w = chrome
		}
		if sess.UserAgent != w {
			t.Fatalf("%s listed with user agent %q, want %q", sess.ID, sess.UserAgent, w)
		}
		if got, err := s.Get(ctx, sess.ID); err != nil || got.UserAgent != w {
			t.Fatalf("Get(%s): user agent %q, %v; want %q", sess.ID, got.UserAgent, err, w)
		}
	}
}

// TestSweepDeletesUnnamedAgents: once no record names a user agent's text,
// a sweep deletes it; a text still named stays.
func TestSweepDeletesUnnamedAgents(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	create := func(id, ua string, exp time.Time) {
		t.Helper()
		if err := s.Create(ctx, store.Session{ID: id, CustomerID: "c", TokenHash: []byte(id), UserAgent: ua, ExpiresAt: exp}); err != nil {
			t.Fatal(err)
		}
	}
	create("gone", "ended-agent", now.Add(-time.Second))
	create("out", "logged-out-agent", now.Add(time.Hour))
	create("live", "live-agent", now.Add(time.Hour))
	if _, err := s.Delete(ctx, "out"); err != nil {
		t.Fatal(err)
	}
	// The first sweep deletes the ended session, which still named its
	// text when the sweep read, and the text of the one logged out.
	if n, err := s.Sweep(now); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v", n, err)
	}
	key := func(ua string) string { return fmt.Sprintf("%x", agentKey(ua)) }
	if texts := agentTexts(t, s); len(texts) != 2 || texts[key("ended-agent")] == "" || texts[key("live-agent")] == "" {
		t.Fatalf("agents after the first sweep: %v", texts)
	}
	if _, err := s.Sweep(now); err != nil {
		t.Fatal(err)
	}
	if texts := agentTexts(t, s); len(texts) != 1 || texts[key("live-agent")] != "live-agent" {
		t.Fatalf("agents after the second sweep: %v", texts)
	}
	if got, err := s.Get(ctx, "live"); err != nil || got.UserAgent != "live-agent" {
		t.Fatalf("live session: %q, %v", got.UserAgent, err)
	}
}

// TestSweepKeepsAgentOfLoginInFlight: a login takes up a text no record
// names while a sweep reads. The login's write is not committed when the
// sweep reads, so the sweep lists the text; the login commits before the
// sweep's write, which must keep the text.
func TestSweepKeepsAgentOfLoginInFlight(t *testing.T) {
	ctx := context.Background()
	s := openTemp(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	sess := store.Session{ID: "first", CustomerID: "c", TokenHash: []byte("t"), UserAgent: "agent", ExpiresAt: now.Add(time.Hour)}
	if err := s.Create(ctx, sess); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Delete(ctx, "first"); err != nil {
		t.Fatal(err)
	}
	written, release := make(chan struct{}), make(chan struct{})
	login := make(chan error, 1)
	go func() {
		next := sess
		next.ID = "second"
		login <- s.update(func(tx *txn) error {
			if _, err := putTx(tx, next); err != nil {
				return err
			}
			close(written)
			<-release // held open while the sweep reads
			return nil
		})
	}()
	<-written
	swept := make(chan error, 1)
	go func() { _, err := s.Sweep(now); swept <- err }()
	// The sweep's read does not wait for the login's write; its write
	// waits for it (one writer). Give the read time to happen first.
	time.Sleep(50 * time.Millisecond)
	close(release)
	if err := errors.Join(<-login, <-swept); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, "second"); err != nil || got.UserAgent != "agent" {
		t.Fatalf("the new session's user agent %q, %v; agents %v", got.UserAgent, err, agentTexts(t, s))
	}
}

// TestSweepPassesOverDamagedKeys: a version-2 record whose key is not 16
// bytes is reported as unreadable, and the sweep goes on.
func TestSweepPassesOverDamagedKeys(t *testing.T) {
	s := openTemp(t)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	bad := encodeSession(store.Session{ID: "bad", CustomerID: "c", ExpiresAt: now.Add(-time.Hour)}, []byte("short"))
	if err := s.update(func(tx *txn) error { return tx.Bucket(bucketSessions).Put([]byte("bad"), bad) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(context.Background(), store.Session{ID: "old", CustomerID: "c", TokenHash: []byte("t"), UserAgent: "a", ExpiresAt: now.Add(-time.Second)}); err != nil {
		t.Fatal(err)
	}
	n, err := s.Sweep(now)
	if n != 1 || err == nil || !strings.Contains(err.Error(), `"bad"`) {
		t.Fatalf("Sweep = %d, %v; want 1 swept and the damaged record reported", n, err)
	}
}
