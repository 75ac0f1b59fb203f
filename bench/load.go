package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// The operations, with the same selections a storefront client asks for.
const (
	loginQuery   = `mutation($e: String!, $p: String!, $r: Boolean) { generateCustomerToken(email: $e, password: $p, remember_me: $r) { token refresh_token token_expires_at refresh_token_expires_at } }`
	refreshQuery = `mutation($t: String!) { refreshCustomerToken(refresh_token: $t) { token refresh_token token_expires_at refresh_token_expires_at } }`
	revokeQuery  = `mutation($t: String) { revokeCustomerToken(refresh_token: $t) { result } }`

	benchPassword = "bench-password"
)

// quoted JSON strings of the queries, so that a body is a few appends.
var (
	loginQueryJSON   = jsonString(loginQuery)
	refreshQueryJSON = jsonString(refreshQuery)
	revokeQueryJSON  = jsonString(revokeQuery)
)

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Bodies are built by appending: tokens are URL-safe base64 and emails are
// made of letters, digits, '-', '@' and '.', so nothing needs escaping.
func loginBody(dst []byte, email string) []byte {
	dst = append(dst[:0], `{"query":`...)
	dst = append(dst, loginQueryJSON...)
	dst = append(dst, `,"variables":{"e":"`...)
	dst = append(dst, email...)
	dst = append(dst, `","p":"`+benchPassword+`","r":false}}`...)
	return dst
}

func tokenBody(dst []byte, queryJSON, token string) []byte {
	dst = append(dst[:0], `{"query":`...)
	dst = append(dst, queryJSON...)
	dst = append(dst, `,"variables":{"t":"`...)
	dst = append(dst, token...)
	dst = append(dst, `"}}`...)
	return dst
}

// reply is the part of a GraphQL answer the load generator needs.
type reply struct {
	Token, Refresh string
	Result         bool
	// Code is the first error's extensions.code, or a harness code: TRANSPORT
	// (no answer), HTTP_<status> (an answer without a GraphQL error), or
	// BAD_RESPONSE (an answer without the expected fields).
	Code string
}

// stringField returns the string value of the first "key":"..." in b. The
// values it is used for (tokens, dates, codes) contain no escapes.
func stringField(b []byte, key string) (string, bool) {
	var pat [64]byte
	p := append(append(append(pat[:0], '"'), key...), `":"`...)
	i := bytes.Index(b, p)
	if i < 0 {
		return "", false
	}
	rest := b[i+len(p):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", false
	}
	return string(rest[:j]), true
}

// parseReply reads a GraphQL answer: the first error's code if there are
// errors, else the token pair or the revoke result.
func parseReply(status int, b []byte) reply {
	if bytes.Contains(b, []byte(`"errors":`)) {
		if c, ok := stringField(b, "code"); ok {
			return reply{Code: c}
		}
	}
	if status != http.StatusOK {
		return reply{Code: "HTTP_" + strconv.Itoa(status)}
	}
	var r reply
	r.Token, _ = stringField(b, "token")
	r.Refresh, _ = stringField(b, "refresh_token")
	r.Result = bytes.Contains(b, []byte(`"result":true`))
	return r
}

// target is an HTTP endpoint under load with its own tuned client.
type target struct {
	url    string
	client *http.Client
}

// newTarget returns a target whose client keeps one idle connection per
// concurrent user (and then some), so that no request pays a handshake and
// no connection is torn down between operations.
func newTarget(url string, users int) *target {
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:          2*users + 16,
		MaxIdleConnsPerHost:   2*users + 16,
		IdleConnTimeout:       90 * time.Second,
		DisableCompression:    true,
		ForceAttemptHTTP2:     false,
		ResponseHeaderTimeout: 10 * time.Second,
	}
	return &target{url: url, client: &http.Client{Transport: tr, Timeout: 15 * time.Second}}
}

func (t *target) close() { t.client.CloseIdleConnections() }

// vu is a virtual user: it sends one operation at a time.
type vu struct {
	id   int
	t    *target
	st   *stats
	win  *window
	body []byte
	resp bytes.Buffer
	n    int // logins so far, for distinct emails
	// addr, when set, is sent as X-Forwarded-For: the user's own client
	// address, as a gateway in front of the service reports it.
	addr string
}

// clientAddr is virtual user id's client address, 10.x.y.z.
func clientAddr(id int) string {
	return "10." + strconv.Itoa(id>>16&255) + "." + strconv.Itoa(id>>8&255) + "." + strconv.Itoa(id&255)
}

// window is the timed part of a scenario. Operations that end inside it are
// recorded; nobody starts an operation after end.
type window struct {
	start, end time.Time
}

func (w *window) open(now time.Time) bool { return now.Before(w.end) }

// post sends body and returns the reply; it does not record.
func (v *vu) post(ctx context.Context, body []byte) reply {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.t.url, bytes.NewReader(body))
	if err != nil {
		return reply{Code: "TRANSPORT"}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "meshauth-bench")
	if v.addr != "" {
		req.Header.Set("X-Forwarded-For", v.addr)
	}
	res, err := v.t.client.Do(req)
	if err != nil {
		return reply{Code: "TRANSPORT"}
	}
	v.resp.Reset()
	_, err = v.resp.ReadFrom(res.Body)
	res.Body.Close()
	if err != nil {
		return reply{Code: "TRANSPORT"}
	}
	return parseReply(res.StatusCode, v.resp.Bytes())
}

// op sends one operation, records it when it ends inside the window, and
// returns the reply.
func (v *vu) op(ctx context.Context, kind string, body []byte, check func(reply) string) reply {
	start := time.Now()
	r := v.post(ctx, body)
	end := time.Now()
	if r.Code == "" {
		r.Code = check(r)
	}
	if ctx.Err() != nil {
		return r
	}
	if !end.Before(v.win.start) && !end.After(v.win.end) {
		v.st.record(kind, end.Sub(start), r.Code)
	}
	return r
}

func checkPair(r reply) string {
	if len(r.Refresh) == 0 || len(r.Token) == 0 {
		return "BAD_RESPONSE"
	}
	return ""
}

func checkRevoke(r reply) string {
	if !r.Result {
		return "BAD_RESPONSE"
	}
	return ""
}

func (v *vu) email() string {
	v.n++
	return "u" + strconv.Itoa(v.id) + "-" + strconv.Itoa(v.n) + "@bench.example"
}

func (v *vu) login(ctx context.Context, kind string) reply {
	v.body = loginBody(v.body, v.email())
	return v.op(ctx, kind, v.body, checkPair)
}

// setupLogin logs in without recording. It retries for a while: with
// DynamoDB Local a login may time out under load.
func (v *vu) setupLogin(ctx context.Context) (string, error) {
	var last string
	for range 20 {
		v.body = loginBody(v.body, v.email())
		r := v.post(ctx, v.body)
		if r.Code == "" && r.Refresh != "" {
			return r.Refresh, nil
		}
		last = r.Code
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return "", fmt.Errorf("login failed: %s", last)
}

func (v *vu) refresh(ctx context.Context, tok string) reply {
	v.body = tokenBody(v.body, refreshQueryJSON, tok)
	return v.op(ctx, "refresh", v.body, checkPair)
}

func (v *vu) revoke(ctx context.Context, tok string) reply {
	v.body = tokenBody(v.body, revokeQueryJSON, tok)
	return v.op(ctx, "revoke", v.body, checkRevoke)
}

// keepsToken reports whether, after a failed refresh with code, the same
// refresh token should be presented again: after a lost answer or a store
// timeout the rotation may or may not have happened, and the grace covers it.
func keepsToken(code string) bool {
	switch code {
	case "TRANSPORT", "STORE_UNAVAILABLE", "INTERNAL", "BAD_RESPONSE":
		return true
	}
	return len(code) > 5 && code[:5] == "HTTP_"
}

// scenario is one kind of load. It runs actors(users) actors (one per
// virtual user unless actors is set); setup runs for every actor before the
// clock starts, loop until the window ends.
type scenario struct {
	name   string
	actors func(users int) int
	setup  func(ctx context.Context, v *vu) (state any, err error)
	loop   func(ctx context.Context, v *vu, state any)
}

// burstSize is how many tabs refresh the same token at once.
const burstSize = 8

var scenarios = map[string]scenario{
	"login": {
		name: "login",
		loop: func(ctx context.Context, v *vu, _ any) {
			for v.win.open(time.Now()) && ctx.Err() == nil {
				v.login(ctx, "login")
			}
		},
	},
	"refresh": {
		name:  "refresh",
		setup: func(ctx context.Context, v *vu) (any, error) { return v.setupLogin(ctx) },
		loop: func(ctx context.Context, v *vu, state any) {
			tok := state.(string)
			for v.win.open(time.Now()) && ctx.Err() == nil {
				tok = v.refreshOrRelogin(ctx, tok)
			}
		},
	},
	"mixed": {
		name:  "mixed",
		setup: func(ctx context.Context, v *vu) (any, error) { return v.setupLogin(ctx) },
		loop: func(ctx context.Context, v *vu, state any) {
			tok := state.(string)
			for {
				for range 8 {
					if !v.win.open(time.Now()) || ctx.Err() != nil {
						return
					}
					tok = v.refreshOrRelogin(ctx, tok)
				}
				if !v.win.open(time.Now()) || ctx.Err() != nil {
					return
				}
				v.revoke(ctx, tok)
				if !v.win.open(time.Now()) || ctx.Err() != nil {
					return
				}
				if r := v.login(ctx, "login"); r.Code == "" {
					tok = r.Refresh
				}
			}
		},
	},
	"burst": {
		name:   "burst",
		actors: func(users int) int { return max(1, users/burstSize) },
		setup: func(ctx context.Context, v *vu) (any, error) {
			g := &group{}
			for i := range g.members {
				g.members[i] = &vu{id: v.id*burstSize + i, t: v.t, win: v.win, addr: v.addr}
			}
			var err error
			g.tok, err = v.setupLogin(ctx)
			return g, err
		},
		loop: burstLoop,
	},
}

// group is a browser with burstSize tabs sharing one session.
type group struct {
	members [burstSize]*vu
	tok     string
}

// burstLoop sends rounds of burstSize concurrent refreshes of the group's
// token. Every one must succeed with the same successor: a success with
// another successor than the most common one counts as MISMATCH.
func burstLoop(ctx context.Context, v *vu, state any) {
	g := state.(*group)
	type result struct {
		took time.Duration
		end  time.Time
		r    reply
	}
	var results [burstSize]result
	for v.win.open(time.Now()) && ctx.Err() == nil {
		body := tokenBody(nil, refreshQueryJSON, g.tok)
		go1 := make(chan struct{})
		var wg sync.WaitGroup
		for i, m := range g.members {
			wg.Go(func() {
				<-go1
				start := time.Now()
				r := m.post(ctx, body)
				if r.Code == "" {
					r.Code = checkPair(r)
				}
				end := time.Now()
				results[i] = result{end.Sub(start), end, r}
			})
		}
		close(go1)
		wg.Wait()
		counts := map[string]int{}
		for _, x := range results {
			if x.r.Code == "" {
				counts[x.r.Refresh]++
			}
		}
		mode, best := "", 0
		for k, c := range counts {
			if c > best || (c == best && k < mode) {
				mode, best = k, c
			}
		}
		transient := true
		for _, x := range results {
			code := x.r.Code
			if code == "" && x.r.Refresh != mode {
				code = "MISMATCH"
			}
			if code != "" && !keepsToken(code) {
				transient = false
			}
			if ctx.Err() == nil && !x.end.Before(v.win.start) && !x.end.After(v.win.end) {
				v.st.record("refresh", x.took, code)
			}
		}
		switch {
		case mode != "":
			g.tok = mode
		case transient || !v.win.open(time.Now()) || ctx.Err() != nil:
		default:
			if l := v.login(ctx, "relogin"); l.Code == "" {
				g.tok = l.Refresh
			}
		}
	}
}

// refreshOrRelogin refreshes tok and returns the token to present next: the
// successor, the same token after a transient failure, or the token of a
// new session (a recorded "relogin") when the session is gone.
func (v *vu) refreshOrRelogin(ctx context.Context, tok string) string {
	r := v.refresh(ctx, tok)
	switch {
	case r.Code == "":
		return r.Refresh
	case keepsToken(r.Code) || !v.win.open(time.Now()) || ctx.Err() != nil:
		return tok
	}
	if l := v.login(ctx, "relogin"); l.Code == "" {
		return l.Refresh
	}
	return tok
}

// runLoad runs sc with users virtual users against t: setup for all, then
// warmup, then the measured window of length d. probe is called at the
// window's start and end (to read process counters); it runs in the
// coordinating goroutine while the users keep the load on.
//
// With xff, each actor sends its own client address in X-Forwarded-For.
func runLoad(ctx context.Context, t *target, sc scenario, users int, xff bool, warmup, d time.Duration, probe func(start bool)) (*stats, time.Duration, error) {
	n := users
	if sc.actors != nil {
		n = sc.actors(users)
	}
	vus := make([]*vu, n)
	states := make([]any, n)
	win := &window{}
	// Setup: everyone logs in (or whatever the scenario needs), unrecorded.
	{
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range vus {
			vus[i] = &vu{id: i, t: t, st: newStats(), win: win}
			if xff {
				vus[i].addr = clientAddr(i + 1)
			}
			if sc.setup == nil {
				continue
			}
			wg.Go(func() { states[i], errs[i] = sc.setup(ctx, vus[i]) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, 0, fmt.Errorf("%s setup: %w", sc.name, err)
		}
	}
	now := time.Now()
	win.start = now.Add(warmup)
	win.end = win.start.Add(d)
	var wg sync.WaitGroup
	for i, v := range vus {
		wg.Go(func() { sc.loop(ctx, v, states[i]) })
	}
	window, err := probeWindow(ctx, win, probe)
	wg.Wait()
	all := newStats()
	for _, v := range vus {
		all.merge(v.st)
	}
	return all, window, err
}

// probeWindow sleeps to the window's start, probes, sleeps to its end,
// probes again, and returns the window's length as actually probed.
func probeWindow(ctx context.Context, win *window, probe func(start bool)) (time.Duration, error) {
	if err := sleepUntil(ctx, win.start); err != nil {
		return 0, err
	}
	if probe != nil {
		probe(true)
	}
	if err := sleepUntil(ctx, win.end); err != nil {
		return 0, err
	}
	if probe != nil {
		probe(false)
	}
	return win.end.Sub(win.start), nil
}

func sleepUntil(ctx context.Context, t time.Time) error {
	timer := time.NewTimer(time.Until(t))
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}
