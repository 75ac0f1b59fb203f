package auth_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/memory"
	"github.com/meshauth/meshauth/internal/token"
)

const (
	email    = "ada@example.com"
	password = "correct horse battery staple"
)

var (
	refreshSecret = []byte("0123456789abcdef0123456789abcdef-refresh")
	jwtSecret     = []byte("0123456789abcdef0123456789abcdef-jwt")
	t0            = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	rules         = auth.Rules{
		AccessTTL:     10 * time.Minute,
		IdleTTL:       15 * time.Minute,
		RememberTTL:   30 * 24 * time.Hour,
		ReuseInterval: 30 * time.Second,
	}
)

// clock is the injected clock: tests move it, never sleep.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// provider is a login.Service fake.
type provider struct {
	id    login.Identity
	err   error
	calls int
	mu    sync.Mutex
	// delay holds every check, so that concurrent attempts overlap.
	delay time.Duration
}

func (p *provider) Login(_ context.Context, e, pw string) (login.Identity, error) {
	p.mu.Lock()
	p.calls++
	p.mu.Unlock()
	time.Sleep(p.delay)
	if p.err != nil {
		return login.Identity{}, p.err
	}
	if login.NormalizeEmail(e) != email || pw != password {
		return login.Identity{}, login.ErrInvalidCredentials
	}
	return p.id, nil
}

type fixture struct {
	svc    *auth.Service
	clock  *clock
	store  *memory.Store
	codec  *token.Codec
	signer *token.Signer
	login  *provider
	logs   *bytes.Buffer
}

func newFixture(t *testing.T, mods ...func(*auth.Options)) *fixture {
	t.Helper()
	st := memory.New()
	codec, err := token.NewCodec(refreshSecret)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := token.NewHS256(jwtSecret, "meshauth", "meshauth")
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		clock: &clock{t: t0}, store: st, codec: codec, signer: signer,
		login: &provider{id: login.Identity{CustomerID: "42"}},
		logs:  &bytes.Buffer{},
	}
	o := auth.Options{
		Rules: rules, DevTools: true, Provider: f.login, Sessions: st, Customers: st,
		Signer: signer, Codec: codec, Now: f.clock.Now,
		Log: slog.New(slog.NewJSONHandler(&syncWriter{w: f.logs}, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	for _, m := range mods {
		m(&o)
	}
	f.svc = auth.New(o)
	return f
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (f *fixture) login_(t *testing.T, remember bool) auth.Tokens {
	t.Helper()
	tok, err := f.svc.Login(context.Background(), email, password, remember)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	return tok
}

func (f *fixture) refresh(t *testing.T, rt string) auth.Tokens {
	t.Helper()
	tok, err := f.svc.Refresh(context.Background(), rt)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	return tok
}

func (f *fixture) session(t *testing.T, rt string) store.Session {
	t.Helper()
	r, err := f.codec.Parse(rt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := f.store.Get(context.Background(), r.SessionID)
	if err != nil {
		t.Fatalf("Get session: %v", err)
	}
	return s
}

func (f *fixture) claims(t *testing.T, access string) token.Claims {
	t.Helper()
	c, err := f.signer.WithClock(f.clock.Now).Verify(access)
	if err != nil {
		t.Fatalf("access token does not verify: %v", err)
	}
	return c
}

func wantCode(t *testing.T, err error, code auth.Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want %s", code)
	}
	if got := auth.CodeOf(err); got != code {
		t.Fatalf("got %s (%v), want %s", got, err, code)
	}
}

func TestLoginSessionRules(t *testing.T) {
	tests := []struct {
		name        string
		remember    bool
		maxLifetime time.Duration
		wantExpiry  time.Duration
	}{
		{"idle session", false, 0, 15 * time.Minute},
		{"remember me", true, 0, 30 * 24 * time.Hour},
		{"remember me capped by max lifetime", true, 2 * time.Hour, 2 * time.Hour},
		{"idle session under the cap", false, 2 * time.Hour, 15 * time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *auth.Options) { o.Rules.MaxLifetime = tc.maxLifetime })
			tok := f.login_(t, tc.remember)
			if want := t0.Add(tc.wantExpiry); !tok.RefreshExpiresAt.Equal(want) {
				t.Errorf("refresh expiry %v, want %v", tok.RefreshExpiresAt, want)
			}
			if want := t0.Add(10 * time.Minute); !tok.AccessExpiresAt.Equal(want) {
				t.Errorf("access expiry %v, want %v", tok.AccessExpiresAt, want)
			}
			s := f.session(t, tok.Refresh)
			if s.CustomerID != "42" || s.RememberMe != tc.remember || !s.ExpiresAt.Equal(t0.Add(tc.wantExpiry)) || !s.CreatedAt.Equal(t0) {
				t.Errorf("stored session %+v", s)
			}
			if !bytes.Equal(s.TokenHash, mustHash(t, f, tok.Refresh)) {
				t.Error("stored hash is not the keyed hash of the issued token")
			}
			if strings.Contains(string(s.TokenHash), tok.Refresh) {
				t.Error("the refresh token is stored")
			}
		})
	}
}

func mustHash(t *testing.T, f *fixture, rt string) []byte {
	t.Helper()
	r, err := f.codec.Parse(rt)
	if err != nil {
		t.Fatal(err)
	}
	return f.codec.Hash(r)
}

func TestAccessTokenClaims(t *testing.T) {
	f := newFixture(t)
	f.login.id.Claims = map[string]any{"group": "vip", "customer_id": "999", "sub": "999", "exp": 1}
	tok := f.login_(t, false)
	for name, access := range map[string]string{"login": tok.Access, "refresh": f.refresh(t, tok.Refresh).Access} {
		c := f.claims(t, access)
		if c.CustomerID != "42" || c.SessionID != f.session(t, tok.Refresh).ID && name == "login" || c.Extra["group"] != "vip" || c.ID == "" {
			t.Errorf("%s: claims %+v", name, c)
		}
		if c.RefreshExpiry.IsZero() {
			t.Errorf("%s: no refresh_expiry", name)
		}
	}
}

// TestRefreshSessionRules pins the sliding rule: new expiry =
// max(current expiry, now + idle), capped by the max lifetime.
func TestRefreshSessionRules(t *testing.T) {
	day := 24 * time.Hour
	tests := []struct {
		name        string
		remember    bool
		maxLifetime time.Duration
		refreshAt   []time.Duration // offsets from login of successive refreshes
		wantExpiry  time.Duration   // from login
		wantAccess  time.Duration   // access expiry, from login
	}{
		{"idle session slides", false, 0, []time.Duration{5 * time.Minute}, 20 * time.Minute, 15 * time.Minute},
		{"idle session keeps sliding while active", false, 0, []time.Duration{10 * time.Minute, 20 * time.Minute, 30 * time.Minute}, 45 * time.Minute, 40 * time.Minute},
		{"remembered session keeps its end", true, 0, []time.Duration{day}, 30 * day, day + 10*time.Minute},
		{"remembered session slides only at the very end", true, 0, []time.Duration{30*day - 5*time.Minute}, 30*day + 10*time.Minute, 30*day + 5*time.Minute},
		{"max lifetime caps sliding", false, time.Hour, []time.Duration{10 * time.Minute, 20 * time.Minute, 30 * time.Minute, 40 * time.Minute, 50 * time.Minute}, time.Hour, time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(o *auth.Options) { o.Rules.MaxLifetime = tc.maxLifetime })
			tok := f.login_(t, tc.remember)
			at := time.Duration(0)
			for _, next := range tc.refreshAt {
				f.clock.Advance(next - at)
				at = next
				tok = f.refresh(t, tok.Refresh)
			}
			if want := t0.Add(tc.wantExpiry); !tok.RefreshExpiresAt.Equal(want) || !f.session(t, tok.Refresh).ExpiresAt.Equal(want) {
				t.Errorf("refresh expiry %v, stored %v, want %v", tok.RefreshExpiresAt, f.session(t, tok.Refresh).ExpiresAt, want)
			}
			if want := t0.Add(tc.wantAccess); !tok.AccessExpiresAt.Equal(want) {
				t.Errorf("access expiry %v, want %v", tok.AccessExpiresAt, want)
			}
		})
	}
}

func TestIdleSessionEnds(t *testing.T) {
	f := newFixture(t)
	tok := f.login_(t, false)
	f.clock.Advance(15 * time.Minute)
	_, err := f.svc.Refresh(context.Background(), tok.Refresh)
	wantCode(t, err, auth.CodeSessionExpired)
}

func TestEveryRefreshRotates(t *testing.T) {
	f := newFixture(t)
	tok := f.login_(t, true)
	seen := map[string]bool{tok.Refresh: true}
	jtis := map[string]bool{f.claims(t, tok.Access).ID: true}
	for range 5 {
		f.clock.Advance(time.Minute)
		next := f.refresh(t, tok.Refresh)
		if seen[next.Refresh] {
			t.Fatal("refresh returned a refresh token already issued")
		}
		if jti := f.claims(t, next.Access).ID; jtis[jti] {
			t.Fatal("refresh returned an access token already issued")
		}
		seen[next.Refresh], jtis[f.claims(t, next.Access).ID] = true, true
		tok = next
	}
}

// TestGrace covers the predecessor presented again: a second tab, or a retry
// after a lost response.
func TestGrace(t *testing.T) {
	tests := []struct {
		name  string
		after time.Duration
		want  auth.Code // "" for success with the same successor
	}{
		{"at once", 0, ""},
		{"within the interval", 29 * time.Second, ""},
		{"at the interval's end", 30 * time.Second, ""},
		{"past the interval is reuse", 31 * time.Second, auth.CodeRefreshTokenReused},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			first := f.login_(t, false)
			second := f.refresh(t, first.Refresh)
			f.clock.Advance(tc.after)
			again, err := f.svc.Refresh(context.Background(), first.Refresh)
			if tc.want != "" {
				wantCode(t, err, tc.want)
				// The whole session ends: its current token too.
				_, err = f.svc.Refresh(context.Background(), second.Refresh)
				wantCode(t, err, auth.CodeInvalidRefreshToken)
				if !strings.Contains(f.logs.String(), `"event":"refresh.reuse_detected"`) {
					t.Errorf("no audit line for the reuse: %s", f.logs)
				}
				return
			}
			if err != nil {
				t.Fatalf("grace refresh: %v", err)
			}
			if again.Refresh != second.Refresh {
				t.Fatal("grace refresh returned a different successor")
			}
			if c := f.claims(t, again.Access); c.CustomerID != "42" {
				t.Fatalf("grace access token claims %+v", c)
			}
			// The successor still works, once.
			f.refresh(t, again.Refresh)
		})
	}
}

func TestAncestorIsReuseEvenWithinInterval(t *testing.T) {
	f := newFixture(t)
	a := f.login_(t, false)
	b := f.refresh(t, a.Refresh)
	c := f.refresh(t, b.Refresh)
	f.clock.Advance(time.Second)
	_, err := f.svc.Refresh(context.Background(), a.Refresh)
	wantCode(t, err, auth.CodeRefreshTokenReused)
	for _, rt := range []string{b.Refresh, c.Refresh} {
		_, err := f.svc.Refresh(context.Background(), rt)
		wantCode(t, err, auth.CodeInvalidRefreshToken)
	}
}

// TestConcurrentRefresh: N callers with the same token make one rotation and
// all receive the same successor.
func TestConcurrentRefresh(t *testing.T) {
	const n = 50
	f := newFixture(t)
	tok := f.login_(t, false)
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		got   = make([]auth.Tokens, n)
		errs  = make([]error, n)
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			got[i], errs[i] = f.svc.Refresh(context.Background(), tok.Refresh)
		}()
	}
	close(start)
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if got[i].Refresh != got[0].Refresh {
			t.Fatalf("caller %d got a different successor", i)
		}
		f.claims(t, got[i].Access)
	}
	s := f.session(t, tok.Refresh)
	if !bytes.Equal(s.PrevTokenHash, mustHash(t, f, tok.Refresh)) || !bytes.Equal(s.TokenHash, mustHash(t, f, got[0].Refresh)) {
		t.Fatal("the store did not rotate exactly once to the shared successor")
	}
	if n := strings.Count(f.logs.String(), `"event":"refresh"`); n != 1 {
		t.Fatalf("%d rotations logged, want 1", n)
	}
}

func TestRefreshRejects(t *testing.T) {
	f := newFixture(t)
	live := f.login_(t, false)
	sid := f.session(t, live.Refresh).ID

	otherCodec, _ := token.NewCodec([]byte("another server's secret, 32 bytes or more"))
	forged, _ := otherCodec.Issue(sid, t0, t0.Add(time.Hour))
	unknown, _ := f.codec.Issue("AAAAAAAAAAAAAAAAAAAAAA", t0, t0.Add(time.Hour))
	tamper := []byte(live.Refresh)
	tamper[40] ^= 1

	tests := []struct {
		name, token string
		want        auth.Code
	}{
		{"empty", "", auth.CodeBadUserInput},
		{"garbage", "not-a-token", auth.CodeInvalidRefreshToken},
		{"tampered", string(tamper), auth.CodeInvalidRefreshToken},
		{"access token instead", live.Access, auth.CodeInvalidRefreshToken},
		{"forged with the live session's id", forged.String(), auth.CodeInvalidRefreshToken},
		{"authentic but unknown session", unknown.String(), auth.CodeInvalidRefreshToken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := f.svc.Refresh(context.Background(), tc.token)
			wantCode(t, err, tc.want)
		})
	}
	// None of that touched the live session.
	if s := f.session(t, live.Refresh); !bytes.Equal(s.TokenHash, mustHash(t, f, live.Refresh)) || s.PrevTokenHash != nil {
		t.Fatal("a rejected refresh changed the live session")
	}
	f.refresh(t, live.Refresh)
}

func TestRevoke(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.login_(t, false)
	b := f.refresh(t, a.Refresh)
	other := f.login_(t, false)

	// Logging out with the predecessor ends the session: its successor stops too.
	if err := f.svc.Revoke(ctx, a.Refresh); err != nil {
		t.Fatal(err)
	}
	for _, rt := range []string{a.Refresh, b.Refresh} {
		_, err := f.svc.Refresh(ctx, rt)
		wantCode(t, err, auth.CodeInvalidRefreshToken)
	}
	// The same logout twice succeeds.
	if err := f.svc.Revoke(ctx, b.Refresh); err != nil {
		t.Fatalf("second logout: %v", err)
	}
	// Other sessions of the customer live on.
	f.refresh(t, other.Refresh)

	for name, rt := range map[string]string{"missing": "", "malformed": "xyz", "access token": a.Access} {
		wantCode(t, f.svc.Revoke(ctx, rt), auth.CodeBadUserInput)
		_ = name
	}
}

func TestLoginErrors(t *testing.T) {
	upstream := errors.New("dial tcp: connection refused")
	tests := []struct {
		name            string
		email, password string
		providerErr     error
		customerID      string
		want            auth.Code
	}{
		{"wrong password", email, "nope", nil, "42", auth.CodeInvalidCredentials},
		{"unknown email", "bob@example.com", password, nil, "42", auth.CodeInvalidCredentials},
		{"upstream down", email, password, upstream, "42", auth.CodeUpstreamUnavailable},
		{"upstream timeout", email, password, context.DeadlineExceeded, "42", auth.CodeUpstreamUnavailable},
		{"upstream returns no customer id", email, password, nil, "", auth.CodeUpstreamUnavailable},
		{"upstream returns a control character", email, password, nil, "4\x002", auth.CodeUpstreamUnavailable},
		{"empty email", "", password, nil, "42", auth.CodeBadUserInput},
		{"blank email", "   ", password, nil, "42", auth.CodeBadUserInput},
		{"email without @", "ada", password, nil, "42", auth.CodeBadUserInput},
		{"huge email", strings.Repeat("a", 100_000) + "@example.com", password, nil, "42", auth.CodeBadUserInput},
		{"invalid UTF-8 email", "ad\xffa@example.com", password, nil, "42", auth.CodeBadUserInput},
		{"null byte in email", "ada\x00@example.com", password, nil, "42", auth.CodeBadUserInput},
		{"empty password", email, "", nil, "42", auth.CodeBadUserInput},
		{"huge password", email, strings.Repeat("p", 1025), nil, "42", auth.CodeBadUserInput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.login.err, f.login.id.CustomerID = tc.providerErr, tc.customerID
			_, err := f.svc.Login(context.Background(), tc.email, tc.password, false)
			wantCode(t, err, tc.want)
			if tc.want == auth.CodeBadUserInput && f.login.calls != 0 {
				t.Error("bad input reached the login provider")
			}
			if e, _ := errors.AsType[*auth.Error](err); strings.Contains(e.Message(), tc.password) && tc.password != "" {
				t.Error("the message shown to clients contains the password")
			}
			if list, _ := f.store.ListByCustomer(context.Background(), "42"); len(list) != 0 {
				t.Error("a failed login stored a session")
			}
		})
	}
}

// failing is a store whose every call fails with err, or fails the test when
// err is nil (for paths that must not reach the store).
type failing struct {
	t   *testing.T
	err error
}

func (f failing) fail() error {
	if f.err == nil {
		f.t.Errorf("the store was called")
		return errors.New("unexpected store call")
	}
	return f.err
}
func (f failing) Create(context.Context, store.Session) error { return f.fail() }
func (f failing) Get(context.Context, string) (store.Session, error) {
	return store.Session{}, f.fail()
}
func (f failing) Rotate(context.Context, string, store.Rotation) (store.Session, error) {
	return store.Session{}, f.fail()
}
func (f failing) Extend(context.Context, string, time.Time) (store.Session, error) {
	return store.Session{}, f.fail()
}
func (f failing) Delete(context.Context, string) (store.Session, error) {
	return store.Session{}, f.fail()
}
func (f failing) ListByCustomer(context.Context, string) ([]store.Session, error) {
	return nil, f.fail()
}
func (f failing) DeleteByCustomer(context.Context, string) (int, error)    { return 0, f.fail() }
func (f failing) TrimByCustomer(context.Context, string, int) (int, error) { return 0, f.fail() }

func TestStoreFailures(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want auth.Code
	}{
		{"unavailable", store.ErrUnavailable, auth.CodeStoreUnavailable},
		{"deadline", context.DeadlineExceeded, auth.CodeStoreUnavailable},
		{"anything else", errors.New("disk on fire"), auth.CodeInternal},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			valid := f.login_(t, false).Refresh
			bad := failing{t: t, err: tc.err}
			svc := auth.New(auth.Options{Rules: rules, Provider: f.login, Sessions: bad, Customers: bad, Signer: f.signer, Codec: f.codec, Now: f.clock.Now})
			ctx := context.Background()
			_, err := svc.Login(ctx, email, password, false)
			wantCode(t, err, tc.want)
			_, err = svc.Refresh(ctx, valid)
			wantCode(t, err, tc.want)
			wantCode(t, svc.Revoke(ctx, valid), tc.want)
		})
	}
}

func TestDevToolsForbiddenOutsideDevelopment(t *testing.T) {
	f := newFixture(t)
	rt := f.login_(t, false).Refresh
	never := failing{t: t}
	svc := auth.New(auth.Options{Rules: rules, DevTools: false, Provider: f.login, Sessions: never, Customers: never, Signer: f.signer, Codec: f.codec})
	ctx := context.Background()
	calls := map[string]func() error{
		"getUserAuth":            func() error { _, err := svc.DevGetSession(ctx, "42", rt); return err },
		"getAllAuthItemsById":    func() error { _, err := svc.DevListSessions(ctx, "42"); return err },
		"updateUserAuth":         func() error { _, err := svc.DevExtendSession(ctx, "42", rt); return err },
		"removeUserAuth":         func() error { _, err := svc.DevRemoveSession(ctx, "42", rt); return err },
		"removeAllUserAuthItems": func() error { _, err := svc.DevRemoveAllSessions(ctx, "42"); return err },
	}
	for name, call := range calls {
		t.Run(name, func(t *testing.T) { wantCode(t, call(), auth.CodeForbidden) })
	}
}

func TestDevTools(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.login_(t, false)
	b := f.login_(t, true)

	got, err := f.svc.DevGetSession(ctx, "42", a.Refresh)
	if err != nil || got == nil || got.CustomerID != "42" || got.TTL != strconv.FormatInt(t0.Add(15*time.Minute).Unix(), 10) {
		t.Fatalf("DevGetSession = %+v, %v", got, err)
	}
	if got, err := f.svc.DevGetSession(ctx, "someone-else", a.Refresh); err != nil || got != nil {
		t.Fatalf("DevGetSession for another customer = %+v, %v; want nil", got, err)
	}
	_, err = f.svc.DevGetSession(ctx, "", a.Refresh)
	wantCode(t, err, auth.CodeBadUserInput)
	_, err = f.svc.DevGetSession(ctx, "42", "junk")
	wantCode(t, err, auth.CodeBadUserInput)

	list, err := f.svc.DevListSessions(ctx, "42")
	if err != nil || len(list) != 2 {
		t.Fatalf("DevListSessions = %d, %v", len(list), err)
	}
	for _, s := range list {
		if strings.Contains(s.TokenHash, a.Refresh) || strings.Contains(s.TokenHash, b.Refresh) || len(s.TokenHash) != 64 {
			t.Fatalf("DevListSessions shows %q, want a hex hash", s.TokenHash)
		}
	}

	f.clock.Advance(10 * time.Minute)
	if ok, err := f.svc.DevExtendSession(ctx, "42", a.Refresh); err != nil || !ok {
		t.Fatalf("DevExtendSession = %v, %v", ok, err)
	}
	if s := f.session(t, a.Refresh); !s.ExpiresAt.Equal(t0.Add(25 * time.Minute)) {
		t.Fatalf("extended expiry %v, want login + 25m", s.ExpiresAt)
	}
	if ok, _ := f.svc.DevExtendSession(ctx, "someone-else", a.Refresh); ok {
		t.Fatal("DevExtendSession extended another customer's session")
	}

	removed, err := f.svc.DevRemoveSession(ctx, "42", a.Refresh)
	if err != nil || removed == nil || removed.CustomerID != "42" {
		t.Fatalf("DevRemoveSession = %+v, %v", removed, err)
	}
	if removed, err := f.svc.DevRemoveSession(ctx, "42", a.Refresh); err != nil || removed != nil {
		t.Fatalf("second DevRemoveSession = %+v, %v", removed, err)
	}
	_, err = f.svc.Refresh(ctx, a.Refresh)
	wantCode(t, err, auth.CodeInvalidRefreshToken)

	if n, err := f.svc.DevRemoveAllSessions(ctx, "42"); err != nil || n != 1 {
		t.Fatalf("DevRemoveAllSessions = %d, %v", n, err)
	}
	_, err = f.svc.Refresh(ctx, b.Refresh)
	wantCode(t, err, auth.CodeInvalidRefreshToken)
}

// TestNoSecretInLogs runs every flow and checks the log for the password,
// the tokens and the secrets.
func TestNoSecretInLogs(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	a := f.login_(t, true)
	b := f.refresh(t, a.Refresh)
	f.refresh(t, a.Refresh) // grace
	_, _ = f.svc.Login(ctx, email, "wrong "+password, false)
	f.clock.Advance(time.Minute)
	_, _ = f.svc.Refresh(ctx, a.Refresh) // reuse
	c := f.login_(t, false)
	_ = f.svc.Revoke(ctx, c.Refresh)
	f.login.err = errors.New("upstream said no")
	_, _ = f.svc.Login(ctx, email, password, false)

	logs := f.logs.String()
	for _, events := range []string{"login.succeeded", "login.failed", "refresh", "refresh.grace", "refresh.reuse_detected", "logout"} {
		if !strings.Contains(logs, `"event":"`+events+`"`) {
			t.Errorf("no %s audit event", events)
		}
	}
	for name, secret := range map[string]string{
		"password": password, "refresh token a": a.Refresh, "refresh token b": b.Refresh, "refresh token c": c.Refresh,
		"access token": a.Access, "access token signature": a.Access[strings.LastIndex(a.Access, ".")+1:],
		"refresh secret": string(refreshSecret), "jwt secret": string(jwtSecret),
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("the log contains the %s", name)
		}
	}
}
