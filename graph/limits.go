package graph

import (
	"context"
	"fmt"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/meshauth/meshauth/internal/auth"
)

// tokenFields are the root fields that check credentials or rotate a session.
var tokenFields = map[string]bool{"generateCustomerToken": true, "refreshCustomerToken": true}

// Limits refuses operations that are too deep, use too many aliases, or hold
// more token fields (generateCustomerToken, refreshCustomerToken) than
// MaxTokenFields: aliases must not multiply login attempts or rotations in
// one request. A zero limit is no limit. Introspection subtrees (__schema,
// __type) do not count towards depth; introspection is off in production.
type Limits struct {
	MaxDepth       int
	MaxAliases     int
	MaxTokenFields int
}

var _ graphql.OperationContextMutator = Limits{}

// ExtensionName implements graphql.HandlerExtension.
func (Limits) ExtensionName() string { return "Limits" }

// Validate implements graphql.HandlerExtension.
func (Limits) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationContext implements graphql.OperationContextMutator.
func (l Limits) MutateOperationContext(_ context.Context, rc *graphql.OperationContext) *gqlerror.Error {
	if rc.Operation == nil {
		return nil
	}
	w := walker{fragments: rc.Doc.Fragments}
	depth := w.walk(rc.Operation.SelectionSet, 1, true)
	switch {
	case l.MaxDepth > 0 && depth > l.MaxDepth:
		return limitError(fmt.Sprintf("The query is nested %d levels deep; at most %d are allowed.", depth, l.MaxDepth))
	case l.MaxAliases > 0 && w.aliases > l.MaxAliases:
		return limitError(fmt.Sprintf("The query uses %d aliases; at most %d are allowed.", w.aliases, l.MaxAliases))
	case l.MaxTokenFields > 0 && w.tokenFields > l.MaxTokenFields:
		return limitError(fmt.Sprintf("The request holds %d token operations (generateCustomerToken, refreshCustomerToken); at most %d are allowed.", w.tokenFields, l.MaxTokenFields))
	}
	return nil
}

func limitError(msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{
		"code": string(auth.CodeBadUserInput), "category": auth.Codes[auth.CodeBadUserInput].Category,
	}}
}

type walker struct {
	fragments   ast.FragmentDefinitionList
	aliases     int
	tokenFields int
}

// walk returns the depth of set, counting aliases and, at the root, token
// fields, through fragments (validation has already refused fragment cycles).
func (w *walker) walk(set ast.SelectionSet, depth int, root bool) int {
	deepest := depth - 1
	for _, sel := range set {
		var d int
		switch s := sel.(type) {
		case *ast.Field:
			if s.Alias != "" && s.Alias != s.Name {
				w.aliases++
			}
			if root && tokenFields[s.Name] {
				w.tokenFields++
			}
			d = depth
			if s.Name != "__schema" && s.Name != "__type" && len(s.SelectionSet) > 0 {
				d = w.walk(s.SelectionSet, depth+1, false)
			}
		case *ast.InlineFragment:
			d = w.walk(s.SelectionSet, depth, root)
		case *ast.FragmentSpread:
			if f := w.fragments.ForName(s.Name); f != nil {
				d = w.walk(f.SelectionSet, depth, root)
			}
		}
		deepest = max(deepest, d)
	}
	return deepest
}
