package graph

import (
	"log/slog"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

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
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	exec := NewExecutableSchema(Config{Resolvers: &Resolver{auth: o.Auth, cookie: refreshCookie(o.Cookie)}})
	// Requests are validated against what the surface shows, the
	// development-only operations included (refused later, with FORBIDDEN).
	known := o.Surface
	known.DevTools = true
	srv := handler.New(validated{ExecutableSchema: exec, schema: known.Schema()})
	srv.AddTransport(transport.POST{})
	srv.AddTransport(queriesOverGET{})
	srv.AddTransport(transport.Options{})
	srv.AddTransport(unsupported{})
	if o.Introspection {
		srv.Use(extension.Introspection{})
	} else {
		srv.Use(FederationSDL{})
	}
	srv.AroundFields(PublicSchema(o.Surface))
	if o.Operations != nil {
		srv.AroundFields(o.Operations)
	}
	maxTokens := o.MaxTokens
	if maxTokens <= 0 {
		maxTokens = DefaultMaxTokens
	}
	srv.SetParserTokenLimit(maxTokens)
	srv.Use(o.Limits)
	if o.MaxComplexity > 0 {
		srv.Use(extension.FixedComplexityLimit(o.MaxComplexity))
	}
	srv.SetErrorPresenter(ErrorPresenter(o.Log))
	srv.SetRecoverFunc(Recover(o.Log))
	srv.SetQueryCache(lru.New[*ast.QueryDocument](1000))
	return srv
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
