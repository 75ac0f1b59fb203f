package auth

import (
	"context"
	"errors"
	"log/slog"
	"strconv"

	"github.com/meshauth/meshauth/internal/store"
)

// StoredSession is a stored session as the development tools show it: the
// hash of its current refresh token, never a token.
type StoredSession struct {
	CustomerID string
	TokenHash  string
	// TTL is the session's end in unix seconds, as the original module showed it.
	TTL string
}

func view(s store.Session) StoredSession {
	return StoredSession{CustomerID: s.CustomerID, TokenHash: hashHex(s.TokenHash), TTL: strconv.FormatInt(s.ExpiresAt.Unix(), 10)}
}

// devTool refuses the development-only operations outside development,
// before any store access, and checks the customer id they all take.
func (s *Service) devTool(customerID string) error {
	if !s.o.DevTools {
		return fail(CodeForbidden, nil)
	}
	if customerID == "" {
		return badInput("user_id is required.")
	}
	return nil
}

// devSession finds the session of customerID that refreshToken belongs to.
// It returns store.ErrNotFound when there is none or it is someone else's.
func (s *Service) devSession(ctx context.Context, customerID, refreshToken string) (store.Session, error) {
	if err := s.devTool(customerID); err != nil {
		return store.Session{}, err
	}
	rt, err := s.o.Codec.Parse(refreshToken)
	if err != nil {
		return store.Session{}, &Error{Code: CodeBadUserInput, Detail: "refresh_token is missing or malformed.", Cause: err}
	}
	sess, err := s.o.Sessions.Get(ctx, rt.SessionID)
	if err != nil {
		return sess, err
	}
	if sess.CustomerID != customerID {
		return store.Session{}, store.ErrNotFound
	}
	return sess, nil
}

// DevGetSession returns the session of customerID that refreshToken belongs
// to, or nil. Development only.
func (s *Service) DevGetSession(ctx context.Context, customerID, refreshToken string) (*StoredSession, error) {
	sess, err := s.devSession(ctx, customerID, refreshToken)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, s.devFailure("get session", err)
	}
	v := view(sess)
	return &v, nil
}

// DevListSessions returns every stored session of customerID. Development only.
func (s *Service) DevListSessions(ctx context.Context, customerID string) ([]StoredSession, error) {
	if err := s.devTool(customerID); err != nil {
		return nil, err
	}
	list, err := s.o.Customers.ListByCustomer(ctx, customerID)
	if err != nil {
		return nil, s.storeFailure("list sessions", err)
	}
	out := make([]StoredSession, len(list))
	for i, sess := range list {
		out[i] = view(sess)
	}
	return out, nil
}

// DevExtendSession re-arms the expiry of the session of customerID that
// refreshToken belongs to, as a login would (remember_me or not), without
// rotating its token. It reports whether there was such a session.
// Development only.
func (s *Service) DevExtendSession(ctx context.Context, customerID, refreshToken string) (bool, error) {
	sess, err := s.devSession(ctx, customerID, refreshToken)
	if err == nil {
		ttl := s.o.Rules.IdleTTL
		if sess.RememberMe {
			ttl = s.o.Rules.RememberTTL
		}
		_, err = s.o.Sessions.Extend(ctx, sess.ID, s.capped(sess.CreatedAt, s.o.Now().Add(ttl)))
	}
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, s.devFailure("extend session", err)
	}
	return true, nil
}

// DevRemoveSession deletes the session of customerID that refreshToken
// belongs to and returns it as it was, or nil. Development only.
func (s *Service) DevRemoveSession(ctx context.Context, customerID, refreshToken string) (*StoredSession, error) {
	sess, err := s.devSession(ctx, customerID, refreshToken)
	if err == nil {
		sess, err = s.o.Sessions.Delete(ctx, sess.ID)
	}
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, s.devFailure("remove session", err)
	}
	s.audit(ctx, "sessions.revoked", slog.String("customer_id", customerID), slog.String("session_id", sess.ID), slog.String("by", "development tool"))
	v := view(sess)
	return &v, nil
}

// DevRemoveAllSessions deletes every session of customerID. Development only.
func (s *Service) DevRemoveAllSessions(ctx context.Context, customerID string) (int, error) {
	if err := s.devTool(customerID); err != nil {
		return 0, err
	}
	n, err := s.o.Customers.DeleteByCustomer(ctx, customerID)
	if err != nil {
		return n, s.storeFailure("remove sessions", err)
	}
	s.audit(ctx, "sessions.revoked", slog.String("customer_id", customerID), slog.Int("count", n), slog.String("by", "development tool"))
	return n, nil
}

func (s *Service) devFailure(op string, err error) error {
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	return s.storeFailure(op, err)
}
