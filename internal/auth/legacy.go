package auth

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/meshauth/meshauth/internal/legacy"
	"github.com/meshauth/meshauth/internal/store"
)

// Legacy continues the sessions of the GraphQL Mesh auth module meshauth
// replaces, so that no customer is logged out at the cutover.
type Legacy struct {
	// Verifier checks the module's token pairs with its JWT_PRIVATE_KEY.
	Verifier *legacy.Verifier
	// Rows is the module's table.
	Rows store.LegacySessions
}

// refreshLegacy turns a legacy session into a meshauth one. The module's
// client sends its refresh token with, as Bearer, the access token issued
// with it. In order, each step only for a pair that passed the one before:
//
//  1. the Bearer's HS256 signature (expiry ignored) and refresh_expiry:
//     cheap, so a forged pair costs nothing and leaves the row alone;
//  2. one attempt on the per-address login limit, counted as a failure
//     whatever the outcome, because the next step costs real CPU;
//  3. the refresh token derived from the Bearer's claims (PBKDF2), compared in
//     constant time, and the module's stored hash (PBKDF2 again);
//  4. the meshauth session the legacy token seeds (Codec.FromSeed: every
//     caller holding this token computes the same session id and first
//     token), created with the legacy session's end; only the caller that
//     created it consumes the legacy row, atomically, and a row already gone
//     undoes the creation;
//  5. an ordinary rotation of that first token. So concurrent refreshes of
//     one legacy token all get the same successor, and the legacy token
//     presented after the grace is reuse, as for any token of ours.
func (s *Service) refreshLegacy(ctx context.Context, refreshToken string, now time.Time) (Tokens, error) {
	c, seed, err := s.checkLegacy(ctx, refreshToken, now)
	if err != nil {
		return Tokens{}, err
	}
	first := s.o.Codec.FromSeed(seed, c.started(), c.SessionEnd)
	client := clientFrom(ctx)
	sess := store.Session{
		ID: first.SessionID, CustomerID: c.CustomerID, NumericCustomerID: c.NumericID,
		TokenHash: s.o.Codec.Hash(first), CreatedAt: first.Created, RefreshedAt: now, ExpiresAt: first.Expires,
		RememberMe: first.Expires.Sub(now) > s.o.Rules.IdleTTL, UserAgent: truncate(client.UserAgent, 512), IP: client.IP,
	}
	switch err := s.o.Sessions.Create(ctx, sess); {
	case errors.Is(err, store.ErrAlreadyExists):
		// Another refresh of this token started the session: rotate as it
		// would, which gives the grace or detects reuse.
	case err != nil:
		return Tokens{}, s.storeFailure("start migrated session", err)
	default:
		if err := s.o.Legacy.Rows.DeleteLegacy(ctx, c.CustomerID, c.hash); err != nil {
			if _, derr := s.o.Sessions.Delete(ctx, sess.ID); derr != nil && !errors.Is(derr, store.ErrNotFound) {
				return Tokens{}, s.storeFailure("undo migrated session", derr)
			}
			if errors.Is(err, store.ErrNotFound) {
				return Tokens{}, fail(CodeInvalidRefreshToken, errors.New("legacy session not found"))
			}
			return Tokens{}, s.storeFailure("consume legacy session", err)
		}
		s.audit(ctx, "legacy.migrated", slog.String("customer_id", c.CustomerID), slog.String("session_id", sess.ID))
		s.capSessions(ctx, sess)
	}
	return s.rotate(ctx, first, now)
}

// revokeLegacy ends a legacy session: its row, and the meshauth session it
// may already have become. Like Revoke, ending an ended session succeeds.
func (s *Service) revokeLegacy(ctx context.Context, refreshToken string) error {
	now := s.o.Now()
	c, seed, err := s.checkLegacy(ctx, refreshToken, now)
	if err != nil {
		return err
	}
	if err := s.o.Legacy.Rows.DeleteLegacy(ctx, c.CustomerID, c.hash); err != nil && !errors.Is(err, store.ErrNotFound) {
		return s.storeFailure("delete legacy session", err)
	}
	first := s.o.Codec.FromSeed(seed, c.started(), c.SessionEnd)
	if _, err := s.o.Sessions.Delete(ctx, first.SessionID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return s.storeFailure("delete migrated session", err)
	}
	s.audit(ctx, "logout", slog.String("customer_id", c.CustomerID), slog.String("session_id", first.SessionID), slog.Bool("legacy", true))
	return nil
}

// legacyClaims are a verified legacy pair's claims and the module's hash.
type legacyClaims struct {
	legacy.Claims
	hash string
}

// started is the seeded session's start: the legacy access token's iat, or
// its exp when it has none, so that every caller computes the same token.
func (c legacyClaims) started() time.Time {
	if !c.IssuedAt.IsZero() {
		return c.IssuedAt
	}
	return time.Unix(c.Expires, 0).UTC()
}

// checkLegacy runs steps 1 to 3 of refreshLegacy and returns the claims
// and the seed of the meshauth session.
func (s *Service) checkLegacy(ctx context.Context, refreshToken string, now time.Time) (legacyClaims, []byte, error) {
	header, _ := ctx.Value(authorizationKey{}).(string)
	scheme, bearer, _ := strings.Cut(header, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return legacyClaims{}, nil, fail(CodeInvalidRefreshToken, errors.New("legacy refresh token without its access token"))
	}
	c, err := s.o.Legacy.Verifier.Access(strings.TrimSpace(bearer), now)
	if err != nil {
		return legacyClaims{}, nil, fail(CodeInvalidRefreshToken, err)
	}
	att, err := s.beginAttempt(ctx, s.limitKeys("", clientFrom(ctx).IP, now), now, "")
	if err != nil {
		return legacyClaims{}, nil, err
	}
	// Every key derivation counts, whatever its outcome: it is the CPU an
	// attacker holding one signed access token could otherwise repeat.
	defer att.failed(ctx)
	hash, err := s.o.Legacy.Verifier.Refresh(c, refreshToken)
	if err != nil {
		s.audit(ctx, "legacy.refused", slog.String("reason", "token_mismatch"))
		return legacyClaims{}, nil, fail(CodeInvalidRefreshToken, err)
	}
	return legacyClaims{Claims: c, hash: hash}, []byte("legacy " + hash), nil
}
