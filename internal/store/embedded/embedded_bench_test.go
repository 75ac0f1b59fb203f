package embedded

import (
	"context"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/token"
)

// The cost of a refresh's one store call, Rotate:
//
//	go test -run '^$' -bench Rotate -benchmem ./internal/store/embedded/
//
// BenchmarkRotate is the store as it is. BenchmarkRotatePrototype measures,
// on the same data, ways the store could commit rotations; they exist only
// in this file, as evidence for docs/performance.md, and are not the store's code.

// benchParallelism makes b.RunParallel run 32 goroutines per GOMAXPROCS
// (64 on 2 cores), like the load benchmark's 64 users.
const benchParallelism = 32

// benchHash returns a 32-byte hash made from n, so that every rotation has a
// new one.
func benchHash(n uint64) []byte {
	h := make([]byte, 32)
	binary.BigEndian.PutUint64(h, n)
	h[31] = 0xb7
	return h
}

var benchSessionSeq atomic.Uint64

// benchSession creates a session that lives an hour and returns its id and hash.
func benchSession(s *Store) (string, []byte, error) {
	n := benchSessionSeq.Add(1)
	id, err := token.NewSessionID() // random, as the service's: each on its own page
	if err != nil {
		return "", nil, err
	}
	h := benchHash(n << 32)
	now := time.Now()
	err = s.Create(context.Background(), store.Session{ID: id, CustomerID: "c" + strconv.FormatUint(n%1000, 10),
		TokenHash: h, CreatedAt: now, RefreshedAt: now, ExpiresAt: now.Add(time.Hour)})
	return id, h, err
}

type rotateFunc func(ctx context.Context, id string, r store.Rotation) (store.Session, error)

// benchRotations rotates one session per goroutine, each rotation with a new
// hash and a new expiry, as refreshes do.
func benchRotations(b *testing.B, s *Store, rotate rotateFunc, parallel bool) {
	ctx := context.Background()
	loop := func(next func() bool) {
		id, from, err := benchSession(s)
		if err != nil {
			b.Error(err)
			return
		}
		n := binary.BigEndian.Uint64(from)
		for next() {
			n++
			to := benchHash(n)
			now := time.Now()
			if _, err := rotate(ctx, id, store.Rotation{From: from, To: to, Now: now, ExpiresAt: now.Add(15 * time.Minute)}); err != nil {
				b.Error(err)
				return
			}
			from = to
		}
	}
	b.ReportAllocs()
	if !parallel {
		loop(b.Loop)
		return
	}
	b.SetParallelism(benchParallelism)
	b.RunParallel(func(pb *testing.PB) { loop(pb.Next) })
}

func openBench(b *testing.B) *Store {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkRotate: sequential rotations of one session, then concurrent
// rotations of many sessions (one per goroutine), in a new file and in one
// holding 100 000 other sessions (as after a load benchmark's logins).
// write-B/op is what the process wrote to storage per rotation
// (/proc/self/io write_bytes), pages and fsyncs included. The preload takes
// a while, so give parallel-100k a fixed count:
//
//	go test -run '^$' -bench 'Rotate/parallel-100k' -benchtime 20000x -benchmem ./internal/store/embedded/
func BenchmarkRotate(b *testing.B) {
	b.Run("sequential", func(b *testing.B) {
		s := openBench(b)
		benchRotations(b, s, s.Rotate, false)
	})
	b.Run("parallel", func(b *testing.B) {
		s := openBench(b)
		benchRotations(b, s, s.Rotate, true)
	})
	b.Run("parallel-100k", func(b *testing.B) {
		s := openBench(b)
		preload(b, s, 100_000)
		b.ResetTimer()
		w0 := writeBytes(b)
		benchRotations(b, s, s.Rotate, true)
		b.ReportMetric(float64(writeBytes(b)-w0)/float64(b.N), "write-B/op")
	})
	// spread-100k: every rotation is of another of the 100 000 sessions,
	// as a shop's refreshes are (b.N at most 100 000).
	b.Run("spread-100k", func(b *testing.B) {
		if b.N > 100_000 {
			b.Fatal("spread-100k rotates each session once: -benchtime at most 100000x")
		}
		s := openBench(b)
		sessions := make([]store.Session, 100_000)
		for i := range sessions {
			sessions[i] = footprintSession(i)
		}
		preloadSessions(b, s, sessions)
		now := sessions[0].CreatedAt.Add(time.Minute) // before every end
		var next atomic.Int64
		b.ReportAllocs()
		b.SetParallelism(benchParallelism)
		b.ResetTimer()
		w0 := writeBytes(b)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				sess := sessions[next.Add(1)-1]
				r := store.Rotation{From: sess.TokenHash, To: benchHash(uint64(next.Load())), Now: now, ExpiresAt: now.Add(15 * time.Minute)}
				if _, err := s.Rotate(context.Background(), sess.ID, r); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(writeBytes(b)-w0)/float64(b.N), "write-B/op")
	})
}

// BenchmarkSweep100k: one sweep of a file holding 100 000 live sessions,
// which reads every record's end and deletes nothing, as most sweeps do:
//
//	go test -run '^$' -bench Sweep100k -benchtime 20x ./internal/store/embedded/
func BenchmarkSweep100k(b *testing.B) {
	s := openBench(b)
	preload(b, s, 100_000)
	at := time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC) // before every end
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if n, err := s.Sweep(at); err != nil || n != 0 {
			b.Fatalf("Sweep = %d, %v", n, err)
		}
	}
}

// preload creates n sessions from 64 goroutines, as concurrent logins do.
func preload(b *testing.B, s *Store, n int) {
	sessions := make([]store.Session, n)
	for i := range sessions {
		sessions[i] = footprintSession(i)
	}
	preloadSessions(b, s, sessions)
}

// preloadSessions creates sessions from 64 goroutines, each with its own
// customer, the bench's user agent and an address.
func preloadSessions(b *testing.B, s *Store, sessions []store.Session) {
	const callers = 64
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < len(sessions); i += callers {
				sess := &sessions[i]
				sess.CustomerID, sess.UserAgent, sess.IP = "c"+strconv.Itoa(i), "meshauth-bench", "10.0.0.1"
				if err := s.Create(context.Background(), *sess); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// writeBytes is the process's write_bytes from /proc/self/io, or 0.
func writeBytes(b *testing.B) int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// BenchmarkRotatePrototype: the same concurrent rotations, committed
// differently.
//
//   - nosync: the store's Rotate with bbolt's NoSync, which skips the
//     fdatasync of every commit. NOT a proposal (a crash would lose
//     rotations); it shows what the fsync of each commit costs.
//   - batch: bbolt's DB.Batch, which runs concurrent callers' functions in
//     one transaction, one fsync; conflicts are returned as values, since
//     an error from a batched function makes bbolt retry it alone.
//   - groupcommit: one writer goroutine that commits, in one transaction,
//     every rotation queued while the previous commit was being written. A
//     lone rotation commits at once; under load the batch grows by itself.
func BenchmarkRotatePrototype(b *testing.B) {
	b.Run("nosync", func(b *testing.B) {
		s := openBench(b)
		s.db.NoSync = true
		benchRotations(b, s, s.Rotate, true)
	})
	b.Run("batch", func(b *testing.B) {
		s := openBench(b)
		s.db.MaxBatchDelay = time.Millisecond
		benchRotations(b, s, func(_ context.Context, id string, r store.Rotation) (store.Session, error) {
			var sess store.Session
			var lost error
			err := s.db.Batch(func(tx *bolt.Tx) error {
				sess, lost = rotateTx(tx, id, r)
				if lost != nil && !errors.Is(lost, store.ErrConflict) && !errors.Is(lost, store.ErrNotFound) {
					return lost
				}
				return nil
			})
			if err != nil {
				return store.Session{}, err
			}
			return sess, lost
		}, true)
	})
	b.Run("groupcommit", func(b *testing.B) {
		s := openBench(b)
		g := newGroupCommit(s)
		defer g.close()
		benchRotations(b, s, g.rotate, true)
	})
}

// rotateTx rotates session id in its record, in a given transaction, as
// the store did before its rotation log. A lost condition (ErrConflict,
// ErrNotFound) changes nothing.
func rotateTx(tx *bolt.Tx, id string, r store.Rotation) (store.Session, error) {
	old, agent, err := record(tx, id, 0)
	if err != nil {
		return store.Session{}, err
	}
	sess := old
	if subtle.ConstantTimeCompare(old.TokenHash, r.From) != 1 || old.Expired(r.Now) {
		return sess, store.ErrConflict
	}
	sess.PrevTokenHash, sess.TokenHash = old.TokenHash, r.To
	sess.RotatedAt, sess.RefreshedAt, sess.ExpiresAt = r.Now, r.Now, r.ExpiresAt
	sess = stored(sess)
	return sess, tx.Bucket(bucketSessions).Put([]byte(id), encodeSession(sess, agent))
}

type groupCommit struct {
	s    *Store
	reqs chan *commitReq
	done chan struct{}
}

type commitReq struct {
	id   string
	r    store.Rotation
	sess store.Session
	err  error
	done chan struct{}
}

func newGroupCommit(s *Store) *groupCommit {
	g := &groupCommit{s: s, reqs: make(chan *commitReq, 1024), done: make(chan struct{})}
	go g.run()
	return g
}

func (g *groupCommit) close() {
	close(g.reqs)
	<-g.done
}

func (g *groupCommit) rotate(_ context.Context, id string, r store.Rotation) (store.Session, error) {
	q := &commitReq{id: id, r: r, done: make(chan struct{})}
	g.reqs <- q
	<-q.done
	return q.sess, q.err
}

func (g *groupCommit) run() {
	defer close(g.done)
	batch := make([]*commitReq, 0, 256)
	for first := range g.reqs {
		batch = append(batch[:0], first)
	drain:
		for len(batch) < cap(batch) {
			select {
			case q, ok := <-g.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, q)
			default:
				break drain
			}
		}
		err := g.s.db.Update(func(tx *bolt.Tx) error {
			for _, q := range batch {
				q.sess, q.err = rotateTx(tx, q.id, q.r)
				if q.err != nil && !errors.Is(q.err, store.ErrConflict) && !errors.Is(q.err, store.ErrNotFound) {
					return q.err
				}
			}
			return nil
		})
		for _, q := range batch {
			if err != nil {
				q.sess, q.err = store.Session{}, err
			}
			close(q.done)
		}
	}
}
