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
	"maps"
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
	// bucketLog is the rotation log: sequence (8 bytes big-endian) -> the
	// session id's length (uvarint) | id | the session's record after a
	// rotation or an extension, or nothing: a tombstone, written when a
	// session with entries ends, so that a fold after a crash never gives
	// its entries to a later session with the same id. See Store.
	bucketLog = []byte("log")
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
//
// Rotations and extensions, the writes of every refresh, go to the rotation
// log rather than to the session's record: a new entry, with the session's
// whole new record, at the log's end. Session ids are random, so writing
// the record itself would copy a page of the B-tree per rotation, anywhere
// in the file; appending puts a group's rotations on the same page or two.
// The store keeps in memory each logged session's newest entry (latest),
// and reads a session from there when it has one. Once the log holds
// foldAfter entries, the writer folds its oldest foldStep into the records
// in one transaction: a session's newest entry becomes its record, older
// ones are dropped, so a session refreshed many times since the last fold
// costs its page once. Open and Close fold the whole log. Everything stays
// in bbolt's transactions: a crash loses nothing a caller was told was
// written, and Open finds the log as it was. Deleting a logged session
// appends a tombstone, so that its entries never reach a later session
// given the same id; an entry that cannot be read is dropped by the fold
// and reported by the next Sweep, rather than hold the log up.
//
// A reader takes the newest entries it needs before it begins its read
// transaction: an entry published then was committed before it, so the
// transaction holds it, unless a fold removed it meanwhile (errFolded);
// the reader then reads again.
type Store struct {
	db     *bolt.DB
	writes chan write
	stop   chan struct{}
	done   sync.WaitGroup
	closed sync.Once
	err    error

	mu     sync.RWMutex
	latest map[string]uint64 // session id -> its newest log entry; changed only by the writer, after commits

	// The writer's own (and Open's and Close's, when no writer runs).
	logged              int // entries in the log
	foldAfter, foldStep int

	damaged error // log entries a fold dropped, not yet reported by Sweep; under mu
}

// write is one caller's update, run inside a group's transaction.
type write struct {
	fn   func(*txn) error
	done chan error
}

// txn is a write transaction and what it changes of Store.latest, which
// the store publishes once it has committed.
type txn struct {
	*bolt.Tx
	s       *Store
	moved   map[string]uint64 // session id -> its newest entry now; 0: none
	logged  int               // entries added to the log, less those folded
	damaged error             // log entries a fold dropped
}

// newest is session id's newest log entry in t, or 0.
func (t *txn) newest(id string) uint64 {
	if seq, ok := t.moved[id]; ok {
		return seq
	}
	return t.s.latest[id] // only the writer changes it
}

// publish makes t's changes to the log's entries visible to readers; t
// has committed.
func (s *Store) publish(t *txn) {
	s.logged += t.logged
	if len(t.moved) == 0 && t.damaged == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.damaged = errors.Join(s.damaged, t.damaged)
	for id, seq := range t.moved {
		if seq == 0 {
			delete(s.latest, id)
		} else {
			s.latest[id] = seq
		}
	}
}

// maxGroup bounds the writes committed together.
const maxGroup = 256

// The rotation log's defaults: fold once it holds foldAfter entries,
// foldStep of them at a time. At a few thousand refreshes a second a fold
// runs every fraction of a second; the log stays under a megabyte.
const (
	defaultFoldAfter = 4096
	defaultFoldStep  = 1024
)

// testHookRead, when a test sets it, runs between a reader's taking the
// newest entries and its read transaction's beginning.
var testHookRead func()

// errFolded is a reader's: a log entry named before its transaction began
// was folded away meanwhile.
var errFolded = errors.New("embedded store: log entry folded during a read")

var errClosed = errors.New("embedded store is closed")

// Open opens or creates dir/sessions.db. It fails at once, rather than wait,
// when another process holds the file.
func Open(dir string) (*Store, error) {
	return open(dir, defaultFoldAfter, defaultFoldStep)
}

// open is Open with the rotation log's fold thresholds.
func open(dir string, foldAfter, foldStep int) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open embedded store: %w", err)
	}
	db, err := bolt.Open(filepath.Join(dir, "sessions.db"), 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("open embedded store %s: %w", filepath.Join(dir, "sessions.db"), err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketSessions, bucketCustomers, bucketAgents, bucketLog} {
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
	s := &Store{db: db, writes: make(chan write), stop: make(chan struct{}), latest: map[string]uint64{},
		foldAfter: foldAfter, foldStep: foldStep}
	if err := s.foldAll(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open embedded store: %w", err)
	}
	s.done.Add(1)
	go s.writer()
	return s, nil
}

// update runs fn in a write transaction, committed and synced with the
// group it joins, and returns fn's result. fn must not write before it
// returns one of the store's sentinel errors.
func (s *Store) update(fn func(*txn) error) error {
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
		if s.logged >= s.foldAfter {
			// A fold that fails (the file cannot be written) leaves the
			// log as it was; the next group tries again, and Close
			// reports it.
			_ = s.fold(s.foldStep)
		}
	}
}

// commit runs a group in one transaction. A write's sentinel result (not
// found, conflict, exists) is its answer and wrote nothing; any other error
// may have written part of it, so the group is rolled back and each write
// committed alone, so that the failure stays with the write that caused it.
func (s *Store) commit(group []write) {
	results := make([]error, len(group))
	err := s.write(func(t *txn) error {
		for i, w := range group {
			err := w.fn(t)
			if err != nil && !outcome(err) {
				return err
			}
			results[i] = err
		}
		return nil
	})
	if err != nil {
		for i, w := range group {
			results[i] = s.write(w.fn)
		}
	}
	for i, w := range group {
		w.done <- results[i]
	}
}

// write runs fn in a write transaction of its own and, once it has
// committed, publishes what it changed of the log. Only the writer, or
// Open and Close when none runs, writes.
func (s *Store) write(fn func(*txn) error) error {
	var t *txn
	err := s.db.Update(func(tx *bolt.Tx) error {
		t = &txn{Tx: tx, s: s, moved: map[string]uint64{}}
		return fn(t)
	})
	if err == nil {
		s.publish(t)
	}
	return err
}

func outcome(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrAlreadyExists)
}

// fold moves the log's n oldest entries into the sessions' records, in one
// transaction: an entry that is its session's newest becomes the record
// (when the session still has one); the others are dropped. Only the
// writer, or Open and Close when none runs, folds.
func (s *Store) fold(n int) error {
	err := s.write(func(t *txn) error {
		log, sessions := t.Bucket(bucketLog), t.Bucket(bucketSessions)
		var keys [][]byte
		c := log.Cursor()
		for k, _ := c.First(); k != nil && len(keys) < n; k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		damaged, first := 0, []byte(nil)
		for _, key := range keys {
			id, record, err := logEntry(log.Get(key))
			var seq uint64
			if len(key) == 8 {
				seq = binary.BigEndian.Uint64(key)
			}
			switch {
			case err != nil || seq == 0:
				// Nothing can be made of it: drop it, so that it does not
				// hold the log up, and say so.
				if damaged++; damaged == 1 {
					first = key
				}
			case t.newest(string(id)) == seq:
				// The session's newest state, unless it ended since (a
				// tombstone holds no record).
				if len(record) > 0 && sessions.Get(id) != nil {
					if err := sessions.Put(bytes.Clone(id), bytes.Clone(record)); err != nil {
						return err
					}
				}
				t.moved[string(id)] = 0
			}
			if err := log.Delete(key); err != nil {
				return err
			}
			t.logged--
		}
		if damaged > 0 {
			t.damaged = fmt.Errorf("rotation log: %d damaged entries dropped, the first %x: %w", damaged, first, errRecord)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("fold the rotation log: %w", err)
	}
	return nil
}

// foldAll folds the whole log as the last process left it, as Open does:
// it first reads which entries are newest.
func (s *Store) foldAll() error {
	err := s.db.View(func(tx *bolt.Tx) error {
		s.logged = 0
		return tx.Bucket(bucketLog).ForEach(func(k, v []byte) error {
			if id, _, err := logEntry(v); err == nil && len(k) == 8 {
				s.latest[string(id)] = binary.BigEndian.Uint64(k)
			} // else the fold drops it and reports it
			s.logged++
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("read the rotation log: %w", err)
	}
	if s.logged == 0 {
		return nil
	}
	return s.fold(s.logged)
}

// seqKey is the log's key for entry seq.
func seqKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq)
}

// logEntry splits a log entry's value into the session id and its record
// (slices of v).
func logEntry(v []byte) (id, record []byte, err error) {
	l, n := binary.Uvarint(v)
	if n <= 0 || l > uint64(len(v)-n) {
		return nil, nil, errRecord
	}
	return v[n : n+int(l)], v[n+int(l):], nil
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
	err := s.read(nil, func(tx *bolt.Tx, newest map[string]uint64) error {
		ids, agents, unreadable = nil, nil, nil
		began = uint64(tx.ID()) + 1
		bad := 0
		named := map[[agentKeyLen]byte]bool{}
		err := tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			if seq := newest[string(k)]; seq != 0 {
				// The record's text stays named too: the entry may be of
				// a session that ended, its id since taken by this one.
				if _, agent, err := recordEndAndAgent(v); err == nil && agent != nil {
					named[[agentKeyLen]byte(agent)] = true
				}
				var err error
				if v, err = recordValue(tx, string(k), seq); errors.Is(err, errFolded) {
					return err
				}
			}
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
		if err != nil {
			return err
		}
		if bad > 0 {
			unreadable = fmt.Errorf("sweep: %d sessions could not be read and were left, the first: %w", bad, unreadable)
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
	unreadable = errors.Join(unreadable, s.takeDamaged())
	if len(ids) == 0 && len(agents) == 0 {
		return 0, unreadable
	}
	n := 0
	err = s.update(func(tx *txn) error {
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

// takeDamaged returns, once, the error of the log entries folds dropped
// as damaged since it was last called.
func (s *Store) takeDamaged() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.damaged
	s.damaged = nil
	return err
}

// deleteAgents deletes the user agents' texts keys names, unless a write
// transaction numbered began or later took one up. Every record that names
// a text was either committed before the sweep's read (which saw it, so
// the text was not listed) or written by such a transaction (which took
// its text up).
func deleteAgents(tx *txn, keys [][]byte, began uint64) error {
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

// Close stops the sweeper, folds the rotation log and closes the file.
// Closing twice is harmless.
func (s *Store) Close() error {
	s.closed.Do(func() {
		close(s.stop)
		s.done.Wait()
		if s.logged > 0 {
			s.err = s.fold(s.logged)
		}
		s.err = errors.Join(s.err, s.db.Close())
	})
	return s.err
}

// read runs fn in a read transaction, with the newest log entries of the
// sessions ids names (of every logged session when ids is nil), as
// published before the transaction began; it reads again if fn finds one
// folded (errFolded).
func (s *Store) read(ids []string, fn func(tx *bolt.Tx, newest map[string]uint64) error) error {
	for {
		s.mu.RLock()
		var newest map[string]uint64
		if ids == nil {
			newest = maps.Clone(s.latest)
		} else {
			newest = make(map[string]uint64, len(ids))
			for _, id := range ids {
				if seq := s.latest[id]; seq != 0 {
					newest[id] = seq
				}
			}
		}
		s.mu.RUnlock()
		if testHookRead != nil {
			testHookRead()
		}
		if err := s.db.View(func(tx *bolt.Tx) error { return fn(tx, newest) }); !errors.Is(err, errFolded) {
			return err
		}
	}
}

// readSessions reads the sessions ids names that exist, in one read.
func (s *Store) readSessions(ids []string) ([]store.Session, error) {
	var out []store.Session
	err := s.read(ids, func(tx *bolt.Tx, newest map[string]uint64) error {
		out = out[:0]
		for _, id := range ids {
			sess, _, err := record(tx, id, newest[id])
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			out = append(out, sess)
		}
		return nil
	})
	return out, err
}

// Ping reports whether the file is open.
func (s *Store) Ping(context.Context) error {
	return s.db.View(func(*bolt.Tx) error { return nil })
}

// Create implements store.Sessions.
func (s *Store) Create(_ context.Context, sess store.Session) error {
	return s.update(func(tx *txn) error {
		if tx.Bucket(bucketSessions).Get([]byte(sess.ID)) != nil {
			return store.ErrAlreadyExists
		}
		_, err := putTx(tx, sess)
		return err
	})
}

// Get implements store.Sessions.
func (s *Store) Get(_ context.Context, id string) (store.Session, error) {
	list, err := s.readSessions([]string{id})
	if err != nil {
		return store.Session{}, err
	}
	if len(list) == 0 {
		return store.Session{}, store.ErrNotFound
	}
	return list[0], nil
}

// Rotate implements store.Sessions.
func (s *Store) Rotate(_ context.Context, id string, r store.Rotation) (store.Session, error) {
	var sess store.Session
	err := s.update(func(tx *txn) error {
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
		sess, err = logTx(tx, sess, agent)
		return err
	})
	return sess, err
}

// Extend implements store.Sessions.
func (s *Store) Extend(_ context.Context, id string, expiresAt time.Time) (store.Session, error) {
	var sess store.Session
	err := s.update(func(tx *txn) error {
		old, agent, err := getRecord(tx, id)
		if err != nil {
			return err
		}
		sess = old
		sess.ExpiresAt = expiresAt
		sess, err = logTx(tx, sess, agent)
		return err
	})
	return sess, err
}

// Delete implements store.Sessions.
func (s *Store) Delete(_ context.Context, id string) (store.Session, error) {
	var sess store.Session
	err := s.update(func(tx *txn) error {
		var err error
		sess, err = deleteTx(tx, id)
		return err
	})
	return sess, err
}

// ListByCustomer implements store.Customers: the customer's sessions as
// listed, each as it was at a moment during the call (a session that ended
// meanwhile is left out).
func (s *Store) ListByCustomer(_ context.Context, customerID string) ([]store.Session, error) {
	var ids []string
	if err := s.db.View(func(tx *bolt.Tx) error {
		ids = customerIDs(tx, customerID)
		return nil
	}); err != nil || len(ids) == 0 {
		return nil, err
	}
	return s.readSessions(ids)
}

// DeleteByCustomer implements store.Customers.
func (s *Store) DeleteByCustomer(_ context.Context, customerID string) (int, error) {
	n := 0
	err := s.update(func(tx *txn) error {
		n = 0 // run again alone if its group fails
		for _, id := range customerIDs(tx.Tx, customerID) {
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
	err := s.update(func(tx *txn) error {
		n = 0
		ids := customerIDs(tx.Tx, customerID)
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

func getTx(tx *txn, id string) (store.Session, error) {
	sess, _, err := getRecord(tx, id)
	return sess, err
}

// getRecord is getTx, with the key of the session's user agent in the
// agents bucket when its record names one.
func getRecord(tx *txn, id string) (store.Session, []byte, error) {
	return record(tx.Tx, id, tx.newest(id))
}

// record reads session id in tx: from log entry seq if not 0, else from the
// session's record; and the key of its user agent's text when the record
// names one.
func record(tx *bolt.Tx, id string, seq uint64) (store.Session, []byte, error) {
	v, err := recordValue(tx, id, seq)
	if err != nil {
		return store.Session{}, nil, err
	}
	sess, agent, err := decodeSession(id, v)
	if err == nil && agent != nil {
		if text := tx.Bucket(bucketAgents).Get(agent); len(text) >= 8 {
			sess.UserAgent = string(text[8:])
		}
	}
	return sess, agent, err
}

// recordValue is the record of session id in tx: log entry seq's if not 0,
// else the one in the sessions bucket (a slice of bbolt's memory). A
// session has a newest entry only while it exists: Delete takes it away.
func recordValue(tx *bolt.Tx, id string, seq uint64) ([]byte, error) {
	if seq == 0 {
		if v := tx.Bucket(bucketSessions).Get([]byte(id)); v != nil {
			return v, nil
		}
		return nil, store.ErrNotFound
	}
	e := tx.Bucket(bucketLog).Get(seqKey(seq))
	if e == nil {
		return nil, errFolded
	}
	logged, r, err := logEntry(e)
	if err != nil || string(logged) != id || len(r) == 0 {
		return nil, fmt.Errorf("log entry %d: %w", seq, errRecord)
	}
	return r, nil
}

// agentKeyLen is the length of a user agent's key: the first 128 bits of
// its SHA-256.
const agentKeyLen = 16

func agentKey(userAgent string) []byte {
	sum := sha256.Sum256([]byte(userAgent))
	return sum[:agentKeyLen]
}

// putTx writes a new session: its record, its customer index entry and its
// user agent's text (taken up by tx); and returns sess as stored (times to
// the millisecond, in UTC).
func putTx(tx *txn, sess store.Session) (store.Session, error) {
	sess = stored(sess)
	var agent []byte
	if sess.UserAgent != "" {
		agent = agentKey(sess.UserAgent)
		text := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(sess.UserAgent)), uint64(tx.ID()))
		if err := tx.Bucket(bucketAgents).Put(agent, append(text, sess.UserAgent...)); err != nil {
			return sess, err
		}
	}
	return sess, errors.Join(
		tx.Bucket(bucketSessions).Put([]byte(sess.ID), encodeSession(sess, agent)),
		tx.Bucket(bucketCustomers).Put(customerKey(sess.CustomerID, sess.ID), nil))
}

// logTx writes sess, changed by a rotation or an extension, as a new entry
// at the end of the rotation log, and returns it as stored. The customer
// and the user agent stay as they were: agent is the key of the text the
// record names, or nil when the record holds the text itself.
func logTx(tx *txn, sess store.Session, agent []byte) (store.Session, error) {
	sess = stored(sess)
	seq, err := appendLog(tx, sess.ID, func(entry []byte) []byte { return appendSession(entry, sess, agent) })
	if err == nil {
		tx.moved[sess.ID] = seq
	}
	return sess, err
}

// appendLog appends an entry for session id to the log, its record made by
// record (a tombstone when nil), and returns its sequence.
func appendLog(tx *txn, id string, record func([]byte) []byte) (uint64, error) {
	log := tx.Bucket(bucketLog)
	log.FillPercent = 1 // appended in order: full pages
	seq, err := log.NextSequence()
	if err != nil {
		return 0, err
	}
	entry := binary.AppendUvarint(make([]byte, 0, 256), uint64(len(id))) // a record is about 130 bytes
	entry = append(entry, id...)
	if record != nil {
		entry = record(entry)
	}
	if err := log.Put(seqKey(seq), entry); err != nil {
		return 0, err
	}
	tx.logged++
	return seq, nil
}

// stored is sess as the store keeps it: times to the millisecond, in UTC.
func stored(sess store.Session) store.Session {
	for _, t := range [...]*time.Time{&sess.CreatedAt, &sess.RefreshedAt, &sess.RotatedAt, &sess.ExpiresAt} {
		*t = time.UnixMilli(t.UnixMilli()).UTC()
	}
	return sess
}

// deleteTx deletes session id; its entries in the log stay until a fold
// drops them, behind a tombstone.
func deleteTx(tx *txn, id string) (store.Session, error) {
	sess, err := getTx(tx, id)
	if err != nil {
		return sess, err
	}
	var tomb error
	if tx.newest(id) != 0 {
		_, tomb = appendLog(tx, id, nil)
		tx.moved[id] = 0
	}
	return sess, errors.Join(tomb,
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
