// Package login checks a customer's credentials with the shop's commerce
// platform. Every backend implements Service.
package login

import (
	"context"
	"errors"
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
	// Claims are extra access-token claims the platform wants carried (for
	// example a customer group). The service's registered claims override them.
	Claims map[string]any
}

// Service checks credentials. Implementations must be safe for concurrent use
// and must not log or return the password.
type Service interface {
	// Login returns the customer the credentials belong to, ErrInvalidCredentials
	// when the platform rejects them, or another error when it cannot tell.
	Login(ctx context.Context, email, password string) (Identity, error)
}

// NormalizeEmail is the form in which emails are compared and counted:
// surrounding space removed, lower case.
func NormalizeEmail(email string) string { return strings.ToLower(strings.TrimSpace(email)) }
