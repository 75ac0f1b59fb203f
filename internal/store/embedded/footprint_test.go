package embedded

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/token"
)

// What a stored session costs in sessions.db: 100 000 sessions created by
// 64 concurrent callers (so committed in groups, as logins are), then the
// growth of the file and of the pages bbolt has handed out, per session:
//
//	go test -run '^$' -bench Footprint -benchtime 1x ./internal/store/embedded/
//
// file-B/session is the growth of the file's size, which bbolt extends in
// steps of up to 16 MiB; used-B/session the growth of its high-water mark
// (pages handed out, in use or free); inuse-B/session the bytes the three
// buckets' pages hold, free space in those pages included. "json" writes
// the records and index entries (with the expiry index) as the store did
// before the binary encoding, to compare with.
func BenchmarkFootprint(b *testing.B) {
	const sessions, callers = 100_000, 64
	shapes := []struct {
		name string
		make func(i int) store.Session
	}{
		// The load benchmark's logins (bench/): a short user agent and an
		// IPv4 address per virtual user.
		{"loadbench", func(i int) store.Session {
			s := footprintSession(i)
			s.CustomerID = "c" + strconv.FormatUint(uint64(i)*0x9e3779b97f4a7c15, 36)
			s.UserAgent, s.IP = "meshauth-bench", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
			return s
		}},
		// A browser: desktop Chrome's user agent and an IPv6 address.
		{"browser", func(i int) store.Session {
			s := footprintSession(i)
			s.CustomerID = strconv.Itoa(1_000_000 + i)
			s.NumericCustomerID = true
			s.UserAgent, s.IP = chromeUA, clientV6
			return s
		}},
	}
	for _, shape := range shapes {
		for _, enc := range []string{"binary", "json"} {
			b.Run(shape.name+"/"+enc, func(b *testing.B) {
				for b.Loop() {
					footprint(b, sessions, callers, shape.make, enc == "json")
				}
			})
		}
	}
}

func footprintSession(i int) store.Session {
	id, err := token.NewSessionID()
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC).Add(time.Duration(i) * time.Millisecond)
	h := make([]byte, 32)
	copy(h, id)
	return store.Session{ID: id, TokenHash: h, CreatedAt: now.Truncate(time.Second), RefreshedAt: now,
		ExpiresAt: now.Add(15 * time.Minute).Truncate(time.Second)}
}

func footprint(b *testing.B, sessions, callers int, newSession func(int) store.Session, asJSON bool) {
	dir := b.TempDir()
	s, err := Open(dir)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	path := filepath.Join(dir, "sessions.db")
	fileSize := func() int64 {
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		return fi.Size()
	}
	var used0, used1 int64
	var inuse0, pages0 [3]int
	stats := func(used *int64, inuse, pages *[3]int) {
		if err := s.db.View(func(tx *bolt.Tx) error {
			*used = tx.Size()
			for i, name := range [][]byte{bucketSessions, bucketCustomers, bucketExpiry} {
				b := tx.Bucket(name)
				if b == nil {
					continue
				}
				st := b.Stats()
				inuse[i] = st.BranchInuse + st.LeafInuse
				pages[i] = (st.BranchPageN + st.BranchOverflowN + st.LeafPageN + st.LeafOverflowN) * s.db.Info().PageSize
			}
			return nil
		}); err != nil {
			b.Fatal(err)
		}
	}
	file0 := fileSize()
	stats(&used0, &inuse0, &pages0)
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := c; i < sessions; i += callers {
				sess := newSession(i)
				var err error
				if asJSON {
					err = s.update(func(tx *txn) error { return putJSON(tx.Tx, sess) })
				} else {
					err = s.Create(context.Background(), sess)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := errors.Join(<-errs); err != nil {
		b.Fatal(err)
	}
	var inuse, pages [3]int
	stats(&used1, &inuse, &pages)
	n := float64(sessions)
	b.ReportMetric(float64(fileSize()-file0)/n, "file-B/session")
	b.ReportMetric(float64(used1-used0)/n, "used-B/session")
	for i, name := range []string{"sessions", "customers", "expiry"} {
		b.ReportMetric(float64(pages[i]-pages0[i])/n, name+"-pages-B/session")
		b.ReportMetric(float64(inuse[i]-inuse0[i])/n, name+"-inuse-B/session")
	}
}

// putJSON writes sess as the store did before the binary encoding.
func putJSON(tx *bolt.Tx, sess store.Session) error {
	v, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	exp, err := tx.CreateBucketIfNotExists(bucketExpiry)
	if err != nil {
		return err
	}
	return errors.Join(
		tx.Bucket(bucketSessions).Put([]byte(sess.ID), v),
		tx.Bucket(bucketCustomers).Put(customerKey(sess.CustomerID, sess.ID), nil),
		exp.Put(append(binary.BigEndian.AppendUint64(nil, uint64(sess.ExpiresAt.UnixNano())), sess.ID...), nil),
	)
}
