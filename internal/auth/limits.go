package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"slices"
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
//
// The windows of one subject nest: their lengths are distinct and each
// divides the longest (the configuration checks both), so a subject's
// counts in one longest window are one store item, each window under a name
// of its own, and counting a failure against all of its windows is one
// single-item update.
type Limits struct {
	Account []Window
	IP      []Window
}

// limitKey is one subject's counters for an attempt: the store's Limit
// and, for each window, when it ends (for retry_after).
type limitKey struct {
	store.Limit
	ends  []time.Time
	scope string
}

// limitKeys are the counters a login attempt is held to at now: at most
// one per subject. Keys hold keyed hashes, not the email or address, and
// name the longest window; the longest window's count is "n" within the
// key, a shorter one's "w<seconds>_<index>".
func (s *Service) limitKeys(email, ip string, now time.Time) []limitKey {
	var keys []limitKey
	add := func(scope, subject string, windows []Window) {
		if subject == "" {
			return
		}
		var longest time.Duration
		for _, w := range windows {
			if w.Max > 0 && w.Length > 0 {
				longest = max(longest, w.Length)
			}
		}
		if longest == 0 {
			return
		}
		m := hmac.New(sha256.New, s.o.AuditKey)
		m.Write([]byte(scope + "\x00" + subject))
		h := hex.EncodeToString(m.Sum(nil)[:16])
		n := now.UnixNano() / int64(longest)
		k := limitKey{scope: scope, Limit: store.Limit{
			Key:       "login:" + scope + ":" + h + ":" + strconv.FormatInt(int64(longest/time.Second), 10) + ":" + strconv.FormatInt(n, 10),
			ExpiresAt: time.Unix(0, (n+1)*int64(longest)),
		}}
		for _, w := range windows {
			if w.Max <= 0 || w.Length <= 0 {
				continue
			}
			i := now.UnixNano() / int64(w.Length)
			name := "n"
			if w.Length != longest {
				name = "w" + strconv.FormatInt(int64(w.Length/time.Second), 10) + "_" + strconv.FormatInt(i, 10)
			}
			k.Windows = append(k.Windows, store.Window{Name: name, Max: w.Max})
			k.ends = append(k.ends, time.Unix(0, (i+1)*int64(w.Length)))
		}
		keys = append(keys, k)
	}
	add("account", login.NormalizeEmail(email), s.o.Limits.Account)
	add("ip", ipPrefix(ip), s.o.Limits.IP)
	return keys
}

// The attempt limits count failures, not attempts, and cost a login that
// succeeds no store call at all. Each instance keeps, per subject's counter
// it has seen, the shared counts as the store last reported them and its
// own attempts in flight:
//
//   - a counter with a window known to be full refuses the attempt
//     (RATE_LIMITED) with no store call;
//   - a counter this instance knows no failure of, with none of its attempts
//     in flight, admits the attempt with no store call ("free");
//   - otherwise (a failure was seen, or another attempt is under way) the
//     attempt reserves a place in every window of the shared counter with
//     one conditional single-item update (store.Counters.Reserve), atomic
//     across instances, leaving room for this instance's free attempt if
//     one is in flight.
//
// A rejected password then counts: a free attempt adds one to every window
// of each subject's counter (store.Counters.Add: one single-item update per
// subject, the two in parallel) and learns the shared counts from the
// answer; a reserved one is counted already. Any other outcome gives
// reservations back. So of N concurrent wrong-password attempts for one
// account (or address) across K instances sharing the store, at most
// Max + K - 1 reach the platform in a window: each instance admits at most
// one free attempt at a time, which the others cannot see, and every other
// attempt holds a reservation. On one instance that is Max. The bound errs
// on the safe side: while a free attempt's failure is being added, the
// others still leave room for it, so a burst may be held to one fewer.

// limiter is this instance's view of the attempt counters.
type limiter struct {
	mu    sync.Mutex
	keys  map[string]*seen
	calls int
}

// seen is what this instance knows of one subject's counter.
type seen struct {
	names    []string // the windows known is about
	known    []int64  // the shared counts as last reported
	inflight int      // this instance's attempts in flight
	free     bool     // one of them was admitted free
	exp      time.Time
}

// update takes counts of k's windows as the store reported them. A window
// that has moved on since (a shorter window's next one) is left alone.
func (e *seen) update(k limitKey, counts []int64, raise bool) {
	for i, w := range k.Windows {
		if i >= len(counts) || e.names[i] != w.Name {
			continue
		}
		if raise {
			e.known[i] = max(e.known[i], counts[i])
		} else {
			e.known[i] = counts[i]
		}
	}
}

// zero reports whether no failure is known in any window.
func (e *seen) zero() bool {
	for _, n := range e.known {
		if n != 0 {
			return false
		}
	}
	return true
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
	var (
		wait  time.Duration
		scope string
	)
	for _, k := range keys {
		mode, full, err := s.admit(ctx, k)
		if err != nil {
			a.done(ctx)
			return nil, s.storeFailure("count login attempt", err)
		}
		if full < 0 {
			a.keys, a.modes = append(a.keys, k), append(a.modes, mode)
			continue
		}
		if d := k.ends[full].Sub(now); d > wait || scope == "" {
			wait, scope = d, k.scope
		}
	}
	if scope == "" {
		return a, nil
	}
	a.done(ctx)
	s.audit(ctx, "login.rate_limited", slog.String("email_hash", emailHash), slog.String("scope", scope), slog.String("ip", clientFrom(ctx).IP))
	return nil, &Error{Code: CodeRateLimited, RetryAfter: max(wait, time.Second)}
}

// admit passes one counter: free or reserved, with full -1; or not at all,
// with full the index of the window that is full (the longest such).
func (s *Service) admit(ctx context.Context, k limitKey) (mode admission, full int, err error) {
	l := s.limiter
	l.mu.Lock()
	e := l.entry(k)
	if i := fullWindow(k.Windows, k.ends, e.known); i >= 0 {
		l.mu.Unlock()
		return 0, i, nil
	}
	if e.zero() && e.inflight == 0 {
		e.inflight++
		e.free = true
		l.mu.Unlock()
		return free, -1, nil
	}
	e.inflight++
	lim := k.Limit
	if e.free {
		// The free attempt in flight may yet fail.
		lim.Windows = slices.Clone(lim.Windows)
		for i := range lim.Windows {
			lim.Windows[i].Max--
		}
	}
	l.mu.Unlock()
	counts, ok, err := s.o.Counters.Reserve(ctx, lim)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil || !ok {
		e.inflight--
	}
	if err != nil {
		return 0, -1, err
	}
	e.update(k, counts, true)
	if !ok {
		if i := fullWindow(lim.Windows, k.ends, counts); i >= 0 {
			return 0, i, nil
		}
		return 0, 0, nil // refused, so some window had no room
	}
	return reserved, -1, nil
}

// fullWindow is the index of the window of ws at or over its Max by counts
// that ends last, or -1.
func fullWindow(ws []store.Window, ends []time.Time, counts []int64) int {
	full := -1
	for i, w := range ws {
		if i < len(counts) && counts[i] >= w.Max && (full < 0 || ends[i].After(ends[full])) {
			full = i
		}
	}
	return full
}

// failed counts the attempt's rejected credentials: free counters get one
// added to every window, in parallel; reserved ones hold their count
// already. A client hanging up cannot skip the count.
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
	counts := make([][]int64, len(a.keys))
	var wg sync.WaitGroup
	for i, k := range a.keys {
		if a.modes[i] != mode {
			continue
		}
		wg.Go(func() {
			n, err := s.o.Counters.Add(ctx, k.Limit, delta)
			if err != nil {
				s.o.Log.LogAttrs(ctx, slog.LevelWarn, "login attempt not counted", slog.String("cause", err.Error()))
				return
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
		if counts[i] != nil {
			e.update(k, counts[i], false)
		}
		if e.zero() && e.inflight == 0 {
			delete(l.keys, k.Key) // nothing to remember: costs no memory
		}
	}
	a.keys = nil
}

// entry is this instance's knowledge of k, created empty, with the counts
// of windows that have moved on since it was last seen reset to zero. Now
// and then it drops what has ended. The caller holds mu.
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
	if len(e.names) != len(k.Windows) {
		e.names, e.known = make([]string, len(k.Windows)), make([]int64, len(k.Windows))
	}
	for i, w := range k.Windows {
		if e.names[i] != w.Name {
			e.names[i], e.known[i] = w.Name, 0
		}
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
