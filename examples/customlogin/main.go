// Command customlogin runs meshauth with a login service of its own: the way
// to connect a commerce platform meshauth has no provider for, in Go.
//
// Its platform is a fixed table of customers; a real one would call the
// platform's API. Run it like the meshauth binary:
//
//	APP_ENV=development go run ./examples/customlogin
package main

import (
	"context"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"

	"github.com/meshauth/meshauth"
)

// platform is a stand-in for a commerce platform's customer API.
type platform struct {
	customers map[string]customer // by lower-case email
}

type customer struct {
	id, password, group string
}

// Login implements meshauth.LoginService.
func (p platform) Login(_ context.Context, email, password string) (meshauth.Identity, error) {
	c, ok := p.customers[strings.ToLower(strings.TrimSpace(email))]
	if !ok || subtle.ConstantTimeCompare([]byte(c.password), []byte(password)) != 1 {
		return meshauth.Identity{}, meshauth.ErrInvalidCredentials
	}
	return meshauth.Identity{CustomerID: c.id, Claims: map[string]any{"customer_group": c.group}}, nil
}

// MapIdentity implements meshauth.IdentityMapper, for exchangeIdentityToken:
// a customer who signed in with Google (or any configured OIDC issuer) is
// the customer with that verified email.
func (p platform) MapIdentity(_ context.Context, ext meshauth.External) (meshauth.Identity, error) {
	c, ok := p.customers[strings.ToLower(strings.TrimSpace(ext.Email))]
	if !ok || !ext.EmailVerified {
		return meshauth.Identity{}, meshauth.ErrUnknownCustomer
	}
	return meshauth.Identity{CustomerID: c.id, Claims: map[string]any{"customer_group": c.group}}, nil
}

func main() {
	p := platform{customers: map[string]customer{
		"grace@example.com": {id: "C-1906", password: "cobol-forever", group: "wholesale"},
	}}
	if err := meshauth.Run(context.Background(), meshauth.Options{Login: p, Mapper: p, Version: "customlogin example"}); err != nil {
		fmt.Fprintln(os.Stderr, "customlogin:", err)
		os.Exit(1)
	}
}
