package token

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshauth/meshauth/internal/login"
)

// signWithJWT is Sign as it was before Sign assembled tokens itself, kept
// verbatim: jwt.MapClaims through golang-jwt.
func signWithJWT(s *Signer, c Claims) (string, error) {
	mc := jwt.MapClaims{}
	for k, v := range c.Extra {
		if !s.reserved(k) {
			mc[k] = v
		}
	}
	if c.ID == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		c.ID = base64.RawURLEncoding.EncodeToString(b[:])
	}
	var id any = c.CustomerID
	if c.NumericCustomerID && login.IsNumericID(c.CustomerID) {
		id = json.Number(c.CustomerID)
	}
	for _, name := range s.idClaims {
		mc[name] = id
	}
	mc["sub"] = c.CustomerID
	mc["iss"] = s.issuer
	mc["aud"] = s.audience
	mc["iat"] = c.IssuedAt.Unix()
	mc["exp"] = c.Expires.Unix()
	mc["jti"] = c.ID
	mc["sid"] = c.SessionID
	mc["refresh_expiry"] = c.RefreshExpiry.Unix()
	t := jwt.NewWithClaims(s.method, mc)
	if s.keyID != "" {
		t.Header["kid"] = s.keyID
	}
	return t.SignedString(s.signKey)
}

// TestSignAsGolangJWT: Sign's tokens are byte for byte those golang-jwt
// signed from jwt.MapClaims, for either algorithm, every kind of claim and
// strings that encoding/json escapes.
func TestSignAsGolangJWT(t *testing.T) {
	hs, err := NewHS256([]byte("a-test-secret-a-test-secret-0123"), "https://auth.example/<&>", "meshauth")
	if err != nil {
		t.Fatal(err)
	}
	ed, err := NewEdDSA(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize)), `key "1" <b>`, "meshauth", "shop")
	if err != nil {
		t.Fatal(err)
	}
	multi, err := hs.WithCustomerIDClaims([]string{"customer_id", "cid", "user_id", "cid"})
	if err != nil {
		t.Fatal(err)
	}
	var extra map[string]any
	if err := json.Unmarshal([]byte(`{"role":"customer","status":"active","group":7,"ratio":0.000001,"big":1e21,"tags":["a","<b>"],
		"nested":{"z":1,"a":[true,null]},"none":null,"ünï":"ça\u2028va","sub":"evil","exp":1,"customer_id":"evil"}`), &extra); err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC)
	base := Claims{CustomerID: "1048576", SessionID: "yDJBzB0l4Y2H5kVvP8s1Ag", RefreshExpiry: now.Add(15 * time.Minute),
		IssuedAt: now, Expires: now.Add(10 * time.Minute), ID: "jti-1"}
	with := func(f func(*Claims)) Claims { c := base; f(&c); return c }
	tests := []struct {
		name   string
		signer *Signer
		claims Claims
	}{
		{"HS256", hs, base},
		{"EdDSA", ed, base},
		{"NumericID", hs, with(func(c *Claims) { c.NumericCustomerID = true })},
		{"NumericFlagOnText", hs, with(func(c *Claims) { c.NumericCustomerID, c.CustomerID = true, "c-42" })},
		{"ManyIDClaims", multi, with(func(c *Claims) { c.NumericCustomerID = true })},
		{"Extra", hs, with(func(c *Claims) { c.Extra = extra })},
		{"ExtraEdDSA", ed, with(func(c *Claims) { c.Extra = extra })},
		{"EscapedStrings", hs, with(func(c *Claims) {
			c.CustomerID, c.SessionID, c.ID = "a\"b\\c<d>&e\x01\u00e9\u2029", "\xff\xfe", "tab\there"
		})},
		{"EmptyStrings", hs, with(func(c *Claims) { c.CustomerID, c.SessionID = "", "" })},
		{"BeforeEpoch", hs, with(func(c *Claims) { c.IssuedAt = time.Unix(-5, 0) })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.signer.Sign(tc.claims)
			if err != nil {
				t.Fatal(err)
			}
			want, err := signWithJWT(tc.signer, tc.claims)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("Sign:\n got %s\nwant %s", got, want)
			}
			if _, err := tc.signer.WithClock(func() time.Time { return now }).Verify(got); err != nil && tc.claims.CustomerID != "" {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
	if _, err := hs.Sign(with(func(c *Claims) { c.Extra = map[string]any{"f": func() {}} })); err == nil {
		t.Fatal("a claim encoding/json cannot encode was signed")
	}
}
