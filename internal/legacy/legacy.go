// Package legacy reads the sessions of the GraphQL Mesh auth module that
// meshauth replaces, so that a shop's customers stay logged in across the
// cutover (LEGACY_DYNAMO_DB_AUTH_TABLE).
//
// That module's refresh token is
//
//	hex(PBKDF2-HMAC-SHA512(customerId ‖ accessExp, JWT_PRIVATE_KEY, 10 000, 64))
//
// (128 hex characters), where accessExp is the exp of the HS256 access token
// issued with it, and its table keeps, under partition key customer_id and
// sort key refresh_token_hash,
//
//	hex(PBKDF2-HMAC-SHA512(refreshToken, JWT_PRIVATE_KEY, 10 000, 64)).
//
// A client refreshes with the refresh token and, as Bearer, the (usually
// expired) access token. The access token's signature is checked first,
// cheaply; only a token pair whose access token this shop signed reaches the
// two PBKDF2 derivations, which cost milliseconds of CPU each.
package legacy

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/meshauth/meshauth/internal/login"
)

// The module's PBKDF2 parameters.
const (
	iterations = 10000
	keyLen     = 64
)

// TokenLen is the length of a legacy refresh token: 64 bytes in hex.
const TokenLen = 2 * keyLen

// ErrInvalid reports a token pair this shop's module did not issue, or one
// whose session has ended. Its text names no value.
var ErrInvalid = errors.New("invalid legacy token")

// Claims are what a legacy access token says of its session.
type Claims struct {
	// CustomerID is the customer_id claim as a string; NumericID says it
	// was a JSON number.
	CustomerID string
	NumericID  bool
	// Expires is the access token's exp: it keys the refresh token.
	Expires int64
	// IssuedAt is the access token's iat, or zero.
	IssuedAt time.Time
	// SessionEnd is the refresh_expiry claim: when the session ends.
	SessionEnd time.Time
}

// Verifier checks legacy token pairs with the module's JWT_PRIVATE_KEY.
type Verifier struct {
	secret []byte
	parser *jwt.Parser
}

// NewVerifier returns a Verifier for the module's shared secret.
func NewVerifier(secret []byte) (*Verifier, error) {
	if len(secret) == 0 {
		return nil, errors.New("legacy sessions need JWT_PRIVATE_KEY, the secret the module signed with")
	}
	// HS256 only (RFC 8725 section 3.1); expiry is not checked, because the
	// access token a client refreshes with has usually expired.
	p := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithoutClaimsValidation(), jwt.WithJSONNumber(), jwt.WithStrictDecoding())
	return &Verifier{secret: secret, parser: p}, nil
}

// LooksLegacy reports whether token has the shape of a legacy refresh token:
// 128 lower-case hex characters. Nothing else ever reaches PBKDF2.
func LooksLegacy(token string) bool {
	if len(token) != TokenLen {
		return false
	}
	for i := 0; i < len(token); i++ {
		c := token[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Access checks the legacy access token's HS256 signature, ignoring its
// expiry, and returns its claims. It refuses a session whose refresh_expiry
// has passed at now. It does no key derivation.
func (v *Verifier) Access(accessToken string, now time.Time) (Claims, error) {
	mc := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(accessToken, mc, func(*jwt.Token) (any, error) { return v.secret, nil }); err != nil {
		return Claims{}, fmt.Errorf("%w: access token: %w", ErrInvalid, err)
	}
	var c Claims
	switch id := mc["customer_id"].(type) {
	case string:
		c.CustomerID = id
	case json.Number:
		c.CustomerID, c.NumericID = id.String(), login.IsNumericID(id.String())
	}
	exp, okExp := unix(mc["exp"])
	end, okEnd := unix(mc["refresh_expiry"])
	if c.CustomerID == "" || !okExp || !okEnd {
		return Claims{}, fmt.Errorf("%w: access token lacks customer_id, exp or refresh_expiry", ErrInvalid)
	}
	c.Expires, c.SessionEnd = exp, time.Unix(end, 0).UTC()
	if iat, ok := unix(mc["iat"]); ok {
		c.IssuedAt = time.Unix(iat, 0).UTC()
	}
	if !now.Before(c.SessionEnd) {
		return Claims{}, fmt.Errorf("%w: the session has ended", ErrInvalid)
	}
	return c, nil
}

// Refresh checks that refreshToken is the one the module issued with the
// access token of c (constant-time) and returns the hash its table keeps the
// token under. Two PBKDF2 derivations: call it only after Access.
func (v *Verifier) Refresh(c Claims, refreshToken string) (storedHash string, err error) {
	want, err := Token(v.secret, c.CustomerID, c.Expires)
	if err != nil {
		return "", err
	}
	if !hmac.Equal([]byte(refreshToken), []byte(want)) {
		return "", fmt.Errorf("%w: refresh token does not match the access token", ErrInvalid)
	}
	return StoredHash(v.secret, refreshToken)
}

// StoredHash is the module's table key for refreshToken.
func StoredHash(secret []byte, refreshToken string) (string, error) {
	h, err := pbkdf2.Key(sha512.New, refreshToken, secret, iterations, keyLen)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h), nil
}

// Token is the module's refresh token for customerID and the exp of the
// access token issued with it.
func Token(secret []byte, customerID string, accessExp int64) (string, error) {
	k, err := pbkdf2.Key(sha512.New, customerID+strconv.FormatInt(accessExp, 10), secret, iterations, keyLen)
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(k), nil
}

// unix reads a NumericDate claim in whole seconds.
func unix(v any) (int64, bool) {
	n, ok := v.(json.Number)
	if !ok {
		return 0, false
	}
	if i, err := n.Int64(); err == nil {
		return i, true
	}
	f, err := n.Float64()
	return int64(f), err == nil
}
