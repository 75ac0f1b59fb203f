package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshauth/meshauth"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/servicetest"
)

// A full GraphQL refresh through the service's handler, assembled by the one
// wiring (meshauth.New), without the network:
//
//	go test -run '^$' -bench GraphQLRefresh -benchmem ./internal/server/
//
// "embedded" is the real embedded store; "memory" is STORE=memory, a map
// under a mutex, so that the difference between the two is the store's share
// of a refresh. "dynamodb" uses DynamoDB Local and
// is skipped unless DYNAMODB_TEST_ENDPOINT is set:
//
//	scripts/dynamodb-local.sh run -- go test -run '^$' -bench GraphQLRefresh/dynamodb ./internal/server/

// benchLogin accepts every password: logins cost no hashing.
type benchLogin struct{}

func (benchLogin) Login(_ context.Context, email, _ string) (login.Identity, error) {
	return login.Identity{CustomerID: "c-" + strings.TrimSuffix(email, "@bench.example")}, nil
}

// benchHandler returns the service's handler, assembled by the one wiring,
// on the named store (embedded, memory or dynamodb) with error-level logs.
func benchHandler(b *testing.B, storeName string) http.Handler {
	b.Helper()
	vars := map[string]string{
		"STORE": storeName, "DATA_DIR": b.TempDir(), "LOG_LEVEL": "error",
		"LOGIN_LIMIT_ACCOUNT": "off", "LOGIN_LIMIT_IP": "off",
	}
	if storeName == "dynamodb" {
		endpoint := os.Getenv("DYNAMODB_TEST_ENDPOINT")
		if endpoint == "" {
			b.Skip("needs DynamoDB Local: scripts/dynamodb-local.sh run -- go test -run '^$' -bench GraphQLRefresh/dynamodb ./internal/server/")
		}
		b.Setenv("AWS_ACCESS_KEY_ID", "local")
		b.Setenv("AWS_SECRET_ACCESS_KEY", "local")
		vars["DYNAMO_DB_ENDPOINT"], vars["DYNAMO_DB_REGION"], vars["DYNAMO_DB_CREATE_TABLE"] = endpoint, "us-east-1", "true"
		vars["DYNAMO_DB_AUTH_TABLE"] = "meshauth-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	}
	return servicetest.Start(b, vars, meshauth.Options{Login: benchLogin{}, LogWriter: io.Discard}).Handler
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
