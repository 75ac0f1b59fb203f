package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/store"
)

// Window allows Max failed logins per Length.
type Window struct {
	Max    int64
	Length time.Duration
}

// Limits bound failed logins per account (normalized email) and per client
// address, counted apart, each in fixed windows of several lengths: a burst
// meets the short window, a slow and steady attack the long one. Every
// window ends by itself, so no one can lock a customer out for longer than
// the longest window, and an attacker spreading over addresses still meets
// the account's windows. Only rejected credentials use up a limit; an
// upstream outage does not.
type Limits struct {
	Account []Window
	IP      []Window
}

type limitKey struct {
	store.Limit
	scope string
}

// limitKeys are the counters a login attempt is held to at now. Keys hold
// keyed hashes, not the email or address, and name their window.
func (s *Service) limitKeys(email, ip string, now time.Time) []limitKey {
	var keys []limitKey
	add := func(scope, subject string, windows []Window) {
		if subject == "" {
			return
		}
		m := hmac.New(sha256.New, s.o.AuditKey)
		m.Write([]byte(scope + "\x00" + subject))
		h := hex.EncodeToString(m.Sum(nil)[:16])
		for _, w := range windows {
			if w.Max <= 0 || w.Length <= 0 {
				continue
			}
			n := now.UnixNano() / int64(w.Length)
			keys = append(keys, limitKey{scope: scope, Limit: store.Limit{
				Key:       "login:" + scope + ":" + h + ":" + strconv.FormatInt(int64(w.Length/time.Second), 10) + ":" + strconv.FormatInt(n, 10),
				Max:       w.Max,
				ExpiresAt: time.Unix(0, (n+1)*int64(w.Length)),
			}})
		}
	}
	add("account", login.NormalizeEmail(email), s.o.Limits.Account)
	add("ip", ipPrefix(ip), s.o.Limits.IP)
	return keys
}

// The attempt limits count failures, not attempts, and cost a login that
// succeeds no store call at all. Each instance keeps, per counter it has
// seen, the shared count as the store last reported it and its own attempts
// in flight:
//
//   - a counter known to be full refuses the attempt (RATE_LIMITED) with no
//     store call;
//   - a counter this instance knows no failure of, with none of its attempts
//     in flight, admits the attempt with no store call ("free");
//   - otherwise (a failure was seen, or another attempt is under way) the
//     attempt reserves a place in the shared counter with one conditional
//     single-item update (store.Counters.Reserve), atomic across instances,
//     leaving room for this instance's free attempt if one is in flight.
//
// A rejected password then counts: a free attempt adds one to each counter
// (store.Counters.Add, single-item, in parallel) and learns the shared
// count from the answer; a reserved one is counted already. Any other
// outcome gives reservations back. So of N concurrent wrong-password
// attempts for one account (or address) across K instances sharing the
// store, at most Max + K - 1 reach the platform in a window: each instance
// admits at most one free attempt at a time, which the others cannot see,
// and every other attempt holds a reservation. On one instance that is Max.
// The bound errs on the safe side: while a free attempt's failure is being
// added, the others still leave room for it, so a burst may be held to one
// fewer.

// limiter is this instance's view of the attempt counters.
type limiter struct {
	mu    sync.Mutex
	keys  map[string]*seen
	calls int
}

// seen is what this instance knows of one counter.
type seen struct {
	known    int64 // the shared count as last reported
	inflight int   // this instance's attempts in flight
	free     bool  // one of them was admitted free
	exp      time.Time
}

// admission is how an attempt passed one counter.
type admission int

const (
	free admission = iota
	reserved
)

// attempt is one login attempt held to its counters; it ends with failed
// or done.
type attempt struct {
	s     *Service
	keys  []limitKey
	modes []admission
}

// beginAttempt admits a login attempt or refuses it with RATE_LIMITED and
// the time until the last full window ends.
func (s *Service) beginAttempt(ctx context.Context, keys []limitKey, now time.Time, emailHash string) (*attempt, error) {
	a := &attempt{s: s}
	if s.o.Counters == nil {
		return a, nil
	}
	var full []limitKey
	for _, k := range keys {
		mode, ok, err := s.admit(ctx, k)
		if err != nil {
			a.done(ctx)
			return nil, s.storeFailure("count login attempt", err)
		}
		if !ok {
			full = append(full, k)
			continue
		}
		a.keys, a.modes = append(a.keys, k), append(a.modes, mode)
	}
	if len(full) == 0 {
		return a, nil
	}
	a.done(ctx)
	var wait time.Duration
	scope := ""
	for _, k := range full {
		if d := k.ExpiresAt.Sub(now); d > wait {
			wait, scope = d, k.scope
		}
	}
	s.audit(ctx, "login.rate_limited", slog.String("email_hash", emailHash), slog.String("scope", scope), slog.String("ip", clientFrom(ctx).IP))
	return nil, &Error{Code: CodeRateLimited, RetryAfter: max(wait, time.Second)}
}

// admit passes one counter: free, reserved, or not at all (ok false).
func (s *Service) admit(ctx context.Context, k limitKey) (admission, bool, error) {
	l := s.limiter
	l.mu.Lock()
	e := l.entry(k)
	switch {
	case e.known >= k.Max:
		l.mu.Unlock()
		return 0, false, nil
	case e.known == 0 && e.inflight == 0:
		e.inflight++
		e.free = true
		l.mu.Unlock()
		return free, true, nil
	}
	e.inflight++
	lim := k.Limit
	if e.free {
		lim.Max-- // the free attempt in flight may yet fail
	}
	l.mu.Unlock()
	n, ok, err := s.o.Counters.Reserve(ctx, lim)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || !ok {
		e.inflight--
	}
	if err == nil {
		e.known = max(e.known, n)
	}
	return reserved, ok && err == nil, err
}

// failed counts the attempt's rejected credentials: free counters get one
// added, in parallel; reserved ones hold their count already. A client
// hanging up cannot skip the count.
func (a *attempt) failed(ctx context.Context) {
	a.finish(ctx, 1, free)
}

// done ends an attempt whose credentials were not rejected (accepted, or
// not checked: an outage): reservations are given back.
func (a *attempt) done(ctx context.Context) {
	a.finish(ctx, -1, reserved)
}

// finish adds delta to the counters admitted as mode, then lets every
// counter go.
func (a *attempt) finish(ctx context.Context, delta int64, mode admission) {
	if len(a.keys) == 0 {
		return
	}
	s, l := a.s, a.s.limiter
	ctx = context.WithoutCancel(ctx)
	counts := make([]int64, len(a.keys))
	var wg sync.WaitGroup
	for i, k := range a.keys {
		if a.modes[i] != mode {
			counts[i] = -1
			continue
		}
		wg.Go(func() {
			n, err := s.o.Counters.Add(ctx, k.Limit, delta)
			if err != nil {
				s.o.Log.LogAttrs(ctx, slog.LevelWarn, "login attempt not counted", slog.String("cause", err.Error()))
				n = -1
			}
			counts[i] = n
		})
	}
	wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, k := range a.keys {
		e := l.entry(k)
		e.inflight--
		if a.modes[i] == free {
			e.free = false
		}
		if counts[i] >= 0 {
			e.known = counts[i]
		}
		if e.known == 0 && e.inflight == 0 {
			delete(l.keys, k.Key) // nothing to remember: costs no memory
		}
	}
	a.keys = nil
}

// entry is this instance's knowledge of k, created empty. Now and then it
// drops what has ended. The caller holds mu.
func (l *limiter) entry(k limitKey) *seen {
	if l.keys == nil {
		l.keys = map[string]*seen{}
	}
	if l.calls++; l.calls%1024 == 0 {
		now := time.Now()
		for key, e := range l.keys {
			if e.inflight == 0 && !now.Before(e.exp) {
				delete(l.keys, key)
			}
		}
	}
	e, ok := l.keys[k.Key]
	if !ok {
		e = &seen{exp: k.ExpiresAt}
		l.keys[k.Key] = e
	}
	return e
}

// ipPrefix is the address a client is counted by: an IPv4 address, or the
// /64 network of an IPv6 one (one subscriber's allocation).
func ipPrefix(ip string) string {
	addr := net.ParseIP(ip)
	if addr == nil {
		return ip
	}
	if v4 := addr.To4(); v4 != nil {
		return v4.String()
	}
	return addr.Mask(net.CIDRMask(64, 128)).String() + "/64"
}
