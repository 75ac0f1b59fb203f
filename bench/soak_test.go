package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshauth/meshauth"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/servicetest"
	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/dynamo"
	"github.com/meshauth/meshauth/internal/token"
)

// stubLogin accepts benchPassword for every email, like the harness's stub.
type stubLogin struct{}

func (stubLogin) Login(_ context.Context, email, password string) (login.Identity, error) {
	if password != benchPassword {
		return login.Identity{}, login.ErrInvalidCredentials
	}
	return login.Identity{CustomerID: customerIDFor(email)}, nil
}

// startTestService runs the service through the one wiring (meshauth.New)
// on a new table in DynamoDB Local, as the soak does, with the given reuse
// interval, and returns a second client of that table for the checks.
func startTestService(t *testing.T, reuse time.Duration) (*target, *dynamo.Store, *token.Codec) {
	t.Helper()
	endpoint := servicetest.DynamoDBLocal(t)
	table := "meshauth-soak-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	refreshSecret := strings.Repeat("r", 32)
	svc := servicetest.Start(t, map[string]string{
		"STORE": "dynamodb", "DYNAMO_DB_ENDPOINT": endpoint, "DYNAMO_DB_REGION": dynamoRegion,
		"DYNAMO_DB_AUTH_TABLE": table, "DYNAMO_DB_CREATE_TABLE": "true",
		"REFRESH_TOKEN_SECRET": refreshSecret, "LOG_LEVEL": "error",
		"REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS": strconv.Itoa(int(reuse / time.Second)),
		"LOGIN_LIMIT_ACCOUNT":                     "off", "LOGIN_LIMIT_IP": "off",
	}, meshauth.Options{Login: stubLogin{}, LogWriter: io.Discard, Now: time.Now})
	st, err := newDynamoStore(t.Context(), endpoint, table)
	if err != nil {
		t.Fatal(err)
	}
	codec, err := token.NewCodec([]byte(refreshSecret))
	if err != nil {
		t.Fatal(err)
	}
	tg := newTarget(svc.URL+"/graphql", 64)
	t.Cleanup(tg.close)
	return tg, st, codec
}

// runTestSoak drives the checked soak load against tg for d.
func runTestSoak(t *testing.T, tg *target, codec *token.Codec, reuse time.Duration, users int, d time.Duration) *soakRun {
	t.Helper()
	r := newSoakRun(codec, reuse, users)
	st, _, err := runLoad(t.Context(), tg, r.scenario(), users, true, 0, d, nil)
	if err != nil {
		t.Fatal(err)
	}
	if st.ok == 0 {
		t.Fatal("the soak recorded no successful operation")
	}
	return r
}

func byName(inv []invariant, prefix string) invariant {
	for _, x := range inv {
		if strings.HasPrefix(x.Name, prefix) {
			return x
		}
	}
	return invariant{Name: "missing: " + prefix}
}

// TestSoakChecksPass: against the real service, a short soak satisfies
// every invariant, and every kind of traffic happened.
func TestSoakChecksPass(t *testing.T) {
	const reuse = time.Second
	tg, st, codec := startTestService(t, reuse)
	r := runTestSoak(t, tg, codec, reuse, 6, 5*time.Second)
	for _, u := range r.users {
		// A user may have ended its session just as the soak ended; the
		// sample of 3 needs 3 live sessions.
		if u.live == nil && !u.login(t.Context(), r, false) {
			t.Fatalf("user %d could not log in again", u.v.id)
		}
	}
	inv, fig := checkSoak(t.Context(), r, tg, st, 3)
	var out bytes.Buffer
	if failed := writeInvariants(&out, inv, fig); failed != 0 {
		t.Fatalf("%d invariants failed:\n%s", failed, out.String())
	}
	t.Log(out.String())
	if fig.Revokes == 0 || fig.BurstGroups == 0 || fig.StaleProbes == 0 || fig.Refreshes == 0 || fig.ReuseSample != 3 {
		t.Errorf("some traffic is missing: %+v", fig)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; last != "9 passed, 0 failed" {
		t.Errorf("last line %q\n%s", last, out.String())
	}
	// The sampled sessions were ended by reuse detection.
	ended := 0
	for _, u := range r.users {
		if u.live == nil {
			ended++
		}
	}
	if ended < 3 {
		t.Errorf("%d sessions ended, want at least the 3 of the sample", ended)
	}
}

// TestSoakChecksCatchViolations: the checks see a client whose latest token
// is not the stored one, a "revoked" session that is still alive, a stray
// session, and a refused refresh during the soak.
func TestSoakChecksCatchViolations(t *testing.T) {
	const reuse = time.Second
	tg, st, codec := startTestService(t, reuse)
	r := runTestSoak(t, tg, codec, reuse, 4, time.Second)
	ctx := t.Context()
	var live []*soakUser
	for _, u := range r.users {
		// A user may have ended its session just as the soak ended.
		if u.live == nil && !u.login(ctx, r, false) {
			t.Fatalf("user %d could not log in again", u.v.id)
		}
		live = append(live, u)
	}

	// 1. A token the service never issued, as the client's latest.
	a := live[0]
	rt, err := codec.Parse(a.live.latest())
	if err != nil {
		t.Fatal(err)
	}
	a.live.tokens = append(a.live.tokens, codec.Next(codec.Next(rt, rt.Expires), rt.Expires).String())

	// 2. A session the client counts as revoked, still stored and alive.
	b := live[1]
	b.revoked = append(b.revoked, b.live)
	b.live = nil

	// 3. A session of c's customer the client never heard of.
	c := live[2]
	now := time.Now()
	if err := st.Create(ctx, store.Session{ID: "stray-session", CustomerID: c.customer, TokenHash: []byte("x"),
		CreatedAt: now, RefreshedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}

	// 4. A refusal during the soak.
	c.lost = append(c.lost, lostSession{sess: &soakSession{id: "gone", tokens: []string{"t"}}, code: codeInvalidRefresh})

	inv, fig := checkSoak(ctx, r, tg, st, 0)
	var out bytes.Buffer
	failed := writeInvariants(&out, inv, fig)
	for _, prefix := range []string{
		"live sessions:",
		"one live token per session",
		"no lost session during the soak",
		"no lost session at the end",
		"no stray session",
		"revoked sessions are gone",
		"no refresh of a revoked session succeeds",
	} {
		if x := byName(inv, prefix); x.Passed {
			t.Errorf("%q passed: %s", prefix, x.Detail)
		}
	}
	if x := byName(inv, "concurrent duplicate refreshes"); !x.Passed {
		t.Errorf("bursts failed: %s", x.Detail)
	}
	if failed != 7 || !strings.HasSuffix(strings.TrimSpace(out.String()), "2 passed, 7 failed") {
		t.Errorf("%d failed:\n%s", failed, out.String())
	}
}

func TestMemoryInvariant(t *testing.T) {
	flat, grew := true, false
	r := Result{RSSFlat: &flat, RSSFirstMinMB: ptr(30.0), RSSLastMinMB: ptr(31.0), RSSSeriesMB: []float64{30, 31}, RSSAnonSeriesMB: []float64{12, 13}}
	if x := memoryInvariant(r); !x.Passed || x.Skipped || !strings.Contains(x.Detail, "12.0 to 13.0 MiB") {
		t.Errorf("flat: %+v", x)
	}
	r.RSSFlat = &grew
	if x := memoryInvariant(r); x.Passed || x.Skipped {
		t.Errorf("grew: %+v", x)
	}
	if x := memoryInvariant(Result{RSSFlatCriteria: "too short"}); !x.Skipped {
		t.Errorf("too short: %+v", x)
	}
	var out bytes.Buffer
	if n := writeInvariants(&out, []invariant{{Name: "a", Passed: true}, {Name: "b", Skipped: true}}, soakFigures{}); n != 0 ||
		!strings.HasSuffix(strings.TrimSpace(out.String()), "1 passed, 0 failed, 1 skipped") {
		t.Errorf("%d: %s", n, out.String())
	}
}

func TestCheckFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-check", "-soak", "1m"}, // not DynamoDB
		{"-check", "-store", "dynamodb", "-dynamo-endpoint", "http://127.0.0.1:1"}, // no soak
		{"-check", "-store", "dynamodb", "-dynamo-endpoint", "http://127.0.0.1:1", "-soak", "1m", "-reuse-interval", "1500ms"},
	} {
		if _, err := parseFlags(args); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
	o, err := parseFlags([]string{"-check", "-store", "dynamodb", "-dynamo-endpoint", "http://127.0.0.1:1", "-soak", "3m"})
	if err != nil || !o.check || o.reuseInterval != time.Second || o.reuseSample != 16 {
		t.Errorf("%+v, %v", o, err)
	}
}

func TestSampleAnonPeak(t *testing.T) {
	if _, err := procStatusKB(os.Getpid(), "RssAnon"); err != nil {
		t.Skip("no RssAnon:", err)
	}
	stop := sampleAnonPeak(os.Getpid(), 10*time.Millisecond)
	time.Sleep(30 * time.Millisecond)
	if kb := stop(); kb <= 0 {
		t.Errorf("peak RssAnon %d KiB", kb)
	}
	if kb := sampleAnonPeak(1<<30, time.Millisecond)(); kb != -1 {
		t.Errorf("a missing process gave %d", kb)
	}
}
