package graph

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/meshauth/meshauth/graph/model"
)

// DefaultQueryCacheBytes bounds the query cache: the estimated memory of
// the parsed documents it holds and their text.
const DefaultQueryCacheBytes = 8 << 20

// astBytesPerByte estimates a parsed document's memory from its text: about
// 16 bytes of AST per byte of query, measured on gqlparser's documents.
const astBytesPerByte = 16

// queryCache is gqlgen's parsed-document cache, bounded by bytes, least
// recently used first out. gqlgen adds a document once it has parsed and
// validated it, before the other checks run; so Add only sets the document
// aside for its request, and commit, which runs after every check has
// passed, is what caches it. A document refused by any check is never
// cached and leaves nothing behind.
type queryCache struct {
	maxBytes int

	mu    sync.Mutex
	used  int
	order *list.List // of *cached, most recently used first
	items map[string]*list.Element
}

type cached struct {
	query string
	doc   *ast.QueryDocument
	cost  int
}

var _ graphql.Cache[*ast.QueryDocument] = (*queryCache)(nil)

func newQueryCache(maxBytes int) *queryCache {
	return &queryCache{maxBytes: maxBytes, order: list.New(), items: map[string]*list.Element{}}
}

// Get implements graphql.Cache.
func (c *queryCache) Get(_ context.Context, query string) (*ast.QueryDocument, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[query]
	if !ok {
		return nil, false
	}
	c.order.MoveToFront(e)
	return e.Value.(*cached).doc, true
}

// Add implements graphql.Cache: it sets doc aside for its request.
func (c *queryCache) Add(ctx context.Context, query string, doc *ast.QueryDocument) {
	if st := stateOf(ctx); st != nil {
		st.pendingQuery, st.pendingDoc = query, doc
	}
}

// Len returns how many documents the cache holds.
func (c *queryCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// commit caches the document its request set aside, now that it has passed
// every check.
func (c *queryCache) commit(ctx context.Context) {
	st := stateOf(ctx)
	if st == nil || st.pendingDoc == nil {
		return
	}
	query, doc := st.pendingQuery, st.pendingDoc
	st.pendingQuery, st.pendingDoc = "", nil
	cost := len(query) * (1 + astBytesPerByte)
	if cost > c.maxBytes {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[query]; ok {
		return
	}
	c.items[query] = c.order.PushFront(&cached{query: query, doc: doc, cost: cost})
	c.used += cost
	for c.used > c.maxBytes {
		last := c.order.Back()
		old := last.Value.(*cached)
		c.order.Remove(last)
		delete(c.items, old.query)
		c.used -= old.cost
	}
}

// cacheCommit is the last check of an operation: it caches the document.
type cacheCommit struct{ cache *queryCache }

var _ graphql.OperationContextMutator = cacheCommit{}

func (cacheCommit) ExtensionName() string                   { return "QueryCacheCommit" }
func (cacheCommit) Validate(graphql.ExecutableSchema) error { return nil }

func (c cacheCommit) MutateOperationContext(ctx context.Context, _ *graphql.OperationContext) *gqlerror.Error {
	c.cache.commit(ctx)
	return nil
}

// requestState is what one request keeps while gqlgen serves it.
type requestState struct {
	pendingQuery string
	pendingDoc   *ast.QueryDocument
	// faultLogged is set once a server fault of the request was logged at
	// error level.
	faultLogged atomic.Bool
	// sessions memoizes each customer's sessions for the entity resolver.
	sessionsMu sync.Mutex
	sessions   map[string]*sessionsResult
}

type stateKey struct{}

func withState(ctx context.Context) context.Context {
	return context.WithValue(ctx, stateKey{}, &requestState{})
}

func stateOf(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

// sessionsResult is one customer's sessions, loaded once per request.
type sessionsResult struct {
	once sync.Once
	list []*model.CustomerSession
	err  error
}

// memoSessions returns the sessions of customerID, loading them at most once
// per request however many entity representations name the customer.
func memoSessions(ctx context.Context, customerID string, load func() ([]*model.CustomerSession, error)) ([]*model.CustomerSession, error) {
	st := stateOf(ctx)
	if st == nil {
		return load()
	}
	st.sessionsMu.Lock()
	if st.sessions == nil {
		st.sessions = map[string]*sessionsResult{}
	}
	r, ok := st.sessions[customerID]
	if !ok {
		r = &sessionsResult{}
		st.sessions[customerID] = r
	}
	st.sessionsMu.Unlock()
	r.once.Do(func() { r.list, r.err = load() })
	return r.list, r.err
}
