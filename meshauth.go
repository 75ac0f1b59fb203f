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
	"io"

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

// Options customise Run.
type Options struct {
	// Login, when set, checks credentials instead of the LOGIN_PROVIDER the
	// environment names.
	Login LoginService
	// Getenv reads configuration; os.Getenv when nil.
	Getenv func(string) string
	// Version is logged at startup.
	Version string
	// LogWriter receives the logs; os.Stderr when nil.
	LogWriter io.Writer
}
