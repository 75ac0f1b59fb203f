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

// Schema files that not every deployment serves.
const (
	devToolsSource       = "devtools.graphqls"
	customerEntitySource = "customer-entity.graphqls"
	federationEntities   = "federation/entity.graphql"
)

// withoutEntities replaces gqlgen's federation entity source when the
// Customer entity is off: with no entity there is no _Entity union and no
// _entities field, only _service.
var withoutEntities = &ast.Source{Name: federationEntities, BuiltIn: true, Input: `
type _Service {
  sdl: String
}

extend type Query {
  _service: _Service!
}
`}

// Surface is which optional parts of the schema a deployment shows.
type Surface struct {
	// DevTools: the development-only operations (APP_ENV=development).
	DevTools bool
	// CustomerEntity: the federation Customer entity (FEDERATION_CUSTOMER_ENTITY).
	CustomerEntity bool
}

func (s Surface) sources() []*ast.Source {
	var out []*ast.Source
	for _, src := range sources {
		switch {
		case strings.HasSuffix(src.Name, devToolsSource) && !s.DevTools:
		case strings.HasSuffix(src.Name, customerEntitySource) && !s.CustomerEntity:
		case strings.HasSuffix(src.Name, federationEntities) && !s.CustomerEntity:
			out = append(out, withoutEntities)
		default:
			out = append(out, src)
		}
	}
	return out
}

// schemas are the parsed schemas of each surface, built once.
var schemas sync.Map // Surface -> *ast.Schema

// Schema returns the schema s shows: what introspection describes.
func (s Surface) Schema() *ast.Schema {
	if v, ok := schemas.Load(s); ok {
		return v.(*ast.Schema)
	}
	v, _ := schemas.LoadOrStore(s, gqlparser.MustLoadSchema(s.sources()...))
	return v.(*ast.Schema)
}

// SDL is the subgraph schema a federation gateway composes (_service { sdl }):
// the schema files s shows.
func (s Surface) SDL() string {
	var parts []string
	for _, src := range s.sources() {
		if !src.BuiltIn {
			parts = append(parts, src.Input)
		}
	}
	return strings.Join(parts, "\n")
}

// validated is the executable schema with requests validated against the
// schema of a surface: a field the surface does not show (the Customer
// entity and _entities when it is off) is refused as unknown, exactly as if
// it did not exist. The development-only operations stay known, so that
// outside development they are refused with FORBIDDEN (PublicSchema).
type validated struct {
	graphql.ExecutableSchema
	schema *ast.Schema
}

func (v validated) Schema() *ast.Schema { return v.schema }

// PublicSchema is a field middleware that shows clients the schema they may
// use. Introspection (__schema, __type) and the federation SDL (_service {
// sdl }) describe only what s shows, so a gateway never composes the rest;
// a development-only operation named outside development reaches the
// service and is refused with FORBIDDEN. Introspection itself, where
// disabled, is refused with FORBIDDEN too.
func PublicSchema(s Surface) graphql.FieldMiddleware {
	sdl := s.SDL()
	schema := s.Schema()
	return func(ctx context.Context, next graphql.Resolver) (any, error) {
		fc := graphql.GetFieldContext(ctx)
		if fc == nil {
			return next(ctx)
		}
		switch {
		case fc.Object == "_Service" && fc.Field.Name == "sdl":
			return sdl, nil
		case fc.Object == "Query" && fc.Field.Name == "_service" && graphql.GetOperationContext(ctx).DisableIntrospection:
			// FederationSDL lets _service through only on its own.
			return nil, &auth.Error{Code: auth.CodeBadUserInput, Detail: "With introspection off, _service { sdl } is served to an operation that selects nothing else (__typename aside): send it on its own."}
		case fc.Object == "Query" && (fc.Field.Name == "__schema" || fc.Field.Name == "__type"):
			if graphql.GetOperationContext(ctx).DisableIntrospection {
				return nil, &auth.Error{Code: auth.CodeForbidden, Detail: "Introspection is disabled."}
			}
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
	if onlyService(rc.Operation.SelectionSet, map[string]bool{}) {
		rc.DisableIntrospection = false
	}
	return nil
}

// onlyService reports whether a root selection set, its fragments
// included, selects nothing but _service and __typename. Each named
// fragment is looked at once (seen), so fragments that spread others
// several times cost no more than the document's size; validation has
// already refused fragment cycles.
func onlyService(set ast.SelectionSet, seen map[string]bool) bool {
	for _, sel := range set {
		switch s := sel.(type) {
		case *ast.Field:
			if s.Name != "_service" && s.Name != "__typename" {
				return false
			}
		case *ast.InlineFragment:
			if !onlyService(s.SelectionSet, seen) {
				return false
			}
		case *ast.FragmentSpread:
			if seen[s.Name] {
				continue // looked at already, and found to select only these
			}
			seen[s.Name] = true
			if s.Definition == nil || !onlyService(s.Definition.SelectionSet, seen) {
				return false
			}
		default:
			return false
		}
	}
	return true
}
