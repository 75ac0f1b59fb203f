package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshauth/meshauth/internal/token"
)

// The ceiling is what a refresh costs without GraphQL and without a store:
// a bare net/http handler that decodes the same request body, parses and
// authenticates the refresh token with the service's own token.Codec, hashes
// it, derives and hashes the successor, swaps the hash in an in-memory map
// under one mutex, signs an HS256 access token with the service's own
// token.Signer and answers JSON shaped like the service's. It runs in a
// child process (the harness binary with -serve-ceiling), so that its CPU and
// memory are read from /proc exactly as the service's are.

const (
	envRefreshSecret = "BENCH_REFRESH_TOKEN_SECRET"
	envJWTSecret     = "BENCH_JWT_SECRET"
	idleTTL          = 15 * time.Minute
	accessTTL        = 10 * time.Minute
)

type ceilingSession struct {
	customerID string
	hash       []byte
	prev       []byte
	expires    time.Time
}

type ceilingServer struct {
	codec  *token.Codec
	signer *token.Signer
	mu     sync.Mutex
	byID   map[string]*ceilingSession
}

// gqlRequest is the part of a GraphQL request body the ceiling reads.
type gqlRequest struct {
	Query     string `json:"query"`
	Variables struct {
		T string `json:"t"`
		E string `json:"e"`
		P string `json:"p"`
	} `json:"variables"`
}

type tokenPair struct {
	Token                 string `json:"token"`
	RefreshToken          string `json:"refresh_token"`
	TokenExpiresAt        string `json:"token_expires_at"`
	RefreshTokenExpiresAt string `json:"refresh_token_expires_at"`
}

type gqlError struct {
	Message    string            `json:"message"`
	Extensions map[string]string `json:"extensions"`
}

func (s *ceilingServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var req gqlRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&req); err != nil {
		writeError(w, "BAD_USER_INPUT")
		return
	}
	now := time.Now()
	switch {
	case req.Variables.T != "":
		s.refresh(w, req.Variables.T, now)
	case req.Variables.E != "":
		s.login(w, req.Variables.E, now)
	default:
		writeError(w, "BAD_USER_INPUT")
	}
}

func (s *ceilingServer) refresh(w http.ResponseWriter, presented string, now time.Time) {
	rt, err := s.codec.Parse(presented)
	if err != nil {
		writeError(w, "INVALID_REFRESH_TOKEN")
		return
	}
	from := s.codec.Hash(rt)
	exp := rt.Expires
	if e := now.Add(idleTTL); e.After(exp) {
		exp = e
	}
	next := s.codec.Next(rt, exp)
	to := s.codec.Hash(next)
	s.mu.Lock()
	sess := s.byID[rt.SessionID]
	if sess == nil || !hmac.Equal(sess.hash, from) || !now.Before(sess.expires) {
		s.mu.Unlock()
		writeError(w, "INVALID_REFRESH_TOKEN")
		return
	}
	sess.prev, sess.hash, sess.expires = sess.hash, to, next.Expires
	customerID := sess.customerID
	s.mu.Unlock()
	s.answer(w, "refreshCustomerToken", customerID, rt.SessionID, next, now)
}

func (s *ceilingServer) login(w http.ResponseWriter, email string, now time.Time) {
	sid, err := token.NewSessionID()
	if err != nil {
		writeError(w, "INTERNAL")
		return
	}
	rt, err := s.codec.Issue(sid, now, now.Add(idleTTL))
	if err != nil {
		writeError(w, "INTERNAL")
		return
	}
	customerID := customerIDFor(email)
	s.mu.Lock()
	s.byID[sid] = &ceilingSession{customerID: customerID, hash: s.codec.Hash(rt), expires: rt.Expires}
	s.mu.Unlock()
	s.answer(w, "generateCustomerToken", customerID, sid, rt, now)
}

func (s *ceilingServer) answer(w http.ResponseWriter, field, customerID, sid string, rt token.Refresh, now time.Time) {
	exp := now.Add(accessTTL)
	if rt.Expires.Before(exp) {
		exp = rt.Expires
	}
	access, err := s.signer.Sign(token.Claims{CustomerID: customerID, SessionID: sid, RefreshExpiry: rt.Expires, IssuedAt: now, Expires: exp})
	if err != nil {
		writeError(w, "INTERNAL")
		return
	}
	b, _ := json.Marshal(map[string]map[string]tokenPair{"data": {field: {
		Token:                 access,
		RefreshToken:          rt.String(),
		TokenExpiresAt:        exp.UTC().Truncate(time.Second).Format(time.RFC3339),
		RefreshTokenExpiresAt: rt.Expires.Format(time.RFC3339),
	}}})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, code string) {
	b, _ := json.Marshal(map[string][]gqlError{"errors": {{Message: code, Extensions: map[string]string{"code": code}}}})
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// customerIDFor derives a customer id from an email, as the login stub does.
func customerIDFor(email string) string {
	h := fnv.New64a()
	h.Write([]byte(email))
	return "c" + strconv.FormatUint(h.Sum64(), 36)
}

// serveCeiling is the child process: it listens on a loopback port, prints
// "listening ADDR" and serves until SIGTERM.
func serveCeiling() error {
	codec, err := token.NewCodec([]byte(os.Getenv(envRefreshSecret)))
	if err != nil {
		return err
	}
	signer, err := token.NewHS256([]byte(os.Getenv(envJWTSecret)), "meshauth", "meshauth")
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           &ceilingServer{codec: codec, signer: signer, byID: map[string]*ceilingSession{}},
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      15 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	fmt.Printf("listening %s\n", ln.Addr())
	ctx, stop := signalContext()
	defer stop()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// startCeiling starts the ceiling child process.
func startCeiling(refreshSecret, jwtSecret string) (*proc, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-serve-ceiling")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), envRefreshSecret + "=" + refreshSecret, envJWTSecret + "=" + jwtSecret}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	p := &proc{cmd: cmd, log: &tail{max: 64 << 10}, done: make(chan struct{})}
	cmd.Stderr = p.log
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	go func() { _ = cmd.Wait(); close(p.done) }()
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		p.stop()
		return nil, fmt.Errorf("ceiling did not start: %q %v; log:\n%s", line, err, p.log)
	}
	p.base = "http://" + addr
	return p, nil
}
