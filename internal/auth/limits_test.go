package auth_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/store"
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

// TestConcurrentAttemptsCannotSlipPast: on one instance, of many concurrent
// wrong-password attempts exactly Max reach the platform, however they
// overlap.
func TestConcurrentAttemptsCannotSlipPast(t *testing.T) {
	f := newFixture(t, limited(auth.Limits{Account: []auth.Window{{Max: 5, Length: time.Hour}}}))
	f.login.delay = 20 * time.Millisecond // every attempt overlaps the others
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
	// At most Max; one fewer when a failure's count crosses a reservation.
	checked := count[auth.CodeInvalidCredentials]
	if checked < 4 || checked > 5 || count[auth.CodeRateLimited] != n-checked || f.login.calls != checked {
		t.Fatalf("codes %v, provider calls %d; want 4 or 5 checked and the rest limited", count, f.login.calls)
	}
}

// countingCounters counts the calls made to the store's counters.
type countingCounters struct {
	memory.Counters
	mu             sync.Mutex
	adds, reserves int
}

func (c *countingCounters) Add(ctx context.Context, l store.Limit, d int64) ([]int64, error) {
	c.mu.Lock()
	c.adds++
	c.mu.Unlock()
	return c.Counters.Add(ctx, l, d)
}

func (c *countingCounters) Reserve(ctx context.Context, l store.Limit) ([]int64, bool, error) {
	c.mu.Lock()
	c.reserves++
	c.mu.Unlock()
	return c.Counters.Reserve(ctx, l)
}

func (c *countingCounters) calls() (int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.adds, c.reserves
}

// TestSuccessfulLoginsCostNoCounterCall: with the limits on, a login that
// succeeds for an account and address without failures makes no counter
// call; a wrong password makes one Add per subject (account, address), which
// counts every window of it; the next attempt for that account reserves.
func TestSuccessfulLoginsCostNoCounterCall(t *testing.T) {
	c := &countingCounters{}
	limits := auth.Limits{Account: []auth.Window{{Max: 5, Length: time.Minute}, {Max: 20, Length: time.Hour}}, IP: []auth.Window{{Max: 20, Length: time.Minute}}}
	f := newFixture(t, func(o *auth.Options) { o.Counters, o.Limits = c, limits })
	for range 10 {
		if _, err := f.svc.Login(from("192.0.2.1"), email, password, false); err != nil {
			t.Fatal(err)
		}
	}
	if adds, reserves := c.calls(); adds+reserves != 0 {
		t.Fatalf("10 successful logins made %d adds and %d reservations", adds, reserves)
	}
	_, err := f.svc.Login(from("192.0.2.1"), email, "wrong", false)
	wantCode(t, err, auth.CodeInvalidCredentials)
	if adds, reserves := c.calls(); adds != 2 || reserves != 0 {
		t.Fatalf("a wrong password made %d adds and %d reservations; want one add per subject (2)", adds, reserves)
	}
	if _, err := f.svc.Login(from("192.0.2.1"), email, password, false); err != nil {
		t.Fatal(err)
	}
	// The account and address have a failure now: this attempt reserved
	// (2) and gave its reservations back (2 adds of -1).
	if adds, reserves := c.calls(); adds != 4 || reserves != 2 {
		t.Fatalf("after a failure a login made %d adds and %d reservations in all; want 4 and 2", adds, reserves)
	}
}

// TestTwoInstancesShareTheLimit: two instances sharing one store's counters,
// attacked at once: at most Max + 1 wrong passwords reach the platform
// (Max + K - 1 for K instances), and the rest are refused.
func TestTwoInstancesShareTheLimit(t *testing.T) {
	shared := &memory.Counters{}
	limits := auth.Limits{Account: []auth.Window{{Max: 5, Length: time.Hour}}}
	a := newFixture(t, func(o *auth.Options) { o.Counters, o.Limits = shared, limits })
	b := newFixture(t, func(o *auth.Options) { o.Counters, o.Limits = shared, limits })
	a.login.delay, b.login.delay = 20*time.Millisecond, 20*time.Millisecond
	const n = 60
	var wg sync.WaitGroup
	codes := make([]auth.Code, n)
	for i := range n {
		svc := a.svc
		if i%2 == 1 {
			svc = b.svc
		}
		wg.Go(func() {
			_, err := svc.Login(from("192.0.2.1"), email, "wrong", false)
			codes[i] = auth.CodeOf(err)
		})
	}
	wg.Wait()
	checked := a.login.calls + b.login.calls
	count := map[auth.Code]int{}
	for _, c := range codes {
		count[c]++
	}
	if checked > 5+1 || checked < 4 || count[auth.CodeInvalidCredentials] != checked || count[auth.CodeRateLimited] != n-checked {
		t.Fatalf("%d reached the platform (want 4 to 6), codes %v", checked, count)
	}
	// Both instances now refuse the account, right password or not.
	for _, f := range []*fixture{a, b} {
		_, err := f.svc.Login(from("198.51.100.1"), email, password, false)
		wantCode(t, err, auth.CodeRateLimited)
	}
}

// TestNestedWindows: the windows of one subject share one counter per
// longest window. When the minute moves on, the hour's failures still
// count: after 2 per minute and 3 per hour, the third minute is refused
// until the hour ends, and every wrong password was one Add.
func TestNestedWindows(t *testing.T) {
	c := &countingCounters{}
	limits := auth.Limits{Account: []auth.Window{{Max: 2, Length: time.Minute}, {Max: 3, Length: time.Hour}}}
	f := newFixture(t, func(o *auth.Options) { o.Counters, o.Limits = c, limits })
	f.clock.Advance(t0.Truncate(time.Hour).Add(time.Hour).Sub(t0)) // to the start of an hour
	for range 2 {
		_, err := f.svc.Login(from("192.0.2.1"), email, "wrong", false)
		wantCode(t, err, auth.CodeInvalidCredentials)
	}
	_, err := f.svc.Login(from("192.0.2.1"), email, "wrong", false)
	wantCode(t, err, auth.CodeRateLimited)
	if e, _ := errors.AsType[*auth.Error](err); e.RetryAfter != time.Minute {
		t.Fatalf("RetryAfter %v, want the minute's end (1m)", e.RetryAfter)
	}
	f.clock.Advance(time.Minute)
	_, err = f.svc.Login(from("192.0.2.1"), email, "wrong", false)
	wantCode(t, err, auth.CodeInvalidCredentials)
	_, err = f.svc.Login(from("192.0.2.1"), email, password, false)
	wantCode(t, err, auth.CodeRateLimited)
	if e, _ := errors.AsType[*auth.Error](err); e.RetryAfter != 59*time.Minute {
		t.Fatalf("RetryAfter %v, want the hour's end (59m)", e.RetryAfter)
	}
	if adds, reserves := c.calls(); adds+reserves != 3 {
		t.Fatalf("3 wrong passwords made %d adds and %d reservations; want 3 calls in all", adds, reserves)
	}
	f.clock.Advance(59 * time.Minute)
	if _, err := f.svc.Login(from("192.0.2.1"), email, password, false); err != nil {
		t.Fatalf("in the next hour: %v", err)
	}
}
