package graph

import (
	"context"
	"slices"
	"testing"

	"github.com/99designs/gqlgen/graphql"
)

// TestRootFields: the combined middleware runs its middlewares, in order,
// for the fields of Query, Mutation and _Service only, and skips nil ones.
func TestRootFields(t *testing.T) {
	var calls []string
	mw := func(name string) graphql.FieldMiddleware {
		return func(ctx context.Context, next graphql.Resolver) (any, error) {
			calls = append(calls, name)
			return next(ctx)
		}
	}
	root := rootFields(mw("a"), nil, mw("b"))
	resolve := func(ctx context.Context) (any, error) { calls = append(calls, "resolver"); return nil, nil }
	for _, tc := range []struct {
		object string
		want   []string
	}{
		{"Query", []string{"a", "b", "resolver"}},
		{"Mutation", []string{"a", "b", "resolver"}},
		{"_Service", []string{"a", "b", "resolver"}},
		{"CustomerToken", []string{"resolver"}},
		{"Customer", []string{"resolver"}},
	} {
		calls = nil
		ctx := graphql.WithFieldContext(context.Background(), &graphql.FieldContext{Object: tc.object})
		if _, err := root(ctx, resolve); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(calls, tc.want) {
			t.Fatalf("%s: calls %v, want %v", tc.object, calls, tc.want)
		}
	}
}
