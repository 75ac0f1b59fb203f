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
var tokenFields = map[string]bool{"generateCustomerToken": true, "refreshCustomerToken": true, "exchangeIdentityToken": true}

// maxExpandedFields bounds the fields an operation expands to once every
// fragment spread is replaced by its fragment. Fragments that spread others
// several times grow exponentially; this refuses them before gqlgen's
// complexity calculation and executor, which expand them, ever see them.
const maxExpandedFields = 1000

// Limits refuses operations that are too deep, use too many aliases, expand
// to too many fields, or hold more token fields (generateCustomerToken,
// refreshCustomerToken, exchangeIdentityToken) than MaxTokenFields: aliases
// must not multiply login attempts or rotations in one request. A zero limit
// is no limit. Depth counts fields and fragments nested in one another;
// introspection subtrees (__schema, __type) do not count, and introspection
// is off in production. Each fragment is measured once (memoized), so the
// check itself stays linear in the size of the document.
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
	w := walker{fragments: rc.Doc.Fragments, memo: map[string]*shape{}}
	s := w.set(rc.Operation.SelectionSet, true)
	switch {
	case l.MaxDepth > 0 && s.depth > l.MaxDepth:
		return limitError(fmt.Sprintf("The query is nested %d levels deep; at most %d are allowed.", s.depth, l.MaxDepth))
	case s.fields > maxExpandedFields:
		return limitError(fmt.Sprintf("The query expands to more than %d fields.", maxExpandedFields))
	case l.MaxAliases > 0 && s.aliases > l.MaxAliases:
		return limitError(fmt.Sprintf("The query uses %d aliases; at most %d are allowed.", s.aliases, l.MaxAliases))
	case l.MaxTokenFields > 0 && s.tokenFields > l.MaxTokenFields:
		return limitError(fmt.Sprintf("The request holds %d token operations (generateCustomerToken, refreshCustomerToken, exchangeIdentityToken); at most %d are allowed.", s.tokenFields, l.MaxTokenFields))
	}
	return nil
}

func limitError(msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{
		"code": string(auth.CodeBadUserInput), "category": auth.Codes[auth.CodeBadUserInput].Category,
	}}
}

// shape is what a selection set amounts to once expanded: its depth, and how
// many fields, aliases and root token fields it holds. Counts saturate.
type shape struct {
	depth, fields, aliases, tokenFields int
}

const saturated = 1 << 30

func (s *shape) add(o shape, times int) {
	s.depth = max(s.depth, o.depth)
	s.fields = min(saturated, s.fields+min(saturated, o.fields*times))
	s.aliases = min(saturated, s.aliases+min(saturated, o.aliases*times))
	s.tokenFields = min(saturated, s.tokenFields+o.tokenFields*times)
}

type walker struct {
	fragments ast.FragmentDefinitionList
	// memo holds each fragment's shape, at the root or below it (token
	// fields count only at the root).
	memo map[string]*shape
}

// set measures a selection set. Validation has already refused fragment
// cycles and unknown fragments.
func (w *walker) set(sel ast.SelectionSet, root bool) shape {
	var out shape
	for _, s := range sel {
		switch s := s.(type) {
		case *ast.Field:
			f := shape{depth: 1, fields: 1}
			if s.Alias != "" && s.Alias != s.Name {
				f.aliases = 1
			}
			if root && tokenFields[s.Name] {
				f.tokenFields = 1
			}
			if s.Name != "__schema" && s.Name != "__type" && len(s.SelectionSet) > 0 {
				child := w.set(s.SelectionSet, false)
				child.depth++
				f.add(child, 1)
			}
			out.add(f, 1)
		case *ast.InlineFragment:
			// A fragment adds no depth to the answer, but each one nested in
			// another is work for the server: it counts as a level.
			child := w.set(s.SelectionSet, root)
			child.depth++
			out.add(child, 1)
		case *ast.FragmentSpread:
			out.add(w.fragment(s.Name, root), 1)
		}
	}
	return out
}

func (w *walker) fragment(name string, root bool) shape {
	key := name
	if root {
		key = "\x00" + name
	}
	if s, ok := w.memo[key]; ok {
		return *s
	}
	var s shape
	if f := w.fragments.ForName(name); f != nil {
		s = w.set(f.SelectionSet, root)
		s.depth++
	}
	w.memo[key] = &s
	return s
}
