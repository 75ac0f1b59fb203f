// Package graph is the GraphQL layer: gqlgen's generated executor, thin
// resolvers that call the auth service, and the one error presenter.
package graph

//go:generate go tool gqlgen generate

import (
	"time"

	"github.com/meshauth/meshauth/graph/model"
	"github.com/meshauth/meshauth/internal/auth"
)

// Resolver holds the dependencies of the GraphQL resolvers.
type Resolver struct {
	auth   *auth.Service
	cookie refreshCookie
}

func customerToken(t auth.Tokens) *model.CustomerToken {
	return &model.CustomerToken{
		Token:                 &t.Access,
		RefreshToken:          &t.Refresh,
		TokenExpiresAt:        ptr(rfc3339(t.AccessExpiresAt)),
		RefreshTokenExpiresAt: ptr(rfc3339(t.RefreshExpiresAt)),
	}
}

func authUser(s auth.StoredSession) *model.GetAuthUser {
	return &model.GetAuthUser{CustomerID: &s.CustomerID, RefreshTokenHash: &s.TokenHash, TTL: &s.TTL}
}

func customerSessions(list []auth.SessionInfo) []*model.CustomerSession {
	out := make([]*model.CustomerSession, len(list))
	for i, s := range list {
		out[i] = &model.CustomerSession{
			ID: s.ID, CreatedAt: rfc3339(s.CreatedAt), LastRefreshedAt: rfc3339(s.RefreshedAt), ExpiresAt: rfc3339(s.ExpiresAt),
			RememberMe: s.RememberMe, Current: s.Current, UserAgent: optional(s.UserAgent), IP: optional(s.IP),
		}
	}
	return out
}

func rfc3339(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
