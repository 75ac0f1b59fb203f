package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const (
	testIss = "https://issuer.example"
	testAud = "client-1"
)

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
	rsaErr  error
)

// sharedRSAKey returns one 2048-bit key for the whole test binary: generating
// it is slow.
func sharedRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() { rsaKey, rsaErr = rsa.GenerateKey(rand.Reader, 2048) })
	if rsaErr != nil {
		t.Fatal(rsaErr)
	}
	return rsaKey
}

// signingKey is a private key, how it signs, and its public JWK.
type signingKey struct {
	kid    string
	method jwt.SigningMethod
	priv   crypto.Signer
	jwk    map[string]any
}

func enc(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaSigning(t *testing.T, kid string) signingKey {
	k := sharedRSAKey(t)
	return signingKey{kid, jwt.SigningMethodRS256, k, map[string]any{
		"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": enc(k.N.Bytes()), "e": enc(big.NewInt(int64(k.E)).Bytes()),
	}}
}

func ecSigning(t *testing.T, kid string) signingKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pt, err := k.PublicKey.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid, jwt.SigningMethodES256, k, map[string]any{
		"kty": "EC", "crv": "P-256", "kid": kid, "x": enc(pt[1:33]), "y": enc(pt[33:]),
	}}
}

func edSigning(t *testing.T, kid string) signingKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return signingKey{kid, jwt.SigningMethodEdDSA, priv, map[string]any{
		"kty": "OKP", "crv": "Ed25519", "kid": kid, "use": "sig", "alg": "EdDSA", "x": enc(pub),
	}}
}

// sign returns a token with k's kid (if any) signed by k.
func sign(t *testing.T, k signingKey, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(k.method, claims)
	if k.kid != "" {
		tok.Header["kid"] = k.kid
	}
	s, err := tok.SignedString(k.priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// fakeIssuer serves a JWK Set and counts the fetches.
type fakeIssuer struct {
	srv       *httptest.Server
	fetches   atomic.Int32
	elsewhere atomic.Int32 // fetches of the redirect target

	mu           sync.Mutex
	keys         []map[string]any
	cacheControl string
	age          string
	status       int    // 0: 200
	body         []byte // replaces the JWK Set when not nil
	redirect     bool
	gate         chan struct{} // when not nil, answers wait until it is closed
}

func newFakeIssuer(t *testing.T, keys ...signingKey) *fakeIssuer {
	t.Helper()
	f := &fakeIssuer{cacheControl: "public, max-age=3600"}
	f.setKeys(keys...)
	mux := http.NewServeMux()
	mux.HandleFunc("/jwks", f.serve)
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		f.elsewhere.Add(1)
		f.serve(w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIssuer) setKeys(keys ...signingKey) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keys = nil
	for _, k := range keys {
		f.keys = append(f.keys, k.jwk)
	}
}

func (f *fakeIssuer) set(fn func(f *fakeIssuer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

func (f *fakeIssuer) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/jwks" {
		f.fetches.Add(1)
	}
	f.mu.Lock()
	gate, status, cc, age, body, redirect := f.gate, f.status, f.cacheControl, f.age, f.body, f.redirect
	if body == nil {
		body, _ = json.Marshal(map[string]any{"keys": f.keys})
	}
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	if redirect && r.URL.Path == "/jwks" {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
		return
	}
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	if age != "" {
		w.Header().Set("Age", age)
	}
	w.Header().Set("Content-Type", "application/json")
	if status != 0 {
		w.WriteHeader(status)
	}
	_, _ = w.Write(body)
}

func (f *fakeIssuer) count() int { return int(f.fetches.Load()) }

// clock is an injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newVerifier(t *testing.T, f *fakeIssuer, c *clock, opts ...func(*Options)) *Verifier {
	t.Helper()
	o := Options{
		Issuers: []Issuer{{Issuer: testIss, JWKSURL: f.srv.URL + "/jwks", Audiences: []string{testAud, "client-2"}}},
		Now:     c.now,
	}
	for _, fn := range opts {
		fn(&o)
	}
	v, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func claimsAt(c *clock) jwt.MapClaims {
	now := c.now().Unix()
	return jwt.MapClaims{
		"iss": testIss, "aud": testAud, "sub": "user-1",
		"iat": now, "exp": now + 3600,
		"email": "a@example.com", "email_verified": true,
	}
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	out := jwt.MapClaims{}
	for k, v := range c {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
		} else {
			out[kv[i].(string)] = kv[i+1]
		}
	}
	return out
}

// assertNoLeak fails if err's text contains the token or any sizeable part of it.
func assertNoLeak(t *testing.T, err error, tok string) {
	t.Helper()
	if err == nil || tok == "" {
		return
	}
	msg := err.Error()
	parts := append(strings.Split(tok, "."), tok)
	for _, p := range parts {
		if len(p) >= 8 && strings.Contains(msg, p) {
			t.Fatalf("error %q contains part of the token", msg)
		}
	}
}

func TestVerifyKeyTypes(t *testing.T) {
	c := newClock()
	keys := []signingKey{rsaSigning(t, "rsa-1"), ecSigning(t, "ec-1"), edSigning(t, "ed-1")}
	f := newFakeIssuer(t, keys...)
	v := newVerifier(t, f, c)
	verified := []struct {
		name      string
		email     any // nil: no email claim
		claim     any // nil: no email_verified claim
		wantEmail string
		want      bool
	}{
		{"bool true", "a@example.com", true, "a@example.com", true},
		{"bool false", "a@example.com", false, "a@example.com", false},
		{"string true", "a@example.com", "true", "a@example.com", true},
		{"string false", "a@example.com", "false", "a@example.com", false},
		{"string other", "a@example.com", "yes", "a@example.com", false},
		{"number", "a@example.com", 1, "a@example.com", false},
		{"missing", "a@example.com", nil, "a@example.com", false},
		{"no email", nil, true, "", false},
	}
	for _, k := range keys {
		for _, tc := range verified {
			t.Run(k.method.Alg()+"/"+tc.name, func(t *testing.T) {
				cl := with(claimsAt(c), "email", tc.email, "email_verified", tc.claim)
				if tc.email == nil {
					delete(cl, "email")
				}
				if tc.claim == nil {
					delete(cl, "email_verified")
				}
				id, err := v.Verify(context.Background(), sign(t, k, cl))
				if err != nil {
					t.Fatal(err)
				}
				want := Identity{Issuer: testIss, Subject: "user-1", Email: tc.wantEmail, EmailVerified: tc.want}
				if id != want {
					t.Fatalf("got %+v, want %+v", id, want)
				}
			})
		}
	}
	if n := f.count(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

func TestVerifyRejects(t *testing.T) {
	c := newClock()
	rk, ek, dk := rsaSigning(t, "rsa-1"), ecSigning(t, "ec-1"), edSigning(t, "ed-1")
	f := newFakeIssuer(t, rk, ek, dk)
	v := newVerifier(t, f, c)
	now := c.now().Unix()
	base := claimsAt(c)

	pubDER, err := x509.MarshalPKIXPublicKey(&rk.priv.(*rsa.PrivateKey).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hmacWith := func(secret []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, base)
		tok.Header["kid"] = rk.kid
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	none := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodNone, base)
		tok.Header["kid"] = ek.kid
		s, err := tok.SignedString(jwt.UnsafeAllowNoneSignatureType)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	header := func(k signingKey, h map[string]any) string {
		tok := jwt.NewWithClaims(k.method, base)
		for name, val := range h {
			tok.Header[name] = val
		}
		s, err := tok.SignedString(k.priv)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	valid := sign(t, ek, base)
	parts := strings.Split(valid, ".")
	tampered, _ := json.Marshal(with(base, "sub", "admin"))
	otherSig := strings.Split(sign(t, ek, with(base, "sub", "other")), ".")[2]

	cases := []struct {
		name string
		tok  string
		also error // a jwt sentinel the error should match too
	}{
		{"wrong audience", sign(t, ek, with(base, "aud", "someone-else")), jwt.ErrTokenInvalidAudience},
		{"untrusted extra audience", sign(t, ek, with(base, "aud", []string{testAud, "someone-else"})), jwt.ErrTokenInvalidAudience},
		{"empty audience list", sign(t, ek, with(base, "aud", []string{})), jwt.ErrTokenInvalidAudience},
		{"no audience", sign(t, ek, with(base, "aud", nil)), jwt.ErrTokenInvalidAudience},
		{"audience not a string", sign(t, ek, with(base, "aud", 7)), nil},
		{"issuer mismatch after selection", sign(t, ek, with(base, "iss", testIss+"/")), nil},
		{"expired beyond leeway", sign(t, ek, with(base, "exp", now-61)), jwt.ErrTokenExpired},
		{"no exp", sign(t, ek, with(base, "exp", nil)), jwt.ErrTokenRequiredClaimMissing},
		{"exp a string", sign(t, ek, with(base, "exp", "tomorrow")), nil},
		{"iat in the future beyond leeway", sign(t, ek, with(base, "iat", now+61)), jwt.ErrTokenUsedBeforeIssued},
		{"no iat", sign(t, ek, with(base, "iat", nil)), jwt.ErrTokenRequiredClaimMissing},
		{"nbf in the future", sign(t, ek, with(base, "nbf", now+120)), jwt.ErrTokenNotValidYet},
		{"no sub", sign(t, ek, with(base, "sub", nil)), nil},
		{"empty sub", sign(t, ek, with(base, "sub", "")), nil},
		{"sub not a string", sign(t, ek, with(base, "sub", 42)), nil},
		{"sub too long", sign(t, ek, with(base, "sub", strings.Repeat("s", 256))), nil},
		{"alg none", none(), nil},
		{"HS256 with the RSA public key (DER) as secret", hmacWith(pubDER), nil},
		{"HS256 with the RSA public key (PEM) as secret", hmacWith(pubPEM), nil},
		{"RS256 header on an EC key", header(rk, map[string]any{"kid": ek.kid}), nil},
		{"ES256 header on an RSA key", header(ek, map[string]any{"kid": rk.kid}), nil},
		{"EdDSA header on an EC key", header(dk, map[string]any{"kid": ek.kid}), nil},
		{"unknown alg", header(ek, map[string]any{"kid": ek.kid, "alg": "ES999"}), nil},
		{"crit header", header(ek, map[string]any{"kid": ek.kid, "crit": []string{"exp"}}), nil},
		{"kid not a string", header(ek, map[string]any{"kid": 1}), nil},
		{"no kid and several keys", header(ek, map[string]any{"kid": nil}), nil},
		{"tampered payload", parts[0] + "." + enc(tampered) + "." + parts[2], jwt.ErrTokenSignatureInvalid},
		{"signature of another token", parts[0] + "." + parts[1] + "." + otherSig, jwt.ErrTokenSignatureInvalid},
		{"signature removed", parts[0] + "." + parts[1] + ".", nil},
		{"padded segment", parts[0] + "=." + parts[1] + "." + parts[2], jwt.ErrTokenMalformed},
		{"empty", "", jwt.ErrTokenMalformed},
		{"one segment", "garbage", jwt.ErrTokenMalformed},
		{"dots", "..", jwt.ErrTokenMalformed},
		{"four segments", valid + ".x", jwt.ErrTokenMalformed},
		{"not base64", "!!!.@@@.###", jwt.ErrTokenMalformed},
		{"not JSON", enc([]byte("{oops")) + "." + parts[1] + "." + parts[2], jwt.ErrTokenMalformed},
		{"binary", string([]byte{0, 1, 2, 0xff, '.', 0xfe, '.', 0}), jwt.ErrTokenMalformed},
		{"too long", parts[0] + "." + strings.Repeat("A", MaxTokenSize) + "." + parts[2], nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Verify(context.Background(), tc.tok)
			if !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrKeysUnavailable) {
				t.Fatalf("got %+v, %v; want ErrInvalidToken", id, err)
			}
			if tc.also != nil && !errors.Is(err, tc.also) {
				t.Errorf("error %v does not match %v", err, tc.also)
			}
			if id != (Identity{}) {
				t.Errorf("identity %+v with an error", id)
			}
			assertNoLeak(t, err, tc.tok)
		})
	}
	if n := f.count(); n != 1 {
		t.Fatalf("%d fetches, want 1 (bad tokens must not cause refetches within the interval)", n)
	}
}

func TestVerifyAccepts(t *testing.T) {
	c := newClock()
	ek := ecSigning(t, "ec-1")
	f := newFakeIssuer(t, ek)
	v := newVerifier(t, f, c)
	now := c.now().Unix()
	base := claimsAt(c)
	cases := []struct {
		name string
		tok  string
	}{
		{"expired within leeway", sign(t, ek, with(base, "exp", now-59))},
		{"iat in the future within leeway", sign(t, ek, with(base, "iat", now+59))},
		{"nbf in the future within leeway", sign(t, ek, with(base, "nbf", now+59))},
		{"nbf past", sign(t, ek, with(base, "nbf", now-10))},
		{"audience list, all trusted", sign(t, ek, with(base, "aud", []string{testAud, "client-2"}))},
		{"second audience", sign(t, ek, with(base, "aud", "client-2"))},
		{"no kid and one key", sign(t, signingKey{"", ek.method, ek.priv, nil}, base)},
		{"sub of 255 bytes", sign(t, ek, with(base, "sub", strings.Repeat("s", 255)))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), tc.tok); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNotAllowedIssuerFetchesNothing(t *testing.T) {
	c := newClock()
	ek := ecSigning(t, "ec-1")
	f := newFakeIssuer(t, ek)
	v := newVerifier(t, f, c)
	for _, iss := range []any{"https://evil.example", testIss + " ", "", nil, 3} {
		tok := sign(t, ek, with(claimsAt(c), "iss", iss))
		_, err := v.Verify(context.Background(), tok)
		if !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("iss %v: got %v, want ErrInvalidToken", iss, err)
		}
		if strings.Contains(err.Error(), "evil") {
			t.Fatalf("error %q quotes the issuer", err)
		}
	}
	if n := f.count(); n != 0 {
		t.Fatalf("%d fetches, want 0", n)
	}
}

func TestKeyRotation(t *testing.T) {
	c := newClock()
	k1, k2, k3 := ecSigning(t, "k1"), rsaSigning(t, "k2"), edSigning(t, "k3")
	f := newFakeIssuer(t, k1)
	f.set(func(f *fakeIssuer) { f.cacheControl = "max-age=600" })
	v := newVerifier(t, f, c)
	verify := func(k signingKey) error {
		_, err := v.Verify(context.Background(), sign(t, k, claimsAt(c)))
		return err
	}
	mustFetches := func(want int) {
		t.Helper()
		if n := f.count(); n != want {
			t.Fatalf("%d fetches, want %d", n, want)
		}
	}

	if err := verify(k1); err != nil {
		t.Fatal(err)
	}
	mustFetches(1)

	// The issuer publishes k2 and starts signing with it.
	f.setKeys(k1, k2)
	c.advance(2 * time.Minute)
	if err := verify(k2); err != nil {
		t.Fatal(err)
	}
	mustFetches(2)
	if err := verify(k1); err != nil {
		t.Fatal("old key while still published:", err)
	}
	mustFetches(2)

	// A new kid right after a fetch waits for MinRefetchInterval.
	f.setKeys(k1, k2, k3)
	if err := verify(k3); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("got %v, want ErrInvalidToken within the interval", err)
	}
	mustFetches(2)
	c.advance(time.Minute)
	if err := verify(k3); err != nil {
		t.Fatal(err)
	}
	mustFetches(3)

	// k1 is withdrawn: it works until the cache expires, then not.
	f.setKeys(k2, k3)
	if err := verify(k1); err != nil {
		t.Fatal("withdrawn key still cached:", err)
	}
	c.advance(10 * time.Minute)
	if err := verify(k2); err != nil {
		t.Fatal(err)
	}
	mustFetches(4)
	if err := verify(k1); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("withdrawn key: got %v, want ErrInvalidToken", err)
	}
	mustFetches(4)
}

func TestUnknownKidFlood(t *testing.T) {
	c := newClock()
	ek := ecSigning(t, "ec-1")
	f := newFakeIssuer(t, ek)
	v := newVerifier(t, f, c)
	good := sign(t, ek, claimsAt(c))
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	c.advance(2 * time.Minute) // the last fetch is older than the interval

	flood := func(n int) {
		var wg sync.WaitGroup
		for range n {
			var b [12]byte
			_, _ = rand.Read(b[:])
			tok := sign(t, signingKey{enc(b[:]), ek.method, ek.priv, nil}, claimsAt(c))
			wg.Go(func() {
				_, err := v.Verify(context.Background(), tok)
				if !errors.Is(err, ErrInvalidToken) {
					t.Errorf("unknown kid: got %v, want ErrInvalidToken", err)
				}
				assertNoLeak(t, err, tok)
			})
		}
		wg.Wait()
	}
	flood(100)
	if n := f.count(); n != 2 {
		t.Fatalf("%d fetches after the flood, want 2 (one refetch)", n)
	}
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatal("known kid during the flood:", err)
	}
	c.advance(59 * time.Second)
	flood(10)
	if n := f.count(); n != 2 {
		t.Fatalf("%d fetches, want 2 within the interval", n)
	}
	c.advance(time.Second)
	flood(100)
	if n := f.count(); n != 3 {
		t.Fatalf("%d fetches, want 3 after the interval", n)
	}
}

func TestCacheLifetime(t *testing.T) {
	const def = 30 * time.Minute
	cases := []struct {
		name, cacheControl, age string
		fresh                   time.Duration // no refetch before, one at
	}{
		{"max-age", "max-age=600", "", 10 * time.Minute},
		{"max-age among others", "public, max-age=7200, must-revalidate", "", 2 * time.Hour},
		{"quoted max-age", `max-age="600"`, "", 10 * time.Minute},
		{"no header", "", "", def},
		{"bad max-age", "max-age=soon", "", def},
		{"negative max-age", "max-age=-5", "", def},
		{"no-cache waits for the interval", "no-cache", "", time.Minute},
		{"no-store wins", "no-store, max-age=600", "", time.Minute},
		{"max-age=0", "max-age=0", "", time.Minute},
		{"capped at a day", "max-age=99999999999", "", MaxCacheTTL},
		{"age subtracted", "max-age=600", "300", 5 * time.Minute},
		{"older than max-age", "max-age=600", "900", time.Minute},
	}
	ek := ecSigning(t, "ec-1")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			f := newFakeIssuer(t, ek)
			f.set(func(f *fakeIssuer) { f.cacheControl, f.age = tc.cacheControl, tc.age })
			v := newVerifier(t, f, c, func(o *Options) { o.DefaultCacheTTL = def })
			start := c.now()
			verify := func(wantFetches int) {
				t.Helper()
				if _, err := v.Verify(context.Background(), sign(t, ek, claimsAt(c))); err != nil {
					t.Fatal(err)
				}
				if n := f.count(); n != wantFetches {
					t.Fatalf("at +%v: %d fetches, want %d", c.now().Sub(start), n, wantFetches)
				}
			}
			verify(1)
			c.advance(tc.fresh - time.Second)
			verify(1)
			c.advance(time.Second)
			verify(2)
			verify(2)
		})
	}
}

func TestConcurrentFirstUse(t *testing.T) {
	c := newClock()
	ek := ecSigning(t, "ec-1")
	f := newFakeIssuer(t, ek)
	gate := make(chan struct{})
	f.set(func(f *fakeIssuer) { f.gate = gate })
	v := newVerifier(t, f, c)
	tok := sign(t, ek, claimsAt(c))

	var started, done sync.WaitGroup
	for range 50 {
		started.Add(1)
		done.Go(func() {
			started.Done()
			if _, err := v.Verify(context.Background(), tok); err != nil {
				t.Error(err)
			}
		})
	}
	started.Wait()
	close(gate) // the JWK Set is served only once every caller has started
	done.Wait()
	if n := f.count(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

func TestContextEndsWhileWaiting(t *testing.T) {
	c := newClock()
	ek := ecSigning(t, "ec-1")
	f := newFakeIssuer(t, ek)
	gate := make(chan struct{})
	f.set(func(f *fakeIssuer) { f.gate = gate })
	v := newVerifier(t, f, c)
	tok := sign(t, ek, claimsAt(c))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := v.Verify(ctx, tok)
	if !errors.Is(err, ErrKeysUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want ErrKeysUnavailable and context.Canceled", err)
	}
	close(gate)
	// The fetch the cancelled caller started still serves the next one.
	if _, err := v.Verify(context.Background(), tok); err != nil {
		t.Fatal(err)
	}
	if n := f.count(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

func TestRequireVerifiedEmail(t *testing.T) {
	c := newClock()
	ek := ecSigning(t, "ec-1")
	f := newFakeIssuer(t, ek)
	v := newVerifier(t, f, c, func(o *Options) { o.RequireVerifiedEmail = true })
	cases := []struct {
		name   string
		claims jwt.MapClaims
		want   error
	}{
		{"true", claimsAt(c), nil},
		{"string true", with(claimsAt(c), "email_verified", "true"), nil},
		{"false", with(claimsAt(c), "email_verified", false), ErrUnverifiedEmail},
		{"string false", with(claimsAt(c), "email_verified", "false"), ErrUnverifiedEmail},
		{"missing", with(claimsAt(c), "email_verified", nil), ErrUnverifiedEmail},
		{"no email", with(claimsAt(c), "email", nil), ErrUnverifiedEmail},
		{"invalid token first", with(claimsAt(c), "email_verified", false, "aud", "x"), ErrInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(t, ek, tc.claims)
			id, err := v.Verify(context.Background(), tok)
			if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if tc.want == ErrUnverifiedEmail && errors.Is(err, ErrInvalidToken) {
				t.Fatal("ErrUnverifiedEmail must not be ErrInvalidToken")
			}
			if err == nil && (!id.EmailVerified || id.Email != "a@example.com") {
				t.Fatalf("identity %+v", id)
			}
			assertNoLeak(t, err, tok)
		})
	}
}

func TestKeysUnavailable(t *testing.T) {
	ek := ecSigning(t, "ec-1")
	wantUnavailable := func(t *testing.T, err error, tok string) {
		t.Helper()
		if !errors.Is(err, ErrKeysUnavailable) || errors.Is(err, ErrInvalidToken) {
			t.Fatalf("got %v, want ErrKeysUnavailable only", err)
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Fatalf("error %q quotes the response body", err)
		}
		assertNoLeak(t, err, tok)
	}
	jwks, _ := json.Marshal(map[string]any{"keys": []any{ek.jwk}})
	cold := []struct {
		name string
		set  func(f *fakeIssuer)
	}{
		{"500", func(f *fakeIssuer) { f.status, f.body = 500, []byte("SECRET internal error") }},
		{"404", func(f *fakeIssuer) { f.status = 404 }},
		{"redirect not followed", func(f *fakeIssuer) { f.redirect = true }},
		{"not JSON", func(f *fakeIssuer) { f.body = []byte("SECRET <html>") }},
		{"not a JWK Set", func(f *fakeIssuer) { f.body = []byte(`{"SECRET": 1}`) }},
		{"no usable key", func(f *fakeIssuer) {
			f.body = []byte(`{"keys":[{"kty":"EC","crv":"P-256","use":"enc","x":"SECRET","y":"SECRET"},{"kty":"oct","k":"SECRET"}]}`)
		}},
		{"oversized", func(f *fakeIssuer) {
			f.body = append(append([]byte{}, jwks[:len(jwks)-1]...), []byte(strings.Repeat(" ", MaxJWKSSize)+"}")...)
		}},
	}
	for _, tc := range cold {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			f := newFakeIssuer(t, ek)
			f.set(tc.set)
			v := newVerifier(t, f, c)
			tok := sign(t, ek, claimsAt(c))
			_, err := v.Verify(context.Background(), tok)
			wantUnavailable(t, err, tok)
			if f.elsewhere.Load() != 0 {
				t.Fatal("a redirect was followed")
			}
			// Within the interval a failed fetch is not retried.
			_, err = v.Verify(context.Background(), tok)
			wantUnavailable(t, err, tok)
			if n := f.count(); n != 1 {
				t.Fatalf("%d fetches, want 1", n)
			}
			// Once the issuer recovers, the next interval fetches again.
			f.set(func(f *fakeIssuer) { f.status, f.body, f.redirect = 0, nil, false })
			c.advance(time.Minute)
			if _, err := v.Verify(context.Background(), sign(t, ek, claimsAt(c))); err != nil {
				t.Fatal(err)
			}
		})
	}

	t.Run("exactly the size limit", func(t *testing.T) {
		c := newClock()
		f := newFakeIssuer(t, ek)
		body := append(append([]byte{}, jwks[:len(jwks)-1]...), []byte(strings.Repeat(" ", MaxJWKSSize-len(jwks))+"}")...)
		f.set(func(f *fakeIssuer) { f.body = body })
		v := newVerifier(t, f, c)
		if _, err := v.Verify(context.Background(), sign(t, ek, claimsAt(c))); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("server closed", func(t *testing.T) {
		c := newClock()
		f := newFakeIssuer(t, ek)
		v := newVerifier(t, f, c)
		f.srv.Close()
		tok := sign(t, ek, claimsAt(c))
		_, err := v.Verify(context.Background(), tok)
		wantUnavailable(t, err, tok)
		if strings.Contains(err.Error(), f.srv.URL) {
			t.Fatalf("error %q quotes the URL", err)
		}
	})

	t.Run("warm cache survives failing refetches", func(t *testing.T) {
		c := newClock()
		ek2 := ecSigning(t, "ec-2")
		f := newFakeIssuer(t, ek)
		f.set(func(f *fakeIssuer) { f.cacheControl = "max-age=600" })
		v := newVerifier(t, f, c)
		if _, err := v.Verify(context.Background(), sign(t, ek, claimsAt(c))); err != nil {
			t.Fatal(err)
		}
		f.set(func(f *fakeIssuer) { f.status = 503 })
		c.advance(11 * time.Minute) // stale: the next verify refetches
		if _, err := v.Verify(context.Background(), sign(t, ek, claimsAt(c))); err != nil {
			t.Fatal("stale keys not used after a failed refetch:", err)
		}
		if n := f.count(); n != 2 {
			t.Fatalf("%d fetches, want 2", n)
		}
		if _, err := v.Verify(context.Background(), sign(t, ek, claimsAt(c))); err != nil {
			t.Fatal(err)
		}
		if n := f.count(); n != 2 {
			t.Fatalf("%d fetches, want 2 (no retry within the interval)", n)
		}
		// An unknown kid whose refetch fails could not be checked.
		c.advance(time.Minute)
		tok := sign(t, ek2, claimsAt(c))
		_, err := v.Verify(context.Background(), tok)
		wantUnavailable(t, err, tok)
		if n := f.count(); n != 3 {
			t.Fatalf("%d fetches, want 3", n)
		}
	})
}

func TestJWKSKeys(t *testing.T) {
	c := newClock()
	rk, ek, dk := rsaSigning(t, "rsa"), ecSigning(t, "ec"), edSigning(t, "ed")
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	smallJWK := map[string]any{"kty": "RSA", "kid": "small", "n": enc(small.N.Bytes()), "e": "AQAB"}
	pss := rsaSigning(t, "pss")
	pss.method, pss.jwk = jwt.SigningMethodPS256, with(pss.jwk, "kid", "pss", "alg", "PS256")
	rs512 := rsaSigning(t, "rs512")
	rs512.method, rs512.jwk = jwt.SigningMethodRS512, with(rs512.jwk, "kid", "rs512", "alg", "RS512")
	noAlg := rsaSigning(t, "noalg")
	noAlg.jwk = with(noAlg.jwk, "kid", "noalg", "alg", nil, "use", nil)

	variant := func(k signingKey, kid string, kv ...any) signingKey {
		return signingKey{kid, k.method, k.priv, with(k.jwk, append([]any{"kid", kid}, kv...)...)}
	}
	offCurve := variant(ek, "offcurve", "y", ek.jwk["x"])
	short := variant(ek, "short", "x", enc(make([]byte, 31)))
	encUse := variant(ek, "enc", "use", "enc")
	noVerify := variant(ek, "sign-only", "key_ops", []string{"sign"})
	verifyOps := variant(ek, "verify-ops", "key_ops", []string{"verify"})
	p384 := variant(ek, "p384", "crv", "P-384")
	es384 := variant(ek, "es384", "alg", "ES384")
	edAlg := variant(dk, "ed-bad-alg", "alg", "ES256")
	edShort := variant(dk, "ed-short", "x", enc(make([]byte, 31)))
	rsaOAEP := variant(rk, "oaep", "alg", "RSA-OAEP")
	padded := variant(ek, "padded", "x", ek.jwk["x"].(string)+"=")

	keys := []signingKey{rk, ek, dk, pss, rs512, noAlg, offCurve, short, encUse, noVerify, verifyOps, p384, es384, edAlg, edShort, rsaOAEP, padded}
	f := newFakeIssuer(t, keys...)
	f.set(func(f *fakeIssuer) {
		f.keys = append(f.keys, smallJWK, map[string]any{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}, map[string]any{"kid": 5})
	})
	v := newVerifier(t, f, c)

	cases := []struct {
		name string
		k    signingKey
		ok   bool
	}{
		{"RSA", rk, true},
		{"EC", ek, true},
		{"Ed25519", dk, true},
		{"RSA pinned to PS256", pss, true},
		{"RS256 on a PS256 key", signingKey{"pss", jwt.SigningMethodRS256, pss.priv, nil}, false},
		{"RSA pinned to RS512", rs512, true},
		{"RS256 on an RS512 key", signingKey{"rs512", jwt.SigningMethodRS256, rs512.priv, nil}, false},
		{"RSA without alg or use is RS256", noAlg, true},
		{"PS256 on an RSA key without alg", signingKey{"noalg", jwt.SigningMethodPS256, noAlg.priv, nil}, false},
		{"RSA under 2048 bits skipped", signingKey{"small", jwt.SigningMethodRS256, small, nil}, false},
		{"EC point off the curve skipped", offCurve, false},
		{"EC short coordinate skipped", short, false},
		{"use enc skipped", encUse, false},
		{"key_ops without verify skipped", noVerify, false},
		{"key_ops with verify", verifyOps, true},
		{"P-384 skipped", p384, false},
		{"EC with alg ES384 skipped", es384, false},
		{"OKP with a wrong alg skipped", edAlg, false},
		{"OKP with a short key skipped", edShort, false},
		{"RSA-OAEP skipped", rsaOAEP, false},
		{"padded base64url tolerated", padded, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := sign(t, tc.k, claimsAt(c))
			_, err := v.Verify(context.Background(), tok)
			if tc.ok && err != nil {
				t.Fatal(err)
			}
			if !tc.ok && !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("got %v, want ErrInvalidToken", err)
			}
		})
	}
	if n := f.count(); n != 1 {
		t.Fatalf("%d fetches, want 1", n)
	}
}

func TestNew(t *testing.T) {
	good := Issuer{Issuer: testIss, JWKSURL: "https://keys.example/jwks", Audiences: []string{testAud}}
	cases := []struct {
		name string
		o    Options
		want []string // substrings of the error; none: valid
	}{
		{"valid", Options{Issuers: []Issuer{good}}, nil},
		{"http URL", Options{Issuers: []Issuer{{Issuer: testIss, JWKSURL: "http://127.0.0.1:1/jwks", Audiences: []string{"a"}}}}, nil},
		{"no issuers", Options{}, []string{"at least one issuer"}},
		{"everything wrong", Options{
			Issuers:            []Issuer{{}, good, good, {Issuer: "x", JWKSURL: "ftp://h/", Audiences: []string{""}}, {Issuer: "y", JWKSURL: "https:///p", Audiences: []string{"a"}}},
			MinRefetchInterval: -1, DefaultCacheTTL: -1,
		}, []string{
			"issuer 0: Issuer is required", "JWKS URL is required", "at least one audience",
			"configured twice", "must be an absolute http or https URL", "an audience is empty",
			"has no host", "MinRefetchInterval is negative", "DefaultCacheTTL is negative",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v, err := New(tc.o)
			if tc.want == nil {
				if err != nil || v == nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}

	// The caller's client is copied, never changed, and follows no redirects.
	client := &http.Client{}
	v, err := New(Options{Issuers: []Issuer{good}, Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if client.CheckRedirect != nil || v.client == client || v.client.CheckRedirect == nil {
		t.Fatal("client not copied with redirects off")
	}
	// The caller's audiences are copied.
	aud := []string{testAud}
	v, err = New(Options{Issuers: []Issuer{{Issuer: testIss, JWKSURL: good.JWKSURL, Audiences: aud}}})
	if err != nil {
		t.Fatal(err)
	}
	aud[0] = "changed"
	if got := v.issuers[testIss].cfg.Audiences[0]; got != testAud {
		t.Fatalf("audience changed to %q", got)
	}
}
