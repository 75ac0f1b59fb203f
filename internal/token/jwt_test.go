package token_test

import (
	"bytes"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshauth/meshauth/internal/token"
)

const (
	issuer   = "https://auth.example.test"
	audience = "storefront-gateway"
	kid      = "test-key-1"
)

var (
	// now is the signers' injected clock: every time rule is tested against it.
	now      = time.Date(2030, 5, 6, 7, 8, 9, 0, time.UTC)
	hsSecret = []byte("0123456789abcdef0123456789abcdef-hs256")
	edKey    = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))
	edPub    = edKey.Public().(ed25519.PublicKey)
)

// newSigners returns an HS256 and an EdDSA signer for issuer and audience,
// both verifying by the fixed clock now.
func newSigners(t *testing.T) map[string]*token.Signer {
	t.Helper()
	hs, err := token.NewHS256(hsSecret, issuer, audience)
	if err != nil {
		t.Fatalf("NewHS256: %v", err)
	}
	ed, err := token.NewEdDSA(edKey, kid, issuer, audience)
	if err != nil {
		t.Fatalf("NewEdDSA: %v", err)
	}
	clock := func() time.Time { return now }
	return map[string]*token.Signer{"HS256": hs.WithClock(clock), "EdDSA": ed.WithClock(clock)}
}

// segments decodes a compact JWS's header and payload.
func segments(t *testing.T, tok string) (header, payload map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d segments, want 3", len(parts))
	}
	for i, dst := range []*map[string]any{&header, &payload} {
		b, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if err := json.Unmarshal(b, dst); err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
	}
	return header, payload
}

func TestNewSignerRejectsBadKeys(t *testing.T) {
	tests := []struct {
		name string
		new  func() (*token.Signer, error)
	}{
		{"HS256 empty secret", func() (*token.Signer, error) { return token.NewHS256(nil, issuer, audience) }},
		{"EdDSA nil key", func() (*token.Signer, error) { return token.NewEdDSA(nil, kid, issuer, audience) }},
		{"EdDSA seed instead of key", func() (*token.Signer, error) { return token.NewEdDSA(edKey.Seed(), kid, issuer, audience) }},
		{"EdDSA public key", func() (*token.Signer, error) {
			return token.NewEdDSA(ed25519.PrivateKey(edPub), kid, issuer, audience)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := tt.new(); err == nil {
				t.Fatalf("got signer %v, want error", s)
			}
		})
	}
}

func TestSignVerifyRoundTrip(t *testing.T) {
	in := token.Claims{
		CustomerID:    "cust-42",
		SessionID:     "c2Vzc2lvbi1pZC0xMjM0NQ",
		RefreshExpiry: now.Add(15 * time.Minute),
		IssuedAt:      now,
		Expires:       now.Add(10 * time.Minute),
		ID:            "jti-1",
		Extra:         map[string]any{"group": "vip", "tier": 3.0, "roles": []any{"a", "b"}, "b2b": true},
	}
	for alg, s := range newSigners(t) {
		t.Run(alg, func(t *testing.T) {
			if s.Algorithm() != alg {
				t.Errorf("Algorithm() = %q, want %q", s.Algorithm(), alg)
			}
			tok, err := s.Sign(in)
			if err != nil {
				t.Fatalf("Sign: %v", err)
			}
			got, err := s.Verify(tok)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if got.CustomerID != in.CustomerID || got.SessionID != in.SessionID || got.ID != in.ID {
				t.Errorf("Verify ids = %q/%q/%q, want %q/%q/%q", got.CustomerID, got.SessionID, got.ID, in.CustomerID, in.SessionID, in.ID)
			}
			for _, tm := range []struct {
				name      string
				got, want time.Time
			}{{"IssuedAt", got.IssuedAt, in.IssuedAt}, {"Expires", got.Expires, in.Expires}, {"RefreshExpiry", got.RefreshExpiry, in.RefreshExpiry}} {
				if !tm.got.Equal(tm.want) {
					t.Errorf("%s = %v, want %v", tm.name, tm.got, tm.want)
				}
			}
			if !reflect.DeepEqual(got.Extra, in.Extra) {
				t.Errorf("Extra = %#v, want %#v", got.Extra, in.Extra)
			}

			header, payload := segments(t, tok)
			if header["alg"] != alg {
				t.Errorf("header alg = %v, want %s", header["alg"], alg)
			}
			wantKid := map[string]any{"HS256": nil, "EdDSA": kid}[alg]
			if header["kid"] != wantKid {
				t.Errorf("header kid = %v, want %v", header["kid"], wantKid)
			}
			wantPayload := map[string]any{
				"customer_id": "cust-42", "sub": "cust-42", "iss": issuer, "aud": audience, "sid": in.SessionID, "jti": "jti-1",
				"iat": float64(now.Unix()), "exp": float64(in.Expires.Unix()), "refresh_expiry": float64(in.RefreshExpiry.Unix()),
				"group": "vip", "tier": 3.0, "roles": []any{"a", "b"}, "b2b": true,
			}
			if !reflect.DeepEqual(payload, wantPayload) {
				t.Errorf("payload = %v, want %v", payload, wantPayload)
			}
		})
	}
}

func TestSignGeneratesTokenID(t *testing.T) {
	for alg, s := range newSigners(t) {
		t.Run(alg, func(t *testing.T) {
			ids := map[string]bool{}
			for range 2 {
				tok, err := s.Sign(token.Claims{CustomerID: "c", IssuedAt: now, Expires: now.Add(time.Minute)})
				if err != nil {
					t.Fatal(err)
				}
				c, err := s.Verify(tok)
				if err != nil {
					t.Fatal(err)
				}
				if len(c.ID) != 22 || ids[c.ID] {
					t.Fatalf("jti %q: want a fresh 22-character id", c.ID)
				}
				ids[c.ID] = true
			}
		})
	}
}

func TestReservedClaimsCannotBeOverridden(t *testing.T) {
	names := []string{"sub", "iss", "aud", "exp", "iat", "nbf", "jti", "sid", "customer_id", "refresh_expiry"}
	if got := slices.Sorted(maps.Keys(token.Reserved)); !slices.Equal(got, slices.Sorted(slices.Values(names))) {
		t.Fatalf("Reserved = %v, want %v", got, names)
	}
	in := token.Claims{CustomerID: "cust-1", SessionID: "sid-1", ID: "jti-1", IssuedAt: now, Expires: now.Add(time.Minute), RefreshExpiry: now.Add(time.Hour)}
	for alg, s := range newSigners(t) {
		for _, name := range names {
			t.Run(alg+"/"+name, func(t *testing.T) {
				c := in
				// "evil" as a string, and for nbf a time far in the future
				// that would make the token unusable if it got through.
				c.Extra = map[string]any{name: "evil", "kept": "yes"}
				if name == "nbf" {
					c.Extra[name] = now.Add(24 * time.Hour).Unix()
				}
				tok, err := s.Sign(c)
				if err != nil {
					t.Fatalf("Sign: %v", err)
				}
				_, payload := segments(t, tok)
				if v, ok := payload[name]; ok && (v == "evil" || name == "nbf") {
					t.Errorf("payload %s = %v: the extra claim got through", name, v)
				}
				got, err := s.Verify(tok)
				if err != nil {
					t.Fatalf("Verify: %v", err)
				}
				if got.CustomerID != "cust-1" || got.SessionID != "sid-1" || got.ID != "jti-1" ||
					!got.Expires.Equal(in.Expires) || !got.IssuedAt.Equal(in.IssuedAt) || !got.RefreshExpiry.Equal(in.RefreshExpiry) {
					t.Errorf("Verify = %+v, want the service's claims %+v", got, in)
				}
				if want := map[string]any{"kept": "yes"}; !reflect.DeepEqual(got.Extra, want) {
					t.Errorf("Extra = %v, want %v", got.Extra, want)
				}
			})
		}
	}
}

// mint signs claims with any method and key, bypassing Signer.
func mint(t *testing.T, m jwt.SigningMethod, key any, keyID string, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if keyID != "" {
		tok.Header["kid"] = keyID
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("mint %s: %v", m.Alg(), err)
	}
	return s
}

func TestVerifyRejectsAttacks(t *testing.T) {
	at := func(d time.Duration) int64 { return now.Add(d).Unix() }
	claims := func(mods ...func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{
			"customer_id": "cust-1", "sub": "cust-1", "iss": issuer, "aud": audience, "sid": "sid-1", "jti": "jti-1",
			"iat": at(0), "exp": at(10 * time.Minute), "refresh_expiry": at(time.Hour),
		}
		for _, m := range mods {
			m(c)
		}
		return c
	}
	set := func(k string, v any) func(jwt.MapClaims) { return func(c jwt.MapClaims) { c[k] = v } }
	del := func(k string) func(jwt.MapClaims) { return func(c jwt.MapClaims) { delete(c, k) } }
	hs := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodHS256, hsSecret, "", c) }
	ed := func(c jwt.MapClaims) string { return mint(t, jwt.SigningMethodEdDSA, edKey, kid, c) }
	none := func(keyID string) string {
		return mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, keyID, claims())
	}
	tamper := func(tok string) string {
		parts := strings.Split(tok, ".")
		b, _ := json.Marshal(claims(set("customer_id", "cust-2"), set("sub", "cust-2")))
		parts[1] = base64.RawURLEncoding.EncodeToString(b)
		return strings.Join(parts, ".")
	}
	stripSig := func(tok string) string { return tok[:strings.LastIndexByte(tok, '.')+1] }
	pubDER, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	otherEd := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{8}, ed25519.SeedSize))
	skew := token.MaxClockSkew

	tests := []struct {
		name     string
		verifier string // HS256 or EdDSA
		token    string
		ok       bool
	}{
		// Controls: the helpers mint tokens the signers accept, so each
		// rejection below is due to the one thing that case changes.
		{"control HS256", "HS256", hs(claims()), true},
		{"control EdDSA", "EdDSA", ed(claims()), true},
		{"expired within leeway", "HS256", hs(claims(set("iat", at(-10*time.Minute)), set("exp", at(-skew+time.Second)))), true},
		{"iat in the future by the leeway", "EdDSA", ed(claims(set("iat", at(skew)))), true},
		{"nbf in the future by the leeway", "HS256", hs(claims(set("nbf", at(skew)))), true},
		{"nbf in the past", "EdDSA", ed(claims(set("nbf", at(-time.Minute)))), true},

		{"alg none to HS256", "HS256", none(""), false},
		{"alg none to EdDSA", "EdDSA", none(kid), false},
		{"HS256 token to EdDSA signer", "EdDSA", mint(t, jwt.SigningMethodHS256, hsSecret, kid, claims()), false},
		{"HS256 keyed with the EdDSA public key", "EdDSA", mint(t, jwt.SigningMethodHS256, []byte(edPub), kid, claims()), false},
		{"HS256 keyed with the EdDSA public key PEM", "EdDSA", mint(t, jwt.SigningMethodHS256, pubPEM, kid, claims()), false},
		{"HS384 token to HS256 signer", "HS256", mint(t, jwt.SigningMethodHS384, hsSecret, "", claims()), false},
		{"EdDSA token to HS256 signer", "HS256", mint(t, jwt.SigningMethodEdDSA, edKey, "", claims()), false},
		{"wrong issuer HS256", "HS256", hs(claims(set("iss", "https://evil.example"))), false},
		{"wrong issuer EdDSA", "EdDSA", ed(claims(set("iss", "https://evil.example"))), false},
		{"missing issuer", "HS256", hs(claims(del("iss"))), false},
		{"wrong audience HS256", "HS256", hs(claims(set("aud", "other-api"))), false},
		{"wrong audience EdDSA", "EdDSA", ed(claims(set("aud", []string{"other-api"}))), false},
		{"missing audience", "EdDSA", ed(claims(del("aud"))), false},
		{"expired by exactly the leeway", "HS256", hs(claims(set("iat", at(-10*time.Minute)), set("exp", at(-skew)))), false},
		{"expired beyond leeway HS256", "HS256", hs(claims(set("iat", at(-10*time.Minute)), set("exp", at(-skew-time.Second)))), false},
		{"expired beyond leeway EdDSA", "EdDSA", ed(claims(set("iat", at(-time.Hour)), set("exp", at(-30*time.Minute)))), false},
		{"iat in the future beyond leeway", "EdDSA", ed(claims(set("iat", at(skew+time.Second)))), false},
		{"nbf in the future beyond leeway", "HS256", hs(claims(set("nbf", at(skew+time.Second)))), false},
		{"missing exp HS256", "HS256", hs(claims(del("exp"))), false},
		{"missing exp EdDSA", "EdDSA", ed(claims(del("exp"))), false},
		{"exp not a number", "HS256", hs(claims(set("exp", "tomorrow"))), false},
		{"tampered payload HS256", "HS256", tamper(hs(claims())), false},
		{"tampered payload EdDSA", "EdDSA", tamper(ed(claims())), false},
		{"truncated HS256", "HS256", func(s string) string { return s[:len(s)-4] }(hs(claims())), false},
		{"truncated EdDSA", "EdDSA", func(s string) string { return s[:len(s)-4] }(ed(claims())), false},
		{"signature stripped", "EdDSA", stripSig(ed(claims())), false},
		{"wrong kid", "EdDSA", mint(t, jwt.SigningMethodEdDSA, edKey, "other-key", claims()), false},
		{"missing kid", "EdDSA", mint(t, jwt.SigningMethodEdDSA, edKey, "", claims()), false},
		{"different HS256 secret", "HS256", mint(t, jwt.SigningMethodHS256, []byte("another secret of at least 32 bytes!!"), "", claims()), false},
		{"different Ed25519 key, same kid", "EdDSA", mint(t, jwt.SigningMethodEdDSA, otherEd, kid, claims()), false},
		{"sub differs from customer_id", "HS256", hs(claims(set("sub", "cust-2"))), false},
		{"missing customer_id", "EdDSA", ed(claims(del("customer_id"))), false},
		{"not a JWT", "HS256", "not.a.jwt", false},
		{"empty", "EdDSA", "", false},
	}
	signers := newSigners(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := signers[tt.verifier].Verify(tt.token)
			if tt.ok {
				if err != nil {
					t.Fatalf("Verify = %v, want success", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Verify succeeded, want error")
			}
			msg := err.Error()
			if tt.token != "" && strings.Contains(msg, tt.token) {
				t.Errorf("error %q contains the token", msg)
			}
			for _, part := range strings.Split(tt.token, ".") {
				if len(part) > 8 && strings.Contains(msg, part) {
					t.Errorf("error %q contains token segment %q", msg, part)
				}
			}
		})
	}
}

func TestWithClock(t *testing.T) {
	hs, err := token.NewHS256(hsSecret, issuer, audience)
	if err != nil {
		t.Fatal(err)
	}
	at := func(d time.Duration) *token.Signer { return hs.WithClock(func() time.Time { return now.Add(d) }) }
	tok, err := hs.Sign(token.Claims{CustomerID: "c", IssuedAt: now, Expires: now.Add(10 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		signer *token.Signer
		ok     bool
	}{
		{"at issue", at(0), true},
		{"just before expiry plus leeway", at(10*time.Minute + token.MaxClockSkew - time.Second), true},
		{"at expiry plus leeway", at(10*time.Minute + token.MaxClockSkew), false},
		{"before issue beyond leeway", at(-token.MaxClockSkew - time.Second), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.signer.Verify(tok); (err == nil) != tt.ok {
				t.Errorf("Verify error = %v, want success %v", err, tt.ok)
			}
		})
	}

	t.Run("the original keeps its clock", func(t *testing.T) {
		// The only test on the real clock: WithClock must return a copy.
		real := time.Now()
		fresh, err := hs.Sign(token.Claims{CustomerID: "c", IssuedAt: real, Expires: real.Add(10 * time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		day := hs.WithClock(func() time.Time { return real.Add(24 * time.Hour) })
		if _, err := day.Verify(fresh); err == nil {
			t.Error("a signer a day ahead accepted a token that expired")
		}
		if _, err := hs.Verify(fresh); err != nil {
			t.Errorf("original signer: %v; WithClock changed it", err)
		}
	})
}

func TestEd25519PrivateKeyPEMRoundTrip(t *testing.T) {
	for _, key := range []ed25519.PrivateKey{edKey, mustGenerateEd25519(t)} {
		pemBytes, err := token.MarshalEd25519PrivateKey(key)
		if err != nil {
			t.Fatalf("Marshal: %v", err)
		}
		if !bytes.HasPrefix(pemBytes, []byte("-----BEGIN PRIVATE KEY-----\n")) {
			t.Errorf("PEM starts %q, want a PRIVATE KEY block", pemBytes[:min(len(pemBytes), 30)])
		}
		got, err := token.ParseEd25519PrivateKey(pemBytes)
		if err != nil {
			t.Fatalf("Parse: %v", err)
		}
		if !got.Equal(key) {
			t.Error("parsed key differs from the marshalled one")
		}
	}
}

func mustGenerateEd25519(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestParseEd25519PrivateKeyRejects(t *testing.T) {
	pkcs8 := func(key any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	block := func(typ string, der []byte) []byte { return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}) }
	rsaKey, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	xKey, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edDER := pkcs8(edKey)
	pubDER, err := x509.MarshalPKIXPublicKey(edPub)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name  string
		input []byte
	}{
		{"empty", nil},
		{"not PEM", []byte("MC4CAQAwBQYDK2VwBCIEIAcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcH")},
		{"raw DER", edDER},
		{"wrong PEM type", block("ED25519 PRIVATE KEY", edDER)},
		{"public key", block("PUBLIC KEY", pubDER)},
		{"garbage in PRIVATE KEY block", block("PRIVATE KEY", []byte("definitely not DER"))},
		{"RSA PKCS #8", block("PRIVATE KEY", pkcs8(rsaKey))},
		{"RSA PKCS #1", block("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rsaKey))},
		{"ECDSA PKCS #8", block("PRIVATE KEY", pkcs8(ecKey))},
		{"X25519 PKCS #8", block("PRIVATE KEY", pkcs8(xKey))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := token.ParseEd25519PrivateKey(tt.input)
			if err == nil {
				t.Fatalf("got key %x, want error", k)
			}
			for _, line := range strings.Split(string(tt.input), "\n") {
				if len(line) > 8 && strings.Contains(err.Error(), line) {
					t.Errorf("error %q quotes the input", err)
				}
			}
		})
	}
}

func TestThumbprint(t *testing.T) {
	// RFC 8037 Appendix A.1 key; A.3 gives its RFC 7638 thumbprint.
	d, _ := base64.RawURLEncoding.DecodeString("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
	x, _ := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	rfcPub := ed25519.PublicKey(x)
	if derived := ed25519.NewKeyFromSeed(d).Public().(ed25519.PublicKey); !derived.Equal(rfcPub) {
		t.Fatalf("RFC 8037 A.1: public key from d = %x, want x = %x", derived, x)
	}

	tests := []struct {
		name string
		pub  ed25519.PublicKey
		want string
	}{
		{"RFC 8037 A.3", rfcPub, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"},
		{"test key", edPub, ""},
		{"random key", mustGenerateEd25519(t).Public().(ed25519.PublicKey), ""},
	}
	seen := map[string]string{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := token.Thumbprint(tt.pub)
			if again := token.Thumbprint(tt.pub); again != got {
				t.Errorf("Thumbprint not deterministic: %q then %q", got, again)
			}
			if len(got) != 43 || strings.ContainsAny(got, "+/=") {
				t.Errorf("Thumbprint = %q, want 43 characters of unpadded URL-safe base64", got)
			}
			if tt.want != "" && got != tt.want {
				t.Errorf("Thumbprint = %q, want %q", got, tt.want)
			}
			if other, dup := seen[got]; dup {
				t.Errorf("Thumbprint %q also given to %s", got, other)
			}
			seen[got] = tt.name
		})
	}
}

// TestCustomerIDClaimTypes: the customer-id claims carry the id with the
// JSON type the login provider gave it, as resolvers beside meshauth read it
// (jwt.verify(token, secret).bc_customer_id, used as a number); sub stays a
// string; an integer JavaScript cannot hold exactly stays a string.
func TestCustomerIDClaimTypes(t *testing.T) {
	secret := []byte("jwt-secret-jwt-secret-jwt-secret-jwt")
	base, err := token.NewHS256(secret, "meshauth", "meshauth")
	if err != nil {
		t.Fatal(err)
	}
	s, err := base.WithCustomerIDClaims([]string{"customer_id", "bc_customer_id"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		id      string
		numeric bool
		want    any // the decoded claim: float64 for a JSON number
	}{
		{"numeric", "4242", true, float64(4242)},
		{"string from the platform", "4242", false, "4242"},
		{"not an integer", "C-1906", true, "C-1906"},
		{"2^53-1", "9007199254740991", true, float64(9007199254740991)},
		{"beyond 2^53", "9007199254740993", true, "9007199254740993"},
		{"leading zero", "042", true, "042"},
	}
	now := time.Now()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := s.Sign(token.Claims{CustomerID: tc.id, NumericCustomerID: tc.numeric, SessionID: "s",
				IssuedAt: now, Expires: now.Add(time.Minute), RefreshExpiry: now.Add(time.Hour),
				Extra: map[string]any{"bc_customer_id": "forged"}})
			if err != nil {
				t.Fatal(err)
			}
			// Read it the way a neighbouring resolver does: verify with the
			// shared secret, take the claim as JSON gave it.
			mc := jwt.MapClaims{}
			if _, err := jwt.ParseWithClaims(tok, mc, func(*jwt.Token) (any, error) { return secret, nil }, jwt.WithValidMethods([]string{"HS256"})); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"customer_id", "bc_customer_id"} {
				if mc[name] != tc.want {
					t.Errorf("%s = %#v, want %#v", name, mc[name], tc.want)
				}
			}
			if mc["sub"] != tc.id {
				t.Errorf("sub = %#v, want the string %q", mc["sub"], tc.id)
			}
			c, err := s.Verify(tok)
			if err != nil {
				t.Fatal(err)
			}
			_, isNumber := tc.want.(float64)
			if c.CustomerID != tc.id || c.NumericCustomerID != isNumber {
				t.Errorf("Verify = %q numeric=%v", c.CustomerID, c.NumericCustomerID)
			}
		})
	}
	for _, bad := range [][]string{nil, {"sub"}, {"exp"}, {"sid"}, {"role"}, {""}} {
		if _, err := base.WithCustomerIDClaims(bad); err == nil {
			t.Errorf("WithCustomerIDClaims(%q) accepted", bad)
		}
	}
}
