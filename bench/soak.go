package main

import (
	"context"
	"crypto/hmac"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/token"
)

// The soak with invariant checks (-soak DURATION -check, -store dynamodb).
//
// Every virtual user is one customer (its own email, so its own customer id)
// with at most one session at a time. In a loop it refreshes its latest
// token soakRefreshes times, one after the other; then soakBurst requests
// refresh that token at once, as a browser's tabs do; then it presents a
// token of one of its revoked sessions, which must be refused; then, in
// half the rounds, it revokes its session and logs in again. It keeps every refresh token it
// was given for its current session and for each of its revoked sessions.
//
// When the soak ends and the load has stopped, checkSoak verifies, through
// the service's GraphQL API and in the store itself (the same table, read
// with the service's store code; hashes computed with token.Codec under the
// service's REFRESH_TOKEN_SECRET):
//
//   - live sessions: for every session a client holds, the store's current
//     token hash is the hash of the client's latest refresh token;
//   - one live token per session: no earlier token of the session is
//     current, and the stored previous hash is the client's second-latest;
//   - no lost session, during the soak (no refresh of a client's latest
//     token was refused) and at the end (each latest token refreshes through
//     the API, and the store holds nothing else for the customer);
//   - revoked sessions are gone from the store, and neither their last
//     token (at the end) nor any of their tokens (probed during the soak)
//     refreshes;
//   - every burst of concurrent refreshes of one token gave all its
//     requests one and the same successor;
//   - after the reuse interval, presenting the second-latest token of a
//     sample of live sessions is refused with REFRESH_TOKEN_REUSED, and the
//     session is then gone: so the second-latest token was not live;
//
// and the run adds whether the service's RSS stayed flat.

const (
	// soakRefreshes are the sequential refreshes of one round.
	soakRefreshes = 6
	// soakBurst is how many requests of a round refresh the same token at once.
	soakBurst = 4
	// soakEmailDomain names the soak's customers: soak-<user>@bench.example.
	soakEmailDomain = "@bench.example"
)

// Codes the service answers with.
const (
	codeInvalidRefresh = "INVALID_REFRESH_TOKEN"
	codeReused         = "REFRESH_TOKEN_REUSED"
)

// sessionReader is what the checks read from the store: dynamo.Store, or
// any other backend in tests.
type sessionReader interface {
	Get(ctx context.Context, id string) (store.Session, error)
	ListByCustomer(ctx context.Context, customerID string) ([]store.Session, error)
}

// soakSession is a session as one client knows it.
type soakSession struct {
	id string
	// tokens are every refresh token the client was given for the session,
	// oldest first; the last one is the latest.
	tokens []string
}

func (s *soakSession) latest() string { return s.tokens[len(s.tokens)-1] }

// lostSession is a session whose latest token the service refused during
// the soak.
type lostSession struct {
	sess *soakSession
	code string
	// explained: REFRESH_TOKEN_REUSED for a token whose previous attempt got
	// no answer (a lost response or a store timeout) and began more than the
	// reuse interval before, which is the protocol's answer, not a bug.
	explained bool
}

// soakUser is one virtual user of the soak and everything it saw.
type soakUser struct {
	v        *vu
	tabs     [soakBurst]*vu
	email    string
	customer string

	live    *soakSession // nil between a revoke and the next login
	revoked []*soakSession
	lost    []lostSession
	// unconfirmed are sessions whose revoke never got an answer: they may
	// or may not be stored, and are checked for neither.
	unconfirmed []*soakSession
	// uncertainLogins are logins that got no answer: each may have left a
	// session the client never heard of.
	uncertainLogins int
	loginCodes      map[string]int
	// ambiguousSince is when the first unanswered attempt on the latest
	// token began (zero when the last attempt was answered).
	ambiguousSince time.Time

	refreshes, successors, wrongSuccessors int
	bursts, burstRequests, burstSplit      int
	burstRefused                           int
	burstCodes                             map[string]int
	staleProbes, staleAccepted, staleOther int
	revokes, revokeRefused, logins         int
}

// soakRun is the state of one checked soak.
type soakRun struct {
	codec *token.Codec
	reuse time.Duration
	users []*soakUser
}

func newSoakRun(codec *token.Codec, reuse time.Duration, users int) *soakRun {
	return &soakRun{codec: codec, reuse: reuse, users: make([]*soakUser, users)}
}

// scenario is the soak's load, for runLoad: one actor per virtual user.
func (r *soakRun) scenario() scenario {
	return scenario{
		name: "soak-check",
		setup: func(ctx context.Context, v *vu) (any, error) {
			u := &soakUser{v: v, email: fmt.Sprintf("soak-%d%s", v.id, soakEmailDomain), burstCodes: map[string]int{}, loginCodes: map[string]int{}}
			u.customer = customerIDFor(u.email)
			for i := range u.tabs {
				u.tabs[i] = &vu{id: v.id, t: v.t, win: v.win, addr: v.addr, st: newStats()}
			}
			r.users[v.id] = u
			if !u.login(ctx, r, false) {
				return u, fmt.Errorf("user %d could not log in", v.id)
			}
			return u, nil
		},
		loop: func(ctx context.Context, _ *vu, state any) { state.(*soakUser).loop(ctx, r) },
	}
}

func (u *soakUser) open(ctx context.Context) bool {
	return ctx.Err() == nil && u.v.win.open(time.Now())
}

// loop runs rounds until the window ends: refreshes, a burst, a probe with
// a revoked session's token, a revoke and a new login.
func (u *soakUser) loop(ctx context.Context, r *soakRun) {
	for u.open(ctx) {
		if u.live == nil {
			if !u.login(ctx, r, true) {
				pause(ctx, 100*time.Millisecond)
			}
			continue
		}
		for range soakRefreshes {
			if !u.open(ctx) || u.live == nil {
				break
			}
			u.refresh(ctx, r)
		}
		if !u.open(ctx) || u.live == nil {
			continue
		}
		u.burst(ctx, r)
		if !u.open(ctx) {
			break
		}
		u.probeStale(ctx)
		if !u.open(ctx) || u.live == nil {
			continue
		}
		// Half the rounds end the session, so that chains of every length
		// are checked.
		if rand.IntN(2) == 0 && u.revoke(ctx) && u.open(ctx) {
			u.login(ctx, r, true)
		}
	}
}

func pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// login starts a new session for the user's customer, retrying unanswered
// attempts (each of which may have created a session).
func (u *soakUser) login(ctx context.Context, r *soakRun, recorded bool) bool {
	for range 20 {
		if ctx.Err() != nil || (recorded && !u.open(ctx)) {
			return false
		}
		u.v.body = loginBody(u.v.body, u.email)
		var rep reply
		if recorded {
			rep = u.v.op(ctx, "login", u.v.body, checkPair)
		} else {
			rep = u.v.post(ctx, u.v.body)
			if rep.Code == "" {
				rep.Code = checkPair(rep)
			}
		}
		if rep.Code == "" {
			u.logins++
			rt, err := r.codec.Parse(rep.Refresh)
			if err != nil {
				u.wrongSuccessors++
				return false
			}
			u.live = &soakSession{id: rt.SessionID, tokens: []string{rep.Refresh}}
			u.ambiguousSince = time.Time{}
			return true
		}
		if keepsToken(rep.Code) {
			u.uncertainLogins++
		}
		u.loginCodes[rep.Code]++
		pause(ctx, 50*time.Millisecond)
	}
	return false
}

// accept adds a successor the service gave for the latest token.
func (u *soakUser) accept(r *soakRun, next string) {
	s := u.live
	u.successors++
	rt, err := r.codec.Parse(next)
	if err != nil || rt.SessionID != s.id || next == s.latest() {
		u.wrongSuccessors++
	}
	s.tokens = append(s.tokens, next)
	u.ambiguousSince = time.Time{}
}

// refused records that the service refused the latest token with code, in
// a request that began at start: the session is lost to the client, which
// logs in again.
func (u *soakUser) refused(ctx context.Context, r *soakRun, code string, start time.Time) {
	explained := code == codeReused && !u.ambiguousSince.IsZero() && start.Sub(u.ambiguousSince) > r.reuse
	u.lost = append(u.lost, lostSession{sess: u.live, code: code, explained: explained})
	u.live, u.ambiguousSince = nil, time.Time{}
	if u.open(ctx) {
		u.login(ctx, r, true)
	}
}

func (u *soakUser) refresh(ctx context.Context, r *soakRun) {
	start := time.Now()
	rep := u.v.refresh(ctx, u.live.latest())
	u.refreshes++
	switch {
	case rep.Code == "":
		u.accept(r, rep.Refresh)
	case keepsToken(rep.Code):
		if u.ambiguousSince.IsZero() {
			u.ambiguousSince = start
		}
	default:
		u.refused(ctx, r, rep.Code, start)
	}
}

// burst refreshes the latest token with soakBurst requests at once. All
// must succeed with one successor; a request that got no answer is
// tolerated, a refusal or a second successor is not.
func (u *soakUser) burst(ctx context.Context, r *soakRun) {
	body := tokenBody(nil, refreshQueryJSON, u.live.latest())
	type result struct {
		took time.Duration
		end  time.Time
		r    reply
	}
	var results [soakBurst]result
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for i, tab := range u.tabs {
		wg.Go(func() {
			<-gate
			t0 := time.Now()
			rep := tab.post(ctx, body)
			if rep.Code == "" {
				rep.Code = checkPair(rep)
			}
			end := time.Now()
			results[i] = result{end.Sub(t0), end, rep}
		})
	}
	start := time.Now()
	close(gate)
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	u.bursts++
	u.burstRequests += soakBurst
	successors := map[string]int{}
	first, refusedCode := "", ""
	for _, x := range results {
		code := x.r.Code
		switch {
		case code == "":
			if first == "" {
				first = x.r.Refresh
			}
			successors[x.r.Refresh]++
			if x.r.Refresh != first {
				code = "MISMATCH"
			}
		case keepsToken(code):
		default:
			refusedCode = code
		}
		if code != "" {
			u.burstCodes[code]++
		}
		if !x.end.Before(u.v.win.start) && !x.end.After(u.v.win.end) {
			u.v.st.record("burst", x.took, code)
		}
	}
	if len(successors) > 1 {
		u.burstSplit++
	}
	if refusedCode != "" {
		u.burstRefused++
	}
	switch {
	case first != "":
		u.accept(r, first)
	case refusedCode != "":
		u.refused(ctx, r, refusedCode, start)
	case u.ambiguousSince.IsZero():
		u.ambiguousSince = start
	}
}

// probeStale presents a token of one of the user's revoked sessions, as a
// stale tab or a thief would: it must be refused (INVALID_REFRESH_TOKEN).
func (u *soakUser) probeStale(ctx context.Context) {
	if len(u.revoked) == 0 {
		return
	}
	s := u.revoked[rand.IntN(len(u.revoked))]
	tok := s.tokens[rand.IntN(len(s.tokens))]
	start := time.Now()
	u.v.body = tokenBody(u.v.body, refreshQueryJSON, tok)
	rep := u.v.post(ctx, u.v.body)
	end := time.Now()
	if ctx.Err() != nil {
		return
	}
	u.staleProbes++
	code := rep.Code
	switch {
	case code == codeInvalidRefresh:
		code = ""
	case code == "":
		code = "STALE_ACCEPTED"
		u.staleAccepted++
	default:
		u.staleOther++
	}
	if !end.Before(u.v.win.start) && !end.After(u.v.win.end) {
		u.v.st.record("stale", end.Sub(start), code)
	}
}

// revoke ends the live session, retrying unanswered attempts (revoking an
// ended session succeeds, so a retry is safe).
func (u *soakUser) revoke(ctx context.Context) bool {
	s := u.live
	u.live, u.ambiguousSince = nil, time.Time{}
	for range 10 {
		rep := u.v.revoke(ctx, s.latest())
		if ctx.Err() != nil {
			break
		}
		if rep.Code == "" {
			u.revokes++
			u.revoked = append(u.revoked, s)
			return true
		}
		if !keepsToken(rep.Code) {
			u.revokeRefused++
			break
		}
		pause(ctx, 50*time.Millisecond)
	}
	u.unconfirmed = append(u.unconfirmed, s)
	return false
}

// invariant is one checked property of the soak.
type invariant struct {
	Name   string `json:"name"`
	Passed bool   `json:"passed"`
	// Skipped: it could not be judged (not counted as passed or failed).
	Skipped bool   `json:"skipped,omitempty"`
	Detail  string `json:"detail"`
}

// soakFigures are the counts of a checked soak.
type soakFigures struct {
	Users                int            `json:"users"`
	Logins               int            `json:"logins"`
	Refreshes            int            `json:"refreshes"`
	Successors           int            `json:"successors"`
	BurstGroups          int            `json:"burst_groups"`
	BurstRequests        int            `json:"burst_requests"`
	BurstCodes           map[string]int `json:"burst_codes,omitempty"`
	StaleProbes          int            `json:"stale_probes"`
	Revokes              int            `json:"revokes"`
	LiveSessions         int            `json:"live_sessions"`
	LiveTokens           int            `json:"live_tokens"`
	RevokedSessions      int            `json:"revoked_sessions"`
	RevokedTokens        int            `json:"revoked_tokens"`
	LostSessions         int            `json:"lost_sessions"`
	LostExplained        int            `json:"lost_explained"`
	UnconfirmedRevokes   int            `json:"unconfirmed_revokes"`
	UncertainLogins      int            `json:"uncertain_logins"`
	LoginFailures        map[string]int `json:"login_failures,omitempty"`
	UnresolvedAtEnd      int            `json:"unresolved_at_end"`
	ReuseSample          int            `json:"reuse_sample"`
	CheckDurationS       float64        `json:"check_duration_s"`
	CheckStoreReads      int64          `json:"check_store_reads"`
	CheckAPIRequests     int64          `json:"check_api_requests"`
	ReuseIntervalSeconds float64        `json:"reuse_interval_s"`
}

// failures collects the first few failures of one invariant, and counts all.
type failures struct {
	mu    sync.Mutex
	n     int
	first []string
}

func (f *failures) add(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n++
	if len(f.first) < 5 {
		f.first = append(f.first, fmt.Sprintf(format, args...))
	}
}

func (f *failures) result(name, ok string) invariant {
	if f.n == 0 {
		return invariant{Name: name, Passed: true, Detail: ok}
	}
	return invariant{Name: name, Detail: fmt.Sprintf("%d failure(s), e.g. %s; %s", f.n, strings.Join(f.first, "; "), ok)}
}

// parallel runs fn(i) for i in [0, n) on up to workers goroutines, each
// with its own virtual user for API calls.
func parallel(ctx context.Context, t *target, n, workers int, fn func(v *vu, i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range min(workers, max(n, 1)) {
		v := &vu{id: -1 - w, t: t, win: &window{}, st: newStats()}
		wg.Go(func() {
			for ctx.Err() == nil {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				fn(v, i)
			}
		})
	}
	wg.Wait()
}

// apiRefresh presents tok through the GraphQL API and returns the answer,
// retrying an unanswered attempt (transport failure, store timeout) up to
// twice, 100 ms apart, so that a check does not fail on a lost response. A
// retry of a token whose rotation did happen lands within the reuse
// interval (at least 1 s) and gets the same successor.
func apiRefresh(ctx context.Context, v *vu, tok string, calls *atomic.Int64) reply {
	var rep reply
	for range 3 {
		calls.Add(1)
		rep = v.post(ctx, tokenBody(v.body, refreshQueryJSON, tok))
		if rep.Code == "" {
			rep.Code = checkPair(rep)
		}
		if !keepsToken(rep.Code) || ctx.Err() != nil {
			return rep
		}
		pause(ctx, 100*time.Millisecond)
	}
	return rep
}

// checkSoak verifies the soak's invariants through api (the service's
// GraphQL endpoint) and st (its store), after the load has stopped. It
// ends some sessions (the reuse sample), and extends the others' chains.
func checkSoak(ctx context.Context, r *soakRun, api *target, st sessionReader, sample int) ([]invariant, soakFigures) {
	started := time.Now()
	const workers = 16
	var reads, calls atomic.Int64
	fig := soakFigures{Users: len(r.users), BurstCodes: map[string]int{}, LoginFailures: map[string]int{}, ReuseIntervalSeconds: r.reuse.Seconds()}
	hash := func(tok string) ([]byte, error) {
		rt, err := r.codec.Parse(tok)
		if err != nil {
			return nil, err
		}
		return r.codec.Hash(rt), nil
	}

	// The figures of the soak itself, and the users whose session the
	// checks can judge: a live session whose latest token was answered.
	var live []*soakUser
	var lostF, splitF, wrongF, staleF failures
	for _, u := range r.users {
		if u == nil {
			continue
		}
		fig.Logins += u.logins
		fig.Refreshes += u.refreshes
		fig.Successors += u.successors
		fig.BurstGroups += u.bursts
		fig.BurstRequests += u.burstRequests
		for k, n := range u.burstCodes {
			fig.BurstCodes[k] += n
		}
		fig.StaleProbes += u.staleProbes
		fig.Revokes += u.revokes
		fig.RevokedSessions += len(u.revoked)
		for _, s := range u.revoked {
			fig.RevokedTokens += len(s.tokens)
		}
		fig.UnconfirmedRevokes += len(u.unconfirmed)
		fig.UncertainLogins += u.uncertainLogins
		for k, n := range u.loginCodes {
			fig.LoginFailures[k] += n
		}
		fig.LostSessions += len(u.lost)
		for _, l := range u.lost {
			if l.explained {
				fig.LostExplained++
			} else {
				lostF.add("user %d: session %s refused with %s after %d tokens", u.v.id, l.sess.id, l.code, len(l.sess.tokens))
			}
		}
		if u.wrongSuccessors > 0 {
			wrongF.add("user %d: %d successors of another session or unparsable", u.v.id, u.wrongSuccessors)
		}
		if u.burstSplit > 0 || u.burstRefused > 0 {
			splitF.add("user %d: %d bursts with two successors, %d with a refusal (%v)", u.v.id, u.burstSplit, u.burstRefused, u.burstCodes)
		}
		if u.staleAccepted > 0 {
			staleF.add("user %d: %d tokens of revoked sessions refreshed", u.v.id, u.staleAccepted)
		}
		if u.live == nil {
			continue
		}
		if !u.ambiguousSince.IsZero() {
			fig.UnresolvedAtEnd++
			continue
		}
		live = append(live, u)
		fig.LiveSessions++
		fig.LiveTokens += len(u.live.tokens)
	}

	// 1, 2: the store's view of every live session.
	var latestF, oneF failures
	parallel(ctx, api, len(live), workers, func(_ *vu, i int) {
		u := live[i]
		s := u.live
		reads.Add(1)
		got, err := st.Get(ctx, s.id)
		if err != nil {
			latestF.add("user %d: session %s: %v", u.v.id, s.id, err)
			return
		}
		want, err := hash(s.latest())
		if err != nil || !hmac.Equal(got.TokenHash, want) || got.CustomerID != u.customer {
			latestF.add("user %d: session %s: the stored token hash is not the hash of the client's latest token (%d held)", u.v.id, s.id, len(s.tokens))
		}
		for j, tok := range s.tokens[:len(s.tokens)-1] {
			if h, err := hash(tok); err == nil && hmac.Equal(h, got.TokenHash) {
				oneF.add("user %d: session %s: its token #%d of %d is current", u.v.id, s.id, j+1, len(s.tokens))
			}
		}
		switch n := len(s.tokens); {
		case n >= 2:
			if h, err := hash(s.tokens[n-2]); err != nil || !hmac.Equal(h, got.PrevTokenHash) {
				oneF.add("user %d: session %s: the stored previous hash is not the client's second-latest token", u.v.id, s.id)
			}
		case len(got.PrevTokenHash) != 0:
			oneF.add("user %d: session %s: rotated although the client holds only its first token", u.v.id, s.id)
		}
	})

	// 3c: nothing else is stored for each customer (beyond what unanswered
	// logins and revokes may have left).
	var strayF failures
	users := slices.DeleteFunc(slices.Clone(r.users), func(u *soakUser) bool { return u == nil })
	parallel(ctx, api, len(users), workers, func(_ *vu, i int) {
		u := users[i]
		var list []store.Session
		var err error
		for attempt := range 3 {
			reads.Add(1)
			if list, err = st.ListByCustomer(ctx, u.customer); err != nil {
				break
			}
			// The customer index may lag a moment behind a login.
			if u.live == nil || slices.ContainsFunc(list, func(s store.Session) bool { return s.ID == u.live.id }) || attempt == 2 {
				break
			}
			pause(ctx, time.Second)
		}
		if err != nil {
			strayF.add("customer of user %d: %v", u.v.id, err)
			return
		}
		tolerated := u.uncertainLogins
		uncertain := map[string]bool{}
		for _, s := range u.unconfirmed {
			uncertain[s.id] = true
		}
		found := false
		for _, s := range list {
			switch {
			case u.live != nil && s.ID == u.live.id:
				found = true
			case uncertain[s.ID]:
			case tolerated > 0:
				tolerated--
			default:
				strayF.add("customer of user %d: stray session %s", u.v.id, s.ID)
			}
		}
		if u.live != nil && !found {
			strayF.add("customer of user %d: live session %s not listed", u.v.id, u.live.id)
		}
	})

	// 4, 5: revoked sessions are gone and their last tokens are refused.
	type revokedRef struct {
		u *soakUser
		s *soakSession
	}
	var revoked []revokedRef
	for _, u := range users {
		for _, s := range u.revoked {
			revoked = append(revoked, revokedRef{u, s})
		}
	}
	var goneF, refusedF failures
	for _, u := range users {
		if u.revokeRefused > 0 {
			goneF.add("user %d: %d revokes refused", u.v.id, u.revokeRefused)
		}
	}
	parallel(ctx, api, len(revoked), workers, func(v *vu, i int) {
		x := revoked[i]
		reads.Add(1)
		if _, err := st.Get(ctx, x.s.id); !errors.Is(err, store.ErrNotFound) {
			goneF.add("user %d: revoked session %s: Get gave %v, not ErrNotFound", x.u.v.id, x.s.id, err)
		}
		if rep := apiRefresh(ctx, v, x.s.latest(), &calls); rep.Code != codeInvalidRefresh {
			code := rep.Code
			if code == "" {
				code = "a new token pair"
			}
			refusedF.add("user %d: revoked session %s: its last token got %s", x.u.v.id, x.s.id, code)
		}
	})

	// 3b: every live session refreshes through the API, and the store
	// follows the rotation.
	var aliveF failures
	parallel(ctx, api, len(live), workers, func(v *vu, i int) {
		u := live[i]
		s := u.live
		rep := apiRefresh(ctx, v, s.latest(), &calls)
		if rep.Code != "" {
			aliveF.add("user %d: session %s: its latest token got %s", u.v.id, s.id, rep.Code)
			return
		}
		if rt, err := r.codec.Parse(rep.Refresh); err != nil || rt.SessionID != s.id {
			aliveF.add("user %d: session %s: the successor belongs to another session", u.v.id, s.id)
			return
		}
		s.tokens = append(s.tokens, rep.Refresh)
		reads.Add(1)
		got, err := st.Get(ctx, s.id)
		want, _ := hash(rep.Refresh)
		if err != nil || !hmac.Equal(got.TokenHash, want) {
			aliveF.add("user %d: session %s: after the API refresh the store does not hold the successor's hash (%v)", u.v.id, s.id, err)
		}
	})

	// 7: after the reuse interval, the second-latest token of a sample of
	// sessions is refused as reuse, which ends the session.
	var reuseF failures
	picked := live[:min(sample, len(live))]
	fig.ReuseSample = len(picked)
	if len(picked) > 0 {
		// Every rotation of step 3b ended before parallel returned.
		pause(ctx, r.reuse+500*time.Millisecond)
	}
	parallel(ctx, api, len(picked), workers, func(v *vu, i int) {
		u := picked[i]
		s := u.live
		if len(s.tokens) < 2 {
			reuseF.add("user %d: session %s has no second-latest token", u.v.id, s.id)
			return
		}
		if rep := apiRefresh(ctx, v, s.tokens[len(s.tokens)-2], &calls); rep.Code != codeReused {
			reuseF.add("user %d: session %s: its second-latest token got %q, not %s", u.v.id, s.id, rep.Code, codeReused)
		}
		reads.Add(1)
		if _, err := st.Get(ctx, s.id); !errors.Is(err, store.ErrNotFound) {
			reuseF.add("user %d: session %s: still stored after reuse detection (%v)", u.v.id, s.id, err)
		}
		if rep := apiRefresh(ctx, v, s.latest(), &calls); rep.Code != codeInvalidRefresh {
			reuseF.add("user %d: session %s: its latest token got %q after reuse detection, not %s", u.v.id, s.id, rep.Code, codeInvalidRefresh)
		}
		u.live = nil
	})
	fig.CheckDurationS = round(time.Since(started).Seconds(), 1)
	fig.CheckStoreReads, fig.CheckAPIRequests = reads.Load(), calls.Load()

	unfinished := ""
	if ctx.Err() != nil {
		unfinished = " (the check ran out of time: " + ctx.Err().Error() + ")"
	}
	inv := []invariant{
		latestF.result("live sessions: the store's token hash is the hash of the client's latest refresh token",
			fmt.Sprintf("%d sessions, %d tokens held; %d left unjudged after an unanswered last request%s", len(live), fig.LiveTokens, fig.UnresolvedAtEnd, unfinished)),
		oneF.result("one live token per session: no earlier token is current, the stored previous hash is the second-latest",
			fmt.Sprintf("%d sessions, %d earlier tokens compared", len(live), fig.LiveTokens-len(live))),
		lostF.result("no lost session during the soak: no refresh of a client's latest token was refused",
			fmt.Sprintf("%d refreshes, %d burst groups; %d sessions refused, %d of them explained (reuse after an unanswered request older than the reuse interval)", fig.Refreshes, fig.BurstGroups, fig.LostSessions, fig.LostExplained)),
		aliveF.result("no lost session at the end: every live session's latest token refreshes through the API, and the store follows",
			fmt.Sprintf("%d sessions", len(live))),
		strayF.result("no stray session: the store lists, per customer, only the client's live session",
			fmt.Sprintf("%d customers; %d unanswered logins (failed logins, setup included: %s) and %d unconfirmed revokes tolerated", len(users), fig.UncertainLogins, codesString(fig.LoginFailures), fig.UnconfirmedRevokes)),
		goneF.result("revoked sessions are gone from the store (Get: not found)",
			fmt.Sprintf("%d revoked sessions, %d tokens", fig.RevokedSessions, fig.RevokedTokens)),
		mergeFailures(&refusedF, &staleF).result("no refresh of a revoked session succeeds: last tokens at the end and probes during the soak get INVALID_REFRESH_TOKEN",
			fmt.Sprintf("%d last tokens at the end, %d probes during the soak (%d answered otherwise than refused or accepted)", fig.RevokedSessions, fig.StaleProbes, sumStaleOther(users))),
		mergeFailures(&splitF, &wrongF).result("concurrent duplicate refreshes: every burst group got one successor, every successor is of its session",
			fmt.Sprintf("%d groups of %d, %d requests; answers other than a success: %s", fig.BurstGroups, soakBurst, fig.BurstRequests, codesString(fig.BurstCodes))),
		reuseF.result("after the reuse interval a second-latest token is refused (REFRESH_TOKEN_REUSED) and the session ends",
			fmt.Sprintf("sample of %d sessions, reuse interval %s", len(picked), r.reuse)),
	}
	return inv, fig
}

func sumStaleOther(users []*soakUser) int {
	n := 0
	for _, u := range users {
		n += u.staleOther
	}
	return n
}

// mergeFailures joins the failures of sub-checks of one invariant.
func mergeFailures(fs ...*failures) *failures {
	out := &failures{}
	for _, f := range fs {
		out.n += f.n
		for _, s := range f.first {
			if len(out.first) < 5 {
				out.first = append(out.first, s)
			}
		}
	}
	return out
}

// memoryInvariant judges the soak's RSS series.
func memoryInvariant(r Result) invariant {
	name := "memory flat: the service's RSS in the last minute within 20% of the first minute after warm-up"
	if r.RSSFlat == nil {
		return invariant{Name: name, Skipped: true, Detail: "not judged: " + r.RSSFlatCriteria}
	}
	return invariant{Name: name, Passed: *r.RSSFlat, Detail: fmt.Sprintf("%.1f -> %.1f MiB (VmRSS); anonymous %s; series %v MiB",
		*r.RSSFirstMinMB, *r.RSSLastMinMB, seriesRange(r.RSSAnonSeriesMB), r.RSSSeriesMB)}
}

func seriesRange(s []float64) string {
	if len(s) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f to %.1f MiB", slices.Min(s), slices.Max(s))
}

// writeInvariants prints the checks and ends with "N passed, N failed"
// (", N skipped" when some could not be judged); it returns the failures.
func writeInvariants(w io.Writer, inv []invariant, fig soakFigures) int {
	fmt.Fprintf(w, "\nsoak figures: %d users, %d logins, %d refreshes, %d burst groups (%d requests), %d stale probes, %d revokes;\n",
		fig.Users, fig.Logins, fig.Refreshes, fig.BurstGroups, fig.BurstRequests, fig.StaleProbes, fig.Revokes)
	fmt.Fprintf(w, "  held at the end: %d live sessions (%d tokens), %d revoked sessions (%d tokens); check took %.1f s (%d store reads, %d API requests)\n",
		fig.LiveSessions, fig.LiveTokens, fig.RevokedSessions, fig.RevokedTokens, fig.CheckDurationS, fig.CheckStoreReads, fig.CheckAPIRequests)
	fmt.Fprintln(w, "soak invariants:")
	passed, failed, skipped := 0, 0, 0
	for _, x := range inv {
		mark := "PASS"
		switch {
		case x.Skipped:
			mark = "SKIP"
			skipped++
		case x.Passed:
			passed++
		default:
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(w, "  %s  %s: %s\n", mark, x.Name, x.Detail)
	}
	line := fmt.Sprintf("%d passed, %d failed", passed, failed)
	if skipped > 0 {
		line += fmt.Sprintf(", %d skipped", skipped)
	}
	fmt.Fprintln(w, line)
	return failed
}

// codesString renders counts of answer codes as CODE:N,... ("none" when empty).
func codesString(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s:%d", k, m[k]))
	}
	return strings.Join(parts, ",")
}
