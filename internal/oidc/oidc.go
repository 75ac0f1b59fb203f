// Package oidc verifies ID tokens that a third-party OpenID Connect provider
// (Google, Firebase Auth, or any issuer that publishes a JWK Set) issued to a
// customer who signed in there, so that the service can map the identity to
// one of its own customers.
//
// A Verifier trusts only the issuers it is configured with, fetches each
// one's JWK Set (RFC 7517) from the configured URL, never from the token, and
// checks tokens as OpenID Connect Core 1.0 section 3.1.3.7 describes. Its
// errors never contain the token or any part of a JWK Set response.
//
// Libraries do the generic work: github.com/MicahParks/jwkset decodes and
// checks each JWK (base64url, key type, curve, point on the curve, x5c) and
// holds a fetched set; github.com/MicahParks/keyfunc/v3 turns that set into
// the jwt.Keyfunc that picks a token's key by kid and rejects a token whose
// alg is not the key's; github.com/golang-jwt/jwt/v5 checks the signature and
// the registered claims; golang.org/x/sync/singleflight lets concurrent
// callers share one fetch.
//
// The rest is this package's own, because the libraries do not offer it:
//   - Trust policy: which issuers and audiences are accepted (every aud
//     value must be one), which algorithms, the algorithm each key is pinned
//     to (stored as the key's alg for keyfunc to enforce), RSA keys of at
//     least 2048 bits, and the mapping of claims to an Identity.
//   - When to fetch. jwkset's HTTP storage refreshes on a wall-clock ticker,
//     ignores Cache-Control, and its refresh on an unknown kid waits on a
//     wall-clock rate limiter rather than answering at once; here the cache
//     follows Cache-Control max-age, every fetch of an issuer's set, whatever
//     triggers it, counts against one MinRefetchInterval, an unknown kid
//     within the interval is rejected without waiting, and all of it runs on
//     Options.Now. No goroutine outlives a fetch, so a Verifier needs no
//     Close.
//   - The fetch itself: jwkset's HTTP storage rejects a whole set when one
//     key in it does not decode, reads the body without a bound and quotes
//     the URL in its errors. Here a bad key is skipped and costs the others
//     nothing, the body is read within MaxJWKSSize by the helpers of
//     internal/upstream, redirects are not followed, and errors are scrubbed
//     of the URL and the body.
package oidc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshauth/meshauth/internal/upstream"
)

// Leeway is the clock skew allowed on exp, nbf and iat (OIDC Core 1.0 section
// 3.1.3.7 steps 9 and 10 leave the amount to the client; 60 s is common).
const Leeway = 60 * time.Second

// MaxTokenSize is the longest ID token Verify parses, in bytes. Real ones are
// a few kilobytes; a longer string is rejected before any decoding.
const MaxTokenSize = 64 << 10

// MaxSubjectLength is the longest sub claim accepted, in bytes: OIDC Core 1.0
// section 2 says a subject identifier "MUST NOT exceed 255 ASCII characters".
const MaxSubjectLength = 255

// Defaults for the zero values of Options.
const (
	DefaultMinRefetchInterval = time.Minute
	DefaultCacheTTL           = time.Hour
)

// Errors Verify returns. Each error it returns matches exactly one of them
// with errors.Is (and possibly the jwt package sentinel or context error that
// explains it); the text never contains the token.
var (
	// ErrInvalidToken: the token is malformed, from an issuer that is not
	// allowed, signed with an unknown key or the wrong algorithm, has a bad
	// signature, or fails a claim check. The caller should treat it as bad
	// credentials.
	ErrInvalidToken = errors.New("invalid ID token")
	// ErrUnverifiedEmail: the token is valid, but RequireVerifiedEmail is set
	// and it has no email or email_verified is not true.
	ErrUnverifiedEmail = errors.New("ID token email is not verified")
	// ErrKeysUnavailable: the issuer's signing keys could not be fetched (or
	// the caller's context ended while waiting for them), so the token could
	// not be checked. The caller should report an upstream problem, not bad
	// credentials.
	ErrKeysUnavailable = errors.New("ID token signing keys unavailable")
)

// Issuer is one OpenID provider whose ID tokens are accepted.
type Issuer struct {
	// Issuer is the exact iss value, e.g. "https://accounts.google.com" or
	// "https://securetoken.google.com/<project>". It is compared byte for byte.
	Issuer string
	// JWKSURL is where the issuer publishes its JWK Set, e.g.
	// https://www.googleapis.com/oauth2/v3/certs (Firebase:
	// https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com).
	JWKSURL string
	// Audiences are the client ids (for Firebase, the project id) this
	// service accepts tokens for. At least one. Every aud value of a token
	// must be one of them.
	Audiences []string
}

// Options configure a Verifier. Zero values take the documented defaults.
type Options struct {
	Issuers []Issuer
	// RequireVerifiedEmail makes Verify return ErrUnverifiedEmail for an
	// otherwise valid token without an email whose email_verified is true.
	RequireVerifiedEmail bool
	// Client fetches JWK Sets. Default: a client with a FetchTimeout timeout.
	// Verify uses a copy that never follows redirects, and bounds every fetch
	// by FetchTimeout whatever the client's own timeout.
	Client *http.Client
	// Now is the clock for exp, nbf, iat and the key cache. Default time.Now.
	Now func() time.Time
	// MinRefetchInterval is the least time between two fetches of one
	// issuer's JWK Set, whatever triggers them (an unknown kid, an expired
	// cache, a failed fetch). Default DefaultMinRefetchInterval.
	MinRefetchInterval time.Duration
	// DefaultCacheTTL is how long a JWK Set is used when its response has no
	// usable Cache-Control max-age. Default DefaultCacheTTL.
	DefaultCacheTTL time.Duration
}

// Identity is who a verified ID token says the customer is.
type Identity struct {
	// Issuer and Subject together identify the account at the provider
	// (OIDC Core 1.0 section 5.7: only this pair is stable and unique).
	Issuer  string
	Subject string
	// Email is the email claim, or "" when the token has none.
	Email string
	// EmailVerified is true when Email is not empty and email_verified is the
	// JSON true or the string "true" (some providers send strings).
	EmailVerified bool
}

// Verifier checks ID tokens. It is safe for concurrent use.
type Verifier struct {
	issuers         map[string]*issuer
	requireVerified bool
	client          *http.Client
	now             func() time.Time
	minRefetch      time.Duration
	defaultTTL      time.Duration
}

// supportedAlgs are the JWS algorithms (RFC 7518 section 3.1, RFC 8037
// section 3.1) a key can be pinned to. "none" and the HMAC algorithms are
// deliberately absent: a public key is never used as an HMAC secret.
var supportedAlgs = []string{"RS256", "RS384", "RS512", "PS256", "ES256", "EdDSA"}

// New returns a Verifier for o. It reports every problem with o at once: no
// issuers, an empty or repeated issuer, a JWKS URL that is not an absolute
// http or https URL, no audiences or an empty one, a negative duration.
func New(o Options) (*Verifier, error) {
	var errs []error
	if len(o.Issuers) == 0 {
		errs = append(errs, errors.New("oidc: at least one issuer is required"))
	}
	if o.MinRefetchInterval < 0 {
		errs = append(errs, errors.New("oidc: MinRefetchInterval is negative"))
	}
	if o.DefaultCacheTTL < 0 {
		errs = append(errs, errors.New("oidc: DefaultCacheTTL is negative"))
	}
	v := &Verifier{
		issuers:         make(map[string]*issuer, len(o.Issuers)),
		requireVerified: o.RequireVerifiedEmail,
		now:             o.Now,
		minRefetch:      o.MinRefetchInterval,
		defaultTTL:      o.DefaultCacheTTL,
	}
	for i, is := range o.Issuers {
		name := fmt.Sprintf("oidc: issuer %d (%q)", i, is.Issuer)
		if is.Issuer == "" {
			errs = append(errs, fmt.Errorf("oidc: issuer %d: Issuer is required", i))
		} else if _, dup := v.issuers[is.Issuer]; dup {
			errs = append(errs, fmt.Errorf("%s: configured twice", name))
		}
		if err := upstream.CheckURL(is.JWKSURL); err != nil {
			errs = append(errs, fmt.Errorf("%s: JWKS URL %w", name, err))
		}
		if len(is.Audiences) == 0 {
			errs = append(errs, fmt.Errorf("%s: at least one audience is required", name))
		} else if slices.Contains(is.Audiences, "") {
			errs = append(errs, fmt.Errorf("%s: an audience is empty", name))
		}
		is.Audiences = slices.Clone(is.Audiences)
		v.issuers[is.Issuer] = newIssuer(is, v)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if v.now == nil {
		v.now = time.Now
	}
	if v.minRefetch == 0 {
		v.minRefetch = DefaultMinRefetchInterval
	}
	if v.defaultTTL == 0 {
		v.defaultTTL = DefaultCacheTTL
	}
	if o.Client == nil {
		v.client = &http.Client{Timeout: FetchTimeout}
	} else {
		c := *o.Client
		v.client = &c
	}
	v.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return v, nil
}

func newIssuer(cfg Issuer, v *Verifier) *issuer {
	is := &issuer{cfg: cfg, parsers: make(map[string]*jwt.Parser, len(supportedAlgs))}
	for _, alg := range supportedAlgs {
		// RFC 8725 section 3.1: accept exactly the algorithm the key is
		// pinned to. The clock is read through v so that New can default it.
		is.parsers[alg] = jwt.NewParser(
			jwt.WithValidMethods([]string{alg}),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(Leeway),
			jwt.WithTimeFunc(func() time.Time { return v.now() }),
			jwt.WithStrictDecoding(),
		)
	}
	return is
}

// unverified only decodes; it checks nothing.
var unverified = jwt.NewParser(jwt.WithStrictDecoding())

// Verify checks idToken as OIDC Core 1.0 section 3.1.3.7 describes and returns
// the identity it asserts:
//
//   - The unverified iss claim only selects the configured issuer, by exact
//     match; an issuer not configured is ErrInvalidToken, and nothing is
//     fetched for it.
//   - The signing key is looked up by kid in the issuer's JWK Set (fetched
//     and cached as documented on Options; an unknown kid refetches it at
//     most once per MinRefetchInterval). A token without kid is accepted only
//     when the set has exactly one usable key. A token with a crit header is
//     rejected (RFC 7515 section 4.1.11: we understand no extensions).
//   - The algorithm is pinned by the key (RFC 8725 section 3.1, RFC 7518
//     section 3.1, RFC 8037 section 3.1): RSA keys RS256, or the key's alg
//     if it is RS384, RS512 or PS256; EC P-256 keys ES256; Ed25519 keys
//     EdDSA. The header's alg must be that one; "none" and HS* never are.
//   - Claims (steps 2, 3, 9, 10): iss equals the issuer; aud is present and
//     every value is one of the issuer's Audiences (step 3 requires
//     rejecting audiences the client does not trust); exp and iat are
//     required, exp not past and iat and nbf (if present) not in the future,
//     each with Leeway; sub is a non-empty string of at most
//     MaxSubjectLength bytes.
//
// Steps not taken, because this service did not start the sign-in: nonce
// (step 11; the storefront that sent the authentication request checks it),
// azp (steps 4 and 5 are SHOULDs, and Google sets azp to a different client
// id of the same project for tokens minted on Android), acr and auth_time.
//
// Verify returns ErrInvalidToken for a bad token, ErrKeysUnavailable when
// the keys could not be fetched (or ctx ended while waiting for them), and
// ErrUnverifiedEmail, with a zero Identity, as documented on Options.
func (v *Verifier) Verify(ctx context.Context, idToken string) (Identity, error) {
	if len(idToken) > MaxTokenSize {
		return Identity{}, invalid("token too long")
	}
	tok, _, err := unverified.ParseUnverified(idToken, jwt.MapClaims{})
	if err != nil {
		return Identity{}, invalidJWT(err)
	}
	iss, _ := tok.Claims.(jwt.MapClaims)["iss"].(string)
	is, ok := v.issuers[iss]
	if !ok {
		return Identity{}, invalid("issuer not allowed")
	}
	alg, _ := tok.Header["alg"].(string)
	if !slices.Contains(supportedAlgs, alg) {
		return Identity{}, invalid("algorithm not allowed")
	}
	if _, ok := tok.Header["crit"]; ok {
		return Identity{}, invalid("crit header not supported")
	}
	kid, ok := tok.Header["kid"].(string)
	if !ok && tok.Header["kid"] != nil {
		return Identity{}, invalid("kid header is not a string")
	}

	keys, err := v.keysFor(ctx, is, kid)
	if err != nil {
		return Identity{}, err
	}

	// keyfunc picks the key by kid, or, for a token without one, takes the
	// set's only key, and rejects the token unless its alg is the key's
	// pinned one. A null kid counts as none.
	keyFor := keys.KeyfuncCtx(ctx)
	claims := jwt.MapClaims{}
	_, err = is.parsers[alg].ParseWithClaims(idToken, claims, func(t *jwt.Token) (any, error) {
		if kid == "" {
			delete(t.Header, "kid")
		}
		return keyFor(t)
	})
	if err != nil {
		return Identity{}, invalidJWT(err)
	}
	// OIDC Core 1.0 section 2 makes iat REQUIRED; the parser only checks it
	// when present.
	if iat, err := claims.GetIssuedAt(); err != nil || iat == nil {
		return Identity{}, fmt.Errorf("%w: iat: %w", ErrInvalidToken, jwt.ErrTokenRequiredClaimMissing)
	}
	// Step 3: the client must be an audience, and every audience trusted.
	aud, err := claims.GetAudience()
	if err != nil || len(aud) == 0 {
		return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenInvalidAudience)
	}
	for _, a := range aud {
		if !slices.Contains(is.cfg.Audiences, a) {
			return Identity{}, fmt.Errorf("%w: %w", ErrInvalidToken, jwt.ErrTokenInvalidAudience)
		}
	}
	sub, _ := claims["sub"].(string)
	if sub == "" || len(sub) > MaxSubjectLength {
		return Identity{}, invalid("sub missing, not a string or too long")
	}

	id := Identity{Issuer: iss, Subject: sub}
	id.Email, _ = claims["email"].(string)
	switch ev := claims["email_verified"].(type) {
	case bool:
		id.EmailVerified = ev
	case string:
		id.EmailVerified = ev == "true"
	}
	id.EmailVerified = id.EmailVerified && id.Email != ""
	if v.requireVerified && !id.EmailVerified {
		return Identity{}, ErrUnverifiedEmail
	}
	return id, nil
}

func invalid(reason string) error {
	return fmt.Errorf("%w: %s", ErrInvalidToken, reason)
}

// jwtReasons are the jwt sentinels an error may be explained by, most
// specific first. Only a sentinel's fixed text is kept: the jwt package's own
// messages can quote parts of the token (the alg, a JSON syntax error).
var jwtReasons = []error{
	jwt.ErrTokenMalformed,
	jwt.ErrTokenSignatureInvalid,
	jwt.ErrTokenExpired,
	jwt.ErrTokenNotValidYet,
	jwt.ErrTokenUsedBeforeIssued,
	jwt.ErrTokenInvalidIssuer,
	jwt.ErrTokenInvalidAudience,
	jwt.ErrTokenRequiredClaimMissing,
	jwt.ErrInvalidType,
	jwt.ErrTokenUnverifiable,
	jwt.ErrTokenInvalidClaims,
}

// invalidJWT returns ErrInvalidToken wrapping the first jwt sentinel that err
// matches, so errors.Is(err, jwt.ErrTokenExpired) still works.
func invalidJWT(err error) error {
	for _, r := range jwtReasons {
		if errors.Is(err, r) {
			return fmt.Errorf("%w: %w", ErrInvalidToken, r)
		}
	}
	return ErrInvalidToken
}
