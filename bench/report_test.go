package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/token"
)

func TestPercentile(t *testing.T) {
	hundred := make([]int64, 100)
	for i := range hundred {
		hundred[i] = int64(i + 1)
	}
	for _, c := range []struct {
		name   string
		sorted []int64
		p      float64
		want   int64
	}{
		{"empty", nil, 50, 0},
		{"one", []int64{7}, 99, 7},
		{"median of 100", hundred, 50, 50},
		{"p90 of 100", hundred, 90, 90},
		{"p99 of 100", hundred, 99, 99},
		{"p100 of 100", hundred, 100, 100},
		{"p99 of 10 is the max", hundred[:10], 99, 10},
		{"p50 of 3", []int64{1, 2, 3}, 50, 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := percentile(c.sorted, c.p); got != c.want {
				t.Errorf("percentile(%v) = %d, want %d", c.p, got, c.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	a, b := newStats(), newStats()
	for i := 1; i <= 50; i++ {
		a.record("refresh", time.Duration(i)*time.Millisecond, "")
	}
	for i := 51; i <= 99; i++ {
		b.record("login", time.Duration(i)*time.Millisecond, "")
	}
	b.record("refresh", 100*time.Millisecond, "INVALID_REFRESH_TOKEN")
	a.merge(b)
	m := &Measure{Window: 2 * time.Second, Stats: a, CPU: 500 * time.Millisecond, CPUSys: 100 * time.Millisecond,
		StoreCPU: -1, PeakRSSKB: 20480, StoreCalls: 150}
	r := summarize("mixed", "embedded", 4, m)
	if r.Ops != 100 || r.OK != 99 || r.Errors["INVALID_REFRESH_TOKEN"] != 1 || r.OpsPerS != 50 {
		t.Errorf("counts: %+v", r)
	}
	if r.P50 != 50 || r.P90 != 90 || r.P99 != 99 {
		t.Errorf("percentiles: p50 %v p90 %v p99 %v", r.P50, r.P90, r.P99)
	}
	if *r.CPUPer1000 != 5 || *r.CPUSysPer1000 != 1 || *r.PeakRSSMB != 20 || r.StoreCallsPerOp != 1.5 {
		t.Errorf("cpu %v sys %v rss %v calls %v", *r.CPUPer1000, *r.CPUSysPer1000, *r.PeakRSSMB, r.StoreCallsPerOp)
	}
	if r.ByOp["refresh"].Ops != 51 || r.ByOp["refresh"].Errors != 1 || r.ByOp["login"].Ops != 49 {
		t.Errorf("by op: %+v", r.ByOp)
	}
	m.StoreCalls, m.CPU = -1, -1
	if r := summarize("x", "embedded", 1, m); r.StoreCallsPerOp != "n/a" || r.CPUPer1000 != nil {
		t.Errorf("unknown figures: calls %v cpu %v", r.StoreCallsPerOp, r.CPUPer1000)
	}

	c := Result{OpsPerS: 200, P50: 25, P90: 45, P99: 33, CPUPer1000: ptr(2.5), PeakRSSMB: ptr(10.0)}
	r.withCeiling(c)
	if *r.RatioOpsPerS != 0.25 || *r.RatioP50 != 2 || *r.RatioP99 != 3 || *r.RatioRSS != 2 {
		t.Errorf("ratios: ops %v p50 %v p99 %v rss %v", *r.RatioOpsPerS, *r.RatioP50, *r.RatioP99, *r.RatioRSS)
	}
}

func TestSumMetric(t *testing.T) {
	text := `# HELP meshauth_store_calls_total Session store calls.
# TYPE meshauth_store_calls_total counter
meshauth_store_calls_total{call="create",result="ok"} 12
meshauth_store_calls_total{call="rotate",result="ok"} 1.5e+03
meshauth_store_calls_total{call="rotate",result="conflict"} 7 1700000000000
meshauth_store_calls_total_other 99
meshauth_store_call_duration_seconds_bucket{call="rotate",le="0.005"} 1000
`
	sum, found := sumMetric(strings.NewReader(text), storeCallsMetric)
	if !found || sum != 1519 {
		t.Errorf("sum = %v, found = %v; want 1519", sum, found)
	}
	if _, found := sumMetric(strings.NewReader("go_goroutines 12\n"), storeCallsMetric); found {
		t.Error("found a metric that is not there")
	}
}

func TestParseReply(t *testing.T) {
	for _, c := range []struct {
		name   string
		status int
		body   string
		want   reply
	}{
		{"pair", 200, `{"data":{"refreshCustomerToken":{"token":"a.b.c","refresh_token":"RT","token_expires_at":"x"}}}`, reply{Token: "a.b.c", Refresh: "RT"}},
		{"refresh token first", 200, `{"data":{"x":{"refresh_token":"RT","token":"a.b.c"}}}`, reply{Token: "a.b.c", Refresh: "RT"}},
		{"revoke", 200, `{"data":{"revokeCustomerToken":{"result":true}}}`, reply{Result: true}},
		{"coded error", 200, `{"errors":[{"message":"m","path":["refreshCustomerToken"],"extensions":{"category":"graphql-authorization","code":"REFRESH_TOKEN_REUSED"}}],"data":{"refreshCustomerToken":null}}`, reply{Code: "REFRESH_TOKEN_REUSED"}},
		{"coded error, not 200", 422, `{"errors":[{"message":"m","extensions":{"code":"GRAPHQL_VALIDATION_FAILED"}}],"data":null}`, reply{Code: "GRAPHQL_VALIDATION_FAILED"}},
		{"plain failure", 502, `bad gateway`, reply{Code: "HTTP_502"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := parseReply(c.status, []byte(c.body)); got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestBodiesAreJSON(t *testing.T) {
	for _, b := range [][]byte{loginBody(nil, "u1-2@bench.example"), tokenBody(nil, refreshQueryJSON, "abc_-"), tokenBody(nil, revokeQueryJSON, "abc")} {
		var req gqlRequest
		if err := json.Unmarshal(b, &req); err != nil || req.Query == "" {
			t.Errorf("%s: %v", b, err)
		}
	}
}

func TestFlatness(t *testing.T) {
	var series []rssSample
	for i := 1; i <= 30; i++ {
		series = append(series, rssSample{At: time.Duration(i) * 10 * time.Second, RSSKB: 30 * 1024})
	}
	first, last, flat, ok := flatness(series, 5*time.Minute, 30*time.Second, 0.2)
	if !ok || !flat || first != 30 || last != 30 {
		t.Errorf("constant series: first %v last %v flat %v ok %v", first, last, flat, ok)
	}
	for i := range series[24:] {
		series[24+i].RSSKB = 40 * 1024 // the last minute grows by a third
	}
	if _, _, flat, ok := flatness(series, 5*time.Minute, 30*time.Second, 0.2); !ok || flat {
		t.Errorf("growing series judged flat=%v ok=%v", flat, ok)
	}
	if _, _, _, ok := flatness(series[:3], 30*time.Second, 30*time.Second, 0.2); ok {
		t.Error("a 30 s series cannot be judged")
	}
}

func TestProcReaders(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc")
	}
	deadline := time.Now().Add(50 * time.Millisecond)
	for time.Now().Before(deadline) { // burn a little CPU
	}
	cpu, err := procCPU(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Errorf("procCPU = %v, %v", cpu, err)
	}
	if kb, err := procStatusKB(os.Getpid(), "VmHWM"); err != nil || kb <= 0 {
		t.Errorf("VmHWM = %v, %v", kb, err)
	}
}

// TestCeilingRefreshes drives the ceiling handler through a login and a
// chain of refreshes, and checks that a replayed token is refused.
func TestCeilingRefreshes(t *testing.T) {
	codec, _ := token.NewCodec([]byte(strings.Repeat("r", 32)))
	signer, _ := token.NewHS256([]byte(strings.Repeat("j", 32)), "meshauth", "meshauth")
	srv := httptest.NewServer(&ceilingServer{codec: codec, signer: signer, byID: map[string]*ceilingSession{}})
	defer srv.Close()
	v := &vu{t: newTarget(srv.URL, 1), win: &window{}}
	defer v.t.close()
	ctx := t.Context()
	tok, err := v.setupLogin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := tok
	for range 3 {
		r := v.post(ctx, tokenBody(nil, refreshQueryJSON, tok))
		if r.Code != "" || r.Refresh == "" || r.Refresh == tok || strings.Count(r.Token, ".") != 2 {
			t.Fatalf("refresh: %+v", r)
		}
		if _, err := signer.Verify(r.Token); err != nil {
			t.Fatalf("access token: %v", err)
		}
		tok = r.Refresh
	}
	if r := v.post(ctx, tokenBody(nil, refreshQueryJSON, first)); r.Code != "INVALID_REFRESH_TOKEN" {
		t.Errorf("replayed token: %+v", r)
	}
}

// TestStub checks the login stub's contract.
func TestStub(t *testing.T) {
	stub, url, err := startStub()
	if err != nil {
		t.Fatal(err)
	}
	defer stub.Close()
	post := func(body string) (int, string) {
		res, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, res.Body)
		return res.StatusCode, b.String()
	}
	if code, body := post(`{"email":"a@b.c","password":"` + benchPassword + `"}`); code != 200 || body != `{"customer_id":"`+customerIDFor("a@b.c")+`"}` {
		t.Errorf("good credentials: %d %s", code, body)
	}
	if code, _ := post(`{"email":"a@b.c","password":"wrong"}`); code != 401 {
		t.Errorf("wrong password: %d", code)
	}
}

// TestLoginLimitTargets: the run with the limits off reads the limited
// run's JSON lines back and judges the ratio of their login rates; the
// request counts per login and per refresh are judged from each run's rows.
func TestLoginLimitTargets(t *testing.T) {
	path := t.TempDir() + "/dynamodb.jsonl"
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []Result{
		{Scenario: "ceiling", Store: "memory", OpsPerS: 20000},
		{Scenario: "login", Store: "dynamodb", OpsPerS: 715, StoreCallsPerOp: 2.0},
		{Scenario: "refresh", Store: "dynamodb", OpsPerS: 1099, StoreCallsPerOp: 1.0},
	} {
		if err := writeJSON(f, r); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	limited, err := readResults(path)
	if err != nil || len(limited) != 3 {
		t.Fatalf("readResults: %d rows, %v", len(limited), err)
	}
	got := strings.Join(limitTargets(limited, []Result{{Scenario: "login", Store: "dynamodb", OpsPerS: 806}}), "\n")
	if want := "target dynamodb login with the default limits >= 80% of login with them off: MET (715 vs 806 ops/s = 89%)"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	if got := limitTargets(limited, []Result{{Scenario: "login", Store: "dynamodb", OpsPerS: 1000}}); len(got) != 1 || !strings.Contains(got[0], "NOT MET (715 vs 1000 ops/s = 72%)") {
		t.Fatalf("below 80 %%: %q", got)
	}
	lines := strings.Join(targets(limited), "\n")
	for _, want := range []string{
		"target dynamodb login at most 2 store requests: MET (2.00 per login)",
		"target dynamodb refresh 1 store request: MET (1.00 per refresh)",
	} {
		if !strings.Contains(lines, want) {
			t.Errorf("targets lack %q:\n%s", want, lines)
		}
	}
	if lines := strings.Join(targets([]Result{{Scenario: "login", Store: "dynamodb", StoreCallsPerOp: 2.01}}), "\n"); !strings.Contains(lines, "at most 2 store requests: MET (2.01 per login)") {
		t.Errorf("2.01 (requests in flight at the window's edges) judged: %s", lines)
	}
	if lines := strings.Join(targets([]Result{{Scenario: "login", Store: "dynamodb", StoreCallsPerOp: 2.1}}), "\n"); !strings.Contains(lines, "at most 2 store requests: NOT MET (2.10 per login)") {
		t.Errorf("2.1 requests per login judged: %s", lines)
	}
}
