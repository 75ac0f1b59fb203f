// Package meshauth runs the meshauth customer-session service. Most shops run
// the meshauth binary; a Go program uses this package to run the same service
// with its own LoginService, for a commerce platform meshauth has no provider for:
//
//	func main() {
//		err := meshauth.Run(context.Background(), meshauth.Options{Login: myPlatform{}})
//		...
//	}
//
// Everything else (store, keys, expiries) is configured by the same
// environment variables as the binary; see the README.
package meshauth

import (
	"context"
	"io"
	"time"

	"github.com/meshauth/meshauth/internal/login"
)

// LoginService checks a customer's credentials with the shop's platform.
// Implementations must be safe for concurrent use, must return
// ErrInvalidCredentials (and nothing else) when the platform rejects the
// credentials, any other error when the platform cannot tell, and must never
// log or return the password.
type LoginService = login.Service

// Identity is who a successful login names: the platform's customer id and
// optional extra access-token claims (which cannot override the service's own).
type Identity = login.Identity

// ErrInvalidCredentials is what a LoginService returns for wrong credentials.
// Clients then see INVALID_CREDENTIALS; any other error shows as UPSTREAM_UNAVAILABLE.
var ErrInvalidCredentials = login.ErrInvalidCredentials

// IdentityMapper names the customer of an identity another issuer (Google,
// Firebase Auth, any OIDC provider) has verified, for exchangeIdentityToken.
// It returns ErrUnknownCustomer when no customer matches (clients see
// CUSTOMER_NOT_REGISTERED) and any other error when the platform cannot tell.
type IdentityMapper = login.IdentityMapper

// External is a verified external identity: issuer, subject and email.
type External = login.External

// ErrUnknownCustomer is what an IdentityMapper returns when no customer
// matches a verified external identity.
var ErrUnknownCustomer = login.ErrUnknownCustomer

// ClientIP is the address of the customer a LoginService or IdentityMapper
// call is for, as meshauth determined it (TRUSTED_PROXIES decides), or ""
// when unknown: for a platform that wants the shopper's address passed on.
func ClientIP(ctx context.Context) string { return login.ClientIP(ctx) }

// Options customise New and Run.
type Options struct {
	// Login, when set, checks credentials instead of the LOGIN_PROVIDER the
	// environment names.
	Login LoginService
	// Mapper names customers for exchangeIdentityToken when Login is set
	// (often the same value as Login). Nil with Login set turns exchange off:
	// it answers FORBIDDEN. Without Login, the configured provider's own
	// mapper is used (static and http have one; bigcommerce has none).
	Mapper IdentityMapper
	// Now is the clock of every session rule; time.Now when nil. Tests set
	// it to move time without waiting.
	Now func() time.Time
	// Getenv reads configuration; os.Getenv when nil.
	Getenv func(string) string
	// Version is logged at startup.
	Version string
	// LogWriter receives the logs; os.Stderr when nil.
	LogWriter io.Writer
}
