package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"
)

// These tests need no auth service: every request is refused, or selects
// only __typename, before a resolver could reach one.

var productionLimits = Limits{MaxDepth: 12, MaxAliases: 15, MaxTokenFields: 1}

type answer struct {
	Errors []struct {
		Message    string         `json:"message"`
		Extensions map[string]any `json:"extensions"`
	} `json:"errors"`
}

func post(t *testing.T, h http.Handler, query string) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query})
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var a answer
	if err := json.Unmarshal(rec.Body.Bytes(), &a); err != nil {
		t.Fatalf("not JSON: %s", rec.Body)
	}
	return a
}

func (a answer) code() string {
	if len(a.Errors) == 0 {
		return "OK"
	}
	c, _ := a.Errors[0].Extensions["code"].(string)
	return c
}

func aliased(n int) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		fmt.Fprintf(&b, " a%d: __typename", i)
	}
	b.WriteString(" }")
	return b.String()
}

// TestBoundsBeforeValidation: documents whose validation would be
// expensive are refused by the pre-validation walk. Each one is also invalid
// (an unknown field), so had validation run first its error would be
// GRAPHQL_VALIDATION_FAILED: the bound's BAD_USER_INPUT shows it did not.
func TestBoundsBeforeValidation(t *testing.T) {
	h, _ := newHandler(Options{Limits: productionLimits, MaxComplexity: 200})
	tests := []struct {
		name, query, message string
	}{
		{"one field 1 990 times", "{ nope" + strings.Repeat(" __typename", 1990) + " }", "1991 fields"},
		{"one field 6 times", "{ nope" + strings.Repeat(" __typename", 6) + " }", "same field"},
		{"repeated through fragments", "{ nope ...F ...F ...F } fragment F on Query { __typename __typename __typename __typename }", "same field"},
		{"repeated in an unused fragment", "{ nope } fragment U on Query {" + strings.Repeat(" __typename", 50) + " }", "same field"},
		{"660 aliases", "{ nope" + aliased(660)[1:], "aliases"},
		{"too many fields in the document", "{ nope } fragment U on Query { " + fields(1001) + " }", "fields"},
		{"many unknown fields", "{" + fields(21) + "}", "does not have"},
		{"fragment cycle", "{ nope ...A } fragment A on Query { ...B } fragment B on Query { ...A }", "cycle"},
		{"too deep", "{ nope" + strings.Repeat(" a {", 13) + " b" + strings.Repeat(" }", 13) + " }", "nested"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := post(t, h, tc.query)
			if a.code() != "BAD_USER_INPUT" || !strings.Contains(a.Errors[0].Message, tc.message) {
				t.Fatalf("got %+v, want BAD_USER_INPUT about %s", a.Errors, tc.message)
			}
		})
	}
	// Within the bounds, validation runs and reports the unknown field.
	if a := post(t, h, "{ nope"+strings.Repeat(" __typename", 5)+" }"); a.code() != "GRAPHQL_VALIDATION_FAILED" {
		t.Fatalf("within the bounds: %+v", a.Errors)
	}
}

// fields returns n distinct fields, so that no other bound than the
// document's field count is reached.
func fields(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "f%d ", i)
	}
	return b.String()
}

// TestQueryCacheHoldsOnlyAcceptedDocuments: documents refused by any check
// (a bound, validation, complexity) are never cached; accepted ones are, and
// the cache stays within its byte budget.
func TestQueryCacheHoldsOnlyAcceptedDocuments(t *testing.T) {
	h, cache := newHandler(Options{Limits: productionLimits, MaxComplexity: 5})
	for i := range 200 {
		post(t, h, aliased(660)+fmt.Sprintf(" # %d", i))                                                                           // over the alias bound
		post(t, h, fmt.Sprintf("{ nope%d }", i))                                                                                   // invalid
		post(t, h, fmt.Sprintf("{ a: __typename b: __typename c: __typename d: __typename e: __typename f: __typename } # %d", i)) // too complex
	}
	if n := cache.Len(); n != 0 {
		t.Fatalf("%d refused documents cached", n)
	}
	if a := post(t, h, "{ __typename }"); a.code() != "OK" {
		t.Fatalf("{ __typename }: %+v", a.Errors)
	}
	if n := cache.Len(); n != 1 {
		t.Fatalf("the accepted document was not cached: %d", n)
	}

	small := newQueryCache(64 << 10)
	for i := range 2000 {
		q := fmt.Sprintf("{ __typename } # %04d %s", i, strings.Repeat("x", 200))
		doc, err := parser.ParseQuery(&ast.Source{Input: q})
		if err != nil {
			t.Fatal(err)
		}
		ctx := withState(t.Context())
		small.Add(ctx, q, doc)
		small.commit(ctx)
		if small.used > small.maxBytes {
			t.Fatalf("cache holds %d bytes, budget %d", small.used, small.maxBytes)
		}
	}
	if small.Len() == 0 || small.Len() >= 2000 {
		t.Fatalf("cache holds %d documents", small.Len())
	}
}

// TestSuggestionsOutsideDevelopment: outside development, validation
// messages suggest nothing, and a document naming a development-only field
// is refused with FORBIDDEN before validation, so no message names a hidden
// field or type. In development suggestions help.
func TestSuggestionsOutsideDevelopment(t *testing.T) {
	prod, _ := newHandler(Options{Limits: productionLimits})
	for _, q := range []string{`{ getUserAut }`, `{ currentCustome { customer_id } }`} {
		a := post(t, prod, q)
		if a.code() != "GRAPHQL_VALIDATION_FAILED" || strings.Contains(a.Errors[0].Message, "Did you mean") {
			t.Errorf("%s: %+v", q, a.Errors)
		}
	}
	for _, q := range []string{`{ getUserAuth { nope } }`, `{ getUserAuth }`, `mutation { removeAllUserAuthItems(user_id: "1") }`} {
		a := post(t, prod, q)
		raw, _ := json.Marshal(a)
		if a.code() != "FORBIDDEN" || strings.Contains(string(raw), "AuthUser") || strings.Contains(string(raw), "UserAuth") {
			t.Errorf("%s: %s", q, raw)
		}
	}
	dev, _ := newHandler(Options{Limits: productionLimits, Surface: Surface{DevTools: true}})
	if a := post(t, dev, `{ getUserAut }`); !strings.Contains(a.Errors[0].Message, "Did you mean") {
		t.Errorf("development: %+v", a.Errors)
	}
}

// FuzzDocumentBounds: the pre-validation walk never panics, and whatever it
// accepts is within the bounds it enforces.
func FuzzDocumentBounds(f *testing.F) {
	for _, s := range []string{
		`{ __typename }`,
		`query Q { a { b { c } } } fragment F on Query { x ...G } fragment G on Query { y ...F }`,
		`{ ...A ...A } fragment A on Query { a: __typename a: __typename }`,
		`mutation { generateCustomerToken(email: "a", password: "b") { token } x: refreshCustomerToken { token } }`,
		`{ ... on Query { ... on Query { __typename } } }`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, query string) {
		doc, err := parser.ParseQueryWithTokenLimit(&ast.Source{Input: query}, DefaultMaxTokens)
		if err != nil {
			return
		}
		if productionLimits.check(doc, "", Surface{}.Schema(), nil) != nil {
			return
		}
		if n := countFields(doc); n > maxDocumentFields {
			t.Fatalf("accepted a document of %d fields", n)
		}
		w := walker{fragments: doc.Fragments, memo: map[string]*shape{}, visiting: map[string]bool{}}
		for _, op := range doc.Operations {
			if s := w.set(op.SelectionSet, true, nil); s.depth > productionLimits.MaxDepth || s.fields > maxExpandedFields {
				t.Fatalf("accepted an operation of depth %d and %d fields", s.depth, s.fields)
			}
		}
		if w.cycle || w.sameName > maxSameName {
			t.Fatalf("accepted a cycle (%v) or %d repeats", w.cycle, w.sameName)
		}
	})
}
