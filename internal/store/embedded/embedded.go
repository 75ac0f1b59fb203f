// Package embedded keeps sessions in a bbolt file: the zero-setup default,
// persistent across restarts, for a single instance.
package embedded

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshauth/meshauth/internal/store"
)

var _ store.Store = (*Store)(nil)

var (
	bucketSessions  = []byte("sessions")  // id -> session record (codec.go)
	bucketCustomers = []byte("customers") // customer id | 0 | id -> nothing
	// bucketAgents holds each user agent's text once, for every session
	// recorded with it: agentKey(text) -> the id of the write transaction
	// that last took it up for a new session (8 bytes big-endian) | text. A
	// browser's user agent is most of a session's bytes, and a shop's
	// customers share a few dozen of them. Sweep deletes the texts no
	// record names.
	bucketAgents = []byte("agents")
	// bucketExpiry (expiry unix nanos, 8 bytes big-endian | id -> nothing)
	// indexed sessions by their end in files written before the binary
	// records; Open deletes it, and Sweep reads the records instead.
	bucketExpiry = []byte("expiry")
)

// Store is the bbolt backend. bbolt runs one write transaction at a time,
// which makes every update, Rotate included, atomic.
//
// Writes are committed in groups: one goroutine runs every write that
// arrived while the previous group was being committed in one transaction,
// with one fsync, and answers each caller only after that fsync. Under load
// this turns one fsync per refresh into one per group; alone, a write is
// committed at once, as before.
type Store struct {
	db     *bolt.DB
	writes chan write
	stop   chan struct{}
	done   sync.WaitGroup
	closed sync.Once
	err    error
}

// write is one caller's update, run inside a group's transaction.
type write struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// maxGroup bounds the writes committed together.
const maxGroup = 256

var errClosed = errors.New("embedded store is closed")

// Open opens or creates dir/sessions.db. It fails at once, rather than wait,
// when another process holds the file.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open embedded store: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "sessions.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open embedded store %s: %w", filepath.Join(dir, "sessions.db"), err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSessions, bucketCustomers, bucketAgents} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		if tx.Bucket(bucketExpiry) != nil {
			return tx.DeleteBucket(bucketExpiry)
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open embedded store: %w", err)
	}
	s := &Store{db: db, writes: make(chan write), stop: make(chan struct{})}
	s.done.Add(1)
	go s.writer()
	return s, nil
}

// update runs fn in a write transaction, committed and synced with the
// group it joins, and returns fn's result. fn must not write before it
// returns one of the store's sentinel errors.
func (s *Store) update(fn func(*bolt.Tx) error) error {
	w := write{fn: fn, done: make(chan error, 1)}
	select {
	case s.writes <- w:
	case <-s.stop:
		return errClosed
	}
	return <-w.done
}

func (s *Store) writer() {
	defer s.done.Done()
	for {
		var group []write
		select {
		case w := <-s.writes:
			group = append(group, w)
		case <-s.stop:
			return
		}
	collect:
		for len(group) < maxGroup {
			select {
			case w := <-s.writes:
				group = append(group, w)
			default:
				break collect
			}
		}
		s.commit(group)
	}
}

// commit runs a group in one transaction. A write's sentinel result (not
// found, conflict, exists) is its answer and wrote nothing; any other error
// may have written part of it, so the group is rolled back and each write
// committed alone, so that the failure stays with the write that caused it.
func (s *Store) commit(group []write) {
	results := make([]error, len(group))
	err := s.db.Update(func(tx *bolt.Tx) error {
		for i, w := range group {
			err := w.fn(tx)
			if err != nil && !outcome(err) {
				return err
			}
			results[i] = err
		}
		return nil
	})
	if err != nil {
		for i, w := range group {
			results[i] = s.db.Update(w.fn)
		}
	}
	for i, w := range group {
		w.done <- results[i]
	}
}

func outcome(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrAlreadyExists)
}

// StartSweeper deletes expired sessions every interval, by the clock now,
// until Close. DynamoDB does the same with its TTL attribute.
func (s *Store) StartSweeper(interval time.Duration, now func() time.Time, onError func(error)) {
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				if _, err := s.Sweep(now()); err != nil && onError != nil {
					onError(err)
				}
			}
		}
	}()
}

// Sweep deletes the sessions that ended before now and returns how many,
// and the user agents' texts no record names. It finds them by reading
// every record in a read transaction, which holds up no write, then
// deletes in one write the sessions still ended and the texts no write
// committed after the read took up: a session extended meanwhile stays,
// and so does a text a new session took up. (Transaction ids order this,
// not clocks: a write committed after the read began has a larger id than
// the last one the read sees, whatever the clock says.) Keeping no index of ends
// spares every rotation the index's pages; reading 100 000 records takes
// milliseconds. A record it cannot read is left alone and reported in the
// error, after the others have been swept.
func (s *Store) Sweep(now time.Time) (int, error) {
	var (
		ids        []string
		agents     [][]byte // texts no record named when the read began
		unreadable error
		began      uint64 // the first write transaction the read does not see
	)
	err := s.db.View(func(tx *bolt.Tx) error {
		began = uint64(tx.ID()) + 1
		bad := 0
		named := map[[agentKeyLen]byte]bool{}
		err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			end, agent, err := recordEndAndAgent(v)
			switch {
			case err != nil:
				if bad++; bad == 1 {
					unreadable = fmt.Errorf("session %q: %w", k, err)
				}
			case end.Before(now):
				ids = append(ids, string(k))
			}
			if agent != nil {
				named[[agentKeyLen]byte(agent)] = true
			}
			return nil
		})
		if bad > 0 {
			unreadable = fmt.Errorf("sweep: %d sessions could not be read and were left, the first: %w", bad, unreadable)
		}
		if err != nil {
			return err
		}
		return tx.Bucket(bucketAgents).ForEach(func(k, v []byte) error {
			if len(k) == agentKeyLen && !named[[agentKeyLen]byte(k)] && agentTakenUp(v) < began {
				agents = append(agents, bytes.Clone(k))
			}
			return nil
		})
	})
	if err != nil {
		return 0, err
	}
	if len(ids) == 0 && len(agents) == 0 {
		return 0, unreadable
	}
	n := 0
	err = s.update(func(tx *bolt.Tx) error {
		n = 0
		for _, id := range ids {
			sess, err := getTx(tx, id)
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if !sess.ExpiresAt.Before(now) {
				continue
			}
			if _, err := deleteTx(tx, id); err != nil {
				return err
			}
			n++
		}
		return deleteAgents(tx, agents, began)
	})
	return n, errors.Join(err, unreadable)
}

// deleteAgents deletes the user agents' texts keys names, unless a write
// transaction numbered began or later took one up. Every record that names
// a text was either committed before the sweep's read (which saw it, so
// the text was not listed) or written by such a transaction (which took
// its text up).
func deleteAgents(tx *bolt.Tx, keys [][]byte, began uint64) error {
	b := tx.Bucket(bucketAgents)
	for _, k := range keys {
		if v := b.Get(k); v != nil && agentTakenUp(v) < began {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
	}
	return nil
}

// agentTakenUp is the write transaction that last took up the text of
// agents value v for a new session.
func agentTakenUp(v []byte) uint64 {
	if len(v) < 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

// Close stops the sweeper and closes the file. Closing twice is harmless.
func (s *Store) Close() error {
	s.closed.Do(func() {
		close(s.stop)
		s.done.Wait()
		s.err = s.db.Close()
	})
	return s.err
}

// Ping reports whether the file is open.
func (s *Store) Ping(context.Context) error {
	return s.db.View(func(*bolt.Tx) error { return nil })
}

// Create implements store.Sessions.
func (s *Store) Create(_ context.Context, sess store.Session) error {
	return s.update(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketSessions).Get([]byte(sess.ID)) != nil {
			return store.ErrAlreadyExists
		}
		_, err := putTx(tx, sess, nil, nil)
		return err
	})
}

// Get implements store.Sessions.
func (s *Store) Get(_ context.Context, id string) (store.Session, error) {
	var sess store.Session
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		sess, err = getTx(tx, id)
		return err
	})
	return sess, err
}

// Rotate implements store.Sessions.
func (s *Store) Rotate(_ context.Context, id string, r store.Rotation) (store.Session, error) {
	var sess store.Session
	err := s.update(func(tx *bolt.Tx) error {
		old, agent, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		sess = old
		if subtle.ConstantTimeCompare(old.TokenHash, r.From) != 1 || old.Expired(r.Now) {
			return store.ErrConflict
		}
		sess.PrevTokenHash, sess.TokenHash = old.TokenHash, r.To
		sess.RotatedAt, sess.RefreshedAt, sess.ExpiresAt = r.Now, r.Now, r.ExpiresAt
		sess, err = putTx(tx, sess, &old, agent)
		return err
	})
	return sess, err
}

// Extend implements store.Sessions.
func (s *Store) Extend(_ context.Context, id string, expiresAt time.Time) (store.Session, error) {
	var sess store.Session
	err := s.update(func(tx *bolt.Tx) error {
		old, agent, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		sess = old
		sess.ExpiresAt = expiresAt
		sess, err = putTx(tx, sess, &old, agent)
		return err
	})
	return sess, err
}

// Delete implements store.Sessions.
func (s *Store) Delete(_ context.Context, id string) (store.Session, error) {
	var sess store.Session
	err := s.update(func(tx *bolt.Tx) error {
		var err error
		sess, err = deleteTx(tx, id)
		return err
	})
	return sess, err
}

// ListByCustomer implements store.Customers.
func (s *Store) ListByCustomer(_ context.Context, customerID string) ([]store.Session, error) {
	var out []store.Session
	err := s.db.View(func(tx *bolt.Tx) error {
		ids := customerIDs(tx, customerID)
		for _, id := range ids {
			sess, err := getTx(tx, id)
			if err != nil {
				return err
			}
			out = append(out, sess)
		}
		return nil
	})
	return out, err
}

// DeleteByCustomer implements store.Customers.
func (s *Store) DeleteByCustomer(_ context.Context, customerID string) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		for _, id := range customerIDs(tx, customerID) {
			if _, err := deleteTx(tx, id); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// TrimByCustomer implements store.Customers, in one transaction.
func (s *Store) TrimByCustomer(_ context.Context, customerID string, keep int) (int, error) {
	n := 0
	err := s.update(func(tx *bolt.Tx) error {
		n = 0
		ids := customerIDs(tx, customerID)
		if len(ids) <= keep {
			return nil
		}
		list := make([]store.Session, 0, len(ids))
		for _, id := range ids {
			sess, err := getTx(tx, id)
			if err != nil {
				return err
			}
			list = append(list, sess)
		}
		for _, sess := range store.LeastRecent(list, keep) {
			if _, err := deleteTx(tx, sess.ID); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

func customerIDs(tx *bolt.Tx, customerID string) []string {
	prefix := customerKey(customerID, "")
	var ids []string
	c := tx.Bucket(bucketCustomers).Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		ids = append(ids, string(k[len(prefix):]))
	}
	return ids
}

func getTx(tx *bolt.Tx, id string) (store.Session, error) {
	sess, _, err := getRecord(tx, id)
	return sess, err
}

// getRecord is getTx, with the key of the session's user agent in the
// agents bucket when its record names one.
func getRecord(tx *bolt.Tx, id string) (store.Session, []byte, error) {
	v := tx.Bucket(bucketSessions).Get([]byte(id))
	if v == nil {
		return store.Session{}, nil, store.ErrNotFound
	}
	sess, agent, err := decodeSession(id, v)
	if err == nil && agent != nil {
		if text := tx.Bucket(bucketAgents).Get(agent); len(text) >= 8 {
			sess.UserAgent = string(text[8:])
		}
	}
	return sess, agent, err
}

// agentKeyLen is the length of a user agent's key: the first 128 bits of
// its SHA-256.
const agentKeyLen = 16

func agentKey(userAgent string) []byte {
	sum := sha256.Sum256([]byte(userAgent))
	return sum[:agentKeyLen]
}

// putTx writes sess and, for a new session, its customer index entry and
// its user agent's text (taken up by tx), and returns sess as stored (times
// to the millisecond, in UTC). A rotation keeps the customer and the user
// agent (oldAgent, its key when the old record named one; a record that
// held the text keeps holding it), so it dirties only the session's page.
func putTx(tx *bolt.Tx, sess store.Session, old *store.Session, oldAgent []byte) (store.Session, error) {
	for _, t := range [...]*time.Time{&sess.CreatedAt, &sess.RefreshedAt, &sess.RotatedAt, &sess.ExpiresAt} {
		*t = time.UnixMilli(t.UnixMilli()).UTC()
	}
	agent := oldAgent
	if old == nil && sess.UserAgent != "" {
		agent = agentKey(sess.UserAgent)
		text := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(sess.UserAgent)), uint64(tx.ID()))
		if err := tx.Bucket(bucketAgents).Put(agent, append(text, sess.UserAgent...)); err != nil {
			return sess, err
		}
	}
	if err := tx.Bucket(bucketSessions).Put([]byte(sess.ID), encodeSession(sess, agent)); err != nil {
		return sess, err
	}
	if old == nil || old.CustomerID != sess.CustomerID {
		return sess, tx.Bucket(bucketCustomers).Put(customerKey(sess.CustomerID, sess.ID), nil)
	}
	return sess, nil
}

func deleteTx(tx *bolt.Tx, id string) (store.Session, error) {
	sess, err := getTx(tx, id)
	if err != nil {
		return sess, err
	}
	return sess, errors.Join(
		tx.Bucket(bucketSessions).Delete([]byte(id)),
		tx.Bucket(bucketCustomers).Delete(customerKey(sess.CustomerID, id)),
	)
}

func customerKey(customerID, id string) []byte {
	k := make([]byte, 0, len(customerID)+1+len(id))
	k = append(k, customerID...)
	k = append(k, 0)
	return append(k, id...)
}
