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
	Auth *auth.Service
}

func customerToken(t auth.Tokens) *model.CustomerToken {
	return &model.CustomerToken{
		Token:                 &t.Access,
		RefreshToken:          &t.Refresh,
		TokenExpiresAt:        ptr(t.AccessExpiresAt.UTC().Format(time.RFC3339)),
		RefreshTokenExpiresAt: ptr(t.RefreshExpiresAt.UTC().Format(time.RFC3339)),
	}
}

func authUser(s auth.StoredSession) *model.GetAuthUser {
	return &model.GetAuthUser{CustomerID: &s.CustomerID, RefreshTokenHash: &s.TokenHash, TTL: &s.TTL}
}

func ptr[T any](v T) *T { return &v }

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
