package auth

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/token"
)

type authorizationKey struct{}

// WithAuthorization returns a context carrying the request's Authorization
// header. It is verified only by the operations that need an access token;
// refresh and revoke never read it.
func WithAuthorization(ctx context.Context, header string) context.Context {
	if header == "" {
		return ctx
	}
	return context.WithValue(ctx, authorizationKey{}, header)
}

// Principal is the customer and session an access token names.
type Principal struct {
	CustomerID string
	SessionID  string
}

// Authenticate verifies the request's bearer access token (RFC 6750): the
// configured algorithm only, issuer, audience, expiry with at most 60 s of
// skew. Anything else is UNAUTHENTICATED.
func (s *Service) Authenticate(ctx context.Context) (Principal, error) {
	c, err := s.bearer(ctx)
	if err != nil {
		return Principal{}, err
	}
	return Principal{CustomerID: c.CustomerID, SessionID: c.SessionID}, nil
}

// bearer verifies the request's Authorization: Bearer access token.
func (s *Service) bearer(ctx context.Context) (token.Claims, error) {
	header, _ := ctx.Value(authorizationKey{}).(string)
	scheme, raw, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || raw == "" {
		return token.Claims{}, fail(CodeUnauthenticated, nil)
	}
	c, err := s.verifier.Verify(strings.TrimSpace(raw))
	if err != nil || c.SessionID == "" {
		return token.Claims{}, fail(CodeUnauthenticated, err)
	}
	return c, nil
}

// SessionInfo is a session as its customer sees it.
type SessionInfo struct {
	ID          string
	CreatedAt   time.Time
	RefreshedAt time.Time
	ExpiresAt   time.Time
	RememberMe  bool
	Current     bool
	UserAgent   string
	IP          string
}

// liveSessions returns the unexpired sessions of p's customer, newest first,
// and UNAUTHENTICATED when p's own session is not among them: an access token
// of a session that has ended cannot manage the others.
func (s *Service) liveSessions(ctx context.Context, p Principal) ([]store.Session, error) {
	all, err := s.o.Customers.ListByCustomer(ctx, p.CustomerID)
	if err != nil {
		return nil, s.storeFailure("list sessions", err)
	}
	now := s.o.Now()
	live := all[:0]
	current := false
	for _, sess := range all {
		if !sess.Expired(now) {
			live = append(live, sess)
			current = current || sess.ID == p.SessionID
		}
	}
	if !current {
		return nil, fail(CodeUnauthenticated, errors.New("the access token's session has ended"))
	}
	sort.Slice(live, func(i, j int) bool { return live[i].CreatedAt.After(live[j].CreatedAt) })
	return live, nil
}

// CustomerSessions lists the live sessions of the customer the request's
// access token names.
func (s *Service) CustomerSessions(ctx context.Context) ([]SessionInfo, error) {
	p, err := s.Authenticate(ctx)
	if err != nil {
		return nil, err
	}
	return s.sessionsOf(ctx, p)
}

// SessionsOf lists the live sessions of customerID, but only when the
// request's access token names that customer; for any other customer, and
// without a valid token, it returns none. It serves the federated Customer
// entity, which other subgraphs resolve by id.
func (s *Service) SessionsOf(ctx context.Context, customerID string) ([]SessionInfo, error) {
	p, err := s.Authenticate(ctx)
	if err != nil || p.CustomerID != customerID {
		return nil, nil
	}
	list, err := s.sessionsOf(ctx, p)
	if CodeOf(err) == CodeUnauthenticated {
		return nil, nil
	}
	return list, err
}

func (s *Service) sessionsOf(ctx context.Context, p Principal) ([]SessionInfo, error) {
	live, err := s.liveSessions(ctx, p)
	if err != nil {
		return nil, err
	}
	out := make([]SessionInfo, len(live))
	for i, sess := range live {
		out[i] = SessionInfo{
			ID: sess.ID, CreatedAt: sess.CreatedAt, RefreshedAt: sess.RefreshedAt, ExpiresAt: sess.ExpiresAt,
			RememberMe: sess.RememberMe, Current: sess.ID == p.SessionID, UserAgent: sess.UserAgent, IP: sess.IP,
		}
	}
	return out, nil
}

// Scope says which sessions RevokeSessions ends.
type Scope int

// Scopes of RevokeSessions.
const (
	ScopeOthers Scope = iota // every session but the access token's own
	ScopeAll                 // every session
)

// RevokeSessions ends sessions of the customer the request's access token
// names and returns how many ended.
func (s *Service) RevokeSessions(ctx context.Context, scope Scope) (int, error) {
	p, err := s.Authenticate(ctx)
	if err != nil {
		return 0, err
	}
	live, err := s.liveSessions(ctx, p)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, sess := range live {
		if scope == ScopeOthers && sess.ID == p.SessionID {
			continue
		}
		if _, err := s.o.Sessions.Delete(ctx, sess.ID); errors.Is(err, store.ErrNotFound) {
			continue
		} else if err != nil {
			return n, s.storeFailure("revoke sessions", err)
		}
		n++
	}
	s.audit(ctx, "sessions.revoked", slog.String("customer_id", p.CustomerID), slog.String("session_id", p.SessionID), slog.Int("count", n),
		slog.String("scope", map[Scope]string{ScopeOthers: "others", ScopeAll: "all"}[scope]))
	return n, nil
}

// RevokeSession ends the session id of the customer the request's access
// token names. It reports false when that customer has no such session.
func (s *Service) RevokeSession(ctx context.Context, id string) (bool, error) {
	p, err := s.Authenticate(ctx)
	if err != nil {
		return false, err
	}
	live, err := s.liveSessions(ctx, p)
	if err != nil {
		return false, err
	}
	if !slices.ContainsFunc(live, func(sess store.Session) bool { return sess.ID == id }) {
		return false, nil
	}
	if _, err := s.o.Sessions.Delete(ctx, id); errors.Is(err, store.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, s.storeFailure("revoke session", err)
	}
	s.audit(ctx, "sessions.revoked", slog.String("customer_id", p.CustomerID), slog.String("session_id", id), slog.Int("count", 1))
	return true, nil
}

// Identity is who the request's access token names, as whoami shows it.
type Identity struct {
	CustomerID string
	Role       string
	Status     string
	SessionID  string
	ExpiresAt  time.Time
}

// Whoami returns the identity of the request's access token, or
// UNAUTHENTICATED. It reads no store: it is what a gateway or proxy that
// cannot verify a token itself calls on every request.
func (s *Service) Whoami(ctx context.Context) (Identity, error) {
	c, err := s.bearer(ctx)
	if err != nil {
		return Identity{}, err
	}
	role, _ := c.Extra["role"].(string)
	status, _ := c.Extra["status"].(string)
	return Identity{CustomerID: c.CustomerID, Role: role, Status: status, SessionID: c.SessionID, ExpiresAt: c.Expires}, nil
}
