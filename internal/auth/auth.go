// Package auth is the customer-session domain: login, refresh with rotation,
// grace and reuse detection, revoke, and the development-only session tools.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/meshauth/meshauth/internal/legacy"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/token"
)

// Input bounds. Longer values are refused before any work is done.
const (
	maxEmailLen      = 320 // RFC 3696 erratum 1690: 64 + 1 + 255
	maxPasswordLen   = 1024
	maxCustomerIDLen = 256
)

// Rules are the session lifetimes.
type Rules struct {
	// AccessTTL is an access token's lifetime.
	AccessTTL time.Duration
	// IdleTTL is how long a session lives without a refresh, and the shortest
	// life a refresh leaves it (NON_EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES).
	IdleTTL time.Duration
	// RememberTTL is a remember_me session's life from login
	// (EXTEND_REFRESH_TOKEN_EXPIRY_IN_MINUTES).
	RememberTTL time.Duration
	// MaxLifetime caps a session's total life; 0 means no cap.
	MaxLifetime time.Duration
	// ReuseInterval is the grace during which the immediate predecessor of the
	// current refresh token still receives the current pair.
	ReuseInterval time.Duration
	// MaxSessions caps a customer's sessions: a login beyond it ends the
	// least recently refreshed ones (MAX_SESSIONS_PER_CUSTOMER); 0 is no cap.
	MaxSessions int
}

// Options are a Service's dependencies.
type Options struct {
	Rules Rules
	// DevTools enables the development-only operations (APP_ENV=development).
	DevTools bool
	// Provider checks credentials.
	Provider login.Service
	Sessions store.Sessions
	// Customers serves the session lists and the development-only
	// operations, and caps each customer's sessions.
	Customers store.Customers
	Signer    *token.Signer
	Codec     *token.Codec
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Log receives audit events and the causes of internal errors.
	Log *slog.Logger
	// AuditKey keys the email hashes in audit events, so that the events of
	// one address can be correlated without the log holding the address,
	// and the hashes that name login-limit counters.
	AuditKey []byte
	// IDTokens verifies ID tokens for Exchange; with Mapper nil, or this nil,
	// exchange is off.
	IDTokens IDTokenVerifier
	// Mapper names the customer of a verified external identity for
	// Exchange. It is a dependency of its own, not something read off
	// Provider, so that wrapping the provider (for metrics, say) cannot
	// silently turn exchange off.
	Mapper login.IdentityMapper
	// Legacy, when set, continues the sessions of the GraphQL Mesh auth
	// module meshauth replaces (LEGACY_DYNAMO_DB_AUTH_TABLE).
	Legacy *Legacy
	// Counters count login attempts for Limits; nil turns the limits off.
	Counters store.Counters
	Limits   Limits
}

// Service runs the session flows. It is safe for concurrent use.
type Service struct {
	o        Options
	verifier *token.Signer // Signer on the Service's clock
	limiter  *limiter      // this instance's view of the attempt counters
}

// New returns a Service.
func New(o Options) *Service {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{o: o, verifier: o.Signer.WithClock(o.Now), limiter: &limiter{}}
}

// Tokens is what login and refresh return.
type Tokens struct {
	Access           string
	AccessExpiresAt  time.Time
	Refresh          string
	RefreshExpiresAt time.Time
}

// Client describes the caller, as the HTTP layer saw it.
type Client struct {
	UserAgent string
	IP        string
}

type clientKey struct{}

// WithClient returns a context carrying the caller's description.
func WithClient(ctx context.Context, c Client) context.Context {
	return context.WithValue(ctx, clientKey{}, c)
}

func clientFrom(ctx context.Context) Client {
	c, _ := ctx.Value(clientKey{}).(Client)
	return c
}

// Login checks the credentials with the login provider and starts a session:
// one store write. remember chooses RememberTTL over IdleTTL.
func (s *Service) Login(ctx context.Context, email, password string, remember bool) (Tokens, error) {
	if err := validEmail(email); err != nil {
		return Tokens{}, err
	}
	if password == "" || len(password) > maxPasswordLen {
		return Tokens{}, badInput("password must be 1 to 1024 bytes.")
	}
	emailHash := s.emailHash(email)
	now := s.o.Now()
	ip := clientFrom(ctx).IP
	ctx = login.WithClientIP(ctx, ip)
	att, err := s.beginAttempt(ctx, s.limitKeys(email, ip, now), now, emailHash)
	if err != nil {
		return Tokens{}, err
	}
	id, err := s.o.Provider.Login(ctx, email, password)
	if errors.Is(err, login.ErrInvalidCredentials) {
		att.failed(ctx)
		s.audit(ctx, "login.failed", slog.String("email_hash", emailHash), slog.String("reason", "invalid_credentials"))
		return Tokens{}, fail(CodeInvalidCredentials, nil)
	}
	att.done(ctx)
	if err != nil {
		s.audit(ctx, "login.failed", slog.String("email_hash", emailHash), slog.String("reason", "upstream_unavailable"))
		return Tokens{}, fail(CodeUpstreamUnavailable, fmt.Errorf("login provider: %w", err))
	}
	sess, rt, err := s.startSession(ctx, id, remember, now)
	if err != nil {
		return Tokens{}, err
	}
	s.audit(ctx, "login.succeeded", slog.String("customer_id", sess.CustomerID), slog.String("session_id", sess.ID),
		slog.String("email_hash", emailHash), slog.Bool("remember_me", remember))
	return s.tokens(sess, rt, now)
}

// startSession stores a new session for the identity a provider returned:
// one store write. An INACTIVE account gets ACCOUNT_INACTIVE and no session.
// The identity's role and status join its claims, over any claim of the
// same name.
func (s *Service) startSession(ctx context.Context, id login.Identity, remember bool, now time.Time) (store.Session, token.Refresh, error) {
	if err := validCustomerID(id.CustomerID); err != nil {
		return store.Session{}, token.Refresh{}, fail(CodeUpstreamUnavailable, fmt.Errorf("login provider: %w", err))
	}
	if id.Status == login.StatusInactive {
		s.audit(ctx, "login.refused", slog.String("customer_id", id.CustomerID), slog.String("reason", "account_inactive"))
		return store.Session{}, token.Refresh{}, fail(CodeAccountInactive, nil)
	}
	extra := maps.Clone(id.Claims)
	for name, v := range map[string]string{"role": id.Role, "status": id.Status} {
		if v != "" {
			if extra == nil {
				extra = map[string]any{}
			}
			extra[name] = v
		}
	}
	var claims json.RawMessage
	if len(extra) > 0 {
		var err error
		if claims, err = json.Marshal(extra); err != nil {
			return store.Session{}, token.Refresh{}, fail(CodeUpstreamUnavailable, fmt.Errorf("login provider claims: %w", err))
		}
	}
	ttl := s.o.Rules.IdleTTL
	if remember {
		ttl = s.o.Rules.RememberTTL
	}
	sid, err := token.NewSessionID()
	if err != nil {
		return store.Session{}, token.Refresh{}, fail(CodeInternal, err)
	}
	rt, err := s.o.Codec.Issue(sid, now, s.capped(now, now.Add(ttl)))
	if err != nil {
		return store.Session{}, token.Refresh{}, fail(CodeInternal, err)
	}
	c := clientFrom(ctx)
	sess := store.Session{
		ID:                sid,
		CustomerID:        id.CustomerID,
		NumericCustomerID: id.NumericID && login.IsNumericID(id.CustomerID),
		TokenHash:         s.o.Codec.Hash(rt),
		CreatedAt:         rt.Created,
		RefreshedAt:       now,
		ExpiresAt:         rt.Expires,
		RememberMe:        remember,
		Claims:            claims,
		UserAgent:         truncate(c.UserAgent, 512),
		IP:                c.IP,
	}
	if err := s.o.Sessions.Create(ctx, sess); err != nil {
		return store.Session{}, token.Refresh{}, s.storeFailure("create session", err)
	}
	s.capSessions(ctx, sess)
	return sess, rt, nil
}

// capSessions ends the customer's least recently refreshed sessions beyond
// Rules.MaxSessions, so that logins cannot pile up sessions without end. A
// failure is logged, not returned: the login itself succeeded.
func (s *Service) capSessions(ctx context.Context, sess store.Session) {
	if s.o.Rules.MaxSessions <= 0 || s.o.Customers == nil {
		return
	}
	n, err := s.o.Customers.TrimByCustomer(ctx, sess.CustomerID, s.o.Rules.MaxSessions)
	if err != nil {
		s.o.Log.LogAttrs(ctx, slog.LevelWarn, "cap sessions", slog.String("customer_id", sess.CustomerID), slog.String("cause", err.Error()))
		return
	}
	if n > 0 {
		s.audit(ctx, "sessions.capped", slog.String("customer_id", sess.CustomerID), slog.Int("ended", n))
	}
}

// Refresh rotates the session that refreshToken belongs to and returns a new
// pair. The design (RFC 9700 section 4.14.2, refresh token rotation):
//
//   - The presented token authenticates itself (its tag) and names its
//     session, so a refresh starts with no read: it computes the successor
//     token (token.Codec.Next, deterministic given the predecessor) and the new
//     expiry max(token's expiry, now + IdleTTL), capped by MaxLifetime, and
//     makes ONE conditional write: "if the current hash is the presented one
//     and the session has not expired, make the successor current and the
//     presented one previous". That write is the only step that must be
//     atomic, and the store guarantees it (store.Sessions.Rotate).
//   - When the write loses, the store returns the session as it stands from
//     the same step. If the presented token is the immediate predecessor and
//     the rotation happened within ReuseInterval, this is a concurrent tab, a
//     server-side render or a retry after a lost response: the caller gets the
//     successor the winner stored (recomputed, and checked against the stored
//     hash) and a fresh access token. So N concurrent refreshes of one token
//     make one rotation and all receive the same successor.
//   - Otherwise the presented token is an ancestor, or a predecessor past the
//     interval: someone holds a token they should not. The session is deleted,
//     which ends the current token too, and the call fails with
//     REFRESH_TOKEN_REUSED.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Tokens, error) {
	if refreshToken == "" {
		return Tokens{}, badInput("refresh_token is required.")
	}
	now := s.o.Now()
	if s.o.Legacy != nil && legacy.LooksLegacy(refreshToken) {
		return s.refreshLegacy(ctx, refreshToken, now)
	}
	rt, err := s.o.Codec.Parse(refreshToken)
	if err != nil {
		return Tokens{}, fail(CodeInvalidRefreshToken, err)
	}
	return s.rotate(ctx, rt, now)
}

// rotate is the heart of Refresh, once rt is known to be a token of ours.
func (s *Service) rotate(ctx context.Context, rt token.Refresh, now time.Time) (Tokens, error) {
	presented := s.o.Codec.Hash(rt)
	next := s.o.Codec.Next(rt, s.capped(rt.Created, maxTime(rt.Expires, now.Add(s.o.Rules.IdleTTL))))
	sess, err := s.o.Sessions.Rotate(ctx, rt.SessionID, store.Rotation{
		From:      presented,
		To:        s.o.Codec.Hash(next),
		Now:       now,
		ExpiresAt: next.Expires,
	})
	switch {
	case err == nil:
		s.audit(ctx, "refresh", slog.String("customer_id", sess.CustomerID), slog.String("session_id", sess.ID))
		return s.tokens(sess, next, now)
	case errors.Is(err, store.ErrNotFound):
		return Tokens{}, fail(CodeInvalidRefreshToken, errors.New("session not found"))
	case !errors.Is(err, store.ErrConflict):
		return Tokens{}, s.storeFailure("rotate session", err)
	}
	return s.rotationLost(ctx, rt, presented, sess, now)
}

// rotationLost decides a refresh whose conditional write lost, from the
// session as it stands: the grace, reuse, or an ended session. (A function
// of its own, so that the common path's frame stays small.)
func (s *Service) rotationLost(ctx context.Context, rt token.Refresh, presented []byte, sess store.Session, now time.Time) (Tokens, error) {
	if sess.Expired(now) {
		return Tokens{}, fail(CodeSessionExpired, nil)
	}
	if hmac.Equal(sess.TokenHash, presented) {
		// The write lost although the token is current: the store and this
		// clock disagree about expiry. Never treat the current token as reuse.
		return Tokens{}, fail(CodeSessionExpired, errors.New("rotation of the current token refused"))
	}
	if hmac.Equal(sess.PrevTokenHash, presented) && now.Sub(sess.RotatedAt) <= s.o.Rules.ReuseInterval {
		current := s.o.Codec.Next(rt, sess.ExpiresAt)
		if !hmac.Equal(s.o.Codec.Hash(current), sess.TokenHash) {
			// The session's expiry was changed without a rotation (a development
			// tool did it): the successor cannot be recomputed, so the caller
			// must log in again, but nothing was stolen.
			return Tokens{}, fail(CodeInvalidRefreshToken, errors.New("successor cannot be recomputed"))
		}
		s.audit(ctx, "refresh.grace", slog.String("customer_id", sess.CustomerID), slog.String("session_id", sess.ID))
		return s.tokens(sess, current, now)
	}
	if _, err := s.o.Sessions.Delete(ctx, sess.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return Tokens{}, s.storeFailure("revoke reused session", err)
	}
	s.o.Log.LogAttrs(ctx, slog.LevelWarn, "audit", slog.String("event", "refresh.reuse_detected"),
		slog.String("customer_id", sess.CustomerID), slog.String("session_id", sess.ID), slog.String("ip", clientFrom(ctx).IP))
	return Tokens{}, fail(CodeRefreshTokenReused, nil)
}

// Revoke ends the session refreshToken belongs to: one write. Ending a session
// that has already ended succeeds.
func (s *Service) Revoke(ctx context.Context, refreshToken string) error {
	if refreshToken == "" {
		return badInput("refresh_token is required.")
	}
	if s.o.Legacy != nil && legacy.LooksLegacy(refreshToken) {
		return s.revokeLegacy(ctx, refreshToken)
	}
	rt, err := s.o.Codec.Parse(refreshToken)
	if err != nil {
		return &Error{Code: CodeBadUserInput, Detail: "refresh_token is malformed.", Cause: err}
	}
	sess, err := s.o.Sessions.Delete(ctx, rt.SessionID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil
	case err != nil:
		return s.storeFailure("delete session", err)
	}
	s.audit(ctx, "logout", slog.String("customer_id", sess.CustomerID), slog.String("session_id", sess.ID))
	return nil
}

// tokens mints an access token for sess and pairs it with rt. The access
// token never outlives the session.
func (s *Service) tokens(sess store.Session, rt token.Refresh, now time.Time) (Tokens, error) {
	var extra map[string]any
	if len(sess.Claims) > 0 {
		if err := json.Unmarshal(sess.Claims, &extra); err != nil {
			return Tokens{}, fail(CodeInternal, fmt.Errorf("decode session claims: %w", err))
		}
	}
	exp := now.Add(s.o.Rules.AccessTTL)
	if sess.ExpiresAt.Before(exp) {
		exp = sess.ExpiresAt
	}
	access, err := s.o.Signer.Sign(token.Claims{
		CustomerID:        sess.CustomerID,
		NumericCustomerID: sess.NumericCustomerID,
		SessionID:         sess.ID,
		RefreshExpiry:     rt.Expires,
		IssuedAt:          now,
		Expires:           exp,
		Extra:             extra,
	})
	if err != nil {
		return Tokens{}, fail(CodeInternal, fmt.Errorf("sign access token: %w", err))
	}
	return Tokens{Access: access, AccessExpiresAt: exp.Truncate(time.Second), Refresh: rt.String(), RefreshExpiresAt: rt.Expires}, nil
}

// capped applies MaxLifetime to a session that started at created.
func (s *Service) capped(created, expires time.Time) time.Time {
	if s.o.Rules.MaxLifetime > 0 {
		if limit := created.Add(s.o.Rules.MaxLifetime); limit.Before(expires) {
			return limit
		}
	}
	return expires
}

func (s *Service) storeFailure(op string, err error) *Error {
	if errors.Is(err, store.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded) {
		return fail(CodeStoreUnavailable, fmt.Errorf("%s: %w", op, err))
	}
	return fail(CodeInternal, fmt.Errorf("%s: %w", op, err))
}

func (s *Service) audit(ctx context.Context, event string, attrs ...slog.Attr) {
	if !s.o.Log.Enabled(ctx, slog.LevelInfo) {
		return // before building the record: a refresh makes one
	}
	s.o.Log.LogAttrs(ctx, slog.LevelInfo, "audit", append([]slog.Attr{slog.String("event", event)}, attrs...)...)
}

// emailHash is the first 128 bits of HMAC-SHA256(AuditKey, normalized email), in hex.
func (s *Service) emailHash(email string) string {
	m := hmac.New(sha256.New, s.o.AuditKey)
	m.Write([]byte(login.NormalizeEmail(email)))
	return hex.EncodeToString(m.Sum(nil)[:16])
}

func validEmail(email string) error {
	switch {
	case strings.TrimSpace(email) == "":
		return badInput("email is required.")
	case len(email) > maxEmailLen:
		return badInput("email is too long.")
	case !printable(email) || !strings.Contains(email, "@"):
		return badInput("email is not an email address.")
	}
	return nil
}

func validCustomerID(id string) error {
	if id == "" || len(id) > maxCustomerIDLen || !printable(id) {
		return errors.New("customer id is empty, too long or not printable")
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// hashHex shows a stored hash in the development tools.
func hashHex(b []byte) string { return hex.EncodeToString(b) }
