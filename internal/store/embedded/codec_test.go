package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"path/filepath"
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
			v := encodeSession(tc.sess, nil)
			if v[0] != recordV1 || cap(v) != len(v) {
				t.Fatalf("record starts with %#x, len %d cap %d", v[0], len(v), cap(v))
			}
			got, agent, err := decodeSession(tc.sess.ID, v)
			if err != nil || agent != nil {
				t.Fatal(agent, err)
			}
			mustEqual(t, got, tc.sess)
			// The session owns its memory: bbolt reuses the record's.
			clear(v)
			mustEqual(t, got, tc.sess)
		})
	}
}

// TestCodecAgentRef: a record that names its user agent's text by key
// holds the key instead of the text, and gives it back on decoding, in
// memory of its own; Sweep's reader finds the same key and end.
func TestCodecAgentRef(t *testing.T) {
	sess := typicalSession()
	key := agentKey(sess.UserAgent)
	v := encodeSession(sess, key)
	if v[0] != recordV2 || bytes.Contains(v, []byte(sess.UserAgent)) || !bytes.Contains(v, key) || cap(v) != len(v) {
		t.Fatalf("record %q does not hold the key in place of the text", v)
	}
	got, agent, err := decodeSession(sess.ID, v)
	if err != nil || !bytes.Equal(agent, key) {
		t.Fatalf("agent %x, %v; want %x", agent, err, key)
	}
	want := sess
	want.UserAgent = ""
	mustEqual(t, got, want)
	end, ref, err := recordEndAndAgent(v)
	if err != nil || !end.Equal(sess.ExpiresAt) || !bytes.Equal(ref, key) {
		t.Fatalf("recordEndAndAgent = %v, %x, %v", end, ref, err)
	}
	clear(v)
	if !bytes.Equal(agent, key) {
		t.Fatal("the decoded key shares the record's memory")
	}
	// A key of another length is a damaged record, for Sweep's reader too.
	short := encodeSession(sess, key[:8])
	if _, _, err := decodeSession(sess.ID, short); err == nil {
		t.Fatal("a record with an 8-byte key decoded")
	}
	if _, _, err := recordEndAndAgent(short); err == nil {
		t.Fatal("Sweep's reader read a record with an 8-byte key")
	}
}

// TestRecordSize holds a typical session's record to 300 bytes, and checks
// that the previous JSON was well over.
func TestRecordSize(t *testing.T) {
	sess := typicalSession()
	v := encodeSession(sess, nil)
	old, err := json.Marshal(sess)
	if err != nil {
		t.Fatal(err)
	}
	ref := encodeSession(sess, agentKey(sess.UserAgent))
	t.Logf("record %d bytes (%d naming its user agent by key), JSON before %d bytes", len(v), len(ref), len(old))
	if len(v) > 300 {
		t.Errorf("record is %d bytes, want at most 300", len(v))
	}
}

func TestDecodeRejectsDamagedRecords(t *testing.T) {
	for _, v := range [][]byte{encodeSession(typicalSession(), nil), encodeSession(typicalSession(), agentKey("ua"))} {
		for n := range len(v) {
			if _, _, err := decodeSession("s", v[:n]); err == nil {
				t.Fatalf("a record cut to %d of %d bytes decoded", n, len(v))
			}
		}
		if _, _, err := decodeSession("s", append(v[:len(v):len(v)], 0)); err == nil {
			t.Fatal("a record with a trailing byte decoded")
		}
		bad := append([]byte{0x03}, v[1:]...)
		if _, _, err := decodeSession("s", bad); err == nil {
			t.Fatal("a record of an unknown version decoded")
		}
		// A flag this code does not know: refused, not ignored (an older
		// binary ignoring one is how a record gets misread and rewritten).
		flagged := append([]byte{v[0], v[1] | 1<<6}, v[2:]...)
		if _, _, err := decodeSession("s", flagged); err == nil {
			t.Fatal("a record with an unknown flag decoded")
		}
		if _, _, err := recordEndAndAgent(flagged); err == nil {
			t.Fatal("Sweep's reader read a record with an unknown flag")
		}
	}
}

// Records as the store wrote them before the binary encoding: the JSON of
// store.Session, byte for byte, with sub-millisecond times.
const (
	oldRecordRotated = `{"ID":"yDJBzB0l4Y2H5kVvP8s1Ag","CustomerID":"1048576","NumericCustomerID":true,"TokenHash":"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=","PrevTokenHash":"ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=","RotatedAt":"2026-11-20T09:35:00.123456789Z","CreatedAt":"2026-11-20T09:30:00.123456789Z","RefreshedAt":"2026-11-20T09:35:00.123456789Z","ExpiresAt":"2026-11-20T09:50:00.123456789Z","RememberMe":true,"Claims":{"role":"customer"},"UserAgent":"Mozilla/5.0 (X11; Linux x86_64)","IP":"2001:db8::7"}`
	oldRecordNew     = `{"ID":"jjYc-jbXw1dkL5c3Q0mYfw","CustomerID":"c-alice","TokenHash":"MjM0NTY3ODk6Ozw9Pj9AQUJDREVGR0hJSktMTU5PUFE=","RotatedAt":"0001-01-01T00:00:00Z","CreatedAt":"2026-11-20T09:30:00.123456789Z","RefreshedAt":"2026-11-20T09:30:00.123456789Z","ExpiresAt":"2026-11-20T09:45:00Z","RememberMe":false}`
)

// writeOldFile writes records into dir/sessions.db as the store did before
// the binary encoding: JSON records, the customer index and the expiry
// index (expiry unix nanos | id).
func writeOldFile(t *testing.T, dir string, records ...string) []store.Session {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, "sessions.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []store.Session
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketSessions, bucketCustomers, bucketExpiry} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		for _, record := range records {
			var sess store.Session
			if err := json.Unmarshal([]byte(record), &sess); err != nil {
				return err
			}
			exp := binary.BigEndian.AppendUint64(nil, uint64(sess.ExpiresAt.UnixNano()))
			if err := errors.Join(
				tx.Bucket(bucketSessions).Put([]byte(sess.ID), []byte(record)),
				tx.Bucket(bucketCustomers).Put(customerKey(sess.CustomerID, sess.ID), nil),
				tx.Bucket(bucketExpiry).Put(append(exp, sess.ID...), nil),
			); err != nil {
				return err
			}
			out = append(out, sess)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// rawRecord is session id's record as the store reads it: from its newest
// log entry, if it has one.
func rawRecord(t *testing.T, s *Store, id string) []byte {
	t.Helper()
	var v []byte
	if err := s.read([]string{id}, func(tx *bolt.Tx, newest map[string]uint64) error {
		r, err := recordValue(tx, id, newest[id])
		v = bytes.Clone(r)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return v
}

// TestOldFilesStillServe: a file written before the binary encoding opens
// without its expiry index; its JSON sessions load, list, rotate, extend,
// sweep and delete, and a write turns a record into the binary encoding.
func TestOldFilesStillServe(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	old := writeOldFile(t, dir, oldRecordRotated, oldRecordNew)
	rotated, fresh := old[0], old[1]
	if rotated.Claims == nil || !rotated.NumericCustomerID || rotated.PrevTokenHash == nil {
		t.Fatalf("fixture decoded without its optional fields: %+v", rotated)
	}
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketExpiry) != nil {
			return errors.New("the expiry index is still there")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
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

	// fresh, still JSON, ends first; once extended, the rotated one does.
	if n, err := s.Sweep(fresh.ExpiresAt.Add(time.Nanosecond)); err != nil || n != 1 {
		t.Fatalf("Sweep of a JSON session = %d, %v; want 1", n, err)
	}
	if _, err := s.Extend(ctx, rotated.ID, exp.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(exp.Add(time.Minute)); err != nil || n != 0 {
		t.Fatalf("Sweep after Extend = %d, %v; want 0", n, err)
	}
	got, err = s.Delete(ctx, rotated.ID)
	if err != nil {
		t.Fatal(err)
	}
	want.ExpiresAt = want.ExpiresAt.Add(time.Hour)
	mustEqual(t, got, want)
	if list, err := s.ListByCustomer(ctx, rotated.CustomerID); err != nil || len(list) != 0 {
		t.Fatalf("after Delete: %v, %v", list, err)
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

// FuzzDecodeSession: no record makes decodeSession or recordEndAndAgent
// panic; a record that decodes has the end and user-agent key
// recordEndAndAgent reads, and encodes to a record that decodes to the same
// session.
func FuzzDecodeSession(f *testing.F) {
	f.Add(encodeSession(typicalSession(), nil))
	f.Add(encodeSession(typicalSession(), agentKey("ua")))
	f.Add(encodeSession(store.Session{ID: "s", IP: "unknown", Claims: json.RawMessage(`{}`)}, nil))
	f.Add([]byte(oldRecordRotated))
	f.Add([]byte{recordV1, 0xff, 0x80})
	f.Fuzz(func(t *testing.T, v []byte) {
		sess, agent, err := decodeSession("s", v)
		end, ref, endErr := recordEndAndAgent(v)
		if err != nil {
			return
		}
		if endErr != nil || !end.Equal(sess.ExpiresAt) || !bytes.Equal(ref, agent) {
			t.Fatalf("recordEndAndAgent = %v, %x, %v; the record decodes with end %v and key %x", end, ref, endErr, sess.ExpiresAt, agent)
		}
		if v[0] != recordV1 {
			return // JSON: times may be finer than the binary form keeps
		}
		again, againAgent, err := decodeSession("s", encodeSession(sess, agent))
		if err != nil || !bytes.Equal(againAgent, agent) {
			t.Fatalf("re-encoded record: %x, %v", againAgent, err)
		}
		mustEqual(t, again, sess)
	})
}
