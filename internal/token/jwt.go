package token

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshauth/meshauth/internal/login"
)

// MaxClockSkew is the leeway allowed on exp, nbf and iat when verifying
// (RFC 8725 section 3.10 leaves the value to the application; 60 s is common).
const MaxClockSkew = 60 * time.Second

// Claims are the claims of an access token. Extra holds the claims a login
// provider added; it can never override the registered ones listed in Reserved.
type Claims struct {
	CustomerID string
	// NumericCustomerID carries CustomerID as a JSON number in the
	// customer-id claims (sub stays a string, RFC 7519 section 4.1.2). It
	// is honoured only for ids login.IsNumericID accepts.
	NumericCustomerID bool
	SessionID         string
	RefreshExpiry     time.Time
	IssuedAt          time.Time
	Expires           time.Time
	ID                string
	Extra             map[string]any
}

// Reserved are the claims the service owns. Extra claims with these names,
// or with the name of a customer-id claim, are dropped.
var Reserved = map[string]bool{
	"sub": true, "iss": true, "aud": true, "exp": true, "iat": true, "nbf": true,
	"jti": true, "sid": true, "customer_id": true, "refresh_expiry": true,
}

// DefaultCustomerIDClaims are the claims that carry the customer id unless
// configured otherwise (JWT_CUSTOMER_ID_CLAIMS).
var DefaultCustomerIDClaims = []string{"customer_id"}

// Signer mints and verifies access tokens with one allow-listed algorithm.
type Signer struct {
	method    jwt.SigningMethod
	signKey   crypto.PrivateKey // []byte for HS256, ed25519.PrivateKey for EdDSA
	verifyKey any               // HS256: the secret
	// edKeys are the Ed25519 keys EdDSA tokens may be signed with, by kid:
	// the signing key's and any extra (previous or upcoming) ones.
	edKeys   map[string]ed25519.PublicKey
	keyID    string
	issuer   string
	audience string
	parser   *jwt.Parser
	// idClaims carry the customer id besides sub; DefaultCustomerIDClaims
	// unless WithCustomerIDClaims says otherwise.
	idClaims []string
	// header is the tokens' encoded JOSE header; hs256 the HS256 key's MACs.
	header string
	hs256  *macPool
}

// NewHS256 returns a Signer that signs with HMAC-SHA256 and the shared secret.
func NewHS256(secret []byte, issuer, audience string) (*Signer, error) {
	if len(secret) == 0 {
		return nil, errors.New("HS256 secret is empty")
	}
	return newSigner(jwt.SigningMethodHS256, secret, secret, "", issuer, audience), nil
}

// NewEdDSA returns a Signer that signs with Ed25519 and puts keyID in the kid header.
func NewEdDSA(key ed25519.PrivateKey, keyID, issuer, audience string) (*Signer, error) {
	if len(key) != ed25519.PrivateKeySize {
		return nil, errors.New("Ed25519 private key has the wrong size")
	}
	if keyID == "" {
		return nil, errors.New("EdDSA signing needs a key id")
	}
	s := newSigner(jwt.SigningMethodEdDSA, key, nil, keyID, issuer, audience)
	s.edKeys = map[string]ed25519.PublicKey{keyID: key.Public().(ed25519.PublicKey)}
	return s, nil
}

// PublicKey is an Ed25519 verification key and its key id.
type PublicKey struct {
	ID  string
	Key ed25519.PublicKey
}

// WithExtraKeys returns a copy of s (EdDSA only) that also accepts tokens
// signed with keys and publishes them in its JWKS: the previous key during a
// rotation, until the last token it signed has expired, or the next key ahead
// of a rotation, so that verifiers have it before it signs anything.
func (s *Signer) WithExtraKeys(keys []PublicKey) (*Signer, error) {
	if s.edKeys == nil {
		return nil, errors.New("extra verification keys need EdDSA")
	}
	c := *s
	c.edKeys = maps.Clone(s.edKeys)
	for _, k := range keys {
		if len(k.Key) != ed25519.PublicKeySize || k.ID == "" {
			return nil, errors.New("extra verification key: want an Ed25519 public key with a key id")
		}
		if _, dup := c.edKeys[k.ID]; dup {
			return nil, fmt.Errorf("extra verification key: key id %s is used twice", k.ID)
		}
		c.edKeys[k.ID] = k.Key
	}
	return &c, nil
}

// JWKS returns the JSON Web Key Set (RFC 7517) of the public keys tokens may
// be signed with (RFC 8037 OKP keys), the signing key first; with HS256 there
// is nothing to publish and the set is empty.
func (s *Signer) JWKS() []byte {
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
		Use string `json:"use"`
		Alg string `json:"alg"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	ids := slices.Sorted(maps.Keys(s.edKeys))
	if i := slices.Index(ids, s.keyID); i > 0 {
		ids = append(append([]string{s.keyID}, ids[:i]...), ids[i+1:]...)
	}
	for _, id := range ids {
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(s.edKeys[id]), Kid: id, Use: "sig", Alg: "EdDSA"})
	}
	b, _ := json.Marshal(set)
	return b
}

func newSigner(m jwt.SigningMethod, sign crypto.PrivateKey, verify any, kid, iss, aud string) *Signer {
	s := &Signer{method: m, signKey: sign, verifyKey: verify, keyID: kid, issuer: iss, audience: aud, idClaims: DefaultCustomerIDClaims}
	// As golang-jwt writes it: a map, so keys in order.
	header := map[string]string{"alg": m.Alg(), "typ": "JWT"}
	if kid != "" {
		header["kid"] = kid
	}
	h, _ := json.Marshal(header) // strings always encode
	s.header = base64.RawURLEncoding.EncodeToString(h)
	if key, ok := sign.([]byte); ok {
		s.hs256 = newMACPool(key)
	}
	return s.WithClock(time.Now)
}

// WithCustomerIDClaims returns a copy of s whose tokens carry the customer
// id in each of names (at least one; none of them Reserved but
// customer_id), with the JSON type the login provider gave it. Verify reads
// the first.
func (s *Signer) WithCustomerIDClaims(names []string) (*Signer, error) {
	if len(names) == 0 {
		return nil, errors.New("at least one customer-id claim is needed")
	}
	for _, n := range names {
		if n == "" || (Reserved[n] && n != "customer_id") || n == "role" || n == "status" {
			return nil, fmt.Errorf("%q is a registered or meshauth claim", n)
		}
	}
	c := *s
	c.idClaims = slices.Clone(names)
	return &c, nil
}

func (s *Signer) reserved(name string) bool {
	return Reserved[name] || slices.Contains(s.idClaims, name)
}

// WithClock returns a copy of s that verifies exp, nbf and iat by the clock now.
func (s *Signer) WithClock(now func() time.Time) *Signer {
	c := *s
	// RFC 8725 section 3.1: accept exactly the configured algorithm.
	c.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{s.method.Alg()}),
		jwt.WithIssuer(s.issuer),
		jwt.WithAudience(s.audience),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithLeeway(MaxClockSkew),
		jwt.WithTimeFunc(now),
		// One encoding per signature: padded or non-canonical base64 is refused.
		jwt.WithStrictDecoding(),
	)
	return &c
}

// Algorithm returns the JWS algorithm name the Signer uses.
func (s *Signer) Algorithm() string { return s.method.Alg() }

// Sign mints an access token for c. The token is assembled here, without
// reflection, byte for byte as golang-jwt signs jwt.MapClaims (the header
// and the claims as encoding/json marshals maps: keys sorted, HTML-safe
// escaping), which is what it was signed with before and what Verify
// parses with.
func (s *Signer) Sign(c Claims) (string, error) {
	if c.ID == "" {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return "", err
		}
		c.ID = base64.RawURLEncoding.EncodeToString(b[:])
	}
	numericID := c.NumericCustomerID && login.IsNumericID(c.CustomerID)
	sc := scratchPool.Get().(*signScratch)
	defer sc.release()
	claims := sc.claims[:0]
	for k, v := range c.Extra {
		if !s.reserved(k) {
			claims = append(claims, claim{name: k, kind: claimValue, value: v})
		}
	}
	for _, name := range s.idClaims {
		if numericID {
			claims = append(claims, claim{name: name, kind: claimRaw, str: c.CustomerID})
		} else {
			claims = append(claims, claim{name: name, str: c.CustomerID})
		}
	}
	claims = append(claims,
		claim{name: "sub", str: c.CustomerID},
		claim{name: "iss", str: s.issuer},
		claim{name: "aud", str: s.audience},
		claim{name: "iat", kind: claimNumber, num: c.IssuedAt.Unix()},
		claim{name: "exp", kind: claimNumber, num: c.Expires.Unix()},
		claim{name: "jti", str: c.ID},
		claim{name: "sid", str: c.SessionID},
		claim{name: "refresh_expiry", kind: claimNumber, num: c.RefreshExpiry.Unix()},
	)
	slices.SortFunc(claims, func(a, b claim) int { return strings.Compare(a.name, b.name) })
	payload := append(sc.payload[:0], '{')
	for i, cl := range claims {
		if i > 0 && cl.name == claims[i-1].name {
			continue // a customer-id claim named twice: a map holds it once
		}
		if len(payload) > 1 {
			payload = append(payload, ',')
		}
		payload = appendJSONString(payload, cl.name)
		payload = append(payload, ':')
		switch cl.kind {
		case claimNumber:
			payload = strconv.AppendInt(payload, cl.num, 10)
		case claimRaw:
			payload = append(payload, cl.str...)
		case claimValue:
			v, err := json.Marshal(cl.value)
			if err != nil {
				return "", fmt.Errorf("encode claim %q: %w", cl.name, err)
			}
			payload = append(payload, v...)
		default:
			payload = appendJSONString(payload, cl.str)
		}
	}
	payload = append(payload, '}')
	sc.claims, sc.payload = claims, payload

	enc := base64.RawURLEncoding
	out := append(sc.out[:0], s.header...)
	out = append(out, '.')
	out = enc.AppendEncode(out, payload)
	var sig []byte
	if key, ok := s.signKey.(ed25519.PrivateKey); ok {
		sig = ed25519.Sign(key, out)
	} else {
		var mac [sha256.Size]byte
		sig = s.hs256.sum(mac[:0], out, nil)
	}
	out = append(out, '.')
	out = enc.AppendEncode(out, sig)
	sc.out = out
	return string(out), nil
}

// signScratch is what Sign builds a token in, reused through scratchPool
// rather than allocated per token, and on the heap rather than in Sign's
// frame: a deep frame makes a refresh grow its goroutine's stack, which
// every garbage collection shrinks again.
type signScratch struct {
	claims       []claim
	payload, out []byte
}

var scratchPool = sync.Pool{New: func() any {
	return &signScratch{claims: make([]claim, 0, 16), payload: make([]byte, 0, 512), out: make([]byte, 0, 1024)}
}}

// release returns sc to the pool, holding none of the claims' strings or
// values.
func (sc *signScratch) release() {
	clear(sc.claims[:cap(sc.claims)])
	sc.claims = sc.claims[:0]
	scratchPool.Put(sc)
}

// claim is one claim of an access token while Sign encodes it.
type claim struct {
	name  string
	kind  claimKind
	str   string // claimString, claimRaw
	num   int64  // claimNumber
	value any    // claimValue
}

type claimKind uint8

const (
	claimString claimKind = iota // str, as a JSON string
	claimNumber                  // num
	claimRaw                     // str is a JSON number literal (a numeric customer id)
	claimValue                   // value, through encoding/json (extra claims)
)

// appendJSONString appends s as encoding/json encodes a string (with HTML
// escaping): printable ASCII without '"', '\\', '<', '>' and '&' as is,
// anything else through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// Verify checks an access token's signature, algorithm, issuer, audience, exp,
// nbf and iat (with MaxClockSkew of leeway) and returns its claims. The error
// never contains the token.
func (s *Signer) Verify(tokenString string) (Claims, error) {
	mc := jwt.MapClaims{}
	_, err := s.parser.ParseWithClaims(tokenString, mc, func(t *jwt.Token) (any, error) {
		if s.edKeys == nil {
			return s.verifyKey, nil
		}
		kid, _ := t.Header["kid"].(string)
		if k, ok := s.edKeys[kid]; ok {
			return k, nil
		}
		return nil, errors.New("unknown key id")
	})
	if err != nil {
		return Claims{}, fmt.Errorf("verify access token: %w", err)
	}
	c := Claims{Extra: map[string]any{}}
	c.CustomerID, _ = mc["sub"].(string)
	c.SessionID, _ = mc["sid"].(string)
	c.ID, _ = mc["jti"].(string)
	switch id := mc[s.idClaims[0]].(type) {
	case string:
		if c.CustomerID == "" || id != c.CustomerID {
			return Claims{}, fmt.Errorf("verify access token: %s and sub missing or different", s.idClaims[0])
		}
	case float64:
		c.NumericCustomerID = true
		if !login.IsNumericID(c.CustomerID) || strconv.FormatFloat(id, 'f', -1, 64) != c.CustomerID {
			return Claims{}, fmt.Errorf("verify access token: %s and sub missing or different", s.idClaims[0])
		}
	default:
		return Claims{}, fmt.Errorf("verify access token: %s missing", s.idClaims[0])
	}
	if exp, err := mc.GetExpirationTime(); err == nil && exp != nil {
		c.Expires = exp.Time
	}
	if iat, err := mc.GetIssuedAt(); err == nil && iat != nil {
		c.IssuedAt = iat.Time
	}
	if re, ok := mc["refresh_expiry"].(float64); ok {
		c.RefreshExpiry = time.Unix(int64(re), 0)
	}
	for k, v := range mc {
		if !s.reserved(k) {
			c.Extra[k] = v
		}
	}
	return c, nil
}
