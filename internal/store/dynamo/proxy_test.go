package dynamo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/storetest"
)

// faultProxy forwards TCP connections from a loopback port to DynamoDB
// Local. It can pause (stop forwarding bytes, in one direction or both,
// holding what it has read), cut (close every connection, and close new ones
// as soon as they are accepted) and restore (forward again and let held bytes
// flow). It keeps its port while cut, so that no other listener on the
// machine can take the port and answer in its place.
type faultProxy struct {
	target string
	ln     net.Listener

	mu       sync.Mutex
	down     bool                    // cut: connections are closed on accept
	gates    [2]chan struct{}        // up (to DynamoDB) and down: closed while bytes flow
	conns    map[*proxyConn]struct{} // open connections
	held     atomic.Int64            // chunks waiting at a closed gate, by now
	routines sync.WaitGroup
}

const (
	proxyUp   = 0 // client to DynamoDB
	proxyDown = 1 // DynamoDB to client
)

type proxyConn struct {
	client, server net.Conn
	once           sync.Once
	done           chan struct{}
}

func (c *proxyConn) close() {
	c.once.Do(func() {
		close(c.done)
		c.client.Close()
		c.server.Close()
	})
}

func openGate() chan struct{} { c := make(chan struct{}); close(c); return c }

// newFaultProxy starts a proxy to the host and port of endpoint; the test's
// cleanup stops it.
func newFaultProxy(t *testing.T, endpoint string) *faultProxy {
	t.Helper()
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		t.Fatalf("endpoint %q: %v", endpoint, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &faultProxy{target: u.Host, ln: ln, gates: [2]chan struct{}{openGate(), openGate()}, conns: map[*proxyConn]struct{}{}}
	p.routines.Add(1)
	go func() {
		defer p.routines.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.routines.Add(1)
			go func() { defer p.routines.Done(); p.handle(c) }()
		}
	}()
	t.Cleanup(func() {
		p.cut()
		ln.Close()
		p.mu.Lock()
		for i, g := range p.gates {
			select {
			case <-g:
			default:
				close(g)
				p.gates[i] = openGate()
			}
		}
		p.mu.Unlock()
		p.routines.Wait()
	})
	return p
}

// URL is the proxy's endpoint.
func (p *faultProxy) URL() string { return "http://" + p.ln.Addr().String() }

func (p *faultProxy) handle(client net.Conn) {
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		client.Close()
		return
	}
	server, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		client.Close()
		return
	}
	pc := &proxyConn{client: client, server: server, done: make(chan struct{})}
	p.mu.Lock()
	if p.down { // cut while dialling
		p.mu.Unlock()
		pc.close()
		return
	}
	p.conns[pc] = struct{}{}
	p.routines.Add(2)
	p.mu.Unlock()
	go p.pipe(pc, client, server, proxyUp)
	go p.pipe(pc, server, client, proxyDown)
}

// pipe copies src to dst, each chunk only once the gate of dir is open.
func (p *faultProxy) pipe(pc *proxyConn, src, dst net.Conn, dir int) {
	defer p.routines.Done()
	defer func() {
		pc.close()
		p.mu.Lock()
		delete(p.conns, pc)
		p.mu.Unlock()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.gates[dir]
			p.mu.Unlock()
			select {
			case <-gate:
			default:
				p.held.Add(1)
				select {
				case <-gate:
				case <-pc.done:
					return
				}
			}
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pause stops forwarding bytes in the given directions.
func (p *faultProxy) pause(dirs ...int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range dirs {
		select {
		case <-p.gates[d]: // open: close it
			p.gates[d] = make(chan struct{})
		default:
		}
	}
}

// cut closes every connection; new ones are closed as soon as they are
// accepted.
func (p *faultProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = true
	for pc := range p.conns {
		pc.close()
	}
}

// restore forwards new connections again and opens both gates.
func (p *faultProxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
	for i, g := range p.gates {
		select {
		case <-g:
		default:
			close(g)
			p.gates[i] = openGate()
		}
	}
	p.held.Store(0)
}

// TestNetworkFaults runs the DynamoDB store through a proxy that stalls or
// drops the connection while a rotation is in flight. Each time the rotation
// must fail with store.ErrUnavailable within a bounded time; after the network
// is back the same Store value works again, and the session is either as it
// was or shows exactly the one rotation, never anything else.
func TestNetworkFaults(t *testing.T) {
	const callTimeout = time.Second
	// bound is generous: the SDK retries (3 attempts, backoff up to a quarter
	// of the call timeout) and the race detector slows everything down.
	const bound = 5 * callTimeout
	direct := newLocalStore(t)
	ep := storetest.DynamoDBLocal(t)

	h := func(s string) []byte { return []byte(fmt.Sprintf("%-32s", s)) }
	base := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name string
		// fault breaks the network; wrote reports, once the rotation has
		// failed, whether its write is known to have reached DynamoDB (true),
		// known not to have (false), or may have (nil).
		fault func(p *faultProxy)
		after func(t *testing.T, p *faultProxy) *bool
	}{
		{"paused", func(p *faultProxy) { p.pause(proxyUp, proxyDown) }, func(*testing.T, *faultProxy) *bool { return nil }},
		{"cut", func(p *faultProxy) { p.cut() }, func(*testing.T, *faultProxy) *bool { f := false; return &f }},
		{"response held, then cut", func(p *faultProxy) { p.pause(proxyDown) }, func(t *testing.T, p *faultProxy) *bool {
			// DynamoDB answered (the proxy holds the answer), so it applied the write.
			deadline := time.Now().Add(5 * time.Second)
			for p.held.Load() == 0 {
				if time.Now().After(deadline) {
					t.Fatal("DynamoDB's answer never reached the proxy")
				}
				time.Sleep(10 * time.Millisecond)
			}
			p.cut()
			w := true
			return &w
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			p := newFaultProxy(t, ep)
			s, err := New(ctx, Options{
				Table: direct.Table(), Region: "us-east-1", Endpoint: p.URL(),
				Credentials: localCredentials, CallTimeout: callTimeout, MaxAttempts: 3,
			})
			if err != nil {
				t.Fatal(err)
			}
			id := fmt.Sprintf("network-fault-%d", i)
			sess := store.Session{
				ID: id, CustomerID: "customer-42", TokenHash: h(id + "-t0"),
				CreatedAt: base, RefreshedAt: base, ExpiresAt: base.Add(15 * time.Minute),
				RememberMe: true, Claims: []byte(`{"group":"vip"}`), UserAgent: "Mozilla/5.0", IP: "192.0.2.1",
			}
			if err := s.Create(ctx, sess); err != nil {
				t.Fatalf("Create through the healthy proxy: %v", err)
			}
			before, err := s.Get(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			rot := store.Rotation{From: sess.TokenHash, To: h(id + "-t1"), Now: base.Add(time.Minute), ExpiresAt: base.Add(16 * time.Minute)}

			tc.fault(p)
			start := time.Now()
			_, err = s.Rotate(ctx, id, rot)
			took := time.Since(start)
			if !errors.Is(err, store.ErrUnavailable) {
				t.Fatalf("Rotate = %v, want ErrUnavailable", err)
			}
			if took > bound {
				t.Fatalf("Rotate took %v, want at most %v", took, bound)
			}
			t.Logf("Rotate failed after %v: %v", took.Round(time.Millisecond), err)
			wrote := tc.after(t, p)

			// While the network is down, reads fail the same way.
			if tc.name != "paused" {
				if _, err := s.Get(ctx, id); !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("Get while cut = %v, want ErrUnavailable", err)
				}
			}

			p.restore()
			got, err := s.Get(ctx, id)
			if err != nil {
				t.Fatalf("Get after the network is back, same Store: %v", err)
			}
			rotated := before
			rotated.TokenHash, rotated.PrevTokenHash = rot.To, rot.From
			rotated.RotatedAt, rotated.RefreshedAt, rotated.ExpiresAt = rot.Now, rot.Now, rot.ExpiresAt
			switch {
			case sameSession(got, before) && (wrote == nil || !*wrote):
				t.Log("after the fault: the session as it was")
			case sameSession(got, rotated) && (wrote == nil || *wrote):
				t.Log("after the fault: the session with exactly the one rotation")
			default:
				t.Fatalf("after the fault the session is\n%+v\nwant it as it was\n%+v\nor rotated once\n%+v\n(write known to have happened: %v)", got, before, rotated, deref(wrote))
			}

			// The client retries the refresh with the same token: it rotates,
			// or finds the rotation already made (the grace case).
			cur, err := s.Rotate(ctx, id, rot)
			if err != nil && !errors.Is(err, store.ErrConflict) {
				t.Fatalf("retried Rotate: %v", err)
			}
			if !sameSession(cur, rotated) {
				t.Fatalf("retried Rotate (%v) sees\n%+v\nwant\n%+v", err, cur, rotated)
			}
			if final, err := direct.Get(ctx, id); err != nil || !sameSession(final, rotated) {
				t.Fatalf("final session %+v, %v; want\n%+v", final, err, rotated)
			}
		})
	}
}

// sameSession compares every field a backend keeps.
func sameSession(a, b store.Session) bool {
	return a.ID == b.ID && a.CustomerID == b.CustomerID &&
		bytes.Equal(a.TokenHash, b.TokenHash) && bytes.Equal(a.PrevTokenHash, b.PrevTokenHash) &&
		a.RotatedAt.Equal(b.RotatedAt) && a.CreatedAt.Equal(b.CreatedAt) && a.RefreshedAt.Equal(b.RefreshedAt) &&
		a.ExpiresAt.Equal(b.ExpiresAt) && a.RememberMe == b.RememberMe && bytes.Equal(a.Claims, b.Claims) &&
		a.UserAgent == b.UserAgent && a.IP == b.IP
}

func deref(b *bool) any {
	if b == nil {
		return "maybe"
	}
	return *b
}
