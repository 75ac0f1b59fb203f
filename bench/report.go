package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// stats collects what one virtual user (or one burst group) saw. Each is
// written by one goroutine only and merged when the scenario ends.
type stats struct {
	lat  []int64 // latency of every recorded operation, ns
	ok   int64
	errs map[string]int64
	// byOp splits the same figures by operation kind (login, refresh, revoke).
	byOp map[string]*opStats
}

type opStats struct {
	lat  []int64
	ok   int64
	errs int64
}

func newStats() *stats {
	return &stats{errs: map[string]int64{}, byOp: map[string]*opStats{}}
}

// record adds one operation that took d and failed with code ("" for success).
func (s *stats) record(kind string, d time.Duration, code string) {
	s.lat = append(s.lat, int64(d))
	o := s.byOp[kind]
	if o == nil {
		o = &opStats{}
		s.byOp[kind] = o
	}
	o.lat = append(o.lat, int64(d))
	if code == "" {
		s.ok++
		o.ok++
		return
	}
	s.errs[code]++
	o.errs++
}

// merge adds o into s.
func (s *stats) merge(o *stats) {
	s.lat = append(s.lat, o.lat...)
	s.ok += o.ok
	for k, v := range o.errs {
		s.errs[k] += v
	}
	for k, v := range o.byOp {
		m := s.byOp[k]
		if m == nil {
			m = &opStats{}
			s.byOp[k] = m
		}
		m.lat = append(m.lat, v.lat...)
		m.ok += v.ok
		m.errs += v.errs
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted, or 0 when it is empty.
func percentile(sorted []int64, p float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = max(1, min(rank, len(sorted)))
	return sorted[rank-1]
}

func ms(ns int64) float64 { return round(float64(ns)/1e6, 3) }

func round(v float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(v*p) / p
}

// Measure is what one timed loop produced: the client's view plus the
// process figures of whatever served it.
type Measure struct {
	Window time.Duration
	Stats  *stats
	// CPU is the serving process's user+system CPU time during the window;
	// negative when unknown. CPUSys is its system (kernel) part.
	CPU, CPUSys time.Duration
	// LoadgenCPU is the harness's own CPU time during the window.
	LoadgenCPU time.Duration
	// StoreCPU is DynamoDB Local's CPU time during the window; negative when unknown.
	StoreCPU time.Duration
	// PeakRSSKB is the serving process's peak resident set during the
	// window (VmHWM after a reset), in KiB; negative when unknown.
	PeakRSSKB int64
	// PeakAnonKB is the highest RssAnon (anonymous memory: Go heap, stacks)
	// sampled during the window, in KiB; negative when unknown.
	PeakAnonKB int64
	// StoreCalls is how many store calls the service counted during the
	// window; negative when /metrics or the metric is absent.
	StoreCalls float64
	// RSSAnonKB and RSSFileKB split the serving process's RSS at the
	// window's end into anonymous memory (Go heap, stacks) and mapped file
	// pages (the embedded store's bbolt file); negative when unknown.
	RSSAnonKB, RSSFileKB int64
	// Background is the CPU time the rest of the machine used during the
	// window: all CPUs' busy time less the serving process's, the harness's
	// and DynamoDB Local's. Steal is the time the hypervisor took. Negative
	// when unknown.
	Background, Steal time.Duration
	// RSSSeries are VmRSS samples (soak only).
	RSSSeries []rssSample
}

type rssSample struct {
	At                    time.Duration
	RSSKB, AnonKB, FileKB int64
}

// Result is one JSON line of output.
type Result struct {
	Scenario  string           `json:"scenario"`
	Store     string           `json:"store"`
	Users     int              `json:"users"`
	DurationS float64          `json:"duration_s"`
	Ops       int64            `json:"ops"`
	OpsPerS   float64          `json:"ops_per_s"`
	OK        int64            `json:"ok"`
	Errors    map[string]int64 `json:"errors"`
	P50       float64          `json:"p50_ms"`
	P90       float64          `json:"p90_ms"`
	P99       float64          `json:"p99_ms"`
	// CPUPer1000 is the serving process's CPU seconds per 1000 operations.
	CPUPer1000 *float64 `json:"cpu_s_per_1000"`
	// CPUSysPer1000 is the kernel's part of it (system calls: network, fsync).
	CPUSysPer1000 *float64 `json:"cpu_sys_s_per_1000,omitempty"`
	PeakRSSMB     *float64 `json:"peak_rss_mb"`
	// PeakAnonMB is the highest anonymous part of the RSS sampled during
	// the window (every 250 ms), without mapped file pages.
	PeakAnonMB *float64 `json:"peak_anon_mb,omitempty"`
	// StoreCallsPerOp is a number, or "n/a" when the service exposes no
	// meshauth_store_calls_total.
	StoreCallsPerOp any `json:"store_calls_per_op"`
	// LoadgenCPUPer1000 is the harness's CPU seconds per 1000 operations
	// (load generator, login stub): the share of the 2 cores it took.
	LoadgenCPUPer1000 *float64 `json:"loadgen_cpu_s_per_1000,omitempty"`
	// StoreCPUPer1000 is DynamoDB Local's CPU seconds per 1000 operations.
	StoreCPUPer1000 *float64 `json:"store_cpu_s_per_1000,omitempty"`
	// RSSAnonMB and RSSFileMB split the RSS at the window's end: anonymous
	// memory (Go heap, stacks) and mapped file pages (bbolt's file).
	RSSAnonMB *float64 `json:"rss_anon_mb,omitempty"`
	RSSFileMB *float64 `json:"rss_file_mb,omitempty"`
	// BackgroundCores is how many CPUs' worth the rest of the machine used
	// during the window (other processes, not what is measured); StealCores
	// what the hypervisor took. Both say how noisy the measurement was.
	BackgroundCores *float64  `json:"background_cpu_cores,omitempty"`
	StealCores      *float64  `json:"steal_cpu_cores,omitempty"`
	ColdStartMS     *float64  `json:"cold_start_ms,omitempty"`
	ColdStartsMS    []float64 `json:"cold_start_samples_ms,omitempty"`

	ByOp map[string]OpResult `json:"by_op,omitempty"`

	// The ceiling (bare handler, same refresh work, same load) and the
	// service's figures as ratios of it (service / ceiling).
	CeilingOpsPerS    *float64 `json:"ceiling_ops_per_s,omitempty"`
	CeilingP50        *float64 `json:"ceiling_p50_ms,omitempty"`
	CeilingP90        *float64 `json:"ceiling_p90_ms,omitempty"`
	CeilingP99        *float64 `json:"ceiling_p99_ms,omitempty"`
	CeilingCPUPer1000 *float64 `json:"ceiling_cpu_s_per_1000,omitempty"`
	CeilingPeakRSSMB  *float64 `json:"ceiling_peak_rss_mb,omitempty"`
	RatioOpsPerS      *float64 `json:"ratio_ops_per_s,omitempty"`
	RatioP50          *float64 `json:"ratio_p50,omitempty"`
	RatioP90          *float64 `json:"ratio_p90,omitempty"`
	RatioP99          *float64 `json:"ratio_p99,omitempty"`
	RatioCPU          *float64 `json:"ratio_cpu_per_op,omitempty"`
	RatioRSS          *float64 `json:"ratio_peak_rss,omitempty"`

	// SamplesOpsPerS are the separate measurements a ceiling is the best of.
	SamplesOpsPerS []float64 `json:"samples_ops_per_s,omitempty"`

	// DynamoDB Local's own ceiling for the conditional update of a refresh.
	DynamoCeilingOpsPerS *float64 `json:"dynamo_ceiling_ops_per_s,omitempty"`
	DynamoCeilingP99     *float64 `json:"dynamo_ceiling_p99_ms,omitempty"`
	RatioDynamoCeiling   *float64 `json:"ratio_dynamo_ceiling,omitempty"`

	// Soak only.
	RSSSeriesMB     []float64 `json:"rss_series_mb,omitempty"`
	RSSAnonSeriesMB []float64 `json:"rss_anon_series_mb,omitempty"`
	RSSFileSeriesMB []float64 `json:"rss_file_series_mb,omitempty"`
	RSSSeriesAtS    []float64 `json:"rss_series_at_s,omitempty"`
	RSSFirstMinMB   *float64  `json:"rss_first_minute_avg_mb,omitempty"`
	RSSLastMinMB    *float64  `json:"rss_last_minute_avg_mb,omitempty"`
	RSSFlat         *bool     `json:"rss_flat,omitempty"`
	RSSFlatCriteria string    `json:"rss_flat_criteria,omitempty"`

	// Checked soak only (-check): the invariants and the soak's counts.
	Invariants []invariant  `json:"invariants,omitempty"`
	Soak       *soakFigures `json:"soak,omitempty"`
}

// OpResult is one operation kind's share of a scenario.
type OpResult struct {
	Ops    int64   `json:"ops"`
	OK     int64   `json:"ok"`
	Errors int64   `json:"errors"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
}

func ptr[T any](v T) *T { return &v }

// summarize turns a Measure into a Result (without ceilings or cold start).
func summarize(scenario, storeName string, users int, m *Measure) Result {
	st := m.Stats
	slices.Sort(st.lat)
	ops := int64(len(st.lat))
	r := Result{
		Scenario:  scenario,
		Store:     storeName,
		Users:     users,
		DurationS: round(m.Window.Seconds(), 3),
		Ops:       ops,
		OK:        st.ok,
		Errors:    st.errs,
		P50:       ms(percentile(st.lat, 50)),
		P90:       ms(percentile(st.lat, 90)),
		P99:       ms(percentile(st.lat, 99)),
	}
	if m.Window > 0 {
		r.OpsPerS = round(float64(ops)/m.Window.Seconds(), 1)
	}
	if ops > 0 && m.CPU >= 0 {
		r.CPUPer1000 = ptr(round(m.CPU.Seconds()/float64(ops)*1000, 4))
		r.CPUSysPer1000 = ptr(round(m.CPUSys.Seconds()/float64(ops)*1000, 4))
	}
	if ops > 0 && m.LoadgenCPU > 0 {
		r.LoadgenCPUPer1000 = ptr(round(m.LoadgenCPU.Seconds()/float64(ops)*1000, 4))
	}
	if ops > 0 && m.StoreCPU >= 0 {
		r.StoreCPUPer1000 = ptr(round(m.StoreCPU.Seconds()/float64(ops)*1000, 4))
	}
	if m.PeakRSSKB >= 0 {
		r.PeakRSSMB = ptr(round(float64(m.PeakRSSKB)/1024, 1))
	}
	if m.PeakAnonKB >= 0 {
		r.PeakAnonMB = ptr(round(float64(m.PeakAnonKB)/1024, 1))
	}
	if m.RSSAnonKB >= 0 {
		r.RSSAnonMB = ptr(round(float64(m.RSSAnonKB)/1024, 1))
	}
	if m.RSSFileKB >= 0 {
		r.RSSFileMB = ptr(round(float64(m.RSSFileKB)/1024, 1))
	}
	if m.Background >= 0 && m.Window > 0 {
		r.BackgroundCores = ptr(round(m.Background.Seconds()/m.Window.Seconds(), 2))
		r.StealCores = ptr(round(m.Steal.Seconds()/m.Window.Seconds(), 2))
	}
	r.StoreCallsPerOp = "n/a"
	if m.StoreCalls >= 0 && ops > 0 {
		r.StoreCallsPerOp = round(m.StoreCalls/float64(ops), 3)
	}
	if len(st.byOp) > 1 {
		r.ByOp = map[string]OpResult{}
		for k, o := range st.byOp {
			slices.Sort(o.lat)
			r.ByOp[k] = OpResult{Ops: int64(len(o.lat)), OK: o.ok, Errors: o.errs,
				P50: ms(percentile(o.lat, 50)), P99: ms(percentile(o.lat, 99))}
		}
	}
	return r
}

// withCeiling adds the ceiling's figures and the service's ratios to r.
func (r *Result) withCeiling(c Result) {
	r.CeilingOpsPerS = ptr(c.OpsPerS)
	r.CeilingP50, r.CeilingP90, r.CeilingP99 = ptr(c.P50), ptr(c.P90), ptr(c.P99)
	r.CeilingCPUPer1000, r.CeilingPeakRSSMB = c.CPUPer1000, c.PeakRSSMB
	r.RatioOpsPerS = ratio(r.OpsPerS, c.OpsPerS)
	r.RatioP50 = ratio(r.P50, c.P50)
	r.RatioP90 = ratio(r.P90, c.P90)
	r.RatioP99 = ratio(r.P99, c.P99)
	if r.CPUPer1000 != nil && c.CPUPer1000 != nil {
		r.RatioCPU = ratio(*r.CPUPer1000, *c.CPUPer1000)
	}
	if r.PeakRSSMB != nil && c.PeakRSSMB != nil {
		r.RatioRSS = ratio(*r.PeakRSSMB, *c.PeakRSSMB)
	}
}

// withDynamoCeiling adds DynamoDB Local's own ceiling to r.
func (r *Result) withDynamoCeiling(c Result) {
	r.DynamoCeilingOpsPerS = ptr(c.OpsPerS)
	r.DynamoCeilingP99 = ptr(c.P99)
	r.RatioDynamoCeiling = ratio(r.OpsPerS, c.OpsPerS)
}

func ratio(a, b float64) *float64 {
	if b == 0 {
		return nil
	}
	return ptr(round(a/b, 3))
}

// flatness decides whether a soak's RSS series is flat: the average of the
// samples in the last minute within tolerance of the average in the first
// minute after warmup. ok is false when the soak is shorter than warmup and
// two minutes (the two windows would overlap) or either window has no sample.
func flatness(series []rssSample, total, warmup time.Duration, tolerance float64) (first, last float64, flat, ok bool) {
	if total < warmup+2*time.Minute {
		return 0, 0, false, false
	}
	avg := func(from, to time.Duration) (float64, bool) {
		var sum float64
		n := 0
		for _, s := range series {
			if s.At > from && s.At <= to {
				sum += float64(s.RSSKB) / 1024
				n++
			}
		}
		if n == 0 {
			return 0, false
		}
		return sum / float64(n), true
	}
	first, ok1 := avg(warmup, warmup+time.Minute)
	last, ok2 := avg(total-time.Minute, total)
	if !ok1 || !ok2 {
		return first, last, false, false
	}
	return round(first, 1), round(last, 1), math.Abs(last-first) <= tolerance*first, true
}

func writeJSON(w io.Writer, r Result) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func f(p *float64, format string) string {
	if p == nil {
		return "n/a"
	}
	return fmt.Sprintf(format, *p)
}

func errString(m map[string]int64) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}

func callsString(v any) string {
	if x, ok := v.(float64); ok {
		return fmt.Sprintf("%.2f", x)
	}
	return fmt.Sprint(v)
}

// writeTable prints the human table: every row, then the ratios to the
// ceilings, then the targets of the issue as met / not met.
func writeTable(w io.Writer, rows []Result, ceilings []Result) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tstore\tusers\tops/s\tok\terrors\tp50 ms\tp90 ms\tp99 ms\tCPU s/1k\t(sys)\tpeak RSS MiB\tpeak anon MiB\t(anon/file at end)\tstore calls/op\tloadgen CPU s/1k\tstore CPU s/1k\tbackground cores\t")
	for _, r := range append(slices.Clone(rows), ceilings...) {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%.0f\t%d\t%s\t%.2f\t%.2f\t%.2f\t%s\t%s\t%s\t%s\t%s/%s\t%s\t%s\t%s\t%s\t\n",
			r.Scenario, r.Store, r.Users, r.OpsPerS, r.OK, errString(r.Errors), r.P50, r.P90, r.P99,
			f(r.CPUPer1000, "%.3f"), f(r.CPUSysPer1000, "%.3f"), f(r.PeakRSSMB, "%.1f"), f(r.PeakAnonMB, "%.1f"), f(r.RSSAnonMB, "%.0f"), f(r.RSSFileMB, "%.0f"),
			callsString(r.StoreCallsPerOp), f(r.LoadgenCPUPer1000, "%.3f"), f(r.StoreCPUPer1000, "%.3f"), f(r.BackgroundCores, "%.2f"))
	}
	tw.Flush()
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "service / ceiling\tstore\tops/s\tp50\tp90\tp99\tCPU/op\tpeak RSS\tops/s vs DynamoDB Local\t")
	for _, r := range rows {
		if r.CeilingOpsPerS == nil && r.DynamoCeilingOpsPerS == nil {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", r.Scenario, r.Store,
			f(r.RatioOpsPerS, "%.2f"), f(r.RatioP50, "%.2f"), f(r.RatioP90, "%.2f"), f(r.RatioP99, "%.2f"),
			f(r.RatioCPU, "%.2f"), f(r.RatioRSS, "%.2f"), f(r.RatioDynamoCeiling, "%.2f"))
	}
	tw.Flush()
	for _, r := range rows {
		if r.ColdStartMS != nil {
			fmt.Fprintf(w, "\ncold start to ready (%s): median %.1f ms of %v\n", r.Store, *r.ColdStartMS, r.ColdStartsMS)
			break
		}
	}
	for _, r := range rows {
		if r.RSSFlat != nil {
			fmt.Fprintf(w, "soak RSS series (MiB) at %v s: %v\n", r.RSSSeriesAtS, r.RSSSeriesMB)
			fmt.Fprintf(w, "  of which anonymous: %v\n  and mapped file: %v\n", r.RSSAnonSeriesMB, r.RSSFileSeriesMB)
			fmt.Fprintf(w, "soak RSS first minute after warm-up %.1f MiB, last minute %.1f MiB: flat=%v (%s)\n",
				*r.RSSFirstMinMB, *r.RSSLastMinMB, *r.RSSFlat, r.RSSFlatCriteria)
		}
	}
	fmt.Fprintln(w)
	for _, t := range targets(rows) {
		fmt.Fprintln(w, t)
	}
}

// targets checks the targets against rows.
func targets(rows []Result) []string {
	var perf, rss, other []string
	verdict := func(ok bool) string {
		if ok {
			return "MET"
		}
		return "NOT MET"
	}
	for _, r := range rows {
		switch {
		case r.Store == "embedded" && r.Scenario == "refresh":
			if r.RatioOpsPerS != nil {
				perf = append(perf, fmt.Sprintf("target embedded refresh >= 50%% of the ceiling's ops/s: %s (%.0f vs %.0f ops/s = %.0f%%)",
					verdict(*r.RatioOpsPerS >= 0.50), r.OpsPerS, *r.CeilingOpsPerS, *r.RatioOpsPerS*100))
			}
			perf = append(perf, fmt.Sprintf("target embedded refresh p99 < 25 ms: %s (%.2f ms)", verdict(r.P99 < 25), r.P99))
			if r.CPUPer1000 != nil {
				perf = append(perf, fmt.Sprintf("target embedded refresh service CPU < 150 us/op: %s (%.0f us/op)",
					verdict(*r.CPUPer1000 < 0.15), *r.CPUPer1000*1000))
			}
		case r.Store == "dynamodb" && r.Scenario == "refresh" && r.RatioDynamoCeiling != nil:
			perf = append(perf, fmt.Sprintf("target dynamodb refresh >= 80%% of DynamoDB Local's own rate: %s (%.0f vs %.0f ops/s = %.0f%%)",
				verdict(*r.RatioDynamoCeiling >= 0.80), r.OpsPerS, *r.DynamoCeilingOpsPerS, *r.RatioDynamoCeiling*100))
		}
		// Store calls per operation are counted over the window, so the
		// requests in flight at its edges move the figure by up to about
		// 0.02: it is judged to one decimal.
		if calls, ok := r.StoreCallsPerOp.(float64); ok && r.Store == "dynamodb" {
			tenths := math.Round(calls * 10)
			switch r.Scenario {
			case "login":
				perf = append(perf, fmt.Sprintf("target dynamodb login at most 2 store requests: %s (%.2f per login)", verdict(tenths <= 20), calls))
			case "refresh":
				perf = append(perf, fmt.Sprintf("target dynamodb refresh 1 store request: %s (%.2f per refresh)", verdict(tenths <= 10), calls))
			}
		}
		if r.PeakRSSMB != nil {
			// 64 MB read as 64 * 10^6 bytes (61.0 MiB), the stricter reading,
			// and judged on the whole RSS (VmHWM), mapped file pages included.
			rss = append(rss, fmt.Sprintf("target peak RSS < 64 MB (%s %s): %s (%.1f MiB total; anonymous peak %s MiB)", r.Store, r.Scenario,
				verdict(*r.PeakRSSMB*1024*1024 < 64e6), *r.PeakRSSMB, f(r.PeakAnonMB, "%.1f")))
		}
		if r.RSSFlat != nil {
			rss = append(rss, fmt.Sprintf("target RSS flat over the soak (%s): %s (first minute %.1f MiB, last minute %.1f MiB)",
				r.Store, verdict(*r.RSSFlat), *r.RSSFirstMinMB, *r.RSSLastMinMB))
		}
	}
	for _, r := range rows {
		if r.ColdStartMS != nil && r.Store == "embedded" {
			other = append(other, fmt.Sprintf("target cold start to ready < 200 ms (embedded): %s (median %.1f ms, samples %v)",
				verdict(*r.ColdStartMS < 200), *r.ColdStartMS, r.ColdStartsMS))
			break
		}
	}
	return append(append(perf, rss...), other...)
}

// limitTargets compares the login rows of a run with the default login
// limits (limited) to those of a run with them off (off), store by store.
func limitTargets(limited, off []Result) []string {
	var out []string
	for _, l := range limited {
		for _, o := range off {
			if l.Scenario != "login" || o.Scenario != "login" || l.Store != o.Store || o.OpsPerS <= 0 {
				continue
			}
			ratio := l.OpsPerS / o.OpsPerS
			verdict := "NOT MET"
			if ratio >= 0.80 {
				verdict = "MET"
			}
			out = append(out, fmt.Sprintf("target %s login with the default limits >= 80%% of login with them off: %s (%.0f vs %.0f ops/s = %.0f%%)",
				l.Store, verdict, l.OpsPerS, o.OpsPerS, ratio*100))
		}
	}
	return out
}

// readResults reads the JSON lines a run wrote to stdout; a ceiling's line
// is a Result too.
func readResults(path string) ([]Result, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var out []Result
	for line := range strings.Lines(string(b)) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, r)
	}
	return out, nil
}
