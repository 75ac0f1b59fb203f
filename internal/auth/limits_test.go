package auth_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/store/memory"
)

func limited(l auth.Limits) func(*auth.Options) {
	return func(o *auth.Options) { o.Counters, o.Limits = &memory.Counters{}, l }
}

func from(ip string) context.Context {
	return auth.WithClient(context.Background(), auth.Client{IP: ip})
}

func TestAccountLimit(t *testing.T) {
	f := newFixture(t, limited(auth.Limits{Account: []auth.Window{{Max: 5, Length: time.Minute}}}))
	for range 5 {
		_, err := f.svc.Login(from("192.0.2.1"), email, "wrong", false)
		wantCode(t, err, auth.CodeInvalidCredentials)
	}
	// Full: the right password, from another address, is refused too, without asking the platform.
	calls := f.login.calls
	_, err := f.svc.Login(from("198.51.100.7"), " ADA@example.com", password, false)
	wantCode(t, err, auth.CodeRateLimited)
	e, _ := errors.AsType[*auth.Error](err)
	if e.RetryAfter <= 0 || e.RetryAfter > time.Minute {
		t.Fatalf("RetryAfter %v, want within the minute window", e.RetryAfter)
	}
	if f.login.calls != calls {
		t.Fatal("a limited attempt reached the login provider")
	}
	// Another account is not limited.
	_, err = f.svc.Login(from("192.0.2.1"), "bob@example.com", "x", false)
	wantCode(t, err, auth.CodeInvalidCredentials)
	// The window ends by itself.
	f.clock.Advance(e.RetryAfter)
	if _, err := f.svc.Login(from("192.0.2.1"), email, password, false); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

// TestAccountLimitFoldsASCIIOnly: the account counter folds A-Z like every
// email lookup, so KATE is kate, and the Kelvin sign's Kate (U+212A), a
// different address, has a counter of its own.
func TestAccountLimitFoldsASCIIOnly(t *testing.T) {
	f := newFixture(t, limited(auth.Limits{Account: []auth.Window{{Max: 2, Length: time.Minute}}}))
	for range 2 {
		_, err := f.svc.Login(from("192.0.2.1"), "kate@example.com", "wrong", false)
		wantCode(t, err, auth.CodeInvalidCredentials)
	}
	_, err := f.svc.Login(from("192.0.2.1"), " KATE@Example.com", "wrong", false)
	wantCode(t, err, auth.CodeRateLimited)
	_, err = f.svc.Login(from("192.0.2.1"), "\u212Aate@example.com", "wrong", false)
	wantCode(t, err, auth.CodeInvalidCredentials)
}

func TestOnlyRejectedCredentialsUseUpTheLimit(t *testing.T) {
	f := newFixture(t, limited(auth.Limits{Account: []auth.Window{{Max: 2, Length: time.Minute}}, IP: []auth.Window{{Max: 2, Length: time.Minute}}}))
	for range 10 {
		f.login_(t, false)
	}
	f.login.err = errors.New("platform down")
	for range 10 {
		_, err := f.svc.Login(from("192.0.2.1"), email, password, false)
		wantCode(t, err, auth.CodeUpstreamUnavailable)
	}
	f.login.err = nil
	if _, err := f.svc.Login(from("192.0.2.1"), email, password, false); err != nil {
		t.Fatalf("after successes and an outage: %v", err)
	}
}

func TestIPLimit(t *testing.T) {
	f := newFixture(t, limited(auth.Limits{IP: []auth.Window{{Max: 3, Length: time.Minute}}}))
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		_, err := f.svc.Login(from("203.0.113.9"), e, "guess", false)
		wantCode(t, err, auth.CodeInvalidCredentials)
	}
	_, err := f.svc.Login(from("203.0.113.9"), email, password, false)
	wantCode(t, err, auth.CodeRateLimited)
	if _, err := f.svc.Login(from("203.0.113.10"), email, password, false); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// IPv6 addresses count by their /64.
	for range 3 {
		_, _ = f.svc.Login(from("2001:db8:1:2::1"), "d@example.com", "guess", false)
	}
	_, err = f.svc.Login(from("2001:db8:1:2:ffff::9"), email, password, false)
	wantCode(t, err, auth.CodeRateLimited)
	if _, err := f.svc.Login(from("2001:db8:1:3::1"), email, password, false); err != nil {
		t.Fatalf("another /64: %v", err)
	}
}

// TestGrowingWindows: a slow attack that respects the short window meets the long one.
func TestGrowingWindows(t *testing.T) {
	f := newFixture(t, limited(auth.Limits{Account: []auth.Window{{Max: 2, Length: time.Minute}, {Max: 3, Length: time.Hour}}}))
	fail := func() error { _, err := f.svc.Login(from("192.0.2.1"), email, "wrong", false); return err }
	wantCode(t, fail(), auth.CodeInvalidCredentials)
	wantCode(t, fail(), auth.CodeInvalidCredentials)
	short := fail()
	wantCode(t, short, auth.CodeRateLimited)
	if e, _ := errors.AsType[*auth.Error](short); e.RetryAfter > time.Minute {
		t.Fatalf("short window retry_after %v", e.RetryAfter)
	}
	f.clock.Advance(time.Minute)
	wantCode(t, fail(), auth.CodeInvalidCredentials)
	long := fail()
	wantCode(t, long, auth.CodeRateLimited)
	if e, _ := errors.AsType[*auth.Error](long); e.RetryAfter <= time.Minute {
		t.Fatalf("long window retry_after %v, want more than the short window", e.RetryAfter)
	}
}

// TestConcurrentAttemptsCannotSlipPast: attempts are counted before the
// credentials are checked, atomically.
func TestConcurrentAttemptsCannotSlipPast(t *testing.T) {
	f := newFixture(t, limited(auth.Limits{Account: []auth.Window{{Max: 5, Length: time.Hour}}}))
	const n = 50
	var wg sync.WaitGroup
	codes := make([]auth.Code, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := f.svc.Login(from("192.0.2.1"), email, "wrong", false)
			codes[i] = auth.CodeOf(err)
		}()
	}
	wg.Wait()
	count := map[auth.Code]int{}
	for _, c := range codes {
		count[c]++
	}
	if count[auth.CodeInvalidCredentials] != 5 || count[auth.CodeRateLimited] != n-5 || f.login.calls != 5 {
		t.Fatalf("codes %v, provider calls %d; want 5 checked and %d limited", count, f.login.calls, n-5)
	}
}
