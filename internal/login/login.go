// Package login checks a customer's credentials with the shop's commerce
// platform. Every backend implements Service.
package login

import (
	"context"
	"errors"
	"strconv"
	"strings"
)

// ErrInvalidCredentials is returned, with no other detail, when the platform
// rejects the email and password. Any other error means the platform could
// not give an answer (it was down, slow, or answered nonsense).
var ErrInvalidCredentials = errors.New("invalid credentials")

// Identity is who a successful login names.
type Identity struct {
	// CustomerID is the platform's id for the customer, as the platform returned it.
	CustomerID string
	// NumericID says the platform gave the id as a JSON integer. Access
	// tokens then carry it as a number, as resolvers written for that
	// platform expect; an id outside ±(2^53-1), which JavaScript cannot hold
	// exactly, stays a string.
	NumericID bool
	// Claims are extra access-token claims the platform wants carried (for
	// example a customer group). The service's registered claims override them.
	Claims map[string]any
	// Role, when set, goes into the access token's role claim (USER, ADMIN...).
	Role string
	// Status, when set, goes into the status claim. StatusInactive refuses
	// the login: the customer gets no session.
	Status string
}

// Account statuses a platform may report.
const (
	StatusActive       = "ACTIVE"
	StatusInactive     = "INACTIVE"
	StatusUnregistered = "UNREGISTERED"
)

// ErrUnknownCustomer is returned by an IdentityMapper when no customer
// matches a verified external identity: the storefront should send the
// person to registration.
var ErrUnknownCustomer = errors.New("unknown customer")

// External is an identity another issuer (Google, Firebase Auth, any OIDC
// provider) has verified.
type External struct {
	Issuer        string
	Subject       string
	Email         string
	EmailVerified bool
}

// IdentityMapper is implemented by login services that can name the customer
// of a verified external identity, for exchangeIdentityToken.
type IdentityMapper interface {
	// MapIdentity returns the customer, ErrUnknownCustomer, or another error
	// when the platform cannot tell.
	MapIdentity(ctx context.Context, ext External) (Identity, error)
}

// Service checks credentials. Implementations must be safe for concurrent use
// and must not log or return the password.
type Service interface {
	// Login returns the customer the credentials belong to, ErrInvalidCredentials
	// when the platform rejects them, or another error when it cannot tell.
	Login(ctx context.Context, email, password string) (Identity, error)
}

type clientIPKey struct{}

// WithClientIP returns a context that tells login providers the address of
// the customer the call is for: the address the service itself trusts
// (TRUSTED_PROXIES decides), never a header a provider should parse again.
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, clientIPKey{}, ip)
}

// ClientIP is the customer's address WithClientIP recorded, or "".
func ClientIP(ctx context.Context) string {
	ip, _ := ctx.Value(clientIPKey{}).(string)
	return ip
}

// maxSafeInteger is 2^53-1, the largest integer JavaScript (and any IEEE
// 754 double) holds exactly.
const maxSafeInteger = 1<<53 - 1

// IsNumericID reports whether id is a canonical decimal integer (an
// optional minus, no leading zeros) within ±(2^53-1), so that a JSON number
// carries it exactly to any reader.
func IsNumericID(id string) bool {
	n, err := strconv.ParseInt(id, 10, 64)
	return err == nil && -maxSafeInteger <= n && n <= maxSafeInteger && strconv.FormatInt(n, 10) == id
}

// NormalizeEmail is the form in which emails are compared, counted by the
// login limits and looked up: surrounding ASCII white space removed and the
// letters A-Z in lower case. Every other byte, and so every non-ASCII rune,
// is kept as it is.
//
// It does not fold Unicode case (strings.ToLower, strings.EqualFold, or
// full case folding): that maps U+0130 (İ) to i and the Kelvin sign
// (U+212A) to k, so "alİce@example.com", a different address that an
// identity provider may verify for someone else, would name
// alice@example.com's account. The domain part is case-insensitive in
// ASCII only (RFC 5321 section 2.4), and internationalized addresses
// (RFC 6531) are compared as their UTF-8 bytes. For the same reason only
// ASCII white space is trimmed: a trailing no-break space is another address.
func NormalizeEmail(email string) string {
	email = strings.Trim(email, asciiSpace)
	for i := 0; i < len(email); i++ {
		if 'A' <= email[i] && email[i] <= 'Z' {
			b := []byte(email)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return email
}

// asciiSpace is the white space NormalizeEmail trims.
const asciiSpace = " \t\n\v\f\r"
