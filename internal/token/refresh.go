// Package token mints and verifies the service's access tokens (JWTs) and
// its opaque refresh tokens.
package token

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"

	"crypto/hkdf"
)

// ErrMalformed reports a refresh token that this service did not issue: wrong
// length or encoding, unknown version, or a failed authentication tag.
var ErrMalformed = errors.New("malformed refresh token")

// A refresh token is the URL-safe base64 (no padding) of
//
//	version(1) | session id(16) | created(8) | expires(8) | secret(32) | tag(16)
//
// created and expires are the session's start and, when this token was issued,
// its end, in big-endian unix seconds. secret is 256 bits: random for the first
// token of a session, and for each successor derived from its predecessor with
// a server key (see Codec.Next), so that a rotation can be recomputed by anyone
// holding the predecessor and the server key, and by nobody else. tag is a
// truncated HMAC-SHA256 over everything before it: a token whose tag fails was
// not issued by this service, so it can neither reach the store nor trigger
// reuse detection against somebody else's session.
const (
	version    = 1
	sidLen     = 16
	secretLen  = 32
	tagLen     = 16
	offSID     = 1
	offCreated = offSID + sidLen
	offExpires = offCreated + 8
	offSecret  = offExpires + 8
	offTag     = offSecret + secretLen
	rawLen     = offTag + tagLen
)

// EncodedLen is the length of every refresh token in characters.
var EncodedLen = base64.RawURLEncoding.EncodedLen(rawLen)

// encodedLen is EncodedLen as a constant: unpadded base64 of rawLen bytes.
const encodedLen = (rawLen*8 + 5) / 6

// Refresh is the decoded, authenticated content of a refresh token.
type Refresh struct {
	// SessionID names the session the token belongs to.
	SessionID string
	// Created is when the session started.
	Created time.Time
	// Expires is when the session ended as of this token's issue.
	Expires time.Time

	raw [rawLen]byte
}

// String returns the token in its wire form.
func (r Refresh) String() string { return base64.RawURLEncoding.EncodeToString(r.raw[:]) }

// Codec issues, parses, chains and hashes refresh tokens. Its three keys are
// derived from one server secret with HKDF (RFC 5869), one per purpose.
// A Codec is safe for concurrent use.
type Codec struct {
	tag, next, hash *macPool
	seedKey         []byte
}

// NewCodec derives the codec's keys from secret, which must hold at least 32 bytes.
func NewCodec(secret []byte) (*Codec, error) {
	if len(secret) < 32 {
		return nil, errors.New("refresh token secret must be at least 32 bytes")
	}
	derive := func(purpose string) []byte { return DeriveKey(secret, "refresh "+purpose) }
	return &Codec{tag: newMACPool(derive("tag")), next: newMACPool(derive("next")), hash: newMACPool(derive("hash")), seedKey: derive("seed")}, nil
}

// DeriveKey derives a 32-byte key for one purpose from a server secret with
// HKDF-SHA256 (RFC 5869), so that one secret can key several uses without
// one use's output helping against another's.
func DeriveKey(secret []byte, purpose string) []byte {
	k, err := hkdf.Key(sha256.New, secret, nil, "meshauth "+purpose, 32)
	if err != nil {
		panic(err) // HKDF-SHA256 yields up to 8160 bytes; 32 cannot fail.
	}
	return k
}

// NewSessionID returns a random 128-bit session id in URL-safe base64.
func NewSessionID() (string, error) {
	var b [sidLen]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// Issue returns the first refresh token of session sid, with a random secret.
func (c *Codec) Issue(sid string, created, expires time.Time) (Refresh, error) {
	id, err := decodeSID(sid)
	if err != nil {
		return Refresh{}, err
	}
	var secret [secretLen]byte
	if _, err := rand.Read(secret[:]); err != nil {
		return Refresh{}, err
	}
	return c.assemble(id, created, expires, secret[:]), nil
}

// FromSeed returns the first refresh token of a session decided by seed: the
// session id and the secret are HMAC-SHA256(seed key, purpose | seed), so the
// same seed always gives the same token, and nobody without the server key
// can compute it. It lets concurrent callers holding one credential of
// another system (a legacy refresh token) start exactly one session.
func (c *Codec) FromSeed(seed []byte, created, expires time.Time) Refresh {
	derive := func(purpose string) []byte {
		m := hmac.New(sha256.New, c.seedKey)
		m.Write([]byte(purpose))
		m.Write(seed)
		return m.Sum(nil)
	}
	var id [sidLen]byte
	copy(id[:], derive("session id"))
	return c.assemble(id, created, expires, derive("secret"))
}

// Next returns the successor of r, valid until expires. The successor's secret
// is HMAC-SHA256(next key, session id | r's secret), so the same predecessor
// always has the same successor secret: a retried or concurrent rotation can
// hand out the very token the winning rotation stored, without storing it.
func (c *Codec) Next(r Refresh, expires time.Time) Refresh {
	var buf [sha256.Size]byte
	secret := c.next.sum(buf[:0], r.raw[offSID:offCreated], r.raw[offSecret:offTag])
	var id [sidLen]byte
	copy(id[:], r.raw[offSID:offCreated])
	return c.assemble(id, r.Created, expires, secret)
}

// Parse decodes and authenticates a refresh token. It returns ErrMalformed for
// anything this service did not issue; the comparison of the tag is constant-time.
func (c *Codec) Parse(s string) (Refresh, error) {
	var r Refresh
	if len(s) != EncodedLen {
		return r, ErrMalformed
	}
	var text [encodedLen]byte
	copy(text[:], s)
	n, err := base64.RawURLEncoding.Decode(r.raw[:], text[:])
	if err != nil || n != rawLen || r.raw[0] != version {
		return Refresh{}, ErrMalformed
	}
	var tag [sha256.Size]byte
	if !hmac.Equal(c.tagOf(tag[:0], r.raw[:offTag]), r.raw[offTag:]) {
		return Refresh{}, ErrMalformed
	}
	r.SessionID = base64.RawURLEncoding.EncodeToString(r.raw[offSID:offCreated])
	r.Created = time.Unix(int64(binary.BigEndian.Uint64(r.raw[offCreated:])), 0).UTC()
	r.Expires = time.Unix(int64(binary.BigEndian.Uint64(r.raw[offExpires:])), 0).UTC()
	return r, nil
}

// Hash returns the keyed hash under which the store knows r:
// HMAC-SHA256(hash key, token bytes). The store never sees the token itself.
func (c *Codec) Hash(r Refresh) []byte {
	return c.hash.sum(make([]byte, 0, sha256.Size), r.raw[:], nil)
}

func (c *Codec) assemble(id [sidLen]byte, created, expires time.Time, secret []byte) Refresh {
	r := Refresh{SessionID: base64.RawURLEncoding.EncodeToString(id[:]), Created: created.Truncate(time.Second).UTC(), Expires: expires.Truncate(time.Second).UTC()}
	r.raw[0] = version
	copy(r.raw[offSID:], id[:])
	binary.BigEndian.PutUint64(r.raw[offCreated:], uint64(r.Created.Unix()))
	binary.BigEndian.PutUint64(r.raw[offExpires:], uint64(r.Expires.Unix()))
	copy(r.raw[offSecret:offTag], secret)
	var tag [sha256.Size]byte
	copy(r.raw[offTag:], c.tagOf(tag[:0], r.raw[:offTag]))
	return r
}

// tagOf appends the authentication tag of b to dst.
func (c *Codec) tagOf(dst, b []byte) []byte {
	return c.tag.sum(dst, b, nil)[:len(dst)+tagLen]
}

func decodeSID(sid string) ([sidLen]byte, error) {
	var id [sidLen]byte
	b, err := base64.RawURLEncoding.DecodeString(sid)
	if err != nil || len(b) != sidLen {
		return id, errors.New("session id must be 16 bytes in URL-safe base64")
	}
	copy(id[:], b)
	return id, nil
}
