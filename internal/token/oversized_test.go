package token_test

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestVerifyRejectsOversizedTokens completes TestVerifyRejectsAttacks, which
// covers alg none, HS256 keyed with the EdDSA public key, unknown and missing
// kid, wrong issuer and audience, expiry beyond the leeway, nbf in the future,
// tampered payloads and truncated tokens: of the JWT attack table only
// oversized tokens were missing. A token of about 1 MB, in any of its
// segments, must be refused quickly and with a short error that quotes none
// of it (errors reach the log).
func TestVerifyRejectsOversizedTokens(t *testing.T) {
	const size = 1 << 20
	b64 := base64.RawURLEncoding.EncodeToString
	claims := jwt.MapClaims{
		"customer_id": "cust-1", "sub": "cust-1", "iss": issuer, "aud": audience, "sid": "sid-1", "jti": "jti-1",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "refresh_expiry": now.Add(time.Hour).Unix(),
	}
	big := func(c jwt.MapClaims) jwt.MapClaims {
		out := jwt.MapClaims{"padding": strings.Repeat("x", size)}
		for k, v := range c {
			out[k] = v
		}
		return out
	}
	attacker := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	hsValid := mint(t, jwt.SigningMethodHS256, hsSecret, "", claims)
	edValid := mint(t, jwt.SigningMethodEdDSA, edKey, kid, claims)
	split := func(tok string) (string, string, string) {
		p := strings.Split(tok, ".")
		return p[0], p[1], p[2]
	}
	withSignature := func(tok, sig string) string { h, p, _ := split(tok); return h + "." + p + "." + sig }
	withHeader := func(tok, header string) string { _, p, s := split(tok); return header + "." + p + "." + s }
	withPayload := func(tok, payload string) string { h, _, s := split(tok); return h + "." + payload + "." + s }

	tests := []struct {
		name, verifier, token string
	}{
		{"1 MB of base64, no dots", "HS256", strings.Repeat("A", size)},
		{"1 MB of dots", "EdDSA", strings.Repeat(".", size)},
		{"1 MB payload, HS256 under another secret", "HS256", mint(t, jwt.SigningMethodHS256, []byte("another secret of at least 32 bytes!!"), "", big(claims))},
		{"1 MB payload, EdDSA under another key", "EdDSA", mint(t, jwt.SigningMethodEdDSA, attacker, kid, big(claims))},
		{"1 MB payload, alg none", "HS256", mint(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, "", big(claims))},
		{"valid HS256 token with a 1 MB signature", "HS256", withSignature(hsValid, strings.Repeat("A", size))},
		{"valid EdDSA token with a 1 MB signature", "EdDSA", withSignature(edValid, strings.Repeat("A", size))},
		{"valid EdDSA token with a 1 MB header", "EdDSA", withHeader(edValid, b64([]byte(`{"alg":"EdDSA","kid":"`+kid+`","x":"`+strings.Repeat("y", size)+`"}`)))},
		{"valid HS256 token with 1 MB of trailing garbage", "HS256", hsValid + strings.Repeat("A", size)},
		{"valid HS256 token with a 1 MB payload of nested JSON arrays", "HS256", withPayload(hsValid, b64(bytes.Repeat([]byte("["), size)))},
	}

	signers := newSigners(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if len(tt.token) < size {
				t.Fatalf("test token is %d bytes, want at least 1 MB", len(tt.token))
			}
			start := time.Now()
			_, err := signers[tt.verifier].Verify(tt.token)
			took := time.Since(start)
			if err == nil {
				t.Fatal("Verify accepted an oversized token")
			}
			if len(err.Error()) > 512 {
				t.Errorf("error is %d bytes long, want a short one: %.200s...", len(err.Error()), err)
			}
			for _, part := range strings.Split(tt.token, ".") {
				if len(part) > 8 && strings.Contains(err.Error(), part[:min(len(part), 64)]) {
					t.Errorf("error %q quotes the token", err)
				}
			}
			// Generous: the race detector slows this down by an order of magnitude.
			if took > 2*time.Second {
				t.Errorf("Verify took %v for a 1 MB token", took)
			}
			t.Logf("%s: refused in %v: %v", tt.name, took.Round(time.Microsecond), err)
		})
	}
}
