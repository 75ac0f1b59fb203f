package token_test

import (
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshauth/meshauth/internal/token"
)

// fuzzRefreshSecret keys the codec of FuzzRefreshParse. fuzzRefreshSeed was
// issued once under it (token.Codec.Issue is random, and seeds must not be);
// the committed corpus in testdata/fuzz/FuzzRefreshParse holds it too.
var fuzzRefreshSecret = []byte("fuzz-refresh-secret-0123456789abcdef")

const fuzzRefreshSeed = "AZEOGlrOdNSGrZ5sm5rs3eAAAAAAcYEIWQAAAABxgQvd15W1TbxAt51TvJfC1PQHvzcbYYlBoj_vDH-tdPgzPMellYu4wSDXvyhIdmS3pfZp"

// FuzzRefreshParse: Parse never panics; whatever it accepts re-encodes to the
// very same string (one encoding per token), keeps its fields, and chains:
// the successor parses and re-encodes too.
func FuzzRefreshParse(f *testing.F) {
	c, err := token.NewCodec(fuzzRefreshSecret)
	if err != nil {
		f.Fatal(err)
	}
	seed, err := c.Parse(fuzzRefreshSeed)
	if err != nil {
		f.Fatalf("the committed seed no longer parses (did the format or key derivation change?): %v", err)
	}
	next := c.Next(seed, seed.Expires.Add(15*time.Minute)).String()
	for _, s := range []string{
		fuzzRefreshSeed,
		next,
		"",
		fuzzRefreshSeed[:len(fuzzRefreshSeed)-1],
		fuzzRefreshSeed + "A",
		fuzzRefreshSeed[:len(fuzzRefreshSeed)-1] + "=",
		strings.NewReplacer("-", "+", "_", "/").Replace(fuzzRefreshSeed),
		"A" + fuzzRefreshSeed[1:], // another version byte, tag unchanged
		strings.Repeat("A", token.EncodedLen),
		strings.Repeat("\xff", token.EncodedLen),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		r, err := c.Parse(s)
		if err != nil {
			if r.SessionID != "" || !r.Created.IsZero() || !r.Expires.IsZero() {
				t.Fatalf("Parse returned content %+v with its error", r)
			}
			return
		}
		if got := r.String(); got != s {
			t.Fatalf("accepted %q but it re-encodes as %q", s, got)
		}
		again, err := c.Parse(r.String())
		if err != nil || again.SessionID != r.SessionID || !again.Created.Equal(r.Created) || !again.Expires.Equal(r.Expires) {
			t.Fatalf("re-parse = %+v, %v; want %+v", again, err, r)
		}
		if len(r.SessionID) != 22 || r.Created.Location() != time.UTC || r.Expires.Location() != time.UTC {
			t.Fatalf("parsed fields %+v: want a 22-character session id and UTC times", r)
		}
		for _, exp := range []time.Time{r.Expires, r.Expires.Add(15 * time.Minute), time.Unix(0, 0)} {
			n := c.Next(r, exp)
			pn, err := c.Parse(n.String())
			if err != nil {
				t.Fatalf("the successor (expires %v) does not parse: %v", exp, err)
			}
			if pn.String() != n.String() || pn.SessionID != r.SessionID || !pn.Created.Equal(r.Created) || !pn.Expires.Equal(exp.Truncate(time.Second)) {
				t.Fatalf("successor parses as %+v, want session %s created %v expires %v", pn, r.SessionID, r.Created, exp)
			}
			if n.String() == s {
				t.Fatal("the successor equals its predecessor")
			}
		}
	})
}

// FuzzVerify feeds arbitrary strings to the HS256 and the EdDSA signer. Verify
// must never panic and never accept a token whose signing input (header and
// payload) the signer did not sign itself: the only ones it signed are the
// seeds minted below, so any other accepted input would be a forgery.
func FuzzVerify(f *testing.F) {
	clock := func() time.Time { return now }
	hs, err := token.NewHS256(hsSecret, issuer, audience)
	if err != nil {
		f.Fatal(err)
	}
	ed, err := token.NewEdDSA(edKey, kid, issuer, audience)
	if err != nil {
		f.Fatal(err)
	}
	signers := map[string]*token.Signer{"HS256": hs.WithClock(clock), "EdDSA": ed.WithClock(clock)}

	// signed holds, per signer, the signing inputs it signed. Both algorithms
	// are deterministic and the claims are fixed (jti included), so every
	// fuzzing process mints the same tokens.
	signed := map[string]map[string]bool{}
	valid := map[string]string{}
	for alg, s := range signers {
		tok, err := s.Sign(token.Claims{
			CustomerID: "cust-1", SessionID: "sid-1", ID: "jti-1",
			IssuedAt: now, Expires: now.Add(10 * time.Minute), RefreshExpiry: now.Add(time.Hour),
			Extra: map[string]any{"group": "vip"},
		})
		if err != nil {
			f.Fatal(err)
		}
		if _, err := s.Verify(tok); err != nil {
			f.Fatalf("%s control token does not verify: %v", alg, err)
		}
		signed[alg] = map[string]bool{signingInput(tok): true}
		valid[alg] = tok
	}

	// Seeds: the valid tokens and the classic attacks on them.
	mapClaims := jwt.MapClaims{
		"customer_id": "cust-1", "sub": "cust-1", "iss": issuer, "aud": audience, "sid": "sid-1", "jti": "jti-1",
		"iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "refresh_expiry": now.Add(time.Hour).Unix(),
	}
	forge := func(m jwt.SigningMethod, key any, keyID string) string {
		t := jwt.NewWithClaims(m, mapClaims)
		if keyID != "" {
			t.Header["kid"] = keyID
		}
		s, err := t.SignedString(key)
		if err != nil {
			f.Fatal(err)
		}
		return s
	}
	seeds := []string{
		valid["HS256"], valid["EdDSA"],
		forge(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, ""),
		forge(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, kid),
		forge(jwt.SigningMethodHS256, []byte(edPub), kid),
		forge(jwt.SigningMethodHS256, []byte("another secret of at least 32 bytes!!"), ""),
		"", ".", "..", "a.b.c", "eyJ9.eyJ9.", strings.Repeat(".", 100),
	}
	for _, tok := range []string{valid["HS256"], valid["EdDSA"]} {
		dot := strings.LastIndexByte(tok, '.')
		seeds = append(seeds,
			tok[:len(tok)-4],                     // truncated
			tok[:dot+1],                          // signature stripped
			tok+".",                              // a fourth segment
			flipChar(tok, dot/2),                 // tampered header or payload
			flipChar(tok, len(tok)-10),           // tampered signature
			tok[dot+1:]+tok[dot:dot+1]+tok[:dot], // segments shuffled
		)
	}
	for _, s := range seeds {
		f.Add(s)
	}

	f.Fuzz(func(t *testing.T, s string) {
		for alg, signer := range signers {
			c, err := signer.Verify(s)
			if err != nil {
				continue
			}
			if !signed[alg][signingInput(s)] {
				t.Fatalf("%s signer accepted a token it did not sign: %q", alg, s)
			}
			if c.CustomerID != "cust-1" || c.SessionID != "sid-1" || c.ID != "jti-1" {
				t.Fatalf("%s signer accepted %q with claims %+v", alg, s, c)
			}
		}
	})
}

// signingInput is the part of a compact JWS the signature covers.
func signingInput(tok string) string {
	if i := strings.LastIndexByte(tok, '.'); i >= 0 {
		return tok[:i]
	}
	return tok
}

// flipChar changes the base64url character at i into another one.
func flipChar(s string, i int) string {
	b := []byte(s)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
