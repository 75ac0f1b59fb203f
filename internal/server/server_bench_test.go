package server_test

import (
	"bytes"
	"context"
	"crypto/subtle"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/server"
	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/dynamo"
	"github.com/meshauth/meshauth/internal/store/embedded"
	"github.com/meshauth/meshauth/internal/telemetry"
	"github.com/meshauth/meshauth/internal/token"
)

// A full GraphQL refresh through server.Handler, wired as run.go wires the
// service (metered store, error-level logs), without the network:
//
//	go test -run '^$' -bench GraphQLRefresh -benchmem ./internal/server/
//
// "embedded" is the real embedded store; "memory" replaces it with a map
// under a mutex (benchMemStore, below), so that the difference between the
// two is the store's share of a refresh. "dynamodb" uses DynamoDB Local and
// is skipped unless DYNAMODB_TEST_ENDPOINT is set:
//
//	scripts/dynamodb-local.sh run -- go test -run '^$' -bench GraphQLRefresh/dynamodb ./internal/server/

// benchLogin accepts every password: logins cost no hashing.
type benchLogin struct{}

func (benchLogin) Login(_ context.Context, email, _ string) (login.Identity, error) {
	return login.Identity{CustomerID: "c-" + strings.TrimSuffix(email, "@bench.example")}, nil
}

// benchMemStore is a store.Store in memory, for the "memory" cases.
type benchMemStore struct {
	mu sync.Mutex
	m  map[string]store.Session
}

var _ store.Store = (*benchMemStore)(nil)

func (s *benchMemStore) Ping(context.Context) error { return nil }
func (s *benchMemStore) Close() error               { return nil }

func (s *benchMemStore) ListByCustomer(_ context.Context, customerID string) ([]store.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []store.Session
	for _, sess := range s.m {
		if sess.CustomerID == customerID {
			out = append(out, sess)
		}
	}
	return out, nil
}

func (s *benchMemStore) DeleteByCustomer(_ context.Context, customerID string) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for id, sess := range s.m {
		if sess.CustomerID == customerID {
			delete(s.m, id)
			n++
		}
	}
	return n, nil
}

func (s *benchMemStore) Create(_ context.Context, sess store.Session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[sess.ID]; ok {
		return store.ErrAlreadyExists
	}
	s.m[sess.ID] = sess
	return nil
}

func (s *benchMemStore) Get(_ context.Context, id string) (store.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	return sess, nil
}

func (s *benchMemStore) Rotate(_ context.Context, id string, r store.Rotation) (store.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	if subtle.ConstantTimeCompare(sess.TokenHash, r.From) != 1 || sess.Expired(r.Now) {
		return sess, store.ErrConflict
	}
	sess.PrevTokenHash, sess.TokenHash = sess.TokenHash, r.To
	sess.RotatedAt, sess.RefreshedAt, sess.ExpiresAt = r.Now, r.Now, r.ExpiresAt
	s.m[id] = sess
	return sess, nil
}

func (s *benchMemStore) Extend(_ context.Context, id string, exp time.Time) (store.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	sess.ExpiresAt = exp
	s.m[id] = sess
	return sess, nil
}

func (s *benchMemStore) Delete(_ context.Context, id string) (store.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sess, ok := s.m[id]
	if !ok {
		return store.Session{}, store.ErrNotFound
	}
	delete(s.m, id)
	return sess, nil
}

// benchHandler returns the service's handler on the named store (embedded,
// memory or dynamodb), metered as in production.
func benchHandler(b *testing.B, storeName string) http.Handler {
	b.Helper()
	metrics := telemetry.New()
	log := slog.New(metrics.LogHandler(slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelError})))
	codec, err := token.NewCodec([]byte("bench-refresh-secret-bench-refresh-secret-01"))
	if err != nil {
		b.Fatal(err)
	}
	signer, err := token.NewHS256([]byte("bench-jwt-secret-bench-jwt-secret-0123456"), "meshauth", "meshauth")
	if err != nil {
		b.Fatal(err)
	}
	var backend store.Store = &benchMemStore{m: map[string]store.Session{}}
	switch storeName {
	case "embedded":
		st, err := embedded.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		backend = st
	case "dynamodb":
		backend = benchDynamo(b)
	}
	sessions := metrics.Store(backend)
	svc := auth.New(auth.Options{
		Rules:    auth.Rules{AccessTTL: 10 * time.Minute, IdleTTL: 15 * time.Minute, RememberTTL: 30 * 24 * time.Hour, ReuseInterval: 30 * time.Second},
		Provider: metrics.Login(benchLogin{}), Sessions: sessions, Customers: sessions, Signer: signer, Codec: codec, Log: log,
	})
	return server.Handler(server.Options{Auth: svc, Log: log, Metrics: metrics})
}

var benchUserSeq atomic.Int64

// benchPost sends a GraphQL body to h and returns the new refresh token, or
// the response when there is none.
func benchPost(h http.Handler, body string) (string, string) {
	req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	b := rec.Body.Bytes()
	const key = `"refresh_token":"`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return "", string(b)
	}
	rest := b[i+len(key):]
	j := bytes.IndexByte(rest, '"')
	if j < 0 {
		return "", string(b)
	}
	return string(rest[:j]), ""
}

func benchRefreshBody(rt string) string {
	return `{"query":"mutation($t: String!) { refreshCustomerToken(refresh_token: $t) { token refresh_token token_expires_at refresh_token_expires_at } }","variables":{"t":"` + rt + `"}}`
}

// benchRefreshLoop logs a new customer in and refreshes its session for as
// long as next says.
func benchRefreshLoop(b *testing.B, h http.Handler, next func() bool) {
	email := "u" + strconv.FormatInt(benchUserSeq.Add(1), 10) + "@bench.example"
	rt, bad := benchPost(h, `{"query":"mutation($e: String!, $p: String!) { generateCustomerToken(email: $e, password: $p, remember_me: false) { token refresh_token } }","variables":{"e":"`+email+`","p":"pw"}}`)
	if rt == "" {
		b.Errorf("login: %s", bad)
		return
	}
	for next() {
		if rt, bad = benchPost(h, benchRefreshBody(rt)); rt == "" {
			b.Errorf("refresh: %s", bad)
			return
		}
	}
}

// benchDynamo returns a DynamoDB store on a new table in DynamoDB Local,
// dropped when the benchmark ends.
func benchDynamo(b *testing.B) *dynamo.Store {
	endpoint := os.Getenv("DYNAMODB_TEST_ENDPOINT")
	if endpoint == "" {
		b.Skip("needs DynamoDB Local: scripts/dynamodb-local.sh run -- go test -run '^$' -bench GraphQLRefresh/dynamodb ./internal/server/")
	}
	ctx := context.Background()
	table := "meshauth-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	st, err := dynamo.New(ctx, dynamo.Options{Table: table, Region: "us-east-1", Endpoint: endpoint,
		Credentials: credentials.NewStaticCredentialsProvider("local", "local", "")})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_, _ = st.Client().DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: aws.String(table)})
	})
	return st
}

func BenchmarkGraphQLRefresh(b *testing.B) {
	for _, c := range []struct {
		name, store string
		parallel    bool
	}{
		{"embedded", "embedded", false},
		{"embedded-parallel", "embedded", true},
		{"memory", "memory", false},
		{"memory-parallel", "memory", true},
		{"dynamodb-parallel", "dynamodb", true},
	} {
		b.Run(c.name, func(b *testing.B) {
			h := benchHandler(b, c.store)
			b.ReportAllocs()
			if !c.parallel {
				benchRefreshLoop(b, h, b.Loop)
				return
			}
			b.SetParallelism(32) // 64 goroutines on 2 cores, like the load benchmark's 64 users
			b.RunParallel(func(pb *testing.PB) { benchRefreshLoop(b, h, pb.Next) })
		})
	}
}
