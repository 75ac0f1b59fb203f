package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"net"
	"strconv"
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

// acquireAttempt counts a login attempt against every window before the
// credentials are checked, atomically (store.Counters.Acquire), so that
// concurrent attempts cannot slip past a limit together. When a window is
// full it returns RATE_LIMITED with the time until the last full window
// ends. The caller gives the attempt back (releaseAttempt) unless the
// credentials were rejected: only failed logins use up a limit.
func (s *Service) acquireAttempt(ctx context.Context, keys []limitKey, now time.Time, emailHash string) error {
	if s.o.Counters == nil || len(keys) == 0 {
		return nil
	}
	limits := make([]store.Limit, len(keys))
	for i, k := range keys {
		limits[i] = k.Limit
	}
	full, err := s.o.Counters.Acquire(ctx, limits)
	if err != nil {
		return s.storeFailure("count login attempt", err)
	}
	if len(full) == 0 {
		return nil
	}
	var wait time.Duration
	scope := ""
	for _, i := range full {
		if d := keys[i].ExpiresAt.Sub(now); d > wait {
			wait, scope = d, keys[i].scope
		}
	}
	s.audit(ctx, "login.rate_limited", slog.String("email_hash", emailHash), slog.String("scope", scope), slog.String("ip", clientFrom(ctx).IP))
	return &Error{Code: CodeRateLimited, RetryAfter: max(wait, time.Second)}
}

// releaseAttempt gives back an attempt that did not fail on its credentials.
func (s *Service) releaseAttempt(ctx context.Context, keys []limitKey) {
	if s.o.Counters == nil || len(keys) == 0 {
		return
	}
	limits := make([]store.Limit, len(keys))
	for i, k := range keys {
		limits[i] = k.Limit
	}
	if err := s.o.Counters.Release(context.WithoutCancel(ctx), limits); err != nil {
		s.o.Log.LogAttrs(ctx, slog.LevelWarn, "login attempt not released", slog.String("cause", err.Error()))
	}
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
