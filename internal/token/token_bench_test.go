package token_test

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/token"
)

// The per-operation costs of the token work in a login or a refresh:
//
//	go test -run '^$' -bench . -benchmem ./internal/token/

var (
	benchHSSecret      = []byte("bench-hs256-secret-bench-hs256-secret-0123")
	benchRefreshSecret = []byte("bench-refresh-secret-bench-refresh-secret-01")
)

// benchClaims are the claims of a typical access token, as a refresh mints it.
func benchClaims() token.Claims {
	now := time.Now()
	return token.Claims{
		CustomerID:    "c1234567890",
		SessionID:     "yDJBzBmZL3p1Vq0nJ7Ckqw",
		RefreshExpiry: now.Add(15 * time.Minute),
		IssuedAt:      now,
		Expires:       now.Add(10 * time.Minute),
	}
}

func benchSign(b *testing.B, s *token.Signer) {
	c := benchClaims()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(c); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSignHS256(b *testing.B) {
	s, err := token.NewHS256(benchHSSecret, "meshauth", "meshauth")
	if err != nil {
		b.Fatal(err)
	}
	benchSign(b, s)
}

func BenchmarkSignEdDSA(b *testing.B) {
	key := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, ed25519.SeedSize))
	s, err := token.NewEdDSA(key, "bench-key", "meshauth", "meshauth")
	if err != nil {
		b.Fatal(err)
	}
	benchSign(b, s)
}

func BenchmarkVerifyHS256(b *testing.B) {
	s, err := token.NewHS256(benchHSSecret, "meshauth", "meshauth")
	if err != nil {
		b.Fatal(err)
	}
	tok, err := s.Sign(benchClaims())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}

func benchRefresh(b *testing.B) (*token.Codec, token.Refresh) {
	c, err := token.NewCodec(benchRefreshSecret)
	if err != nil {
		b.Fatal(err)
	}
	sid, err := token.NewSessionID()
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	rt, err := c.Issue(sid, now, now.Add(15*time.Minute))
	if err != nil {
		b.Fatal(err)
	}
	return c, rt
}

// BenchmarkRefreshParse decodes and authenticates a presented refresh token.
func BenchmarkRefreshParse(b *testing.B) {
	c, rt := benchRefresh(b)
	s := rt.String()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Parse(s); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRefreshNextAndHash derives a token's successor and the keyed hash
// the store keeps of it.
func BenchmarkRefreshNextAndHash(b *testing.B) {
	c, rt := benchRefresh(b)
	exp := rt.Expires.Add(15 * time.Minute)
	var sink []byte
	b.ReportAllocs()
	for b.Loop() {
		sink = c.Hash(c.Next(rt, exp))
	}
	if len(sink) == 0 {
		b.Fatal("empty hash")
	}
}
