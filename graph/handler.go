package graph

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"

	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/config"
)

// DefaultMaxTokens bounds a query's lexical tokens unless Options say
// otherwise: the full introspection query GraphiQL sends has about 250.
const DefaultMaxTokens = 2000

// Options configure the GraphQL handler.
type Options struct {
	Auth *auth.Service
	Log  *slog.Logger
	// Surface is which optional parts of the schema are served.
	Surface Surface
	// Introspection allows introspection queries.
	Introspection bool
	// Operations, when set, wraps every field (metrics, tracing).
	Operations graphql.FieldMiddleware
	// Limits bound the shape of operations.
	Limits Limits
	// MaxComplexity bounds an operation's complexity (1 per field); 0 is no bound.
	MaxComplexity int
	// MaxTokens bounds the lexical tokens of a query, checked while parsing,
	// before validation does work that grows faster than the document;
	// DefaultMaxTokens when 0.
	MaxTokens int
	// Cookie is the refresh-token cookie mode; off when zero.
	Cookie config.Cookie
}

// NewHandler returns the GraphQL endpoint over the real schema: transports
// (POST, GET, OPTIONS), introspection policy, limits, the error presenter and
// the query cache. The HTTP layer in front of it records the client with
// auth.WithClient and WithHTTP.
func NewHandler(o Options) http.Handler {
	h, _ := newHandler(o)
	return h
}

// newHandler is NewHandler, with its query cache for tests to inspect.
func newHandler(o Options) (http.Handler, *queryCache) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	exec := NewExecutableSchema(Config{Resolvers: &Resolver{auth: o.Auth, cookie: refreshCookie(o.Cookie)}})
	// Requests are validated against what the surface shows, the
	// development-only operations included (refused later, with FORBIDDEN).
	known := o.Surface
	known.DevTools = true
	srv := handler.New(validated{ExecutableSchema: exec, schema: known.Schema()})
	srv.AddTransport(requests{})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(unsupported{})
	if o.Introspection {
		srv.Use(extension.Introspection{})
	} else {
		srv.Use(FederationSDL{})
	}
	srv.AroundFields(rootFields(PublicSchema(o.Surface), o.Operations, boundEntities))
	maxTokens := o.MaxTokens
	if maxTokens <= 0 {
		maxTokens = DefaultMaxTokens
	}
	cache := newQueryCache(DefaultQueryCacheBytes)
	srv.SetParserTokenLimit(maxTokens)
	srv.Use(guard{limits: o.Limits, maxTokens: maxTokens, cache: cache, schema: known.Schema(), hidden: hiddenRootFields(o.Surface)})
	if o.MaxComplexity > 0 {
		srv.Use(extension.FixedComplexityLimit(o.MaxComplexity))
	}
	srv.Use(cacheCommit{cache}) // last: only a document that passed every check is cached
	srv.SetQueryCache(cache)
	// "Did you mean" suggestions only in development, where nothing is hidden.
	srv.SetDisableSuggestion(!o.Surface.DevTools)
	srv.SetErrorPresenter(ErrorPresenter(o.Log))
	srv.SetRecoverFunc(Recover(o.Log))
	return srv, cache
}

// rootFields runs the middlewares, in order, around the fields of Query,
// Mutation and _Service (the only ones they act on) and lets every other
// field straight through: gqlgen calls field middlewares for every field of
// an answer, and a refresh has five.
func rootFields(middlewares ...graphql.FieldMiddleware) graphql.FieldMiddleware {
	chain := func(ctx context.Context, next graphql.Resolver) (any, error) { return next(ctx) }
	for _, m := range slices.Backward(slices.DeleteFunc(middlewares, func(m graphql.FieldMiddleware) bool { return m == nil })) {
		inner := chain
		chain = func(ctx context.Context, next graphql.Resolver) (any, error) {
			return m(ctx, func(ctx context.Context) (any, error) { return inner(ctx, next) })
		}
	}
	return func(ctx context.Context, next graphql.Resolver) (any, error) {
		fc := graphql.GetFieldContext(ctx)
		if fc == nil || (fc.Object != "Query" && fc.Object != "Mutation" && fc.Object != "_Service") {
			return next(ctx)
		}
		return chain(ctx, next)
	}
}

// MaxRepresentations bounds the entity representations of one request
// (_entities, with FEDERATION_CUSTOMER_ENTITY=true). A gateway asks for the
// customers of one answer at once; a few dozen is a large page.
const MaxRepresentations = 100

// boundEntities refuses _entities with more than MaxRepresentations
// representations before any is resolved.
func boundEntities(ctx context.Context, next graphql.Resolver) (any, error) {
	fc := graphql.GetFieldContext(ctx)
	if fc != nil && fc.Object == "Query" && fc.Field.Name == "_entities" {
		if reps, _ := fc.Args["representations"].([]map[string]any); len(reps) > MaxRepresentations {
			return nil, &auth.Error{Code: auth.CodeBadUserInput, Detail: fmt.Sprintf("At most %d entity representations are allowed in one request.", MaxRepresentations)}
		}
	}
	return next(ctx)
}

// hiddenRootFields are the root fields requests are validated against
// (the development-only ones included) that s does not show.
func hiddenRootFields(s Surface) map[string]bool {
	all := Surface{DevTools: true, CustomerEntity: s.CustomerEntity}.Schema()
	shown := s.Schema()
	hidden := map[string]bool{}
	for _, root := range []string{"Query", "Mutation"} {
		for _, f := range all.Types[root].Fields {
			if shown.Types[root] == nil || shown.Types[root].Fields.ForName(f.Name) == nil {
				hidden[f.Name] = true
			}
		}
	}
	return hidden
}

// unsupported answers requests no other transport takes (a wrong method or
// content type) with a coded error instead of gqlgen's uncoded one.
type unsupported struct{}

func (unsupported) Supports(*http.Request) bool { return true }

func (unsupported) Do(w http.ResponseWriter, _ *http.Request, _ graphql.GraphExecutor) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusUnsupportedMediaType)
	_, _ = w.Write([]byte(`{"errors":[{"message":"Send GraphQL as POST with Content-Type: application/json, or as GET with a query parameter.","extensions":{"code":"BAD_USER_INPUT","category":"graphql-input"}}]}`))
}
