package graph

import (
	"context"
	"fmt"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/meshauth/meshauth/internal/auth"
)

// tokenFields are the root fields that check credentials or rotate a session.
var tokenFields = map[string]bool{"generateCustomerToken": true, "refreshCustomerToken": true, "exchangeIdentityToken": true}

// Bounds every document is held to, whatever the configuration.
const (
	// maxExpandedFields bounds the fields an operation expands to once
	// every fragment spread is replaced by its fragment. Fragments that
	// spread others several times grow exponentially; this refuses them
	// before gqlgen's complexity calculation and executor expand them.
	maxExpandedFields = 1000
	// maxDocumentFields bounds the fields written in the whole document,
	// every operation and fragment, as validation reads them all.
	maxDocumentFields = 1000
	// maxSameName bounds how often one response name occurs in one
	// selection set, counting the fields its fragments contribute.
	// Validation compares such fields pairwise, and their sub-selections
	// with each other (the rule that fields merge): 1 000 copies of
	// __typename cost about 100 ms of CPU; 10 copies of a field each
	// selecting 10 copies of 9 fields, 17 ms. No real query repeats a field
	// more than a few times (a fragment and the selection it is spread in
	// may both name it).
	maxSameName = 5
	// maxUnknownFields bounds the fields a document names that the schema
	// lacks: validation reports each in an error of its own, and a
	// thousand of them cost more to report and send than any real request.
	maxUnknownFields = 20
)

// Limits bound the shape of a document. A zero limit is no limit.
type Limits struct {
	// MaxDepth bounds nesting: fields and fragments nested in one another;
	// introspection subtrees (__schema, __type) do not count.
	MaxDepth int
	// MaxAliases bounds the aliases of the document's operations.
	MaxAliases int
	// MaxTokenFields bounds the token fields (generateCustomerToken,
	// refreshCustomerToken, exchangeIdentityToken) of the operation that
	// runs: aliases must not multiply login attempts or rotations.
	MaxTokenFields int
}

// guard bounds every document before gqlgen validates it: validation does
// work that grows faster than the document (the field-merging rule is
// quadratic in repeated fields), so the bounds are counted on the parsed
// document first, in one pass that measures each fragment once. A document
// the query cache holds has passed every check already and is not parsed
// again.
type guard struct {
	limits    Limits
	maxTokens int
	cache     *queryCache
	// schema is what documents are validated against.
	schema *ast.Schema
	// hidden are the root fields this deployment does not show (the
	// development-only operations outside development): a document that
	// names one is refused with FORBIDDEN before validation, so that no
	// validation message ever names their types.
	hidden map[string]bool
}

var _ graphql.OperationParameterMutator = guard{}

// ExtensionName implements graphql.HandlerExtension.
func (guard) ExtensionName() string { return "DocumentBounds" }

// Validate implements graphql.HandlerExtension.
func (guard) Validate(graphql.ExecutableSchema) error { return nil }

// MutateOperationParameters implements graphql.OperationParameterMutator.
func (g guard) MutateOperationParameters(ctx context.Context, p *graphql.RawParams) *gqlerror.Error {
	if _, ok := g.cache.Get(ctx, p.Query); ok {
		return nil
	}
	doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: p.Query}, g.maxTokens)
	if err != nil {
		return nil // gqlgen parses again and reports the syntax error
	}
	return g.limits.check(doc, p.OperationName, g.schema, g.hidden)
}

// check measures doc and refuses it when it names a hidden root field or is
// over a bound. schema, when set, is used to count the fields it lacks.
func (l Limits) check(doc *ast.QueryDocument, operationName string, schema *ast.Schema, hidden map[string]bool) *gqlerror.Error {
	w := walker{fragments: doc.Fragments, memo: map[string]*shape{}, visiting: map[string]bool{}, hidden: hidden, schema: schema}
	var all shape
	var run *ast.OperationDefinition
	for _, op := range doc.Operations {
		s := w.set(op.SelectionSet, true, w.root(op.Operation))
		all.add(s, 1)
		if op.Name == operationName || (operationName == "" && len(doc.Operations) == 1) {
			run = op
			all.tokenFields = s.tokenFields
		}
	}
	if run == nil {
		all.tokenFields = 0 // gqlgen refuses a missing operation
	}
	// Validation reads fragments no operation spreads, too.
	for _, f := range doc.Fragments {
		w.fragment(f.Name, false)
	}
	w.unknown = min(w.unknown, saturated)
	written := countFields(doc)
	switch {
	case w.namesHidden:
		e := auth.Codes[auth.CodeForbidden]
		return &gqlerror.Error{Message: e.Message, Extensions: map[string]any{"code": string(auth.CodeForbidden), "category": e.Category}}
	case w.cycle:
		return limitError("The query's fragments spread one another in a cycle.")
	case written > maxDocumentFields:
		return limitError(fmt.Sprintf("The document holds %d fields; at most %d are allowed.", written, maxDocumentFields))
	case w.unknown > maxUnknownFields:
		return limitError(fmt.Sprintf("The document names %d fields the schema does not have; at most %d are reported.", w.unknown, maxUnknownFields))
	case w.sameName > maxSameName:
		return limitError(fmt.Sprintf("A selection holds the same field or alias %d times; at most %d are allowed.", w.sameName, maxSameName))
	case l.MaxDepth > 0 && all.depth > l.MaxDepth:
		return limitError(fmt.Sprintf("The query is nested %d levels deep; at most %d are allowed.", all.depth, l.MaxDepth))
	case all.fields > maxExpandedFields:
		return limitError(fmt.Sprintf("The query expands to more than %d fields.", maxExpandedFields))
	case l.MaxAliases > 0 && all.aliases > l.MaxAliases:
		return limitError(fmt.Sprintf("The query uses %d aliases; at most %d are allowed.", all.aliases, l.MaxAliases))
	case l.MaxTokenFields > 0 && all.tokenFields > l.MaxTokenFields:
		return limitError(fmt.Sprintf("The request holds %d token operations (generateCustomerToken, refreshCustomerToken, exchangeIdentityToken); at most %d are allowed.", all.tokenFields, l.MaxTokenFields))
	}
	return nil
}

func limitError(msg string) *gqlerror.Error {
	return &gqlerror.Error{Message: msg, Extensions: map[string]any{
		"code": string(auth.CodeBadUserInput), "category": auth.Codes[auth.CodeBadUserInput].Category,
	}}
}

// countFields counts the fields written in doc, without expanding fragments.
func countFields(doc *ast.QueryDocument) int {
	var count func(ast.SelectionSet) int
	count = func(sel ast.SelectionSet) int {
		n := 0
		for _, s := range sel {
			switch s := s.(type) {
			case *ast.Field:
				n += 1 + count(s.SelectionSet)
			case *ast.InlineFragment:
				n += count(s.SelectionSet)
			}
		}
		return n
	}
	n := 0
	for _, op := range doc.Operations {
		n += count(op.SelectionSet)
	}
	for _, f := range doc.Fragments {
		n += count(f.SelectionSet)
	}
	return n
}

// shape is what a selection set amounts to once expanded: its depth, and how
// many fields, aliases and root token fields it holds. Counts saturate.
type shape struct {
	depth, fields, aliases, tokenFields int
	// names counts the response names the set contributes to the selection
	// it is merged into (its own fields and its fragments').
	names map[string]int
}

const saturated = 1 << 30

func (s *shape) add(o shape, times int) {
	s.depth = max(s.depth, o.depth)
	s.fields = min(saturated, s.fields+min(saturated, o.fields*times))
	s.aliases = min(saturated, s.aliases+min(saturated, o.aliases*times))
	s.tokenFields = min(saturated, s.tokenFields+min(saturated, o.tokenFields*times))
}

type walker struct {
	fragments ast.FragmentDefinitionList
	// memo holds each fragment's shape, at the root or below it (token
	// fields count only at the root).
	memo     map[string]*shape
	visiting map[string]bool
	// cycle is set when fragments spread one another in a cycle.
	cycle bool
	// sameName is the most times one response name occurs in one selection.
	sameName int
	// hidden are root fields to refuse; namesHidden is set when one occurs.
	hidden      map[string]bool
	namesHidden bool
	// schema, when set, is where unknown counts the fields it lacks.
	schema  *ast.Schema
	unknown int
}

// root is the type an operation selects from, or nil without a schema.
func (w *walker) root(op ast.Operation) *ast.Definition {
	if w.schema == nil {
		return nil
	}
	switch op {
	case ast.Mutation:
		return w.schema.Mutation
	case ast.Subscription:
		return w.schema.Subscription
	}
	return w.schema.Query
}

// typeOf is the named type t of the schema, or nil.
func (w *walker) typeOf(name string) *ast.Definition {
	if w.schema == nil || name == "" {
		return nil
	}
	return w.schema.Types[name]
}

// set measures a selection set of the type parent (nil when unknown), and
// the response names it merges.
func (w *walker) set(sel ast.SelectionSet, root bool, parent *ast.Definition) shape {
	out := shape{names: map[string]int{}}
	merge := func(names map[string]int) {
		for n, c := range names {
			out.names[n] = min(saturated, out.names[n]+c)
			w.sameName = max(w.sameName, out.names[n])
		}
	}
	for _, s := range sel {
		switch s := s.(type) {
		case *ast.Field:
			f := shape{depth: 1, fields: 1}
			name := s.Name
			if s.Alias != "" && s.Alias != s.Name {
				f.aliases = 1
				name = s.Alias
			}
			if root && tokenFields[s.Name] {
				f.tokenFields = 1
			}
			if root && w.hidden[s.Name] {
				w.namesHidden = true
			}
			var childType *ast.Definition
			if parent != nil && !strings.HasPrefix(s.Name, "__") {
				if def := parent.Fields.ForName(s.Name); def == nil {
					w.unknown++
				} else {
					childType = w.typeOf(def.Type.Name())
				}
			}
			if s.Name != "__schema" && s.Name != "__type" && len(s.SelectionSet) > 0 {
				child := w.set(s.SelectionSet, false, childType)
				child.depth++
				f.add(child, 1)
			}
			out.add(f, 1)
			merge(map[string]int{name: 1})
		case *ast.InlineFragment:
			// A fragment adds no depth to the answer, but each one nested in
			// another is work for the server: it counts as a level.
			t := parent
			if s.TypeCondition != "" {
				t = w.typeOf(s.TypeCondition)
			}
			child := w.set(s.SelectionSet, root, t)
			child.depth++
			out.add(child, 1)
			merge(child.names)
		case *ast.FragmentSpread:
			f := w.fragment(s.Name, root)
			out.add(f, 1)
			merge(f.names)
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
	if w.visiting[key] {
		w.cycle = true
		return shape{}
	}
	w.visiting[key] = true
	var s shape
	if f := w.fragments.ForName(name); f != nil {
		s = w.set(f.SelectionSet, root, w.typeOf(f.TypeCondition))
		s.depth++
	}
	delete(w.visiting, key)
	w.memo[key] = &s
	return s
}
