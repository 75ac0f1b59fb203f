package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// hostileShape is a request that needs no login, built at the largest size
// the service's limits let through (or just past them, where refusing is
// the work). variant makes the i-th copy a distinct document, so that no
// cache answers it.
type hostileShape struct {
	name  string
	query func(variant int) string
	vars  map[string]any
}

func repeatField(field string, n int) string { return strings.Repeat(" "+field, n) }

// hostileShapes are the worst shapes an unauthenticated client can send.
var hostileShapes = []hostileShape{
	{"same field 1 990 times (refused before validation)", func(i int) string {
		return fmt.Sprintf("{%s } # %d", repeatField("__typename", 1990), i)
	}, nil},
	{"660 aliases (refused before validation)", func(i int) string {
		var b strings.Builder
		b.WriteString("{")
		for j := range 660 {
			fmt.Fprintf(&b, " a%d: __typename", j)
		}
		fmt.Fprintf(&b, " } # %d", i)
		return b.String()
	}, nil},
	{"5 copies of a field, each selecting 5 copies of 9 fields (the most repeats allowed)", func(i int) string {
		inner := ""
		for _, f := range []string{"id", "current", "remember_me", "created_at", "expires_at", "last_refreshed_at", "user_agent", "ip", "__typename"} {
			inner += repeatField(f, 5)
		}
		return fmt.Sprintf("{%s } # %d", strings.Repeat(" customerSessions {"+inner+" }", 5), i)
	}, nil},
	{"5 copies at each of 4 levels of unknown fields (625 fields)", func(i int) string {
		sel := repeatField("x", 5)
		for range 3 {
			sel = strings.Repeat(" x {"+sel+" }", 5)
		}
		return fmt.Sprintf("{%s } # %d", sel, i)
	}, nil},
	{"fragment fan-out at the token limit", func(i int) string {
		var b strings.Builder
		b.WriteString("{ ...F0 }")
		for j := range 11 {
			fmt.Fprintf(&b, " fragment F%d on Query { ...F%d ...F%d }", j, j+1, j+1)
		}
		fmt.Fprintf(&b, " fragment F11 on Query { __typename } # %d", i)
		return b.String()
	}, nil},
	{"unknown fields near the token limit", func(i int) string {
		var b strings.Builder
		b.WriteString("{")
		for j := range 990 {
			fmt.Fprintf(&b, " f%d", j)
		}
		fmt.Fprintf(&b, " } # %d", i)
		return b.String()
	}, nil},
	{"64 KiB body of one string argument", func(i int) string {
		return fmt.Sprintf(`{ __typename(x: "%s") } # %d`, strings.Repeat("a", 60<<10), i)
	}, nil},
	{"garbage bearer on customerSessions", func(i int) string {
		return fmt.Sprintf("{ customerSessions { id } } # %d", i)
	}, nil},
	{"refresh with a malformed token", func(i int) string {
		return fmt.Sprintf(`mutation { refreshCustomerToken(refresh_token: "%0108d") { token } } # %d`, i, i)
	}, nil},
}

// HostileResult is one shape's cost.
type HostileResult struct {
	Kind            string  `json:"kind"` // "hostile"
	Shape           string  `json:"shape"`
	Requests        int     `json:"requests"`
	BodyBytes       int     `json:"body_bytes"`
	CPUPerRequestMS float64 `json:"service_cpu_per_request_ms"`
	FirstCode       string  `json:"first_code"`
}

// runHostile sends each shape n times, in distinct variants, and reports the
// service's CPU per request; then 10 000 distinct hostile documents, and
// the service's peak RSS.
func runHostile(ctx context.Context, t *target, svc *proc, n int, stdout, stderr io.Writer) (worstMS float64, peakMB float64, err error) {
	post := func(body []byte) (string, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.url, bytes.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer garbage.garbage.garbage")
		res, err := t.client.Do(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		var r struct {
			Errors []struct {
				Extensions map[string]any `json:"extensions"`
			} `json:"errors"`
		}
		b, _ := io.ReadAll(res.Body)
		_ = json.Unmarshal(b, &r)
		if len(r.Errors) == 0 {
			return "OK", nil
		}
		c, _ := r.Errors[0].Extensions["code"].(string)
		return fmt.Sprintf("%d %s", res.StatusCode, c), nil
	}
	body := func(s hostileShape, i int) []byte {
		b, _ := json.Marshal(map[string]any{"query": s.query(i), "variables": s.vars})
		return b
	}
	enc := json.NewEncoder(stdout)
	for _, s := range hostileShapes {
		first, err := post(body(s, -1)) // warm-up, and the answer's code
		if err != nil {
			return 0, 0, err
		}
		before, err := procCPU(svc.pid())
		if err != nil {
			return 0, 0, err
		}
		for i := range n {
			if _, err := post(body(s, i)); err != nil {
				return 0, 0, err
			}
		}
		after, err := procCPU(svc.pid())
		if err != nil {
			return 0, 0, err
		}
		r := HostileResult{Kind: "hostile", Shape: s.name, Requests: n, BodyBytes: len(body(s, 0)), FirstCode: first,
			CPUPerRequestMS: round(float64(after-before)/float64(time.Millisecond)/float64(n), 3)}
		worstMS = max(worstMS, r.CPUPerRequestMS)
		if err := enc.Encode(r); err != nil {
			return 0, 0, err
		}
		fmt.Fprintf(stderr, "  %-72s %6.3f ms CPU/request  (%d bytes, %s)\n", s.name, r.CPUPerRequestMS, r.BodyBytes, first)
	}

	// Memory: 10 000 distinct documents, cycling through the shapes.
	if err := resetPeakRSS(svc.pid()); err != nil {
		return 0, 0, err
	}
	const distinct = 10000
	for i := range distinct {
		if _, err := post(body(hostileShapes[i%len(hostileShapes)], n+i)); err != nil {
			return 0, 0, err
		}
	}
	kb, err := procStatusKB(svc.pid(), "VmHWM")
	if err != nil {
		return 0, 0, err
	}
	anon, _ := procStatusKB(svc.pid(), "RssAnon")
	peakMB = round(float64(kb)/1024, 1)
	fmt.Fprintf(stderr, "  %d distinct hostile documents: peak RSS %.1f MiB (RssAnon now %.1f MiB)\n", distinct, peakMB, float64(anon)/1024)
	err = enc.Encode(map[string]any{"kind": "hostile_memory", "documents": distinct, "peak_rss_mb": peakMB, "rss_anon_mb": round(float64(anon)/1024, 1)})
	return worstMS, peakMB, err
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "not met"
}
