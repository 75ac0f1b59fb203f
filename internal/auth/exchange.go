package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/oidc"
)

// Errors an IDTokenVerifier returns.
var (
	// ErrIDTokenInvalid: the ID token failed verification (signature,
	// issuer, audience, expiry...).
	ErrIDTokenInvalid = errors.New("invalid ID token")
	// ErrIDTokenEmailUnverified: the issuer has not verified the email and
	// verified emails are required.
	ErrIDTokenEmailUnverified = errors.New("ID token email not verified")
)

// IDTokenVerifier verifies an ID token from another issuer. It returns
// ErrIDTokenInvalid or ErrIDTokenEmailUnverified (wrapped or not) for a
// token to refuse, and any other error when it could not tell (the issuer's
// keys could not be fetched).
type IDTokenVerifier interface {
	Verify(ctx context.Context, idToken string) (login.External, error)
}

// maxIDTokenLen bounds an ID token; real ones are 1 to 2 KB.
const maxIDTokenLen = 16 << 10

// Exchange starts a session for a customer who signed in with another
// issuer (Google, Firebase Auth, any OIDC provider): it verifies idToken,
// asks the login provider which customer the verified identity is, and
// issues tokens exactly as a password login does. Failed exchanges use up
// the address's login limit like failed logins.
func (s *Service) Exchange(ctx context.Context, idToken string, remember bool) (Tokens, error) {
	if s.o.IDTokens == nil {
		return Tokens{}, &Error{Code: CodeForbidden, Detail: "Identity exchange is not configured."}
	}
	if s.o.Mapper == nil {
		return Tokens{}, &Error{Code: CodeForbidden, Detail: "The login provider cannot map external identities."}
	}
	if idToken == "" || len(idToken) > maxIDTokenLen {
		return Tokens{}, badInput("id_token must be 1 to 16384 bytes.")
	}
	now := s.o.Now()
	ip := clientFrom(ctx).IP
	ctx = login.WithClientIP(ctx, ip)
	att, err := s.beginAttempt(ctx, s.limitKeys("", ip, now), now, "")
	if err != nil {
		return Tokens{}, err
	}
	ext, err := s.o.IDTokens.Verify(ctx, idToken)
	switch {
	case errors.Is(err, ErrIDTokenEmailUnverified):
		att.failed(ctx)
		s.audit(ctx, "exchange.failed", slog.String("reason", "email_not_verified"))
		return Tokens{}, fail(CodeEmailNotVerified, err)
	case errors.Is(err, ErrIDTokenInvalid):
		att.failed(ctx)
		s.audit(ctx, "exchange.failed", slog.String("reason", "invalid_id_token"))
		return Tokens{}, fail(CodeInvalidIDToken, err)
	}
	att.done(ctx)
	if err != nil {
		return Tokens{}, fail(CodeUpstreamUnavailable, fmt.Errorf("ID token keys: %w", err))
	}
	id, err := s.o.Mapper.MapIdentity(ctx, ext)
	switch {
	case errors.Is(err, login.ErrUnknownCustomer):
		s.audit(ctx, "exchange.failed", slog.String("reason", "customer_not_registered"), slog.String("issuer", ext.Issuer))
		return Tokens{}, fail(CodeCustomerUnknown, nil)
	case err != nil:
		return Tokens{}, fail(CodeUpstreamUnavailable, fmt.Errorf("login provider: %w", err))
	}
	sess, rt, err := s.startSession(ctx, id, remember, now)
	if err != nil {
		return Tokens{}, err
	}
	s.audit(ctx, "exchange.succeeded", slog.String("customer_id", sess.CustomerID), slog.String("session_id", sess.ID),
		slog.String("issuer", ext.Issuer), slog.Bool("remember_me", remember))
	return s.tokens(sess, rt, now)
}

// OIDC adapts an oidc.Verifier to IDTokenVerifier.
func OIDC(v *oidc.Verifier) IDTokenVerifier { return oidcVerifier{v} }

type oidcVerifier struct{ v *oidc.Verifier }

func (o oidcVerifier) Verify(ctx context.Context, idToken string) (login.External, error) {
	id, err := o.v.Verify(ctx, idToken)
	switch {
	case errors.Is(err, oidc.ErrUnverifiedEmail):
		return login.External{}, fmt.Errorf("%w: %w", ErrIDTokenEmailUnverified, err)
	case errors.Is(err, oidc.ErrInvalidToken):
		return login.External{}, fmt.Errorf("%w: %w", ErrIDTokenInvalid, err)
	case err != nil:
		return login.External{}, err
	}
	return login.External{Issuer: id.Issuer, Subject: id.Subject, Email: id.Email, EmailVerified: id.EmailVerified}, nil
}
