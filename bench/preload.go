package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// preloadResult is what -preload reports, as one JSON line and one line on
// stderr: how long the logins took, and the service's memory and
// sessions.db once they are stored.
type preloadResult struct {
	Scenario  string  `json:"scenario"` // "preload"
	Sessions  int     `json:"sessions"`
	Seconds   float64 `json:"seconds"`
	PeakRSSMB float64 `json:"peak_rss_mb"` // VmHWM since the service started
	RSSMB     float64 `json:"rss_mb"`      // VmRSS after the logins
	AnonMB    float64 `json:"anon_mb"`     // RssAnon
	FileMB    float64 `json:"file_mb"`     // RssFile
	// StoreFileMB is the part of RssFile that is sessions.db's mapping,
	// from /proc/<pid>/smaps; the rest is mostly the service's binary.
	StoreFileMB float64 `json:"store_file_mb,omitempty"`
	// DBBytes is sessions.db's size; BytesPerSession divides it by Sessions.
	DBBytes         int64   `json:"db_bytes,omitempty"`
	BytesPerSession float64 `json:"db_bytes_per_session,omitempty"`
	// HeapInuseMB and StackInuseMB are the Go runtime's own figures, from
	// the service's /metrics: most of the anonymous part.
	HeapInuseMB  float64 `json:"heap_inuse_mb,omitempty"`
	StackInuseMB float64 `json:"stack_inuse_mb,omitempty"`
}

// preload logs n distinct customers in through the API, users at a time,
// recording nothing, so that the scenarios run against a store that already
// holds n sessions (each lives the idle TTL, 15 minutes by default). dbPath
// is the embedded store's file, or "" for none.
func preload(ctx context.Context, t *target, svc *proc, n, users int, xff bool, dbPath string, stdout, stderr io.Writer) error {
	fmt.Fprintf(stderr, "bench: preloading %d sessions (%d users log in)\n", n, users)
	start := time.Now()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make([]error, users)
	for i := range users {
		v := &vu{id: 1_000_000 + i, t: t}
		if xff {
			v.addr = clientAddr(i + 1)
		}
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				if _, err := v.setupLogin(ctx); err != nil {
					errs[i] = fmt.Errorf("preload: %w", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	r := preloadResult{Scenario: "preload", Sessions: n, Seconds: round(time.Since(start).Seconds(), 1)}
	mb := func(field string) float64 {
		kb, err := procStatusKB(svc.pid(), field)
		if err != nil {
			return -1
		}
		return round(float64(kb)/1024, 1)
	}
	r.PeakRSSMB, r.RSSMB, r.AnonMB, r.FileMB = mb("VmHWM"), mb("VmRSS"), mb("RssAnon"), mb("RssFile")
	if dbPath != "" {
		if kb, err := smapsRssKB(svc.pid(), dbPath); err == nil {
			r.StoreFileMB = round(float64(kb)/1024, 1)
		}
		if fi, err := os.Stat(dbPath); err == nil {
			r.DBBytes = fi.Size()
			r.BytesPerSession = round(float64(fi.Size())/float64(n), 1)
		}
	}
	for name, dst := range map[string]*float64{"go_memstats_heap_inuse_bytes": &r.HeapInuseMB, "go_memstats_stack_inuse_bytes": &r.StackInuseMB} {
		if res, err := t.client.Get(svc.base + "/metrics"); err == nil {
			if v, ok := sumMetric(res.Body, name); ok {
				*dst = round(v/(1<<20), 1)
			}
			res.Body.Close()
		}
	}
	fmt.Fprintf(stderr, "bench: preloaded %d sessions in %.1f s; service RSS %.1f MiB (anon %.1f: Go heap in use %.1f, stacks %.1f; file %.1f, of which sessions.db %.1f), peak %.1f MiB; sessions.db %.1f MB, %.0f bytes per session\n",
		n, r.Seconds, r.RSSMB, r.AnonMB, r.HeapInuseMB, r.StackInuseMB, r.FileMB, r.StoreFileMB, r.PeakRSSMB, float64(r.DBBytes)/1e6, r.BytesPerSession)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", b)
	return err
}

// smapsRssKB sums the Rss of pid's mappings of path, from /proc/<pid>/smaps.
func smapsRssKB(pid int, path string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) >= 5 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = len(fields) >= 6 && fields[5] == path
			continue
		}
		if v, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, err
			}
			total += kb
		}
	}
	return total, sc.Err()
}
