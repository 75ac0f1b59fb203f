package auth

import (
	"errors"
	"time"
)

// Code is a stable, documented error code that clients switch on. Codes are
// API: never rename one. The error table in docs/api.md copies this list and
// TestCodesArePinned pins it.
type Code string

// The codes a client can see in extensions.code.
const (
	CodeBadUserInput        Code = "BAD_USER_INPUT"
	CodeInvalidCredentials  Code = "INVALID_CREDENTIALS"
	CodeInvalidRefreshToken Code = "INVALID_REFRESH_TOKEN"
	CodeRefreshTokenReused  Code = "REFRESH_TOKEN_REUSED"
	CodeSessionExpired      Code = "SESSION_EXPIRED"
	CodeUnauthenticated     Code = "UNAUTHENTICATED"
	CodeAccountInactive     Code = "ACCOUNT_INACTIVE"
	CodeCustomerUnknown     Code = "CUSTOMER_NOT_REGISTERED"
	CodeInvalidIDToken      Code = "INVALID_ID_TOKEN"
	CodeEmailNotVerified    Code = "EMAIL_NOT_VERIFIED"
	CodeForbidden           Code = "FORBIDDEN"
	CodeRateLimited         Code = "RATE_LIMITED"
	CodeUpstreamUnavailable Code = "UPSTREAM_UNAVAILABLE"
	CodeStoreUnavailable    Code = "STORE_UNAVAILABLE"
	CodeInternal            Code = "INTERNAL"
)

// Codes lists every code with its compatibility category (the original auth
// module's extensions.category, "" where it had none) and the fixed message
// clients see. Messages never carry input, tokens or causes.
var Codes = map[Code]struct{ Category, Message string }{
	CodeBadUserInput:        {"graphql-input", "The request is missing a value or has a malformed one."},
	CodeInvalidCredentials:  {"graphql-authentication", "The email or password is incorrect."},
	CodeInvalidRefreshToken: {"graphql-authorization", "The refresh token is invalid, revoked or unknown."},
	CodeRefreshTokenReused:  {"graphql-authorization", "The refresh token was already used; the session has been ended. Log in again."},
	CodeSessionExpired:      {"graphql-authorization", "The session has expired. Log in again."},
	CodeUnauthenticated:     {"graphql-authentication", "A valid access token is required."},
	CodeAccountInactive:     {"graphql-authorization", "The account is inactive. Reactivate it to log in."},
	CodeCustomerUnknown:     {"graphql-authentication", "No customer account matches this identity. Register first."},
	CodeInvalidIDToken:      {"graphql-authentication", "The identity token is invalid, expired or from an issuer that is not accepted."},
	CodeEmailNotVerified:    {"graphql-authentication", "The identity's email address is not verified."},
	CodeForbidden:           {"graphql-authorization", "This operation is not available in this environment."},
	CodeRateLimited:         {"graphql-input", "Too many attempts. Try again later."},
	CodeUpstreamUnavailable: {"", "The login service is unavailable. Try again later."},
	CodeStoreUnavailable:    {"", "The session store is unavailable. Try again later."},
	CodeInternal:            {"", "An internal error occurred."},
}

// Error is an error a client may see: a Code, its fixed message, an optional
// detail that is safe to show (it names a field, never a value) and, for the
// log only, the cause.
type Error struct {
	Code   Code
	Detail string
	Cause  error
	// RetryAfter, with RATE_LIMITED, is how long until the client may try again.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	msg := string(e.Code)
	if e.Detail != "" {
		msg += ": " + e.Detail
	}
	if e.Cause != nil {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Cause }

// Message is what the client is told.
func (e *Error) Message() string {
	m := Codes[e.Code].Message
	if e.Detail != "" {
		m += " " + e.Detail
	}
	return m
}

func fail(code Code, cause error) *Error { return &Error{Code: code, Cause: cause} }

func badInput(detail string) *Error { return &Error{Code: CodeBadUserInput, Detail: detail} }

// CodeOf returns the code of err: its *Error's code, or INTERNAL.
func CodeOf(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	return CodeInternal
}
