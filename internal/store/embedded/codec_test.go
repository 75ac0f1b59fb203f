package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshauth/meshauth/internal/store"
)

// Realistic values for the size of a session: a desktop Chrome user agent
// (111 characters) and an IPv6 client address.
const (
	chromeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	clientV6 = "2a02:8070:a1c2:4e00:9d3c:5f1e:b0a2:73c4"
)

func mustEqual(t *testing.T, got, want store.Session) {
	t.Helper()
	if got.ID != want.ID || got.CustomerID != want.CustomerID || got.NumericCustomerID != want.NumericCustomerID ||
		!bytes.Equal(got.TokenHash, want.TokenHash) || !bytes.Equal(got.PrevTokenHash, want.PrevTokenHash) ||
		!got.RotatedAt.Equal(want.RotatedAt) || !got.CreatedAt.Equal(want.CreatedAt) ||
		!got.RefreshedAt.Equal(want.RefreshedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		got.RememberMe != want.RememberMe || string(got.Claims) != string(want.Claims) ||
		got.UserAgent != want.UserAgent || got.IP != want.IP {
		t.Fatalf("session\n got: %+v\nwant: %+v", got, want)
	}
}

func typicalSession() store.Session {
	created := time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC)
	now := created.Add(7*time.Minute + 123*time.Millisecond)
	return store.Session{
		ID: "yDJBzB0l4Y2H5kVvP8s1Ag", CustomerID: "1048576", NumericCustomerID: true,
		TokenHash: bytes.Repeat([]byte{1}, 32), PrevTokenHash: bytes.Repeat([]byte{2}, 32),
		CreatedAt: created, RefreshedAt: now, RotatedAt: now, ExpiresAt: now.Add(15 * time.Minute).Truncate(time.Second),
		UserAgent: chromeUA, IP: clientV6,
	}
}

func TestRecordRoundTrip(t *testing.T) {
	full := typicalSession()
	full.RememberMe, full.Claims = true, json.RawMessage(`{"group":"vip"}`)
	with := func(f func(*store.Session)) store.Session { s := full; f(&s); return s }
	tests := []struct {
		name string
		sess store.Session
	}{
		{"Full", full},
		{"Bare", store.Session{ID: "s", ExpiresAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{"NotRotated", with(func(s *store.Session) { s.PrevTokenHash, s.RotatedAt = nil, time.Time{} })},
		{"LongUserAgent", with(func(s *store.Session) { s.UserAgent = strings.Repeat("ü", 256) })},
		{"BeforeEpoch", with(func(s *store.Session) { s.CreatedAt = time.Date(1960, 1, 1, 0, 0, 0, 7e6, time.UTC) })},
		{"ZeroCreated", with(func(s *store.Session) { s.CreatedAt = time.Time{} })},
		{"IPv4", with(func(s *store.Session) { s.IP = "10.1.2.3" })},
		{"IPv4InIPv6", with(func(s *store.Session) { s.IP = "::ffff:10.1.2.3" })},
		{"IPv6NotCanonical", with(func(s *store.Session) { s.IP = "2001:DB8::0001" })},
		{"IPv6Zone", with(func(s *store.Session) { s.IP = "fe80::1%eth0" })},
		{"NotAnAddress", with(func(s *store.Session) { s.IP = "unknown" })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := encodeSession(tc.sess)
			if v[0] != recordV1 || cap(v) != len(v) {
				t.Fatalf("record starts with %#x, len %d cap %d", v[0], len(v), cap(v))
			}
			got, err := decodeSession(tc.sess.ID, v)
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, tc.sess)
			// The session owns its memory: bbolt reuses the record's.
			clear(v)
			mustEqual(t, got, tc.sess)
		})
	}
}

// TestRecordSize holds a typical session's record to 300 bytes, and checks
// that the previous JSON was well over.
func TestRecordSize(t *testing.T) {
	sess := typicalSession()
	v := encodeSession(sess)
	old, err := json.Marshal(sess)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("record %d bytes, JSON before %d bytes", len(v), len(old))
	if len(v) > 300 {
		t.Errorf("record is %d bytes, want at most 300", len(v))
	}
}

func TestDecodeRejectsDamagedRecords(t *testing.T) {
	v := encodeSession(typicalSession())
	for n := range len(v) {
		if _, err := decodeSession("s", v[:n]); err == nil {
			t.Fatalf("a record cut to %d of %d bytes decoded", n, len(v))
		}
	}
	if _, err := decodeSession("s", append(v[:len(v):len(v)], 0)); err == nil {
		t.Fatal("a record with a trailing byte decoded")
	}
	bad := append([]byte{0x02}, v[1:]...)
	if _, err := decodeSession("s", bad); err == nil {
		t.Fatal("a record of an unknown version decoded")
	}
}

// Records as the store wrote them before the binary encoding: the JSON of
// store.Session, byte for byte, with sub-millisecond times.
const (
	oldRecordRotated = `{"ID":"yDJBzB0l4Y2H5kVvP8s1Ag","CustomerID":"1048576","NumericCustomerID":true,"TokenHash":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=","PrevTokenHash":"ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=","RotatedAt":"2026-11-20T09:35:00.123456789Z","CreatedAt":"2026-11-20T09:30:00.123456789Z","RefreshedAt":"2026-11-20T09:35:00.123456789Z","ExpiresAt":"2026-11-20T09:50:00.123456789Z","RememberMe":true,"Claims":{"role":"customer"},"UserAgent":"Mozilla/5.0 (X11; Linux x86_64)","IP":"2001:db8::7"}`
	oldRecordNew     = `{"ID":"jjYc-jbXw1dkL5c3Q0mYfw","CustomerID":"c-alice","TokenHash":"MjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFE=","RotatedAt":"0001-01-01T00:00:00Z","CreatedAt":"2026-11-20T09:30:00.123456789Z","RefreshedAt":"2026-11-20T09:30:00.123456789Z","ExpiresAt":"2026-11-20T09:45:00Z","RememberMe":false}`
)

// putOld stores a record and its index entries as the store did before
// the binary encoding.
func putOld(t *testing.T, s *Store, record string) store.Session {
	t.Helper()
	var sess store.Session
	if err := json.Unmarshal([]byte(record), &sess); err != nil {
		t.Fatal(err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		return errors.Join(
			tx.Bucket(bucketSessions).Put([]byte(sess.ID), []byte(record)),
			tx.Bucket(bucketCustomers).Put(customerKey(sess.CustomerID, sess.ID), nil),
			tx.Bucket(bucketExpiry).Put(expiryKey(sess.ExpiresAt, sess.ID), nil),
		)
	})
	if err != nil {
		t.Fatal(err)
	}
	return sess
}

func rawRecord(t *testing.T, s *Store, id string) []byte {
	t.Helper()
	var v []byte
	if err := s.db.View(func(tx *bolt.Tx) error {
		v = bytes.Clone(tx.Bucket(bucketSessions).Get([]byte(id)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

func expiryEntries(t *testing.T, s *Store) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketExpiry).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestOldRecordsStillServe: sessions stored as JSON load, list, rotate,
// extend, sweep and delete; a write turns the record into the binary
// encoding and moves its expiry entry, leaving none behind.
func TestOldRecordsStillServe(t *testing.T) {
	ctx := context.Background()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rotated, fresh := putOld(t, s, oldRecordRotated), putOld(t, s, oldRecordNew)
	if rotated.Claims == nil || !rotated.NumericCustomerID || rotated.PrevTokenHash == nil {
		t.Fatalf("fixture decoded without its optional fields: %+v", rotated)
	}
	for _, want := range []store.Session{rotated, fresh} {
		got, err := s.Get(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		mustEqual(t, got, want)
		list, err := s.ListByCustomer(ctx, want.CustomerID)
		if err != nil || len(list) != 1 {
			t.Fatalf("ListByCustomer(%s) = %v, %v", want.CustomerID, list, err)
		}
		mustEqual(t, list[0], want)
	}

	now := rotated.RotatedAt.Add(time.Minute)
	exp := now.Add(15 * time.Minute)
	if _, err := s.Rotate(ctx, rotated.ID, store.Rotation{From: rotated.PrevTokenHash, To: []byte("x"), Now: now, ExpiresAt: exp}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rotation from the previous hash: %v, want ErrConflict", err)
	}
	got, err := s.Rotate(ctx, rotated.ID, store.Rotation{From: rotated.TokenHash, To: bytes.Repeat([]byte{9}, 32), Now: now, ExpiresAt: exp})
	if err != nil {
		t.Fatal(err)
	}
	want := rotated
	want.PrevTokenHash, want.TokenHash = rotated.TokenHash, bytes.Repeat([]byte{9}, 32)
	want.RotatedAt, want.RefreshedAt, want.ExpiresAt = now.Truncate(time.Millisecond), now.Truncate(time.Millisecond), exp.Truncate(time.Millisecond)
	want.CreatedAt = rotated.CreatedAt.Truncate(time.Millisecond)
	mustEqual(t, got, want)
	if v := rawRecord(t, s, rotated.ID); v[0] != recordV1 {
		t.Fatalf("a rotated session is still stored as %q", v)
	}
	mustEqual(t, mustGet(t, s, rotated.ID), want)
	if n := expiryEntries(t, s); n != 2 {
		t.Fatalf("%d expiry entries, want 2: one per session", n)
	}

	if _, err := s.Extend(ctx, fresh.ID, fresh.ExpiresAt.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n := expiryEntries(t, s); n != 2 {
		t.Fatalf("%d expiry entries after Extend, want 2", n)
	}
	if n, err := s.Sweep(exp.Add(time.Millisecond)); err != nil || n != 1 {
		t.Fatalf("Sweep = %d, %v; want 1 (the rotated session)", n, err)
	}
	got, err = s.Delete(ctx, fresh.ID)
	if err != nil {
		t.Fatal(err)
	}
	fresh.ExpiresAt = fresh.ExpiresAt.Add(time.Hour)
	fresh.CreatedAt, fresh.RefreshedAt = fresh.CreatedAt.Truncate(time.Millisecond), fresh.RefreshedAt.Truncate(time.Millisecond)
	mustEqual(t, got, fresh)
	if n := expiryEntries(t, s); n != 0 {
		t.Fatalf("%d expiry entries left", n)
	}

	// A JSON session swept and one deleted without ever being rewritten.
	putOld(t, s, oldRecordRotated)
	putOld(t, s, oldRecordNew)
	if _, err := s.Delete(ctx, fresh.ID); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(rotated.ExpiresAt.Add(time.Nanosecond)); err != nil || n != 1 {
		t.Fatalf("Sweep of a JSON session = %d, %v; want 1", n, err)
	}
	if n := expiryEntries(t, s); n != 0 {
		t.Fatalf("%d expiry entries left", n)
	}
}

func mustGet(t *testing.T, s *Store, id string) store.Session {
	t.Helper()
	got, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return got
}
