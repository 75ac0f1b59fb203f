package bigcommerce_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/login/bigcommerce"
)

const (
	email      = "alice@example.com"
	password   = "pw-Zq8!never-in-errors"
	xAuthToken = "x-auth-token-Vb29"
	storeHash  = "abc123"
	tokenPath  = "/stores/abc123/v3/storefront/api-token-customer-impersonation"
	// tokenPrefix starts every impersonation token the fake issues.
	tokenPrefix = "imp-token-"
	// marker is put in bodies the fake sends; it must never reach an error.
	marker = "UPSTREAM-MARKER-93ab"

	wantQuery = "mutation login($email: String!, $password: String!) { login(email: $email, password: $password) { result customer { entityId } } }"
)

// checkNoLeak fails the test when err's text carries a secret or a piece of
// an upstream body.
func checkNoLeak(t *testing.T, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range []string{password, xAuthToken, tokenPrefix, marker, email} {
		if strings.Contains(err.Error(), s) {
			t.Errorf("error %q contains %q", err, s)
		}
	}
}

// clock is an injectable clock that only moves when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// tokenRequest is what the fake saw of one impersonation-token request.
type tokenRequest struct {
	method, path, xAuthToken, contentType, accept string
	body                                          map[string]any
	header                                        http.Header
}

// loginRequest is what the fake saw of one GraphQL request.
type loginRequest struct {
	method, path, authorization, contentType, accept string
	query                                            string
	variables                                        map[string]any
	header                                           http.Header
}

// dropConn as a token status makes the fake close the connection unanswered.
const dropConn = -1

// fake is a BigCommerce store: the impersonation-token endpoint and the
// storefront GraphQL endpoint on one server. By default it issues tokens
// imp-token-1, imp-token-2, ..., and its login mutation accepts email and
// password with any token it issued and answers entityId 42.
type fake struct {
	srv   *httptest.Server
	conns atomic.Int32

	mu sync.Mutex
	// tokenStatus are the statuses of successive token requests; the last
	// repeats. Empty means 200.
	tokenStatus []int
	// tokenBody, when set, replaces the token endpoint's 200 body.
	tokenBody string
	// tokenDelay slows the token endpoint down.
	tokenDelay time.Duration
	// rejected are tokens the GraphQL endpoint answers 401 to.
	rejected map[string]bool
	// graphql, when set, answers GraphQL requests instead of the default.
	graphql http.HandlerFunc

	issued    map[string]bool
	tokenReqs []tokenRequest
	loginReqs []loginRequest
}

func newFake(t *testing.T) *fake {
	f := &fake{rejected: map[string]bool{}, issued: map[string]bool{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+tokenPath, f.token)
	mux.HandleFunc("POST /graphql", f.login)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.conns.Add(1)
		}
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fake) token(w http.ResponseWriter, r *http.Request) {
	req := tokenRequest{
		method: r.Method, path: r.URL.Path, xAuthToken: r.Header.Get("X-Auth-Token"),
		contentType: r.Header.Get("Content-Type"), accept: r.Header.Get("Accept"), header: r.Header.Clone(),
	}
	d := json.NewDecoder(r.Body)
	d.UseNumber()
	_ = d.Decode(&req.body)

	f.mu.Lock()
	f.tokenReqs = append(f.tokenReqs, req)
	n := len(f.tokenReqs)
	status := http.StatusOK
	if len(f.tokenStatus) > 0 {
		status = f.tokenStatus[min(n, len(f.tokenStatus))-1]
	}
	body, delay := f.tokenBody, f.tokenDelay
	token := fmt.Sprintf("%s%d", tokenPrefix, n)
	if status == http.StatusOK && body == "" {
		f.issued[token] = true
		body = `{"data":{"token":"` + token + `"},"meta":{}}`
	}
	f.mu.Unlock()

	time.Sleep(delay)
	switch status {
	case dropConn:
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			conn.Close()
		}
	case http.StatusOK:
		writeJSON(w, status, body)
	default:
		writeJSON(w, status, `{"status":`+fmt.Sprint(status)+`,"title":"`+marker+`"}`)
	}
}

func (f *fake) login(w http.ResponseWriter, r *http.Request) {
	req := loginRequest{
		method: r.Method, path: r.URL.Path, authorization: r.Header.Get("Authorization"),
		contentType: r.Header.Get("Content-Type"), accept: r.Header.Get("Accept"), header: r.Header.Clone(),
	}
	var body struct {
		Query     string         `json:"query"`
		Variables map[string]any `json:"variables"`
	}
	d := json.NewDecoder(r.Body)
	d.DisallowUnknownFields()
	if err := d.Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, `{"errors":[{"message":"bad request"}]}`)
		return
	}
	req.query, req.variables = body.Query, body.Variables
	_, _ = io.Copy(io.Discard, r.Body)

	f.mu.Lock()
	f.loginReqs = append(f.loginReqs, req)
	custom := f.graphql
	token := strings.TrimPrefix(req.authorization, "Bearer ")
	valid := f.issued[token] && !f.rejected[token]
	f.mu.Unlock()

	switch {
	case custom != nil:
		custom(w, r)
	case !valid:
		writeJSON(w, http.StatusUnauthorized, `{"errors":[{"message":"`+marker+`"}]}`)
	case body.Variables["email"] == email && body.Variables["password"] == password:
		writeJSON(w, http.StatusOK, `{"data":{"login":{"result":"success","customer":{"entityId":42}}}}`)
	default:
		writeJSON(w, http.StatusOK, invalidCredentials)
	}
}

// invalidCredentials is how BigCommerce answers a wrong password.
const invalidCredentials = `{"data":{"login":null},"errors":[{"message":"Invalid credentials ` + marker + `","locations":[{"line":1,"column":68}],"path":["login"]}]}`

func (f *fake) counts() (tokens, logins int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.tokenReqs), len(f.loginReqs)
}

func (f *fake) lastLogin() loginRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.loginReqs[len(f.loginReqs)-1]
}

func (f *fake) set(fn func(f *fake)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func writeJSON(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func reply(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) { writeJSON(w, status, body) }
}

// hang blocks until the request's context ends. The request body has been
// read, so the server notices when the client gives up.
func hang(_ http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

func newProvider(t *testing.T, f *fake, c *clock, mod func(*bigcommerce.Options)) *bigcommerce.Provider {
	t.Helper()
	o := bigcommerce.Options{
		StoreHash:  storeHash,
		XAuthToken: xAuthToken,
		APIBase:    f.srv.URL,
		GraphQLURL: f.srv.URL + "/graphql",
		Now:        c.Now,
	}
	if mod != nil {
		mod(&o)
	}
	p, err := bigcommerce.New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return p
}

func TestLogin(t *testing.T) {
	huge := `{"data":{"login":{"result":"success","customer":{"entityId":42}}},"pad":"` + marker + strings.Repeat("x", 4096) + `"}`
	tests := []struct {
		name     string
		graphql  http.HandlerFunc
		password string
		opts     func(*bigcommerce.Options)
		want     string // the customer id; "" for an error
		invalid  bool   // want login.ErrInvalidCredentials, else an upstream error
		is       error
		msg      string // a part of the error's text
	}{
		{name: "success", want: "42"},
		{name: "large entityId is exact", graphql: reply(200, `{"data":{"login":{"result":"success","customer":{"entityId":9007199254740993}}}}`), want: "9007199254740993"},
		{name: "wrong password", password: "wrong", invalid: true},
		{name: "errors without data", graphql: reply(200, `{"errors":[{"message":"Invalid credentials `+marker+`"}]}`), invalid: true},
		{name: "result failure", graphql: reply(200, `{"data":{"login":{"result":"failure","customer":null}}}`), invalid: true},
		{name: "disabled account", graphql: reply(200, `{"data":{"login":null},"errors":[{"message":"Your account is disabled `+marker+`"}]}`), invalid: true},
		{name: "success without customer", graphql: reply(200, `{"data":{"login":{"result":"success","customer":null}}}`), invalid: true},
		{name: "entityId missing", graphql: reply(200, `{"data":{"login":{"result":"success","customer":{}}}}`)},
		{name: "entityId null", graphql: reply(200, `{"data":{"login":{"result":"success","customer":{"entityId":null}}}}`)},
		{name: "entityId fraction", graphql: reply(200, `{"data":{"login":{"result":"success","customer":{"entityId":4.2}}}}`)},
		{name: "entityId string", graphql: reply(200, `{"data":{"login":{"result":"success","customer":{"entityId":"`+marker+`"}}}}`)},
		{name: "entityId boolean", graphql: reply(200, `{"data":{"login":{"result":"success","customer":{"entityId":true}}}}`)},
		{name: "no login result and no errors", graphql: reply(200, `{"data":{"other":"`+marker+`"}}`)},
		{name: "empty object", graphql: reply(200, `{}`)},
		{name: "malformed JSON", graphql: reply(200, `{"data": `+marker)},
		{name: "trailing data", graphql: reply(200, `{"data":{"login":{"result":"success","customer":{"entityId":42}}}} `+marker)},
		{name: "body larger than MaxBodyBytes", graphql: reply(200, huge), opts: maxBody(1024), msg: "too large"},
		{
			name:    "body larger than MaxBodyBytes that parses when cut",
			graphql: reply(200, `{"data":{"login":{"result":"success","customer":{"entityId":42}}}}`+strings.Repeat(" ", 4096)+marker),
			opts:    maxBody(1024),
			msg:     "too large",
		},
		{name: "500", graphql: reply(500, `{"errors":[{"message":"`+marker+`"}]}`)},
		{name: "502", graphql: reply(502, marker)},
		{name: "403", graphql: reply(403, marker)},
		{name: "404", graphql: reply(404, marker)},
		{name: "429", graphql: reply(429, marker)},
		{name: "redirect is not followed", graphql: func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, "/elsewhere?"+marker, http.StatusPermanentRedirect)
		}},
		{
			name:    "timeout",
			graphql: hang,
			opts:    func(o *bigcommerce.Options) { o.Timeout = 100 * time.Millisecond },
			is:      context.DeadlineExceeded,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.set(func(f *fake) { f.graphql = tc.graphql })
			p := newProvider(t, f, newClock(), tc.opts)
			pw := password
			if tc.password != "" {
				pw = tc.password
			}
			id, err := p.Login(context.Background(), email, pw)
			checkNoLeak(t, err)
			switch {
			case tc.want != "":
				if err != nil || id.CustomerID != tc.want {
					t.Fatalf("Login = %+v, %v; want customer %s", id, err, tc.want)
				}
			case err == nil:
				t.Fatalf("Login = %+v, want an error", id)
			case tc.invalid && err != login.ErrInvalidCredentials:
				t.Fatalf("Login error = %v, want exactly login.ErrInvalidCredentials", err)
			case !tc.invalid && errors.Is(err, login.ErrInvalidCredentials):
				t.Fatalf("Login error = %v, want an upstream error", err)
			case tc.is != nil && !errors.Is(err, tc.is):
				t.Fatalf("Login error = %v, want one wrapping %v", err, tc.is)
			case !strings.Contains(err.Error(), tc.msg):
				t.Fatalf("Login error = %v, want one saying %q", err, tc.msg)
			}
			if tokens, logins := f.counts(); tokens != 1 || logins != 1 {
				t.Errorf("%d token requests and %d login requests, want 1 and 1 (a login is never retried)", tokens, logins)
			}
		})
	}
}

func maxBody(n int64) func(*bigcommerce.Options) {
	return func(o *bigcommerce.Options) { o.MaxBodyBytes = n }
}

func TestRequests(t *testing.T) {
	tests := []struct {
		name        string
		channelID   int
		apiBase     func(f *fake) string
		wantChannel string
	}{
		{name: "default channel", wantChannel: "1"},
		{name: "channel 7", channelID: 7, wantChannel: "7"},
		{name: "API base with a trailing slash", apiBase: func(f *fake) string { return f.srv.URL + "/" }, wantChannel: "1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			c := newClock()
			p := newProvider(t, f, c, func(o *bigcommerce.Options) {
				o.ChannelID = tc.channelID
				o.TokenTTL = 2 * time.Hour
				if tc.apiBase != nil {
					o.APIBase = tc.apiBase(f)
				}
			})
			if _, err := p.Login(context.Background(), email, password); err != nil {
				t.Fatalf("Login: %v", err)
			}

			var tr tokenRequest
			f.set(func(f *fake) { tr = f.tokenReqs[0] })
			if tr.method != http.MethodPost || tr.path != tokenPath {
				t.Errorf("token request = %s %s, want POST %s", tr.method, tr.path, tokenPath)
			}
			if tr.xAuthToken != xAuthToken || tr.contentType != "application/json" || tr.accept != "application/json" {
				t.Errorf("token request headers: X-Auth-Token %q, Content-Type %q, Accept %q", tr.xAuthToken, tr.contentType, tr.accept)
			}
			wantExpiry := c.Now().Add(2 * time.Hour).Unix()
			wantBody := map[string]any{"channel_id": json.Number(tc.wantChannel), "expires_at": json.Number(fmt.Sprint(wantExpiry))}
			if !reflect.DeepEqual(tr.body, wantBody) {
				t.Errorf("token request body = %v, want %v", tr.body, wantBody)
			}
			if wantExpiry <= time.Now().Unix() {
				t.Errorf("expires_at %d is not in the future", wantExpiry)
			}

			lr := f.lastLogin()
			if lr.method != http.MethodPost || lr.path != "/graphql" {
				t.Errorf("login request = %s %s", lr.method, lr.path)
			}
			if lr.authorization != "Bearer "+tokenPrefix+"1" || lr.contentType != "application/json" || lr.accept != "application/json" {
				t.Errorf("login request headers: Authorization %q, Content-Type %q, Accept %q", lr.authorization, lr.contentType, lr.accept)
			}
			if lr.query != wantQuery {
				t.Errorf("query = %q, want %q", lr.query, wantQuery)
			}
			if want := map[string]any{"email": email, "password": password}; !reflect.DeepEqual(lr.variables, want) {
				t.Errorf("variables = %v, want exactly %v", lr.variables, want)
			}
		})
	}
}

func TestTokenFetch(t *testing.T) {
	tests := []struct {
		name       string
		status     []int
		body       string
		maxBody    int64
		ok         bool
		wantTokens int
	}{
		{name: "500 twice then 200", status: []int{500, 500, 200}, ok: true, wantTokens: 3},
		{name: "429 then 200", status: []int{429, 200}, ok: true, wantTokens: 2},
		{name: "dropped connection twice then 200", status: []int{dropConn, dropConn, 200}, ok: true, wantTokens: 3},
		{name: "500 forever", status: []int{500}, wantTokens: 3},
		{name: "503 forever", status: []int{503}, wantTokens: 3},
		{name: "401 is not retried", status: []int{401, 200}, wantTokens: 1},
		{name: "403 is not retried", status: []int{403, 200}, wantTokens: 1},
		{name: "422 is not retried", status: []int{422, 200}, wantTokens: 1},
		{name: "redirect is not followed", status: []int{307, 200}, wantTokens: 1},
		{name: "malformed JSON", body: `{"data": ` + marker, wantTokens: 1},
		{name: "no token", body: `{"data":{},"meta":{"m":"` + marker + `"}}`, wantTokens: 1},
		{name: "token not a string", body: `{"data":{"token":42}}`, wantTokens: 1},
		{name: "body larger than MaxBodyBytes", body: `{"data":{"token":"t"},"pad":"` + marker + strings.Repeat("x", 4096) + `"}`, maxBody: 1024, wantTokens: 1},
		{name: "body larger than MaxBodyBytes that parses when cut", body: `{"data":{"token":"t"}}` + strings.Repeat(" ", 4096) + marker, maxBody: 1024, wantTokens: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.set(func(f *fake) { f.tokenStatus, f.tokenBody = tc.status, tc.body })
			p := newProvider(t, f, newClock(), func(o *bigcommerce.Options) { o.MaxBodyBytes = tc.maxBody })
			id, err := p.Login(context.Background(), email, password)
			checkNoLeak(t, err)
			tokens, logins := f.counts()
			if tc.ok {
				if err != nil || id.CustomerID != "42" || !id.NumericID {
					t.Fatalf("Login = %+v, %v; want the numeric customer 42", id, err)
				}
			} else {
				if err == nil || errors.Is(err, login.ErrInvalidCredentials) {
					t.Fatalf("Login error = %v, want an upstream error", err)
				}
				if logins != 0 {
					t.Errorf("%d login requests without a token", logins)
				}
			}
			if tokens != tc.wantTokens {
				t.Errorf("%d token requests, want %d", tokens, tc.wantTokens)
			}
		})
	}
}

func TestTokenIsCached(t *testing.T) {
	f := newFake(t)
	p := newProvider(t, f, newClock(), nil)
	for i := range 10 {
		pw := password
		if i%3 == 2 {
			pw = "wrong"
		}
		if _, err := p.Login(context.Background(), email, pw); err != nil && err != login.ErrInvalidCredentials {
			t.Fatalf("login %d: %v", i, err)
		}
	}
	if tokens, logins := f.counts(); tokens != 1 || logins != 10 {
		t.Errorf("10 logins made %d token requests and %d login requests, want 1 and 10", tokens, logins)
	}
	if n := f.conns.Load(); n != 1 {
		t.Errorf("10 sequential logins opened %d connections, want 1", n)
	}
}

func TestTokenRenewal(t *testing.T) {
	f := newFake(t)
	c := newClock()
	p := newProvider(t, f, c, func(o *bigcommerce.Options) { o.TokenTTL = time.Hour })
	// A token lasts an hour and is renewed after 54 minutes.
	steps := []struct {
		advance    time.Duration
		wantTokens int
		wantToken  string
	}{
		{0, 1, "1"},
		{30 * time.Minute, 1, "1"},
		{23*time.Minute + 59*time.Second, 1, "1"}, // 53:59
		{time.Second, 2, "2"},                     // 54:00, renewed; lasts until 1:54
		{50 * time.Minute, 2, "2"},                // 1:44
		{4 * time.Minute, 3, "3"},                 // 1:48, renewed
		{5 * time.Hour, 4, "4"},                   // long expired
	}
	for i, s := range steps {
		c.Advance(s.advance)
		if _, err := p.Login(context.Background(), email, password); err != nil {
			t.Fatalf("step %d: Login: %v", i, err)
		}
		if tokens, _ := f.counts(); tokens != s.wantTokens {
			t.Errorf("step %d: %d token requests, want %d", i, tokens, s.wantTokens)
		}
		if got := f.lastLogin().authorization; got != "Bearer "+tokenPrefix+s.wantToken {
			t.Errorf("step %d: login used %q, want token %s", i, got, s.wantToken)
		}
	}
}

// TestFailedRenewal checks that a token due for renewal stays in use while
// renewals fail, until it expires.
func TestFailedRenewal(t *testing.T) {
	f := newFake(t)
	c := newClock()
	p := newProvider(t, f, c, func(o *bigcommerce.Options) { o.TokenTTL = time.Hour })
	f.set(func(f *fake) { f.tokenStatus = []int{200, 500} })
	steps := []struct {
		advance    time.Duration
		ok         bool
		wantTokens int
	}{
		{0, true, 1},
		{55 * time.Minute, true, 4}, // renewal fails 3 times; token 1 still works
		{0, true, 4},                // no new try for RenewRetryAfter
		{bigcommerce.RenewRetryAfter - time.Second, true, 4}, // still waiting
		{time.Second, true, 7},                               // tried again, failed again
		{4 * time.Minute, false, 10},                         // 1:00, expired: no token
		{0, false, 13},                                       // and every login tries
	}
	for i, s := range steps {
		c.Advance(s.advance)
		_, err := p.Login(context.Background(), email, password)
		checkNoLeak(t, err)
		if s.ok != (err == nil) || errors.Is(err, login.ErrInvalidCredentials) {
			t.Fatalf("step %d: Login error = %v, want ok=%v", i, err, s.ok)
		}
		if tokens, _ := f.counts(); tokens != s.wantTokens {
			t.Errorf("step %d: %d token requests, want %d", i, tokens, s.wantTokens)
		}
	}
}

func TestConcurrentLoginsShareOneTokenFetch(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) { f.tokenDelay = 100 * time.Millisecond })
	p := newProvider(t, f, newClock(), nil)
	const n = 50
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			id, err := p.Login(context.Background(), email, password)
			if err == nil && id.CustomerID != "42" {
				err = fmt.Errorf("customer %q", id.CustomerID)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Login: %v", err)
		}
	}
	if tokens, logins := f.counts(); tokens != 1 || logins != n {
		t.Errorf("%d concurrent logins made %d token requests and %d login requests, want 1 and %d", n, tokens, logins, n)
	}
}

// TestWaitRespectsContext checks that a login whose context ends while it
// waits for a token gives up, and that the token request it started still
// serves the next login.
func TestWaitRespectsContext(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) { f.tokenDelay = 2 * time.Second })
	p := newProvider(t, f, newClock(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := p.Login(ctx, email, password)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Login error = %v, want the caller's deadline", err)
	}
	if d := time.Since(start); d >= 1500*time.Millisecond { // well short of the 2 s token request it must not wait for
		t.Errorf("Login waited %v past its 20ms deadline", d)
	}
	if _, err := p.Login(context.Background(), email, password); err != nil {
		t.Fatalf("Login: %v", err)
	}
	if tokens, logins := f.counts(); tokens != 1 || logins != 1 {
		t.Errorf("%d token requests and %d login requests, want 1 and 1", tokens, logins)
	}
}

func TestUnauthorizedRenewsOnce(t *testing.T) {
	tests := []struct {
		name       string
		setup      func(f *fake)
		ok         bool
		wantTokens int
		wantLogins int
	}{
		{
			name:       "revoked token is renewed and the login repeated",
			setup:      func(f *fake) { f.rejected[tokenPrefix+"1"] = true },
			ok:         true,
			wantTokens: 2, wantLogins: 2,
		},
		{
			name:       "renewed token refused too",
			setup:      func(f *fake) { f.graphql = reply(401, `{"errors":[{"message":"`+marker+`"}]}`) },
			wantTokens: 2, wantLogins: 2,
		},
		{
			name:       "renewal fails",
			setup:      func(f *fake) { f.rejected[tokenPrefix+"1"] = true; f.tokenStatus = []int{200, 400} },
			wantTokens: 2, wantLogins: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t)
			f.set(tc.setup)
			p := newProvider(t, f, newClock(), nil)
			id, err := p.Login(context.Background(), email, password)
			checkNoLeak(t, err)
			if tc.ok {
				if err != nil || id.CustomerID != "42" {
					t.Fatalf("Login = %+v, %v; want customer 42", id, err)
				}
			} else if err == nil || errors.Is(err, login.ErrInvalidCredentials) {
				t.Fatalf("Login error = %v, want an upstream error", err)
			}
			if tokens, logins := f.counts(); tokens != tc.wantTokens || logins != tc.wantLogins {
				t.Errorf("%d token requests and %d login requests, want %d and %d", tokens, logins, tc.wantTokens, tc.wantLogins)
			}
		})
	}
}

func TestConcurrentUnauthorizedRenewsOnce(t *testing.T) {
	f := newFake(t)
	p := newProvider(t, f, newClock(), nil)
	// Cache token 1, then have the GraphQL endpoint refuse it.
	f.set(func(f *fake) { f.graphql = reply(200, `{"data":{"login":{"result":"failure"}}}`) })
	if _, err := p.Login(context.Background(), email, password); err != login.ErrInvalidCredentials {
		t.Fatalf("Login: %v", err)
	}
	f.set(func(f *fake) { f.graphql = nil; f.rejected[tokenPrefix+"1"] = true })

	const n = 20
	var wg sync.WaitGroup
	var failed atomic.Int32
	for range n {
		wg.Go(func() {
			if _, err := p.Login(context.Background(), email, password); err != nil {
				failed.Add(1)
				t.Errorf("Login: %v", err)
			}
		})
	}
	wg.Wait()
	if tokens, _ := f.counts(); tokens != 2 {
		t.Errorf("%d concurrent logins refused with the same token made %d token requests, want 2", n, tokens)
	}
}

func TestNew(t *testing.T) {
	good := func(mod func(*bigcommerce.Options)) bigcommerce.Options {
		o := bigcommerce.Options{StoreHash: storeHash, XAuthToken: xAuthToken, GraphQLURL: "https://store-abc123.mybigcommerce.com/graphql"}
		if mod != nil {
			mod(&o)
		}
		return o
	}
	tests := []struct {
		name string
		o    bigcommerce.Options
		ok   bool
	}{
		{name: "minimal", o: good(nil), ok: true},
		{name: "everything", o: good(func(o *bigcommerce.Options) {
			o.ChannelID, o.APIBase, o.Timeout, o.TokenTTL, o.MaxBodyBytes = 3, "http://localhost:8080/", time.Second, time.Hour, 4096
		}), ok: true},
		{name: "no store hash", o: good(func(o *bigcommerce.Options) { o.StoreHash = "" })},
		{name: "store hash with a slash", o: good(func(o *bigcommerce.Options) { o.StoreHash = "abc/../x" })},
		{name: "no X-Auth-Token", o: good(func(o *bigcommerce.Options) { o.XAuthToken = "" })},
		{name: "X-Auth-Token with a newline", o: good(func(o *bigcommerce.Options) { o.XAuthToken = xAuthToken + "\n" })},
		{name: "negative channel", o: good(func(o *bigcommerce.Options) { o.ChannelID = -1 })},
		{name: "relative API base", o: good(func(o *bigcommerce.Options) { o.APIBase = "api.bigcommerce.com" })},
		{name: "no GraphQL URL", o: good(func(o *bigcommerce.Options) { o.GraphQLURL = "" })},
		{name: "GraphQL URL other scheme", o: good(func(o *bigcommerce.Options) { o.GraphQLURL = "ws://store.example/graphql" })},
		{name: "negative timeout", o: good(func(o *bigcommerce.Options) { o.Timeout = -1 })},
		{name: "short TTL", o: good(func(o *bigcommerce.Options) { o.TokenTTL = time.Second })},
		{name: "negative TTL", o: good(func(o *bigcommerce.Options) { o.TokenTTL = -time.Hour })},
		{name: "negative max body", o: good(func(o *bigcommerce.Options) { o.MaxBodyBytes = -1 })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := bigcommerce.New(tc.o)
			checkNoLeak(t, err)
			if tc.ok != (err == nil) || tc.ok != (p != nil) {
				t.Fatalf("New = %v, %v; want ok=%v", p, err, tc.ok)
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := bigcommerce.New(bigcommerce.Options{ChannelID: -1, Timeout: -1})
	if err == nil {
		t.Fatal("New accepted bad options")
	}
	for _, want := range []string{"store hash", "X-Auth-Token", "channel", "GraphQL URL", "timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
}

func TestConnectionRefused(t *testing.T) {
	f := newFake(t)
	p := newProvider(t, f, newClock(), nil)
	f.srv.Close()
	_, err := p.Login(context.Background(), email, password)
	checkNoLeak(t, err)
	if err == nil || errors.Is(err, login.ErrInvalidCredentials) {
		t.Fatalf("Login error = %v, want an upstream error", err)
	}
}

// TestShopperAddress: each login carries its own shopper's address (the one
// the service determined, from the context) in True-Client-Ip and
// X-Forwarded-For, with X-BC-Trusted-Proxy-Secret, even when many run at
// once on one shared impersonation token; the token renewal carries none.
func TestShopperAddress(t *testing.T) {
	f := newFake(t)
	f.set(func(f *fake) {
		f.graphql = func(w http.ResponseWriter, _ *http.Request) {
			writeJSON(w, http.StatusOK, `{"data":{"login":{"result":"success","customer":{"entityId":42}}}}`)
		}
	})
	p := newProvider(t, f, newClock(), func(o *bigcommerce.Options) { o.TrustedProxySecret = "proxy-secret" })
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx := login.WithClientIP(context.Background(), fmt.Sprintf("203.0.113.%d", i+1))
			if _, err := p.Login(ctx, fmt.Sprintf("shopper%d@example.com", i+1), password); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	// Without an address (none known), no address headers and no secret.
	if _, err := p.Login(context.Background(), "shopper0@example.com", password); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.loginReqs) != n+1 {
		t.Fatalf("%d login requests, want %d", len(f.loginReqs), n+1)
	}
	for _, r := range f.loginReqs {
		email, _ := r.variables["email"].(string)
		var i int
		fmt.Sscanf(email, "shopper%d@", &i)
		want := fmt.Sprintf("203.0.113.%d", i)
		if i == 0 {
			if r.header.Get("True-Client-Ip") != "" || r.header.Get("X-Forwarded-For") != "" || r.header.Get("X-BC-Trusted-Proxy-Secret") != "" {
				t.Errorf("no address known, but sent %v", r.header)
			}
			continue
		}
		if got := r.header.Values("True-Client-Ip"); len(got) != 1 || got[0] != want {
			t.Errorf("%s: True-Client-Ip %q, want %q", email, got, want)
		}
		if got := r.header.Values("X-Forwarded-For"); len(got) != 1 || got[0] != want {
			t.Errorf("%s: X-Forwarded-For %q, want %q", email, got, want)
		}
		if got := r.header.Get("X-BC-Trusted-Proxy-Secret"); got != "proxy-secret" {
			t.Errorf("%s: X-BC-Trusted-Proxy-Secret %q", email, got)
		}
	}
	for _, r := range f.tokenReqs {
		for _, h := range []string{"True-Client-Ip", "X-Forwarded-For", "X-BC-Trusted-Proxy-Secret"} {
			if r.header.Get(h) != "" {
				t.Errorf("the shared token renewal sent %s", h)
			}
		}
	}
}
