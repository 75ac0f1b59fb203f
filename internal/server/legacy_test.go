package server_test

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/servicetest"
)

// startLegacy runs the service on DynamoDB Local with the module's table.
func startLegacy(t *testing.T, extra map[string]string) (*env, *servicetest.LegacyTable) {
	t.Helper()
	endpoint := servicetest.DynamoDBLocal(t)
	l := servicetest.NewLegacyTable(t, endpoint)
	vars := map[string]string{
		"STORE": "dynamodb", "DYNAMO_DB_ENDPOINT": endpoint, "DYNAMO_DB_REGION": "us-east-1", "DYNAMO_DB_CREATE_TABLE": "true",
		"DYNAMO_DB_AUTH_TABLE":        "meshauth-" + strconv.FormatInt(time.Now().UnixNano(), 36),
		"LEGACY_DYNAMO_DB_AUTH_TABLE": l.Name,
	}
	for k, v := range extra {
		vars[k] = v
	}
	return start(t, options{env: vars}), l
}

func (e *env) legacyRefresh(t *testing.T, s servicetest.LegacySession, bearerToken string) response {
	t.Helper()
	return e.do(t, refreshQ, map[string]any{"t": s.Refresh}, bearer(bearerToken))
}

// TestLegacySessionsContinue: a customer logged in with the module before the
// cutover refreshes with its tokens and gets meshauth tokens; the session
// keeps its end and its customer id's type; concurrent refreshes share one
// successor; the legacy token after the grace is reuse.
func TestLegacySessionsContinue(t *testing.T) {
	e, table := startLegacy(t, nil)
	secret := []byte(servicetest.JWTSecret)
	now := e.clock.Now()
	end := now.Add(20 * 24 * time.Hour).Truncate(time.Second)
	s := table.Login(t, secret, 4242, now.Add(-time.Hour), end) // its access token expired long ago

	const tabs = 5
	got := make([]pair, tabs)
	var wg sync.WaitGroup
	for i := range tabs {
		wg.Go(func() {
			r := e.legacyRefresh(t, s, s.Access)
			if len(r.Errors) > 0 {
				t.Errorf("tab %d: %s", i, r.Raw)
				return
			}
			got[i] = field[pair](t, r, "refreshCustomerToken")
		})
	}
	wg.Wait()
	for i := range got {
		if got[i].RefreshToken == "" || got[i].RefreshToken != got[0].RefreshToken {
			t.Fatalf("concurrent legacy refreshes got different successors: %q vs %q", got[i].RefreshToken, got[0].RefreshToken)
		}
	}
	if table.Has(t, s) {
		t.Error("the legacy row was not consumed")
	}
	if exp, _ := time.Parse(time.RFC3339, got[0].RefreshTokenExpiresAt); !exp.Equal(end) {
		t.Errorf("session ends %v, want the legacy end %v", exp, end)
	}
	if c := decodePayload(t, got[0].Token); !strings.Contains(c, `"customer_id":4242`) {
		t.Errorf("access token claims %s", c)
	}
	// The migrated session is an ordinary one.
	next := field[pair](t, e.refresh(t, got[0].RefreshToken, nil), "refreshCustomerToken")

	// The legacy token after the grace: reuse, which ends the session.
	e.clock.Advance(31 * time.Second)
	if c := code(t, e.legacyRefresh(t, s, s.Access)); c != "REFRESH_TOKEN_REUSED" {
		t.Fatalf("legacy token after the grace: %s", c)
	}
	if c := code(t, e.refresh(t, next.RefreshToken, nil)); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("the session after reuse: %s", c)
	}
}

// TestLegacyRefusals: a forged or foreign Bearer is refused before any key
// derivation (it uses up no login-limit attempt) and leaves the row; a
// mismatched pair uses up the per-address limit; an ended session, a
// missing Bearer and a revoked row are refused; logout removes the row.
func TestLegacyRefusals(t *testing.T) {
	e, table := startLegacy(t, map[string]string{"LOGIN_LIMIT_IP": "2/1m"})
	secret := []byte(servicetest.JWTSecret)
	now := e.clock.Now()
	s := table.Login(t, secret, "C-77", now.Add(-time.Minute), now.Add(time.Hour))
	other := table.Login(t, secret, "C-78", now.Add(-time.Minute), now.Add(time.Hour))
	forged := table.Login(t, []byte("another shop's secret, 32+ bytes long"), "C-77", now.Add(-time.Minute), now.Add(time.Hour))

	for range 5 {
		if c := code(t, e.legacyRefresh(t, s, forged.Access)); c != "INVALID_REFRESH_TOKEN" {
			t.Fatalf("forged Bearer: %s", c)
		}
	}
	if c := code(t, e.do(t, refreshQ, map[string]any{"t": s.Refresh}, nil)); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("no Bearer: %s", c)
	}
	if !table.Has(t, s) {
		t.Fatal("a refused refresh consumed the row")
	}
	// Revoke with the legacy pair: the row goes, the answer is true, twice.
	for range 2 {
		r := e.do(t, revokeQ, map[string]any{"t": other.Refresh}, bearer(other.Access))
		if got := field[struct{ Result bool }](t, r, "revokeCustomerToken"); !got.Result {
			t.Fatalf("legacy logout: %s", r.Raw)
		}
	}
	if table.Has(t, other) {
		t.Fatal("logout left the legacy row")
	}
	// The revoke above used up the address's two attempts (each costs key
	// derivation); every forged Bearer before it used none.
	if c := code(t, e.legacyRefresh(t, s, s.Access)); c != "RATE_LIMITED" {
		t.Fatalf("past the per-address limit: %s", c)
	}

	e2, table2 := startLegacy(t, nil)
	now = e2.clock.Now()
	ended := table2.Login(t, secret, "C-1", now.Add(-2*time.Hour), now.Add(-time.Hour))
	live := table2.Login(t, secret, "C-2", now.Add(-time.Minute), now.Add(time.Hour))
	if c := code(t, e2.legacyRefresh(t, ended, ended.Access)); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("ended legacy session: %s", c)
	}
	if c := code(t, e2.legacyRefresh(t, live, ended.Access)); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("another session's Bearer: %s", c)
	}
	r := e2.do(t, revokeQ, map[string]any{"t": live.Refresh}, bearer(live.Access))
	field[struct{ Result bool }](t, r, "revokeCustomerToken")
	if c := code(t, e2.legacyRefresh(t, live, live.Access)); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("after legacy logout: %s", c)
	}
}

// TestLegacyTokenWithoutTheTable: without LEGACY_DYNAMO_DB_AUTH_TABLE a
// legacy token is INVALID_REFRESH_TOKEN, as any token the service did not
// issue.
func TestLegacyTokenWithoutTheTable(t *testing.T) {
	e := start(t, options{})
	tok := servicetest.PBKDF2Hex(t, "1"+"1700000000", []byte(servicetest.JWTSecret))
	r := e.do(t, refreshQ, map[string]any{"t": tok}, http.Header{"Authorization": {"Bearer x.y.z"}})
	if c := code(t, r); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("legacy token without the table: %s", r.Raw)
	}
}
