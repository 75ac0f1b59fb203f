package auth_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/faulty"
)

// withFaults returns a fixture whose service reaches its embedded store
// through a faulty.Store. f.store (and f.session) still read the embedded
// store directly, so a test sees what a faulty call really left behind.
func withFaults(t *testing.T) (*fixture, *faulty.Store) {
	t.Helper()
	var fs *faulty.Store
	f := newFixture(t, func(o *auth.Options) {
		fs = faulty.New(o.Sessions.(store.Store))
		o.Sessions, o.Customers = fs, fs
	})
	return f, fs
}

// wantSession fails unless the stored session's current and previous hashes
// are those of the tokens cur and prev ("" for none).
func wantSession(t *testing.T, f *fixture, sessionOf, cur, prev string) {
	t.Helper()
	s := f.session(t, sessionOf)
	if !bytes.Equal(s.TokenHash, mustHash(t, f, cur)) {
		t.Fatal("the stored current hash is not that of the expected token")
	}
	if prev == "" && s.PrevTokenHash != nil || prev != "" && !bytes.Equal(s.PrevTokenHash, mustHash(t, f, prev)) {
		t.Fatal("the stored previous hash is not that of the expected token")
	}
}

func noReuse(t *testing.T, f *fixture) {
	t.Helper()
	if strings.Contains(f.logs.String(), "refresh.reuse_detected") {
		t.Fatalf("reuse was detected: %s", f.logs)
	}
}

// TestRotateResponseLost: the store rotates but the answer never arrives. The
// client gets STORE_UNAVAILABLE and retries with the same token, within the
// reuse interval: that is the grace case, and it must hand out the very
// successor the lost rotation stored, not detect reuse.
func TestRotateResponseLost(t *testing.T) {
	ctx := context.Background()
	f, fs := withFaults(t)
	first := f.login_(t, false)
	f.clock.Advance(time.Minute)

	fs.Set(faulty.Rotate, faulty.Fault{LoseResponse: true, Times: 1})
	_, err := f.svc.Refresh(ctx, first.Refresh)
	wantCode(t, err, auth.CodeStoreUnavailable)
	// The write went through: the session is rotated to a successor the client never saw.
	if s := f.session(t, first.Refresh); !bytes.Equal(s.PrevTokenHash, mustHash(t, f, first.Refresh)) {
		t.Fatal("the lost rotation was not stored")
	}

	f.clock.Advance(10 * time.Second) // the client's retry, within the 30 s interval
	retry := f.refresh(t, first.Refresh)
	wantSession(t, f, first.Refresh, retry.Refresh, first.Refresh)
	if c := f.claims(t, retry.Access); c.CustomerID != "42" {
		t.Fatalf("retry access token claims %+v", c)
	}
	noReuse(t, f)

	// The session is intact: the successor rotates normally, and the chain goes on.
	f.clock.Advance(time.Minute)
	third := f.refresh(t, retry.Refresh)
	wantSession(t, f, first.Refresh, third.Refresh, retry.Refresh)
	f.refresh(t, third.Refresh)
	noReuse(t, f)
	if n := fs.Calls(faulty.Rotate); n != 4 {
		t.Fatalf("%d rotations reached the store, want 4", n)
	}
}

// TestCreateResponseLost: a login whose session was stored but whose answer
// was lost leaves an orphan session nobody holds a token for. It must not
// get in the way of the next login, and it ends on its own.
func TestCreateResponseLost(t *testing.T) {
	ctx := context.Background()
	f, fs := withFaults(t)

	fs.Set(faulty.Create, faulty.Fault{LoseResponse: true, Times: 1})
	_, err := f.svc.Login(ctx, email, password, false)
	wantCode(t, err, auth.CodeStoreUnavailable)
	orphans, err := f.store.ListByCustomer(ctx, "42")
	if err != nil || len(orphans) != 1 {
		t.Fatalf("sessions after the lost login = %d, %v; want the one orphan", len(orphans), err)
	}

	tok := f.login_(t, false)
	next := f.refresh(t, tok.Refresh)
	if s := f.session(t, next.Refresh); s.ID == orphans[0].ID {
		t.Fatal("the new login got the orphan's session")
	}
	if list, _ := f.store.ListByCustomer(ctx, "42"); len(list) != 2 {
		t.Fatalf("%d sessions, want the orphan and the new one", len(list))
	}
	if o, err := f.store.Get(ctx, orphans[0].ID); err != nil || o.PrevTokenHash != nil || !bytes.Equal(o.TokenHash, orphans[0].TokenHash) {
		t.Fatalf("the orphan changed: %+v, %v", o, err)
	}
	// The orphan is an idle session like any other: it ends after the idle TTL.
	f.clock.Advance(rules.IdleTTL)
	if o, _ := f.store.Get(ctx, orphans[0].ID); !o.Expired(f.clock.Now()) {
		t.Fatal("the orphan session does not expire")
	}
	noReuse(t, f)
}

// TestStoreTooSlow: a store slower than the caller's deadline gives
// STORE_UNAVAILABLE at the deadline (the service maps
// context.DeadlineExceeded), writes nothing, and the same token then rotates
// normally: a real rotation, not a grace answer.
func TestStoreTooSlow(t *testing.T) {
	const deadline = 50 * time.Millisecond
	f, fs := withFaults(t)
	first := f.login_(t, false)
	f.clock.Advance(time.Minute)

	calls := []struct {
		op   faulty.Op
		call func(ctx context.Context) error
	}{
		{faulty.Rotate, func(ctx context.Context) error { _, err := f.svc.Refresh(ctx, first.Refresh); return err }},
		{faulty.Create, func(ctx context.Context) error { _, err := f.svc.Login(ctx, email, password, true); return err }},
		{faulty.Delete, func(ctx context.Context) error { return f.svc.Revoke(ctx, first.Refresh) }},
	}
	for _, c := range calls {
		t.Run(string(c.op), func(t *testing.T) {
			fs.Set(c.op, faulty.Fault{Latency: time.Minute})
			defer fs.Clear(c.op)
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			err := c.call(ctx)
			took := time.Since(start)
			wantCode(t, err, auth.CodeStoreUnavailable)
			if took > 2*time.Second {
				t.Fatalf("took %v with a %v deadline", took, deadline)
			}
		})
	}
	// Nothing was half-written: one session, as the login left it.
	if list, _ := f.store.ListByCustomer(context.Background(), "42"); len(list) != 1 {
		t.Fatalf("%d sessions, want only the first login's", len(list))
	}
	wantSession(t, f, first.Refresh, first.Refresh, "")

	next := f.refresh(t, first.Refresh)
	wantSession(t, f, first.Refresh, next.Refresh, first.Refresh)
	if !strings.Contains(f.logs.String(), `"event":"refresh"`) || strings.Contains(f.logs.String(), "refresh.grace") {
		t.Fatalf("want one real rotation and no grace answer: %s", f.logs)
	}
	noReuse(t, f)
}

// TestStoreErrorsThenRecovery: while the store fails, every flow gets
// STORE_UNAVAILABLE; once it is back, the same tokens work, with no restart
// and no reuse detected, even though the failed refreshes were retried well
// past the reuse interval (they never rotated anything).
func TestStoreErrorsThenRecovery(t *testing.T) {
	ctx := context.Background()
	f, fs := withFaults(t)
	first := f.login_(t, true)
	other := f.login_(t, false)

	for _, op := range []faulty.Op{faulty.Create, faulty.Rotate, faulty.Delete} {
		fs.Set(op, faulty.Fault{Err: store.ErrUnavailable})
	}
	for range 3 {
		f.clock.Advance(time.Minute)
		_, err := f.svc.Refresh(ctx, first.Refresh)
		wantCode(t, err, auth.CodeStoreUnavailable)
		_, err = f.svc.Login(ctx, email, password, false)
		wantCode(t, err, auth.CodeStoreUnavailable)
		wantCode(t, f.svc.Revoke(ctx, other.Refresh), auth.CodeStoreUnavailable)
	}
	wantSession(t, f, first.Refresh, first.Refresh, "")

	fs.Clear()
	next := f.refresh(t, first.Refresh)
	wantSession(t, f, first.Refresh, next.Refresh, first.Refresh)
	f.refresh(t, next.Refresh)
	if err := f.svc.Revoke(ctx, other.Refresh); err != nil {
		t.Fatalf("revoke after recovery: %v", err)
	}
	f.login_(t, false)
	noReuse(t, f)
}
