package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// clkTck is the kernel's clock ticks per second (USER_HZ), the unit of
// utime and stime in /proc/<pid>/stat: `getconf CLK_TCK`, or 100 (the value
// on every mainstream Linux) when getconf is missing.
var clkTck = sync.OnceValue(func() float64 {
	out, err := exec.Command("getconf", "CLK_TCK").Output()
	if err == nil {
		if v, err := strconv.ParseFloat(strings.TrimSpace(string(out)), 64); err == nil && v > 0 {
			return v
		}
	}
	return 100
})

// procCPU returns the user+system CPU time pid has used.
func procCPU(pid int) (time.Duration, error) {
	u, s, err := procCPUSplit(pid)
	return u + s, err
}

// procCPUSplit returns the user and the system CPU time pid has used.
func procCPUSplit(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields from the last ')'. Field 3 (state) is then rest[0], so
	// utime (14) and stime (15) are rest[11] and rest[12].
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("unexpected /proc stat format")
	}
	rest := strings.Fields(string(b[i+1:]))
	if len(rest) < 13 {
		return 0, 0, errors.New("unexpected /proc stat format")
	}
	ut, err1 := strconv.ParseFloat(rest[11], 64)
	st, err2 := strconv.ParseFloat(rest[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	tick := float64(time.Second) / clkTck()
	return time.Duration(ut * tick), time.Duration(st * tick), nil
}

// machineCPU returns the CPU time all CPUs spent busy (user, nice, system,
// irq, softirq, steal) and the part of it stolen by the hypervisor, from the
// first line of /proc/stat.
func machineCPU() (busy, steal time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0, errors.New("unexpected /proc/stat format")
	}
	var v [8]float64
	for i := range v {
		if v[i], err = strconv.ParseFloat(f[i+1], 64); err != nil {
			return 0, 0, err
		}
	}
	// user nice system idle iowait irq softirq steal
	tick := float64(time.Second) / clkTck()
	return time.Duration((v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) * tick), time.Duration(v[7] * tick), nil
}

// procStatusKB returns a "kB" field of /proc/<pid>/status, such as VmHWM
// (peak resident set) or VmRSS.
func procStatusKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && k == field {
			return strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// resetPeakRSS sets pid's VmHWM back to its current RSS (writing 5 to
// clear_refs, Linux 4.0 and later), so that the next VmHWM read is the peak
// since now.
func resetPeakRSS(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0)
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// tail keeps the last bytes written to it (a process's log, for errors).
type tail struct {
	mu  sync.Mutex
	buf []byte
	max int
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = t.buf[len(t.buf)-t.max:]
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.buf)
}

// proc is a process the harness started and serves HTTP on base.
type proc struct {
	cmd   *exec.Cmd
	base  string // http://127.0.0.1:PORT
	log   *tail
	done  chan struct{}
	ready time.Duration // process start to first 200 from /readyz
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// startService starts the service binary with env (and nothing else of the
// harness's environment but PATH and HOME) on a free loopback port and
// waits until /readyz answers 200. ready is measured from just before the
// process is created to that answer.
func startService(ctx context.Context, bin string, env []string) (*proc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "PORT=" + strconv.Itoa(port)}, env...)
	p := &proc{cmd: cmd, base: "http://127.0.0.1:" + strconv.Itoa(port), log: &tail{max: 64 << 10}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.log, p.log
	// If the harness dies, the service goes with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { _ = cmd.Wait(); close(p.done) }()
	if err := p.waitReady(ctx, t0, 60*time.Second); err != nil {
		p.stop()
		return nil, fmt.Errorf("%w; service log:\n%s", err, p.log)
	}
	return p, nil
}

// waitReady polls /readyz every millisecond, each time on a new connection,
// until it answers 200.
func (p *proc) waitReady(ctx context.Context, t0 time.Time, limit time.Duration) error {
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
	defer c.CloseIdleConnections()
	deadline := t0.Add(limit)
	for {
		res, err := c.Get(p.base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				p.ready = time.Since(t0)
				return nil
			}
		}
		select {
		case <-p.done:
			return errors.New("service exited before it was ready")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("service not ready within %s", limit)
		}
	}
}

// stop sends SIGTERM and waits up to 15 s (the service lets requests finish
// for up to 10 s), then kills.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// storeCallsMetric is the service's counter of session store calls.
const storeCallsMetric = "meshauth_store_calls_total"

// scrapeStoreCalls sums every series of meshauth_store_calls_total in the
// Prometheus text at url. ok is false when there is no /metrics; a /metrics
// without the metric gives 0 and ok (a labelled counter has no series until
// its first call), and found tells which.
func scrapeStoreCalls(c *http.Client, url string) (sum float64, ok, found bool) {
	res, err := c.Get(url)
	if err != nil {
		return 0, false, false
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, res.Body)
		return 0, false, false
	}
	sum, found = sumMetric(res.Body, storeCallsMetric)
	return sum, true, found
}

// sumMetric adds up the values of every sample of metric name in the
// Prometheus text exposition format read from r.
func sumMetric(r io.Reader, name string) (sum float64, found bool) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		switch {
		case strings.HasPrefix(rest, "{"):
			i := strings.LastIndexByte(rest, '}')
			if i < 0 {
				continue
			}
			rest = rest[i+1:]
		case strings.HasPrefix(rest, " "):
		default:
			continue // another metric with this prefix
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		sum += v
		found = true
	}
	return sum, found
}

// snapshot is the CPU counters read at a window's edge.
type snapshot struct {
	user, sys  time.Duration // the serving process
	servingErr error
	self       time.Duration // the harness
	store      time.Duration // DynamoDB Local
	storeErr   error
	busy       time.Duration // the whole machine
	steal      time.Duration
	busyErr    error
}

// takeSnapshot reads the counters of serving (0: none) and store (0: none).
func takeSnapshot(serving, store int) snapshot {
	var s snapshot
	s.servingErr = errors.New("no serving process")
	if serving > 0 {
		s.user, s.sys, s.servingErr = procCPUSplit(serving)
	}
	s.self, _ = procCPU(os.Getpid())
	s.storeErr = errors.New("no store process")
	if store > 0 {
		s.store, s.storeErr = procCPU(store)
	}
	s.busy, s.steal, s.busyErr = machineCPU()
	return s
}

func newMeasure() *Measure {
	return &Measure{CPU: -1, StoreCPU: -1, PeakRSSKB: -1, PeakAnonKB: -1, StoreCalls: -1, RSSAnonKB: -1, RSSFileKB: -1, Background: -1}
}

// fill sets m's CPU figures from the snapshots at the window's start and end.
func (m *Measure) fill(a, b snapshot) {
	ours := time.Duration(0)
	if a.servingErr == nil && b.servingErr == nil {
		m.CPU, m.CPUSys = b.user+b.sys-a.user-a.sys, b.sys-a.sys
		ours += m.CPU
	}
	m.LoadgenCPU = b.self - a.self
	ours += m.LoadgenCPU
	if a.storeErr == nil && b.storeErr == nil {
		m.StoreCPU = b.store - a.store
		ours += m.StoreCPU
	}
	if a.busyErr == nil && b.busyErr == nil {
		m.Background = max(0, b.busy-a.busy-ours)
		m.Steal = b.steal - a.steal
	}
}

// readRSS sets m's peak RSS and its split at this moment.
func (m *Measure) readRSS(pid int) {
	if kb, err := procStatusKB(pid, "VmHWM"); err == nil {
		m.PeakRSSKB = kb
	}
	if kb, err := procStatusKB(pid, "RssAnon"); err == nil {
		m.RSSAnonKB = kb
	}
	if kb, err := procStatusKB(pid, "RssFile"); err == nil {
		m.RSSFileKB = kb
	}
}
