package graph

import (
	"context"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/introspection"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/meshauth/meshauth/internal/auth"
)

// devToolsSource is the schema file of the development-only operations.
const devToolsSource = "devtools.graphqls"

func publicSources(devTools bool) []*ast.Source {
	var out []*ast.Source
	for _, src := range sources {
		if devTools || !strings.HasSuffix(src.Name, devToolsSource) {
			out = append(out, src)
		}
	}
	return out
}

// productionSchema is the schema without the development-only operations,
// as introspection shows it outside development.
var productionSchema = sync.OnceValue(func() *ast.Schema {
	return gqlparser.MustLoadSchema(publicSources(false)...)
})

// SDL is the subgraph schema a federation gateway composes (_service { sdl }):
// the schema files, without the development-only one unless devTools.
func SDL(devTools bool) string {
	var parts []string
	for _, src := range publicSources(devTools) {
		if !src.BuiltIn {
			parts = append(parts, src.Input)
		}
	}
	return strings.Join(parts, "\n")
}

// PublicSchema is a field middleware that shows clients the schema they may
// use. Outside development the development-only operations and types are
// absent from introspection (__schema, __type) and from the federation SDL
// (_service { sdl }), so a gateway never composes them; a request that names
// them anyway reaches the service and is refused with FORBIDDEN. Introspection
// itself, where disabled, is refused with FORBIDDEN too.
func PublicSchema(devTools bool) graphql.FieldMiddleware {
	sdl := SDL(devTools)
	return func(ctx context.Context, next graphql.Resolver) (any, error) {
		fc := graphql.GetFieldContext(ctx)
		if fc == nil {
			return next(ctx)
		}
		switch {
		case fc.Object == "_Service" && fc.Field.Name == "sdl":
			return sdl, nil
		case fc.Object == "Query" && (fc.Field.Name == "__schema" || fc.Field.Name == "__type"):
			if graphql.GetOperationContext(ctx).DisableIntrospection {
				return nil, &auth.Error{Code: auth.CodeForbidden, Detail: "Introspection is disabled."}
			}
			if devTools {
				return next(ctx)
			}
			schema := productionSchema()
			if fc.Field.Name == "__schema" {
				return introspection.WrapSchema(schema), nil
			}
			name, _ := fc.Args["name"].(string)
			return introspection.WrapTypeFromDef(schema, schema.Types[name]), nil
		}
		return next(ctx)
	}
}

// FederationSDL lets gateways fetch _service { sdl } when introspection is
// off: an operation that selects nothing but _service and __typename at its
// root may run. Every other introspection stays refused.
type FederationSDL struct{}

var _ graphql.OperationContextMutator = FederationSDL{}

// ExtensionName implements graphql.HandlerExtension.
func (FederationSDL) ExtensionName() string { return "FederationSDL" }

// Validate implements graphql.HandlerExtension.
func (FederationSDL) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext implements graphql.OperationContextMutator.
func (FederationSDL) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil || rc.Operation.Operation != ast.Query {
		return nil
	}
	for _, sel := range rc.Operation.SelectionSet {
		f, ok := sel.(*ast.Field)
		if !ok || (f.Name != "_service" && f.Name != "__typename") {
			return nil
		}
	}
	rc.DisableIntrospection = false
	return nil
}
