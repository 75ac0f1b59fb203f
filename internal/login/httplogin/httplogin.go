// Package httplogin checks credentials by posting them to an HTTP endpoint the
// shop runs (LOGIN_PROVIDER=http).
//
// The exchange:
//
//	POST {URL}
//	Content-Type: application/json
//	{"email": "...", "password": "..."}
//
//	200 {"customer_id": "c-1" or 12345, "claims": {...}, "role": "USER", "status": "ACTIVE"}
//	                                                        the credentials are good (all but customer_id optional)
//	401 or 403                                              the credentials are wrong
//	anything else                                           the endpoint failed
//
// and, for exchangeIdentityToken, the identity variant:
//
//	POST {URL}
//	{"issuer": "...", "subject": "...", "email": "...", "email_verified": true}
//
//	200 {"customer_id": ...} as above                       the customer
//	404                                                     no such customer
//	anything else                                           the endpoint failed
package httplogin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/upstream"
)

var (
	_ login.Service        = (*Provider)(nil)
	_ login.IdentityMapper = (*Provider)(nil)
)

// Defaults for the zero values of Options.
const (
	DefaultTimeout      = 10 * time.Second
	DefaultMaxBodyBytes = 1 << 20
)

// Options configure a Provider. Zero values take the defaults.
type Options struct {
	// URL is the endpoint the credentials are posted to: an absolute http or
	// https URL.
	URL string
	// HeaderName and HeaderValue, when set, name a header sent with every
	// request, typically a shared secret the endpoint checks. Both or neither
	// must be set.
	HeaderName, HeaderValue string
	// Timeout bounds each request, on top of the caller's context. Default
	// DefaultTimeout.
	Timeout time.Duration
	// MaxBodyBytes bounds the response body; a longer body is an error.
	// Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Client replaces the provider's own client, upstream.NewClient (for
	// tests). The provider's own client keeps connections alive, follows no
	// redirects and keeps no cookies; a replacement should do the same.
	Client *http.Client
}

// Provider is the HTTP login.Service. It is safe for concurrent use.
type Provider struct {
	url     string
	header  http.Header // the shared-secret header, nil when none
	timeout time.Duration
	maxBody int64
	client  *http.Client
}

// New checks the options, reporting every problem at once, and returns a
// Provider for them. Its errors never contain the header value.
func New(o Options) (*Provider, error) {
	p := &Provider{
		url:     o.URL,
		timeout: o.Timeout,
		maxBody: o.MaxBodyBytes,
		client:  o.Client,
	}
	var errs []error
	if err := upstream.CheckURL(o.URL); err != nil {
		errs = append(errs, fmt.Errorf("login http: URL %w", err))
	}
	switch {
	case o.HeaderName == "" && o.HeaderValue != "":
		errs = append(errs, errors.New("login http: a header value is set without a header name"))
	case o.HeaderName != "" && o.HeaderValue == "":
		errs = append(errs, errors.New("login http: header name is set without a value"))
	case o.HeaderName != "" && !upstream.ValidHeaderName(o.HeaderName):
		errs = append(errs, errors.New("login http: header name is not a valid HTTP header name"))
	case o.HeaderValue != "" && !upstream.ValidHeaderValue(o.HeaderValue):
		errs = append(errs, errors.New("login http: header value contains control characters"))
	}
	if p.timeout < 0 {
		errs = append(errs, errors.New("login http: timeout is negative"))
	} else if p.timeout == 0 {
		p.timeout = DefaultTimeout
	}
	if p.maxBody < 0 {
		errs = append(errs, errors.New("login http: max body bytes is negative"))
	} else if p.maxBody == 0 {
		p.maxBody = DefaultMaxBodyBytes
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if o.HeaderName != "" {
		p.header = http.Header{}
		p.header.Set(o.HeaderName, o.HeaderValue)
	}
	if p.client == nil {
		p.client = upstream.NewClient()
	}
	return p, nil
}

// Login implements login.Service. A 401 or 403 answer gives
// login.ErrInvalidCredentials; any other failure gives an error that names the
// failure but never the email, the password, the header value or the answer's
// body.
func (p *Provider) Login(ctx context.Context, email, password string) (login.Identity, error) {
	body, err := json.Marshal(struct {
		Email    string `json:"email"`
		Password string `json:"password"`
	}{email, password})
	if err != nil {
		return login.Identity{}, errors.New("login upstream: encode request")
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	status, b, err := upstream.PostJSON(ctx, p.client, p.url, p.header, body, p.maxBody)
	switch {
	case err != nil:
		return login.Identity{}, fmt.Errorf("login upstream: %w", err)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return login.Identity{}, login.ErrInvalidCredentials
	case status != http.StatusOK:
		return login.Identity{}, fmt.Errorf("login upstream: unexpected status %d", status)
	}
	return parseIdentity(b)
}

// MapIdentity implements login.IdentityMapper with the identity variant of
// the same contract: POST {"issuer", "subject", "email", "email_verified"}
// to the same URL; 200 with a customer is the customer, 404 is
// login.ErrUnknownCustomer, anything else an upstream failure.
func (p *Provider) MapIdentity(ctx context.Context, ext login.External) (login.Identity, error) {
	body, err := json.Marshal(struct {
		Issuer        string `json:"issuer"`
		Subject       string `json:"subject"`
		Email         string `json:"email,omitempty"`
		EmailVerified bool   `json:"email_verified"`
	}{ext.Issuer, ext.Subject, ext.Email, ext.EmailVerified})
	if err != nil {
		return login.Identity{}, errors.New("login upstream: encode request")
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	status, b, err := upstream.PostJSON(ctx, p.client, p.url, p.header, body, p.maxBody)
	switch {
	case err != nil:
		return login.Identity{}, fmt.Errorf("login upstream: %w", err)
	case status == http.StatusNotFound:
		return login.Identity{}, login.ErrUnknownCustomer
	case status != http.StatusOK:
		return login.Identity{}, fmt.Errorf("login upstream: unexpected status %d", status)
	}
	return parseIdentity(b)
}

// parseIdentity reads a 200 answer. Its errors never quote the answer.
func parseIdentity(b []byte) (login.Identity, error) {
	var reply struct {
		CustomerID json.RawMessage `json:"customer_id"`
		Claims     json.RawMessage `json:"claims"`
		Role       string          `json:"role"`
		Status     string          `json:"status"`
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		return login.Identity{}, errors.New("login upstream: malformed response")
	}
	id, numeric, err := customerID(reply.CustomerID)
	if err != nil {
		return login.Identity{}, fmt.Errorf("login upstream: %w", err)
	}
	var claims map[string]any
	if len(reply.Claims) > 0 {
		// Numbers stay json.Number so that large integers survive the trip
		// into the access token unchanged.
		d := json.NewDecoder(bytes.NewReader(reply.Claims))
		d.UseNumber()
		if err := d.Decode(&claims); err != nil {
			return login.Identity{}, errors.New("login upstream: claims are not a JSON object")
		}
	}
	return login.Identity{CustomerID: id, NumericID: numeric, Claims: claims, Role: reply.Role, Status: reply.Status}, nil
}

// customerID accepts a non-empty JSON string, or a JSON number written as an
// integer (no fraction, no exponent), which it returns as written: exactly,
// however large. numeric is true for a number within ±(2^53-1), which access
// tokens then carry as a number.
func customerID(raw json.RawMessage) (id string, numeric bool, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return "", false, errors.New("customer_id is missing")
	}
	switch raw[0] {
	case '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", false, errors.New("malformed response")
		}
		if strings.TrimSpace(s) == "" {
			return "", false, errors.New("customer_id is empty")
		}
		return s, false, nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		if !upstream.IsInteger(string(raw)) {
			return "", false, errors.New("customer_id is a number but not an integer")
		}
		return string(raw), login.IsNumericID(string(raw)), nil
	default:
		return "", false, errors.New("customer_id is neither a string nor a number")
	}
}
