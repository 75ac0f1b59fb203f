// Command bench is meshauth's load benchmark, held to a ceiling.
//
//	go run ./bench [-store embedded|dynamodb] [-scenarios login,refresh,mixed,burst]
//	               [-duration 10s] [-users 64] [-soak 5m] [-bin path/to/meshauth]
//	go run ./bench -store dynamodb -soak 3m -check [-reuse-interval 1s] [-reuse-sample 16]
//
// It builds the service (or takes -bin), starts it on a free loopback port in
// production mode with LOGIN_PROVIDER=http pointed at a login stub inside the
// harness (no hashing), measures the cold start to ready, and drives each
// scenario with -users concurrent virtual users for -duration after a
// -warmup:
//
//	login    distinct customers log in (remember_me false)
//	refresh  each user logs in once, then refreshes with its latest token in a loop
//	mixed    each user loops 8 refreshes, 1 revoke, 1 login
//	burst    groups of 8 refresh the same token at once, as browser tabs do;
//	         all 8 must succeed with the same successor (else MISMATCH)
//
// Each virtual user has its own client address, sent in X-Forwarded-For from
// the trusted loopback proxy (TRUSTED_PROXIES=127.0.0.1), as behind a gateway;
// -xff=false sends everything from 127.0.0.1. -service-env adds settings.
//
// In the same run it measures ceilings, before and after the scenarios (the
// better of the two counts): a bare net/http handler, in a child process,
// doing a refresh's work with the service's own token code and an in-memory
// map, under the same load; with -store dynamodb also DynamoDB Local's own
// rate for the refresh's conditional update, issued straight from Go with the
// service's store code. One JSON line per ceiling and per scenario goes to
// stdout; a table, with every service figure as a ratio of the ceiling and
// the targets as met or not met, to stderr.
//
// CPU is a process's utime+stime from /proc/<pid>/stat (in CLK_TCK units,
// `getconf CLK_TCK`, 100 when unknown); peak RSS its VmHWM from
// /proc/<pid>/status, reset at each window's start (clear_refs 5), and peak
// anon the highest RssAnon sampled every 250 ms (the RSS without mapped file
// pages, such as the embedded store's bbolt file); store
// calls come from the service's /metrics (meshauth_store_calls_total), "n/a"
// when it has none. background_cpu_cores is what the rest of the machine used
// meanwhile: a measurement with much of it is noisy.
//
// -hostile N sends, instead of the scenarios, each of the worst requests that
// need no login (hostile.go), each at the largest size the limits let
// through, N times in distinct variants, and reports the service's CPU per
// request; then 10 000 distinct hostile documents and the peak RSS.
//
// -preload N logs N distinct customers in first, unmeasured, so that the
// scenarios run against a store holding N more sessions, and reports the
// service's RSS split into anonymous memory, file-backed memory and the
// part of it that is the embedded store's sessions.db, with that file's size
// per session: go run ./bench -preload 100000 -scenarios refresh.
//
// -limited FILE names the JSON lines of a run with the default login limits;
// the run at hand, with them off (-service-env LOGIN_LIMIT_ACCOUNT=off
// -service-env LOGIN_LIMIT_IP=off), is its baseline, and the table ends with
// the target that login with the limits keeps at least 80 % of the rate
// without them. bench/run.sh does this on DynamoDB Local.
//
// -soak D runs mixed for D instead of the scenarios and samples RSS every
// -soak-interval. With -check (DynamoDB only) the soak runs the checked
// load of soak.go instead (login, refresh, concurrent duplicate refreshes,
// probes with revoked sessions' tokens, revoke; each user keeps every token
// it held) and then verifies the invariants through the GraphQL API and in
// the table itself; it prints them ending with "N passed, N failed" and
// exits 1 when one fails. The service then runs with
// REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS from -reuse-interval, so that the
// last check can wait the grace out. bench/soak.sh runs it with DynamoDB
// Local.
//
// Linux only. Everything
// listens on 127.0.0.1 except the service itself, which binds PORT on every
// interface (its own behaviour); the harness only talks to it over loopback.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshauth/meshauth/internal/token"
)

type options struct {
	store          string
	scenarios      []string
	duration       time.Duration
	warmup         time.Duration
	users          int
	soak           time.Duration
	soakInterval   time.Duration
	soakWarmup     time.Duration
	bin            string
	dynamoEndpoint string
	ceiling        bool
	jvmWarmup      time.Duration
	xff            bool
	serviceEnv     []string
	coldStarts     int
	table          bool
	check          bool
	reuseInterval  time.Duration
	reuseSample    int
	checkTimeout   time.Duration
	hostile        int
	preload        int
	limited        string
}

// errInvariants reports a checked soak whose invariants failed; the
// summary has been printed already.
var errInvariants = errors.New("soak invariants failed")

func main() {
	if slices.Contains(os.Args[1:], "-serve-ceiling") {
		if err := serveCeiling(); err != nil {
			fmt.Fprintln(os.Stderr, "bench ceiling:", err)
			os.Exit(1)
		}
		return
	}
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if err := run(o, os.Stdout, os.Stderr); errors.Is(err, errInvariants) {
		os.Exit(1)
	} else if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.StringVar(&o.store, "store", "embedded", "session store: embedded or dynamodb")
	list := fs.String("scenarios", "login,refresh,mixed,burst", "comma-separated scenarios: login, refresh, mixed, burst")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured time of each scenario")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "unmeasured load before each measured window")
	fs.IntVar(&o.users, "users", 64, "concurrent virtual users")
	fs.DurationVar(&o.soak, "soak", 0, "instead of the scenarios, run mixed for this long and sample RSS (e.g. 5m)")
	fs.DurationVar(&o.soakInterval, "soak-interval", 10*time.Second, "RSS sampling interval during -soak")
	fs.DurationVar(&o.soakWarmup, "soak-warmup", 30*time.Second, "soak time excluded before the first-minute RSS average")
	fs.StringVar(&o.bin, "bin", "", "service binary (default: go build ./cmd/meshauth into a temporary directory)")
	fs.StringVar(&o.dynamoEndpoint, "dynamo-endpoint", os.Getenv("DYNAMODB_TEST_ENDPOINT"), "DynamoDB Local endpoint for -store dynamodb (default $DYNAMODB_TEST_ENDPOINT)")
	fs.BoolVar(&o.ceiling, "ceiling", true, "measure the ceilings (bare handler; DynamoDB Local direct)")
	fs.DurationVar(&o.jvmWarmup, "jvm-warmup", 15*time.Second, "with -store dynamodb, load on DynamoDB Local before its first measurement (JIT warm-up)")
	fs.BoolVar(&o.xff, "xff", true, "give each virtual user its own client address (X-Forwarded-For from a trusted loopback proxy, TRUSTED_PROXIES=127.0.0.1), as behind a gateway; with -xff=false every request comes from 127.0.0.1 and login limits per address apply to all users together")
	fs.Func("service-env", "extra KEY=VALUE for the service's environment (repeatable), e.g. LOGIN_LIMIT_IP=off", func(v string) error {
		if k, _, ok := strings.Cut(v, "="); !ok || k == "" {
			return errors.New("want KEY=VALUE")
		}
		o.serviceEnv = append(o.serviceEnv, v)
		return nil
	})
	fs.IntVar(&o.coldStarts, "cold-starts", 5, "service starts to measure cold start to ready (the last one serves the scenarios)")
	fs.BoolVar(&o.table, "table", true, "print the human table on stderr")
	fs.BoolVar(&o.check, "check", false, "with -soak and -store dynamodb: run the checked soak load and verify its invariants through the API and in the table (exit 1 if one fails)")
	fs.DurationVar(&o.reuseInterval, "reuse-interval", time.Second, "with -check: the service's REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS (whole seconds, at least 1)")
	fs.IntVar(&o.reuseSample, "reuse-sample", 16, "with -check: live sessions whose second-latest token is presented after the reuse interval (this ends them)")
	fs.DurationVar(&o.checkTimeout, "check-timeout", 5*time.Minute, "with -check: bound on the checks after the soak")
	fs.IntVar(&o.hostile, "hostile", 0, "instead of the scenarios, send each hostile shape (no login) this many times, then 10 000 distinct hostile documents, and report service CPU per request and peak RSS")
	fs.IntVar(&o.preload, "preload", 0, "before measuring, log in this many distinct customers (e.g. 100000), so that the scenarios run against a store holding that many sessions; reports the service's RSS (anonymous and file-backed) and sessions.db's size after them")
	fs.StringVar(&o.limited, "limited", "", "JSON lines of a run with the default login limits (bench/run.sh's dynamodb.jsonl); this run, with them off, is its baseline, and the table ends with the target that login with the limits keeps at least 80 % of the rate without them")
	fs.Bool("serve-ceiling", false, "internal: run as the ceiling's server process")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	var errs []error
	if o.store != "embedded" && o.store != "dynamodb" {
		errs = append(errs, errors.New("-store must be embedded or dynamodb"))
	}
	for s := range strings.SplitSeq(*list, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if _, ok := scenarios[s]; !ok {
			errs = append(errs, fmt.Errorf("unknown scenario %q", s))
		}
		o.scenarios = append(o.scenarios, s)
	}
	if o.users < 1 {
		errs = append(errs, errors.New("-users must be at least 1"))
	}
	if o.duration <= 0 || o.warmup < 0 || o.soak < 0 || o.soakInterval <= 0 {
		errs = append(errs, errors.New("durations must be positive"))
	}
	if o.coldStarts < 1 {
		errs = append(errs, errors.New("-cold-starts must be at least 1"))
	}
	if o.preload < 0 || o.preload > 0 && (o.hostile > 0 || o.check) {
		errs = append(errs, errors.New("-preload must be at least 0, and goes with neither -hostile nor -check"))
	}
	if o.check {
		if o.soak <= 0 || o.store != "dynamodb" {
			errs = append(errs, errors.New("-check needs -soak DURATION and -store dynamodb"))
		}
		if o.reuseInterval < time.Second || o.reuseInterval%time.Second != 0 {
			errs = append(errs, errors.New("-reuse-interval must be whole seconds, at least 1s"))
		}
		if o.reuseSample < 0 || o.checkTimeout <= 0 {
			errs = append(errs, errors.New("-reuse-sample must be at least 0 and -check-timeout positive"))
		}
	}
	if o.store == "dynamodb" && o.dynamoEndpoint == "" {
		errs = append(errs, errors.New("-store dynamodb needs -dynamo-endpoint or DYNAMODB_TEST_ENDPOINT (scripts/dynamodb-local.sh start prints it)"))
	}
	return o, errors.Join(errs...)
}

func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
}

// moduleRoot finds the directory of meshauth's go.mod from the working directory up.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module github.com/meshauth/meshauth\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run from inside the meshauth module (no go.mod of github.com/meshauth/meshauth above the working directory)")
		}
		dir = parent
	}
}

func secret() string {
	b := make([]byte, 48)
	_, _ = rand.Read(b)
	return base64.StdEncoding.EncodeToString(b)
}

// startStub starts the login platform stand-in: POST {"email","password"}
// gets 200 {"customer_id": <derived from the email>}; no hashing.
func startStub() (*http.Server, string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, "", err
	}
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var c struct {
			Email    string `json:"email"`
			Password string `json:"password"`
		}
		if r.Method != http.MethodPost || json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&c) != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		if c.Password != benchPassword {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"customer_id":"`+customerIDFor(c.Email)+`"}`)
	})}
	go func() { _ = srv.Serve(ln) }()
	return srv, "http://" + ln.Addr().String() + "/login", nil
}

func run(o options, stdout, stderr io.Writer) error {
	// The load generator allocates a little per request; collecting less
	// often leaves more of the 2 cores to what is measured.
	debug.SetGCPercent(400)
	ctx, stop := signalContext()
	defer stop()
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "meshauth-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	bin := o.bin
	if bin == "" {
		bin = filepath.Join(tmp, "meshauth")
		fmt.Fprintln(stderr, "bench: go build -o", bin, "./cmd/meshauth")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/meshauth")
		cmd.Dir, cmd.Stdout, cmd.Stderr = root, stderr, stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("build the service: %w", err)
		}
	}

	stub, loginURL, err := startStub()
	if err != nil {
		return err
	}
	defer stub.Close()

	refreshSecret, jwtSecret := secret(), secret()
	env := []string{
		"APP_ENV=production",
		"LOG_LEVEL=error",
		"JWT_PRIVATE_KEY=" + jwtSecret,
		"REFRESH_TOKEN_SECRET=" + refreshSecret,
		"LOGIN_PROVIDER=http",
		"LOGIN_HTTP_URL=" + loginURL,
	}
	if o.xff {
		env = append(env, "TRUSTED_PROXIES=127.0.0.1")
	}

	storePID := 0
	var table string
	if o.store == "dynamodb" {
		table = uniqueTable("service")
		env = append(env, "STORE=dynamodb", "DYNAMO_DB_ENDPOINT="+o.dynamoEndpoint, "DYNAMO_DB_REGION="+dynamoRegion,
			"DYNAMO_DB_AUTH_TABLE="+table, "DYNAMO_DB_CREATE_TABLE=true",
			"AWS_ACCESS_KEY_ID=local", "AWS_SECRET_ACCESS_KEY=local", "AWS_EC2_METADATA_DISABLED=true")
		defer dropTable(o.dynamoEndpoint, table)
		storePID = dynamoLocalPID(root)
	} else {
		env = append(env, "STORE=embedded")
	}
	if o.check {
		env = append(env, fmt.Sprintf("REFRESH_TOKEN_REUSE_INTERVAL_IN_SECONDS=%d", int(o.reuseInterval/time.Second)))
	}
	// exec.Cmd keeps the last of duplicate keys, so these override the above.
	env = append(env, o.serviceEnv...)

	// Cold starts: each on a fresh data directory (embedded); with DynamoDB
	// the first one also creates the table.
	var svc *proc
	var samples []float64
	for i := range o.coldStarts {
		e := env
		if o.store == "embedded" {
			e = append(slices.Clone(env), "DATA_DIR="+filepath.Join(tmp, fmt.Sprintf("data-%d", i)))
		}
		p, err := startService(ctx, bin, e)
		if err != nil {
			return fmt.Errorf("start the service: %w", err)
		}
		samples = append(samples, round(float64(p.ready)/1e6, 1))
		if i < o.coldStarts-1 {
			p.stop()
			continue
		}
		svc = p
	}
	defer svc.stop()
	sorted := slices.Sorted(slices.Values(samples))
	coldMedian := sorted[len(sorted)/2]
	fmt.Fprintf(stderr, "bench: service ready (pid %d, %s); cold start to ready: median %.1f ms of %v\n", svc.pid(), svc.base, coldMedian, samples)

	if o.hostile > 0 {
		ht := newTarget(svc.base+"/graphql", 4)
		defer ht.close()
		fmt.Fprintf(stderr, "bench: hostile shapes, %d distinct requests each, one at a time\n", o.hostile)
		worst, peak, err := runHostile(ctx, ht, svc, o.hostile, stdout, stderr)
		if err != nil {
			return err
		}
		fmt.Fprintf(stderr, "bench: worst service CPU per request without a login: %.3f ms (target <= 10 ms: %s); peak RSS after 10 000 distinct hostile documents: %.1f MiB (target < 64 MB: %s)\n",
			worst, verdict(worst <= 10), peak, verdict(peak*1.048576 < 64))
		return nil
	}

	if o.preload > 0 {
		pt := newTarget(svc.base+"/graphql", o.users)
		db := ""
		if o.store == "embedded" {
			db = filepath.Join(tmp, fmt.Sprintf("data-%d", o.coldStarts-1), "sessions.db")
		}
		err := preload(ctx, pt, svc, o.preload, o.users, o.xff, db, stdout, stderr)
		pt.close()
		if err != nil {
			return err
		}
	}

	// The ceilings, then the scenarios, then the ceilings again: on a shared
	// machine the rate of the same work drifts, so each ceiling is measured
	// before and after the scenarios and the higher of the two counts, which
	// makes the targets harder, not easier. DynamoDB Local's JVM is warmed up
	// before its first measurement (its JIT makes a cold one several times
	// slower).
	var ceilings []Result
	var ceiling, dynCeiling *Result
	var dynSamples []float64
	measureDynamo := func(warmup time.Duration) error {
		fmt.Fprintf(stderr, "bench: dynamo_ceiling (Rotate straight to DynamoDB Local), %d users, %s after %s of warm-up\n", o.users, o.duration, warmup)
		m, err := dynamoCeiling(ctx, o.dynamoEndpoint, o.users, warmup, o.duration, storePID)
		if err != nil {
			return fmt.Errorf("DynamoDB Local ceiling: %w", err)
		}
		c := summarize("dynamo_ceiling", "dynamodb-local", o.users, m)
		dynSamples = append(dynSamples, c.OpsPerS)
		if dynCeiling == nil || c.OpsPerS > dynCeiling.OpsPerS {
			dynCeiling = &c
		}
		return nil
	}
	var ceilSamples []float64
	measureBare := func() error {
		fmt.Fprintf(stderr, "bench: ceiling (bare handler, refresh), %d users, %s\n", o.users, o.duration)
		m, err := measureCeiling(ctx, o, refreshSecret, jwtSecret)
		if err != nil {
			return fmt.Errorf("ceiling: %w", err)
		}
		c := summarize("ceiling", "memory", o.users, m)
		ceilSamples = append(ceilSamples, c.OpsPerS)
		if ceiling == nil || c.OpsPerS > ceiling.OpsPerS {
			ceiling = &c
		}
		return nil
	}
	if o.ceiling && o.soak == 0 {
		if err := measureBare(); err != nil {
			return err
		}
		if o.store == "dynamodb" {
			if err := measureDynamo(max(o.warmup, o.jvmWarmup)); err != nil {
				return err
			}
		}
	}

	conns := o.users
	var soak *soakRun
	if o.check {
		codec, err := token.NewCodec([]byte(refreshSecret))
		if err != nil {
			return err
		}
		soak = newSoakRun(codec, o.reuseInterval, o.users)
		conns = o.users * (1 + soakBurst)
	}
	t := newTarget(svc.base+"/graphql", conns)
	defer t.close()
	list := o.scenarios
	if o.soak > 0 {
		list = []string{"mixed"}
	}
	var rows []Result
	var failedInvariants int
	for _, name := range list {
		sc := scenarios[name]
		d, label := o.duration, name
		if o.soak > 0 {
			d, label = o.soak, "soak-mixed"
		}
		if soak != nil {
			sc, label = soak.scenario(), "soak-check"
		}
		fmt.Fprintf(stderr, "bench: %s on %s, %d users, %s\n", label, o.store, o.users, d)
		m, err := measureService(ctx, t, svc, sc, o, d, storePID)
		if err != nil {
			return fmt.Errorf("%s: %w", label, err)
		}
		users := o.users
		if sc.actors != nil {
			users = sc.actors(o.users) * burstSize
		}
		r := summarize(label, o.store, users, m)
		r.ColdStartMS, r.ColdStartsMS = ptr(coldMedian), samples
		if o.soak > 0 {
			addSoak(&r, m, o)
		}
		if soak != nil {
			fmt.Fprintf(stderr, "bench: checking the soak's invariants (reuse interval %s, sample %d)\n", o.reuseInterval, o.reuseSample)
			inv, fig, err := checkDynamoSoak(ctx, o, table, soak, t)
			if err != nil {
				return err
			}
			inv = append(inv, memoryInvariant(r))
			r.Invariants, r.Soak = inv, &fig
		}
		rows = append(rows, r)
	}
	if dynCeiling != nil {
		if err := measureDynamo(o.warmup); err != nil {
			return err
		}
		dynCeiling.SamplesOpsPerS = dynSamples
	}
	if ceiling != nil {
		if err := measureBare(); err != nil {
			return err
		}
		ceiling.SamplesOpsPerS = ceilSamples
	}

	if ceiling != nil {
		ceilings = append(ceilings, *ceiling)
	}
	if dynCeiling != nil {
		ceilings = append(ceilings, *dynCeiling)
	}
	for i := range rows {
		if ceiling != nil {
			rows[i].withCeiling(*ceiling)
		}
		if dynCeiling != nil {
			rows[i].withDynamoCeiling(*dynCeiling)
		}
	}
	for _, r := range append(slices.Clone(ceilings), rows...) {
		if err := writeJSON(stdout, r); err != nil {
			return err
		}
	}
	if o.table {
		fmt.Fprintln(stderr)
		writeTable(stderr, rows, ceilings)
		if o.limited != "" {
			limited, err := readResults(o.limited)
			if err != nil {
				return err
			}
			for _, t := range limitTargets(limited, rows) {
				fmt.Fprintln(stderr, t)
			}
		}
	}
	for _, r := range rows {
		if r.Soak != nil {
			failedInvariants += writeInvariants(stderr, r.Invariants, *r.Soak)
		}
	}
	if failedInvariants > 0 {
		return errInvariants
	}
	return nil
}

// checkDynamoSoak checks a soak's invariants against the service's table,
// read with the service's own store code, within -check-timeout.
func checkDynamoSoak(ctx context.Context, o options, table string, soak *soakRun, t *target) ([]invariant, soakFigures, error) {
	ctx, cancel := context.WithTimeout(ctx, o.checkTimeout)
	defer cancel()
	st, err := newDynamoStore(ctx, o.dynamoEndpoint, table)
	if err != nil {
		return nil, soakFigures{}, fmt.Errorf("open the table to check it: %w", err)
	}
	inv, fig := checkSoak(ctx, soak, t, st, o.reuseSample)
	return inv, fig, nil
}

func addSoak(r *Result, m *Measure, o options) {
	for _, s := range m.RSSSeries {
		r.RSSSeriesAtS = append(r.RSSSeriesAtS, round(s.At.Seconds(), 1))
		r.RSSSeriesMB = append(r.RSSSeriesMB, round(float64(s.RSSKB)/1024, 1))
		r.RSSAnonSeriesMB = append(r.RSSAnonSeriesMB, round(float64(s.AnonKB)/1024, 1))
		r.RSSFileSeriesMB = append(r.RSSFileSeriesMB, round(float64(s.FileKB)/1024, 1))
	}
	first, last, flat, ok := flatness(m.RSSSeries, o.soak, o.soakWarmup, 0.20)
	r.RSSFlatCriteria = fmt.Sprintf("VmRSS every %s; average of the last minute within 20%% of the first minute after %s of warm-up", o.soakInterval, o.soakWarmup)
	if ok {
		r.RSSFirstMinMB, r.RSSLastMinMB, r.RSSFlat = ptr(first), ptr(last), ptr(flat)
	} else {
		r.RSSFlatCriteria += " (too short to judge: needs warm-up + 2 minutes)"
	}
}

// measureCeiling starts the ceiling process and drives it with the refresh loop.
func measureCeiling(ctx context.Context, o options, refreshSecret, jwtSecret string) (*Measure, error) {
	p, err := startCeiling(refreshSecret, jwtSecret)
	if err != nil {
		return nil, err
	}
	defer p.stop()
	t := newTarget(p.base+"/graphql", o.users)
	defer t.close()
	return measureService(ctx, t, p, scenarios["refresh"], o, o.duration, 0)
}

// measureService runs sc against t, served by process p, and reads p's CPU,
// peak RSS and store calls over the measured window.
func measureService(ctx context.Context, t *target, p *proc, sc scenario, o options, d time.Duration, storePID int) (*Measure, error) {
	m := newMeasure()
	metrics := &http.Client{Timeout: 5 * time.Second}
	defer metrics.CloseIdleConnections()
	var at0 snapshot
	var calls0 float64
	var metricsOK bool
	stopSampler := func() {}
	stopAnon := func() int64 { return -1 }
	warmup := o.warmup
	probe := func(start bool) {
		pid := p.pid()
		if start {
			_ = resetPeakRSS(pid)
			calls0, metricsOK, _ = scrapeStoreCalls(metrics, p.base+"/metrics")
			if o.soak > 0 {
				stopSampler = sampleRSS(pid, o.soakInterval, m)
			}
			stopAnon = sampleAnonPeak(pid, anonSampleInterval)
			at0 = takeSnapshot(pid, storePID)
			return
		}
		m.fill(at0, takeSnapshot(pid, storePID))
		m.readRSS(pid)
		m.PeakAnonKB = stopAnon()
		if calls1, ok, found := scrapeStoreCalls(metrics, p.base+"/metrics"); ok && metricsOK && found {
			m.StoreCalls = calls1 - calls0
		}
		stopSampler()
	}
	st, window, err := runLoad(ctx, t, sc, o.users, o.xff, warmup, d, probe)
	if err != nil {
		return nil, err
	}
	m.Stats, m.Window = st, window
	return m, nil
}

// sampleRSS records p's VmRSS every interval into m.RSSSeries until the
// returned function is called (which takes a last sample).
func sampleRSS(pid int, interval time.Duration, m *Measure) func() {
	start := time.Now()
	done := make(chan struct{})
	finished := make(chan struct{})
	sample := func() {
		if kb, err := procStatusKB(pid, "VmRSS"); err == nil {
			anon, _ := procStatusKB(pid, "RssAnon")
			file, _ := procStatusKB(pid, "RssFile")
			m.RSSSeries = append(m.RSSSeries, rssSample{At: time.Since(start), RSSKB: kb, AnonKB: anon, FileKB: file})
		}
	}
	go func() {
		defer close(finished)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return func() {
		close(done)
		<-finished
		// A last sample at the window's end, unless a tick just took one.
		if n := len(m.RSSSeries); n == 0 || time.Since(start)-m.RSSSeries[n-1].At > interval/2 {
			sample()
		}
	}
}

// anonSampleInterval is how often RssAnon is read for its peak: the kernel
// keeps a peak of the whole RSS (VmHWM) but not of its anonymous part.
const anonSampleInterval = 250 * time.Millisecond

// sampleAnonPeak reads pid's RssAnon every interval until the returned
// function is called, which reads it a last time and returns the highest
// value seen, in KiB (-1 when it could not be read).
func sampleAnonPeak(pid int, interval time.Duration) func() int64 {
	var mu sync.Mutex
	peak := int64(-1)
	sample := func() {
		if kb, err := procStatusKB(pid, "RssAnon"); err == nil {
			mu.Lock()
			peak = max(peak, kb)
			mu.Unlock()
		}
	}
	sample()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				sample()
			}
		}
	}()
	return func() int64 {
		close(done)
		<-finished
		sample()
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
}
