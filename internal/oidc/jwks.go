package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"

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

// keySet is the usable keys of one fetched JWK Set, each stored with the one
// algorithm it is pinned to, and the keyfunc that picks a token's key by kid
// and rejects a token whose alg is not that key's.
type keySet struct {
	keyfunc.Keyfunc
	n int // how many keys
}

// has reports whether a token with kid can be checked against s: kid is one
// of its keys, or kid is empty and s has exactly one key.
func (s *keySet) has(kid string) bool {
	if kid == "" {
		return s.n == 1
	}
	_, err := s.Storage().KeyRead(context.Background(), kid)
	return err == nil
}

// issuer is a configured issuer and its JWK Set cache.
type issuer struct {
	cfg     Issuer
	parsers map[string]*jwt.Parser // by pinned algorithm
	flight  singleflight.Group     // the fetch under way, shared by its callers

	mu          sync.Mutex
	keys        *keySet   // nil until a fetch succeeds
	freshUntil  time.Time // keys are used without refetching until then
	attempted   bool
	lastAttempt time.Time // start of the last fetch, successful or not
	lastErr     error     // why the last fetch failed
	fetching    bool      // a fetch is under way in flight
}

// keysFor returns the key set of is that a token with kid is checked
// against: one that has kid or, for an empty kid, exactly one key.
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
func (v *Verifier) keysFor(ctx context.Context, is *issuer, kid string) (*keySet, error) {
	waited := false
	var waitErr error
	for {
		is.mu.Lock()
		now := v.now()
		keys := is.keys
		known := keys != nil && keys.has(kid)
		fresh := keys != nil && now.Before(is.freshUntil)
		if known && fresh {
			is.mu.Unlock()
			return keys, nil
		}
		// Fetch when the cache is cold or stale, or kid is unknown; a token
		// without kid and a fresh set of several keys cannot be helped.
		if !waited && (!fresh || kid != "") &&
			(is.fetching || !is.attempted || now.Sub(is.lastAttempt) >= v.minRefetch) {
			if !is.fetching {
				is.fetching, is.attempted, is.lastAttempt = true, true, now
			}
			// DoChan is called with is.mu held and refresh clears fetching
			// under is.mu, so a caller that saw fetching joins that very
			// fetch. The fetch outlives a caller that gives up: others may
			// be waiting for it.
			ch := is.flight.DoChan("", func() (any, error) {
				return nil, v.refresh(context.WithoutCancel(ctx), is)
			})
			is.mu.Unlock()
			select {
			case r := <-ch:
				waitErr = r.Err
			case <-ctx.Done():
				return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, ctx.Err())
			}
			waited = true
			continue
		}
		lastErr := is.lastErr
		is.mu.Unlock()
		switch {
		case keys == nil:
			if lastErr == nil {
				lastErr = errors.New("no keys fetched")
			}
			return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, lastErr)
		case known:
			return keys, nil
		case waitErr != nil:
			return nil, fmt.Errorf("%w: key id not cached: %w", ErrKeysUnavailable, waitErr)
		case kid == "":
			return nil, invalid("no kid header and the issuer has several keys")
		default:
			return nil, invalid("unknown key id")
		}
	}
}

// refresh fetches the JWK Set of is and updates the cache: on success the
// keys are replaced and fresh for the response's lifetime, counted from the
// start of the fetch; on failure the cached keys stay as they are.
func (v *Verifier) refresh(ctx context.Context, is *issuer) error {
	keys, ttl, err := v.fetch(ctx, is.cfg.JWKSURL)
	is.mu.Lock()
	defer is.mu.Unlock()
	is.fetching = false
	if err != nil {
		is.lastErr = fmt.Errorf("fetch JWK Set of %q: %w", is.cfg.Issuer, err)
		return is.lastErr
	}
	is.keys, is.freshUntil, is.lastErr = keys, is.lastAttempt.Add(ttl), nil
	return nil
}

// fetch GETs a JWK Set and returns its usable keys and how long they may be
// cached. Only a 200 answer of at most MaxJWKSSize bytes is accepted;
// redirects are not followed. Its errors never quote the URL or the body.
func (v *Verifier) fetch(ctx context.Context, jwksURL string) (*keySet, time.Duration, error) {
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

// parseJWKS returns the usable signature keys of a JWK Set (RFC 7517 section
// 5), as usableKey decides key by key: a key it cannot use is skipped, and
// does not cost the others. A body that is not a JWK Set, or has no usable
// key, is an error, which never quotes the body.
func parseJWKS(b []byte) (*keySet, error) {
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(b, &set); err != nil || set.Keys == nil {
		return nil, errors.New("response is not a JWK Set")
	}
	store := jwkset.NewMemoryStorage()
	n := 0
	for _, raw := range set.Keys {
		if k, ok := usableKey(raw); ok {
			if store.KeyWrite(context.Background(), k) == nil {
				n++
			}
		}
	}
	if n == 0 {
		return nil, errors.New("JWK Set has no usable signature key")
	}
	kf, err := keyfunc.New(keyfunc.Options{Storage: store})
	if err != nil {
		return nil, errors.New("JWK Set storage")
	}
	return &keySet{Keyfunc: kf, n: n}, nil
}

// defaultAlg is the algorithm a key without alg is pinned to, by kty.
var defaultAlg = map[jwkset.KTY]jwkset.ALG{
	jwkset.KtyRSA: jwkset.AlgRS256,
	jwkset.KtyEC:  jwkset.AlgES256,
	jwkset.KtyOKP: jwkset.AlgEdDSA,
}

// usableKey returns the JWK raw as a public verification key whose alg is
// the one algorithm it is pinned to: RSA (RFC 7518 section 6.3) of at least
// minRSABits to RS256, or to its alg among RS256, RS384, RS512 and PS256; EC
// P-256 (section 6.2) to ES256; OKP Ed25519 (RFC 8037 section 2) to EdDSA.
// It reports false for a key that is malformed (jwkset decodes and checks the
// key material: base64url, point on the curve, key size), of another type or
// curve, with an alg that does not fit the key, or not for verifying
// signatures: a use other than "sig", key_ops without "verify" (RFC 7517
// sections 4.2 and 4.3). Private or symmetric key material is never kept.
func usableKey(raw json.RawMessage) (jwkset.JWK, bool) {
	var m jwkset.JWKMarshal
	if json.Unmarshal(raw, &m) != nil {
		return jwkset.JWK{}, false
	}
	if m.USE != "" && m.USE != jwkset.UseSig {
		return jwkset.JWK{}, false
	}
	if m.KEYOPS != nil && !slices.Contains(m.KEYOPS, jwkset.KeyOpsVerify) {
		return jwkset.JWK{}, false
	}
	if m.ALG == "" {
		m.ALG = defaultAlg[m.KTY]
	}
	// Without the Private option jwkset decodes only the public part, and
	// rejects kty "oct"; GetX5U unset, it fetches no x5u.
	j, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return jwkset.JWK{}, false
	}
	var ok bool
	switch k := j.Key().(type) {
	case *rsa.PublicKey:
		ok = slices.Contains([]jwkset.ALG{jwkset.AlgRS256, jwkset.AlgRS384, jwkset.AlgRS512, jwkset.AlgPS256}, m.ALG) &&
			k.N.BitLen() >= minRSABits && k.E >= 3 && k.E%2 == 1
	case *ecdsa.PublicKey:
		ok = k.Curve == elliptic.P256() && m.ALG == jwkset.AlgES256
	case ed25519.PublicKey:
		ok = m.ALG == jwkset.AlgEdDSA
	}
	return j, ok
}
