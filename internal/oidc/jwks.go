package oidc

import (
	"cmp"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshauth/meshauth/internal/upstream"
)

// FetchTimeout bounds one JWK Set fetch, whatever the client's own timeout.
const FetchTimeout = 5 * time.Second

// MaxJWKSSize is the largest JWK Set response body accepted, in bytes.
const MaxJWKSSize = 1 << 20

// MaxCacheTTL caps the Cache-Control max-age of a JWK Set response, so that a
// key the issuer withdraws is dropped within a day.
const MaxCacheTTL = 24 * time.Hour

// minRSABits is the smallest RSA modulus accepted (RFC 7518 section 3.3: "A
// key of size 2048 bits or larger MUST be used").
const minRSABits = 2048

// key is one usable key of a JWK Set with the one JWS algorithm it verifies.
type key struct {
	id  string           // kid, possibly empty
	alg string           // the pinned algorithm, one of supportedAlgs
	pub crypto.PublicKey // *rsa.PublicKey, *ecdsa.PublicKey or ed25519.PublicKey
}

// issuer is a configured issuer and its JWK Set cache.
type issuer struct {
	cfg     Issuer
	parsers map[string]*jwt.Parser // by pinned algorithm

	mu          sync.Mutex
	keys        []key     // nil until a fetch succeeds
	freshUntil  time.Time // keys are used without refetching until then
	attempted   bool
	lastAttempt time.Time  // start of the last fetch, successful or not
	lastErr     error      // why the last fetch failed, while keys is nil
	inflight    *fetchCall // the fetch under way, if any
}

// fetchCall is one fetch that every caller needing it waits for.
type fetchCall struct {
	done chan struct{} // closed when the fetch has finished
	err  error         // written before done is closed
}

// match returns the cached keys a token with kid may be signed with: those
// with that kid, or, for a token without one, the only key if the set has
// exactly one usable key. is.mu must be held.
func (is *issuer) match(kid string) []key {
	if kid == "" {
		if len(is.keys) == 1 {
			return is.keys
		}
		return nil
	}
	var m []key
	for _, k := range is.keys {
		if k.id == kid {
			m = append(m, k)
		}
	}
	return m
}

// keysFor returns the keys of is that a token with kid may be signed with.
//
// The JWK Set is fetched on first use and again when the cache is stale or
// kid is not in it, but never twice within MinRefetchInterval (counted from
// the start of the previous fetch, whatever caused it or however it ended):
// within the interval, stale keys are used and an unknown kid is
// ErrInvalidToken. Callers needing a fetch while one is under way wait for it
// rather than start another. A failed fetch leaves the cached keys in use.
//
// keysFor returns ErrKeysUnavailable when no keys were ever fetched, when the
// fetch it waited for failed and kid is not cached, or when ctx ends first.
func (v *Verifier) keysFor(ctx context.Context, is *issuer, kid string) ([]key, error) {
	var waited *fetchCall
	for {
		is.mu.Lock()
		now := v.now()
		m := is.match(kid)
		fresh := is.keys != nil && now.Before(is.freshUntil)
		if len(m) > 0 && fresh {
			is.mu.Unlock()
			return m, nil
		}
		// Fetch when the cache is cold or stale, or kid is unknown; a token
		// without kid and a fresh set of several keys cannot be helped.
		if waited == nil && (!fresh || kid != "") {
			f := is.inflight
			if f == nil && (!is.attempted || now.Sub(is.lastAttempt) >= v.minRefetch) {
				f = &fetchCall{done: make(chan struct{})}
				is.inflight, is.attempted, is.lastAttempt = f, true, now
				// The fetch outlives a caller that gives up: others may wait for it.
				go v.refresh(context.WithoutCancel(ctx), is, f, now)
			}
			if f != nil {
				is.mu.Unlock()
				select {
				case <-f.done:
				case <-ctx.Done():
					return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, ctx.Err())
				}
				waited = f
				continue
			}
		}
		cached, lastErr := is.keys != nil, is.lastErr
		is.mu.Unlock()
		switch {
		case !cached:
			if lastErr == nil {
				lastErr = errors.New("no keys fetched")
			}
			return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, lastErr)
		case len(m) > 0:
			return m, nil
		case waited != nil && waited.err != nil:
			return nil, fmt.Errorf("%w: key id not cached: %w", ErrKeysUnavailable, waited.err)
		case kid == "":
			return nil, invalid("no kid header and the issuer has several keys")
		default:
			return nil, invalid("unknown key id")
		}
	}
}

// refresh fetches the JWK Set of is for f, which started at start, and
// updates the cache: on success the keys are replaced and fresh for the
// response's lifetime; on failure the cached keys stay as they are.
func (v *Verifier) refresh(ctx context.Context, is *issuer, f *fetchCall, start time.Time) {
	keys, ttl, err := v.fetch(ctx, is.cfg.JWKSURL)
	is.mu.Lock()
	if err == nil {
		is.keys, is.freshUntil, is.lastErr = keys, start.Add(ttl), nil
	} else {
		f.err = fmt.Errorf("fetch JWK Set of %q: %w", is.cfg.Issuer, err)
		is.lastErr = f.err
	}
	is.inflight = nil
	is.mu.Unlock()
	close(f.done)
}

// fetch GETs a JWK Set and returns its usable keys and how long they may be
// cached. Only a 200 answer of at most MaxJWKSSize bytes is accepted;
// redirects are not followed. Its errors never quote the URL or the body.
func (v *Verifier) fetch(ctx context.Context, jwksURL string) ([]key, time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, jwksURL, nil)
	if err != nil {
		return nil, 0, errors.New("build request")
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := v.client.Do(req)
	if err != nil {
		return nil, 0, upstream.TransportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		upstream.Drain(resp.Body, MaxJWKSSize)
		return nil, 0, fmt.Errorf("status %d", resp.StatusCode)
	}
	b, err := upstream.ReadBody(resp.Body, MaxJWKSSize)
	if err != nil {
		return nil, 0, err
	}
	keys, err := parseJWKS(b)
	if err != nil {
		return nil, 0, err
	}
	return keys, freshness(resp.Header, v.defaultTTL), nil
}

// freshness returns how long a response may be used (RFC 9111 section 4.2):
// its Cache-Control max-age less its Age, capped at MaxCacheTTL; zero (use
// it, but refetch when next needed) for no-store, no-cache or max-age=0; def
// when there is no usable max-age. Expires is ignored.
func freshness(h http.Header, def time.Duration) time.Duration {
	maxAge := int64(-1)
	for _, line := range h.Values("Cache-Control") {
		for _, d := range strings.Split(line, ",") {
			name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-store", "no-cache":
				return 0
			case "max-age":
				n, err := strconv.ParseInt(strings.Trim(strings.TrimSpace(val), `"`), 10, 64)
				if err == nil && n >= 0 && (maxAge < 0 || n < maxAge) {
					maxAge = n
				}
			}
		}
	}
	if maxAge < 0 {
		return def
	}
	if age, err := strconv.ParseInt(h.Get("Age"), 10, 64); err == nil && age > 0 {
		maxAge = max(maxAge-age, 0)
	}
	limit := int64(MaxCacheTTL / time.Second)
	return time.Duration(min(maxAge, limit)) * time.Second
}

// jwk is the part of a JSON Web Key (RFC 7517 section 4, RFC 7518 section 6,
// RFC 8037 section 2) that is used here.
type jwk struct {
	Kty    string   `json:"kty"`
	Use    string   `json:"use"`
	KeyOps []string `json:"key_ops"`
	Alg    string   `json:"alg"`
	Kid    string   `json:"kid"`
	Crv    string   `json:"crv"`
	N      string   `json:"n"`
	E      string   `json:"e"`
	X      string   `json:"x"`
	Y      string   `json:"y"`
}

// parseJWKS returns the usable signature keys of a JWK Set (RFC 7517 section
// 5). Keys it cannot use are skipped: an unknown kty or curve, a use other
// than "sig" or key_ops without "verify" (RFC 7517 sections 4.2 and 4.3), an
// alg that does not fit the key, a malformed or too small key. A body that
// is not a JWK Set, or has no usable key, is an error.
func parseJWKS(b []byte) ([]key, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil || set.Keys == nil {
		return nil, errors.New("response is not a JWK Set")
	}
	var keys []key
	for _, raw := range set.Keys {
		var j jwk
		if json.Unmarshal(raw, &j) != nil {
			continue
		}
		if k, ok := j.key(); ok {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, errors.New("JWK Set has no usable signature key")
	}
	return keys, nil
}

// key returns j as a verification key pinned to one algorithm: RSA (RFC 7518
// section 6.3) to RS256 or its alg among RS256, RS384, RS512 and PS256; EC
// P-256 (section 6.2) to ES256; OKP Ed25519 (RFC 8037 section 2) to EdDSA.
func (j jwk) key() (key, bool) {
	if j.Use != "" && j.Use != "sig" {
		return key{}, false
	}
	if j.KeyOps != nil && !slices.Contains(j.KeyOps, "verify") {
		return key{}, false
	}
	k := key{id: j.Kid}
	switch j.Kty {
	case "RSA":
		k.alg = cmp.Or(j.Alg, "RS256")
		if !slices.Contains([]string{"RS256", "RS384", "RS512", "PS256"}, k.alg) {
			return key{}, false
		}
		n, err1 := b64(j.N)
		e, err2 := b64(j.E)
		if err1 != nil || err2 != nil || len(e) == 0 || len(e) > 4 {
			return key{}, false
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		if pub.N.BitLen() < minRSABits || pub.E < 3 || pub.E%2 == 0 || pub.E > 1<<31-1 {
			return key{}, false
		}
		k.pub = pub
	case "EC":
		k.alg = cmp.Or(j.Alg, "ES256")
		if j.Crv != "P-256" || k.alg != "ES256" {
			return key{}, false
		}
		x, err1 := b64(j.X)
		y, err2 := b64(j.Y)
		// RFC 7518 section 6.2.1.2: x and y are the full 32 bytes.
		if err1 != nil || err2 != nil || len(x) != 32 || len(y) != 32 {
			return key{}, false
		}
		pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), append(append([]byte{4}, x...), y...))
		if err != nil { // not on the curve
			return key{}, false
		}
		k.pub = pub
	case "OKP":
		k.alg = cmp.Or(j.Alg, "EdDSA")
		if j.Crv != "Ed25519" || k.alg != "EdDSA" {
			return key{}, false
		}
		x, err := b64(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return key{}, false
		}
		k.pub = ed25519.PublicKey(x)
	default:
		return key{}, false
	}
	return k, true
}

// b64 decodes base64url (RFC 7515 section 2), tolerating padding.
func b64(s string) ([]byte, error) {
	return base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
}
