package server_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshauth/meshauth/internal/login/static"
)

// issuer is a local OIDC issuer: it serves its JWKS and signs ID tokens.
// It speaks plain http, which OIDC_ISSUERS accepts in development only, so
// the services that trust it run with options{dev: true}. A TLS issuer
// would not help here: SSL_CERT_FILE is read once per process, and the
// in-process service's root pool is loaded before a test could point it at
// the test certificate. TestBinaryExchange runs the binary in production
// against a TLS issuer that way.
type issuer struct {
	srv     *httptest.Server
	key     ed25519.PrivateKey
	kid     string
	fetches atomic.Int64
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	iss := &issuer{key: key, kid: "k1"}
	iss.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		iss.fetches.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []any{map[string]any{
			"kty": "OKP", "crv": "Ed25519", "kid": iss.kid, "use": "sig", "alg": "EdDSA",
			"x": base64.RawURLEncoding.EncodeToString(pub),
		}}})
	}))
	t.Cleanup(iss.srv.Close)
	return iss
}

func (i *issuer) token(t *testing.T, claims jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{"iss": i.srv.URL, "aud": "shop", "sub": "g-123", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, c)
	tok.Header["kid"] = i.kid
	s, err := tok.SignedString(i.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// config is the OIDC_ISSUERS value that trusts this issuer for audience "shop".
func (i *issuer) config() string {
	return `[{"issuer": "` + i.srv.URL + `", "jwks_url": "` + i.srv.URL + `/jwks", "audiences": ["shop"]}]`
}

const exchangeQ = `mutation($t: String!) { exchangeIdentityToken(id_token: $t, remember_me: true) { token refresh_token refresh_token_expires_at } }`

// TestExchangeIdentityToken: a customer signed in elsewhere gets our tokens,
// exactly as a password login gives them; everything else gets its code.
func TestExchangeIdentityToken(t *testing.T) {
	iss := newIssuer(t)
	// static users: root@example.com is customer 9, an ADMIN
	roles := rolesUsers()
	e := startCustom(t, options{dev: true, login: roles, mapper: roles, env: map[string]string{"OIDC_ISSUERS": iss.config()}})
	ok := iss.token(t, jwt.MapClaims{"email": "root@example.com", "email_verified": true})
	p := field[pair](t, e.do(t, exchangeQ, map[string]any{"t": ok}, nil), "exchangeIdentityToken")
	claims := decodePayload(t, p.Token)
	if !strings.Contains(claims, `"customer_id":9`) || !strings.Contains(claims, `"role":"ADMIN"`) {
		t.Fatalf("claims %s", claims)
	}
	if exp, _ := time.Parse(time.RFC3339, p.RefreshTokenExpiresAt); exp.Before(time.Now().Add(50 * time.Minute)) {
		t.Fatalf("remember_me ignored: %s", p.RefreshTokenExpiresAt)
	}
	field[pair](t, e.refresh(t, p.RefreshToken, nil), "refreshCustomerToken")

	_, otherKey, _ := ed25519.GenerateKey(rand.Reader)
	forged := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": iss.srv.URL, "aud": "shop", "sub": "x", "email": "root@example.com", "email_verified": true, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	forged.Header["kid"] = "k1"
	forgedToken, _ := forged.SignedString(otherKey)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": iss.srv.URL, "aud": "shop", "sub": "x"}).SignedString(jwt.UnsafeAllowNoneSignatureType)

	tests := []struct {
		name, token, code string
	}{
		{"unknown customer", iss.token(t, jwt.MapClaims{"email": "new@example.com", "email_verified": true}), "CUSTOMER_NOT_REGISTERED"},
		{"unverified email", iss.token(t, jwt.MapClaims{"email": "root@example.com", "email_verified": false}), "EMAIL_NOT_VERIFIED"},
		{"wrong audience", iss.token(t, jwt.MapClaims{"aud": "another-app", "email": "root@example.com", "email_verified": true}), "INVALID_ID_TOKEN"},
		{"another issuer", iss.token(t, jwt.MapClaims{"iss": "https://evil.example", "email": "root@example.com", "email_verified": true}), "INVALID_ID_TOKEN"},
		{"expired", iss.token(t, jwt.MapClaims{"exp": time.Now().Add(-time.Hour).Unix(), "email": "root@example.com", "email_verified": true}), "INVALID_ID_TOKEN"},
		{"signed by another key", forgedToken, "INVALID_ID_TOKEN"},
		{"alg none", none, "INVALID_ID_TOKEN"},
		{"inactive account", iss.token(t, jwt.MapClaims{"email": "gone@example.com", "email_verified": true}), "ACCOUNT_INACTIVE"},
		{"empty", "", "BAD_USER_INPUT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(t, exchangeQ, map[string]any{"t": tc.token}, nil)
			if c := code(t, r); c != tc.code {
				t.Fatalf("code %s, want %s: %s", c, tc.code, r.Raw)
			}
		})
	}
	if n := iss.fetches.Load(); n != 1 {
		t.Errorf("%d JWKS fetches, want 1 (cached)", n)
	}
}

// TestExchangeThroughTheHTTPProvider: the identity variant of the HTTP
// contract, with its 404 for an unknown customer.
func TestExchangeThroughTheHTTPProvider(t *testing.T) {
	iss := newIssuer(t)
	var got map[string]any
	platform := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_ = json.Unmarshal(b, &got)
		if got["subject"] != "g-123" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		_, _ = io.WriteString(w, `{"customer_id": 555, "role": "USER", "status": "UNREGISTERED"}`)
	}))
	defer platform.Close()
	e := startCustom(t, options{dev: true, configuredLogin: true, env: map[string]string{
		"LOGIN_PROVIDER": "http", "LOGIN_HTTP_URL": platform.URL, "OIDC_ISSUERS": iss.config(),
	}})
	tok := field[pair](t, e.do(t, exchangeQ, map[string]any{"t": iss.token(t, jwt.MapClaims{"email": "x@example.com", "email_verified": true})}, nil), "exchangeIdentityToken")
	if c := decodePayload(t, tok.Token); !strings.Contains(c, `"customer_id":555`) || !strings.Contains(c, `"status":"UNREGISTERED"`) {
		t.Fatalf("claims %s", c)
	}
	if got["issuer"] != iss.srv.URL || got["email"] != "x@example.com" || got["email_verified"] != true {
		t.Fatalf("the platform was asked %v", got)
	}
	r := e.do(t, exchangeQ, map[string]any{"t": iss.token(t, jwt.MapClaims{"sub": "someone-else", "email": "y@example.com", "email_verified": true})}, nil)
	if c := code(t, r); c != "CUSTOMER_NOT_REGISTERED" {
		t.Fatalf("unknown customer: %s", r.Raw)
	}
}

func TestExchangeNotConfigured(t *testing.T) {
	e := startCustom(t, options{})
	r := e.do(t, exchangeQ, map[string]any{"t": "x.y.z"}, nil)
	if c := code(t, r); c != "FORBIDDEN" {
		t.Fatalf("exchange without issuers: %s", r.Raw)
	}
}

// TestLookalikeEmailsNameNoCustomer: an ID token or a login for alİce
// (U+0130) or for the Kelvin sign's Kate is not alice's or kate's: the
// service folds the case of A-Z only. The users come from STATIC_USERS_FILE,
// as in the binary.
func TestLookalikeEmailsNameNoCustomer(t *testing.T) {
	iss := newIssuer(t)
	h, err := static.HashPassword(password)
	if err != nil {
		t.Fatal(err)
	}
	usersFile := filepath.Join(t.TempDir(), "users.json")
	if err := static.WriteFile(usersFile, static.File{Users: []static.User{
		{Email: "alice@example.com", CustomerID: "11", PasswordHash: h},
		{Email: "kate@example.com", CustomerID: "12", PasswordHash: h},
	}}); err != nil {
		t.Fatal(err)
	}
	e := start(t, options{dev: true, configuredLogin: true, env: map[string]string{
		"LOGIN_PROVIDER": "static", "STATIC_USERS_FILE": usersFile, "OIDC_ISSUERS": iss.config(),
	}})
	for _, email := range []string{"alİce@example.com", "\u212Aate@example.com"} {
		t.Run(email, func(t *testing.T) {
			r := e.do(t, exchangeQ, map[string]any{"t": iss.token(t, jwt.MapClaims{"email": email, "email_verified": true})}, nil)
			if c := code(t, r); c != "CUSTOMER_NOT_REGISTERED" {
				t.Errorf("exchange: %s", r.Raw)
			}
			r = e.do(t, loginQ, map[string]any{"e": email, "p": password}, nil)
			if c := code(t, r); c != "INVALID_CREDENTIALS" {
				t.Errorf("login: %s", r.Raw)
			}
		})
	}
	for email, id := range map[string]string{"ALICE@example.com": "11", "Kate@Example.com": "12"} {
		p := field[pair](t, e.do(t, exchangeQ, map[string]any{"t": iss.token(t, jwt.MapClaims{"email": email, "email_verified": true})}, nil), "exchangeIdentityToken")
		if c := decodePayload(t, p.Token); !strings.Contains(c, `"customer_id":`+id) {
			t.Errorf("exchange for %s: claims %s", email, c)
		}
		if c := decodePayload(t, e.login(t, email, false).Token); !strings.Contains(c, `"customer_id":`+id) {
			t.Errorf("login as %s: claims %s", email, c)
		}
	}
}
