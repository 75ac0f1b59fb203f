// Package bigcommerce checks credentials with a BigCommerce store
// (LOGIN_PROVIDER=bigcommerce).
//
// A login takes two requests. The first, made once a day or so and shared by
// every login, gets a storefront customer-impersonation token with the store's
// API account:
//
//	POST {APIBase}/stores/{StoreHash}/v3/storefront/api-token-customer-impersonation
//	X-Auth-Token: {XAuthToken}
//	{"channel_id": 1, "expires_at": 1767225600}
//	-> {"data": {"token": "..."}, "meta": {}}
//
// The second runs the storefront GraphQL login mutation with that token:
//
//	POST {GraphQLURL}
//	Authorization: Bearer {token}
//	{"query": "mutation login(...) { login(...) { result customer { entityId } } }", "variables": {...}}
//	-> {"data": {"login": {"result": "success", "customer": {"entityId": 42}}}}
//
// BigCommerce refuses a wrong password, an unknown email and a disabled
// account alike: with HTTP 200 and a GraphQL error.
package bigcommerce

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/upstream"
)

var _ login.Service = (*Provider)(nil)

// Defaults for the zero values of Options.
const (
	DefaultAPIBase      = "https://api.bigcommerce.com"
	DefaultChannelID    = 1
	DefaultTimeout      = 10 * time.Second
	DefaultTokenTTL     = 24 * time.Hour
	DefaultMaxBodyBytes = 1 << 20
)

// MinTokenTTL is the shortest TokenTTL New accepts.
const MinTokenTTL = time.Minute

// RenewRetryAfter is how long logins keep using a token that is due for
// renewal, but not yet expired, after a renewal failed.
const RenewRetryAfter = time.Minute

// Token fetches are retried, on network errors and on 429 and 5xx answers, up
// to tokenAttempts in all, waiting tokenBackoff, then twice that, between them.
const (
	tokenAttempts = 3
	tokenBackoff  = 50 * time.Millisecond
)

// loginMutation is the storefront GraphQL login. Its variables carry the
// credentials, so they are never spliced into the query text.
const loginMutation = "mutation login($email: String!, $password: String!) { login(email: $email, password: $password) { result customer { entityId } } }"

// Options configure a Provider. Zero values take the defaults.
type Options struct {
	// StoreHash names the store in API paths (the "abc123" of
	// stores/abc123/v3). Required.
	StoreHash string
	// XAuthToken is the access token of a store API account allowed to create
	// customer-impersonation tokens. Required; never sent anywhere but APIBase.
	XAuthToken string
	// ChannelID is the storefront channel the impersonation token is for.
	// Default DefaultChannelID.
	ChannelID int
	// APIBase is the management API's address. Default DefaultAPIBase.
	APIBase string
	// GraphQLURL is the storefront GraphQL endpoint (BC_GRAPHQL_API), for
	// example https://store-abc123.mybigcommerce.com/graphql. Required.
	GraphQLURL string
	// Timeout bounds each request, on top of the caller's context. Default
	// DefaultTimeout.
	Timeout time.Duration
	// TokenTTL is the lifetime asked for each impersonation token; a token is
	// renewed once less than a tenth of it remains. Default DefaultTokenTTL,
	// at least MinTokenTTL.
	TokenTTL time.Duration
	// MaxBodyBytes bounds every response body; a longer body is an error.
	// Default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Now is the clock token lifetimes are measured with. Default time.Now.
	Now func() time.Time
	// TrustedProxySecret, when set, is sent as X-BC-Trusted-Proxy-Secret
	// with each login, so that BigCommerce believes the shopper's address in
	// True-Client-Ip and X-Forwarded-For (TRUSTED_PROXY_SECRET).
	TrustedProxySecret string
	// Client replaces the provider's own client, upstream.NewClient (for
	// tests). The provider's own client keeps connections alive, follows no
	// redirects and keeps no cookies (the login mutation sets a customer
	// session cookie that must not be shared between customers); a
	// replacement should do the same.
	Client *http.Client
}

// Provider is the BigCommerce login.Service. It is safe for concurrent use:
// all logins share one cached impersonation token, and at most one request
// for a new token is in flight at a time.
type Provider struct {
	tokenURL   string
	graphQLURL string
	xAuthToken string
	channelID  int
	timeout    time.Duration
	ttl        time.Duration
	maxBody    int64
	now        func() time.Time
	client     *http.Client
	// proxySecret is X-BC-Trusted-Proxy-Secret; "" sends none.
	proxySecret string

	renewals singleflight.Group // the token renewal under way, shared by every login needing it

	mu        sync.Mutex
	token     string    // the cached impersonation token, "" when none
	renewAt   time.Time // when logins start asking for a new token
	expiresAt time.Time // when the cached token stops working
}

// New checks the options, reporting every problem at once, and returns a
// Provider for them. It makes no request. Its errors never contain
// XAuthToken.
func New(o Options) (*Provider, error) {
	p := &Provider{
		xAuthToken: o.XAuthToken,
		channelID:  o.ChannelID,
		graphQLURL: o.GraphQLURL,
		timeout:    o.Timeout,
		ttl:        o.TokenTTL,
		maxBody:    o.MaxBodyBytes,
		now:        o.Now,
		client:     o.Client,

		proxySecret: o.TrustedProxySecret,
	}
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("bigcommerce: "+format, args...))
	}
	switch {
	case o.StoreHash == "":
		bad("store hash is required")
	case !validStoreHash(o.StoreHash):
		bad("store hash must be letters, digits, '-' and '_'")
	}
	switch {
	case o.XAuthToken == "":
		bad("X-Auth-Token is required")
	case !upstream.ValidHeaderValue(o.XAuthToken):
		bad("X-Auth-Token contains control characters")
	}
	if p.channelID < 0 {
		bad("channel id is negative")
	} else if p.channelID == 0 {
		p.channelID = DefaultChannelID
	}
	apiBase := o.APIBase
	if apiBase == "" {
		apiBase = DefaultAPIBase
	}
	if err := upstream.CheckURL(apiBase); err != nil {
		bad("API base %w", err)
	}
	p.tokenURL = strings.TrimSuffix(apiBase, "/") + "/stores/" + o.StoreHash + "/v3/storefront/api-token-customer-impersonation"
	if err := upstream.CheckURL(o.GraphQLURL); err != nil {
		bad("GraphQL URL %w", err)
	}
	if p.timeout < 0 {
		bad("timeout is negative")
	} else if p.timeout == 0 {
		p.timeout = DefaultTimeout
	}
	if p.ttl == 0 {
		p.ttl = DefaultTokenTTL
	} else if p.ttl < MinTokenTTL {
		bad("token TTL must be at least %v", MinTokenTTL)
	}
	if p.maxBody < 0 {
		bad("max body bytes is negative")
	} else if p.maxBody == 0 {
		p.maxBody = DefaultMaxBodyBytes
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if p.now == nil {
		p.now = time.Now
	}
	if p.client == nil {
		p.client = upstream.NewClient()
	}
	return p, nil
}

// errTokenRejected is what the GraphQL endpoint's 401 becomes: the
// impersonation token no longer works, and no credential was checked.
var errTokenRejected = errors.New("bigcommerce login: impersonation token rejected (status 401)")

// Login implements login.Service. A refused login gives
// login.ErrInvalidCredentials; any other failure gives an error that names the
// failure but never the email, the password, a token or an answer's body.
//
// The login mutation is sent once, except after a 401: that means the
// impersonation token was refused before any credential was checked, so the
// token is renewed and the mutation sent a second time. A second 401 is an
// error.
func (p *Provider) Login(ctx context.Context, email, password string) (login.Identity, error) {
	var q struct {
		Query     string `json:"query"`
		Variables struct {
			Email    string `json:"email"`
			Password string `json:"password"`
		} `json:"variables"`
	}
	q.Query = loginMutation
	q.Variables.Email, q.Variables.Password = email, password
	body, err := json.Marshal(q)
	if err != nil {
		return login.Identity{}, errors.New("bigcommerce login: encode request")
	}

	token, err := p.impersonationToken(ctx, "")
	if err != nil {
		return login.Identity{}, err
	}
	id, err := p.login(ctx, token, body)
	if !errors.Is(err, errTokenRejected) {
		return id, err
	}
	if token, err = p.impersonationToken(ctx, token); err != nil {
		return login.Identity{}, err
	}
	id, err = p.login(ctx, token, body)
	if errors.Is(err, errTokenRejected) {
		return login.Identity{}, errors.New("bigcommerce login: a renewed impersonation token was rejected too (status 401)")
	}
	return id, err
}

// login sends the login mutation once. It carries the shopper's address, as
// the service determined it for this request (login.ClientIP), in
// True-Client-Ip and X-Forwarded-For, with X-BC-Trusted-Proxy-Secret when
// configured: BigCommerce's way for a headless storefront's server to pass
// on the shopper's address, so that its protections count the shopper and
// not this service. The shared impersonation-token renewal carries none: it
// is made for no shopper in particular.
func (p *Provider) login(ctx context.Context, token string, body []byte) (login.Identity, error) {
	header := http.Header{"Authorization": {"Bearer " + token}}
	if ip := login.ClientIP(ctx); ip != "" {
		header.Set("True-Client-Ip", ip)
		header.Set("X-Forwarded-For", ip)
		if p.proxySecret != "" {
			header.Set("X-BC-Trusted-Proxy-Secret", p.proxySecret)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	status, b, err := upstream.PostJSON(ctx, p.client, p.graphQLURL, header, body, p.maxBody)
	switch {
	case err != nil:
		return login.Identity{}, fmt.Errorf("bigcommerce login: %w", err)
	case status == http.StatusUnauthorized:
		return login.Identity{}, errTokenRejected
	case status != http.StatusOK:
		return login.Identity{}, fmt.Errorf("bigcommerce login: unexpected status %d", status)
	}
	return parseLogin(b)
}

// parseLogin reads the GraphQL answer to the login mutation. Its errors never
// quote the answer.
//
// A login result other than "success", a success without a customer, and
// GraphQL errors without a login result (how BigCommerce refuses a wrong
// password or a disabled account) give login.ErrInvalidCredentials. A customer
// without an integer entityId, or an answer with neither a login result nor
// errors, is malformed.
func parseLogin(b []byte) (login.Identity, error) {
	var reply struct {
		Data *struct {
			Login *struct {
				Result   string `json:"result"`
				Customer *struct {
					EntityID json.RawMessage `json:"entityId"`
				} `json:"customer"`
			} `json:"login"`
		} `json:"data"`
		Errors []json.RawMessage `json:"errors"`
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		return login.Identity{}, errors.New("bigcommerce login: malformed response")
	}
	if reply.Data == nil || reply.Data.Login == nil {
		if len(reply.Errors) > 0 {
			return login.Identity{}, login.ErrInvalidCredentials
		}
		return login.Identity{}, errors.New("bigcommerce login: malformed response: no login result and no errors")
	}
	l := reply.Data.Login
	if l.Result != "success" || l.Customer == nil {
		return login.Identity{}, login.ErrInvalidCredentials
	}
	id := string(bytes.TrimSpace(l.Customer.EntityID))
	if !upstream.IsInteger(id) {
		return login.Identity{}, errors.New("bigcommerce login: customer entityId is missing or not an integer")
	}
	return login.Identity{CustomerID: id, NumericID: login.IsNumericID(id)}, nil
}

// impersonationToken returns the cached impersonation token, or waits for a
// new one when there is none, it is due for renewal, or it is stale: the
// token the GraphQL endpoint just refused ("" for none). Concurrent callers
// share one token request, which no caller's cancellation or deadline
// affects; a caller whose context ends stops waiting for it.
//
// When a renewal fails while the cached token has not yet expired, the
// cached token is returned, and kept for RenewRetryAfter (or until it expires,
// if sooner) before the next renewal is tried.
func (p *Provider) impersonationToken(ctx context.Context, stale string) (string, error) {
	p.mu.Lock()
	if stale != "" && p.token == stale {
		p.token = ""
	}
	if p.token != "" && p.now().Before(p.renewAt) {
		token := p.token
		p.mu.Unlock()
		return token, nil
	}
	// DoChan is called with p.mu held and renew updates the cache under
	// p.mu, so a login that found the token due joins the renewal under way
	// instead of starting another once it has ended. The renewal is shared:
	// it runs without the starting login's cancellation or deadline
	// (context.WithoutCancel), each request bounded by p.timeout instead, so
	// a login that gives up does not fail the others waiting for it.
	ch := p.renewals.DoChan("", func() (any, error) {
		return p.renew(context.WithoutCancel(ctx))
	})
	p.mu.Unlock()

	select {
	case r := <-ch:
		if r.Err != nil {
			return "", r.Err
		}
		return r.Val.(string), nil
	case <-ctx.Done():
		return "", fmt.Errorf("bigcommerce token: %w", ctx.Err())
	}
}

// renew fetches a token, caches it and returns it. When the fetch fails
// while the cached token has not expired, it returns the cached token.
func (p *Provider) renew(ctx context.Context) (string, error) {
	expires := time.Unix(p.now().Add(p.ttl).Unix(), 0) // the API counts whole seconds
	token, err := p.fetchToken(ctx, expires)

	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err == nil:
		p.token, p.expiresAt, p.renewAt = token, expires, expires.Add(-p.ttl/10)
	case p.token != "" && p.now().Before(p.expiresAt):
		token, err = p.token, nil
		p.renewAt = p.now().Add(RenewRetryAfter)
		if p.renewAt.After(p.expiresAt) {
			p.renewAt = p.expiresAt
		}
	}
	return token, err
}

// fetchToken asks for an impersonation token that expires at expires. It
// tries up to tokenAttempts times while the failure is a network error, a
// 429 or a 5xx: creating a token has no effect a retry could repeat harmfully.
// Each request is bounded by p.timeout on top of ctx.
func (p *Provider) fetchToken(ctx context.Context, expires time.Time) (string, error) {
	body, err := json.Marshal(struct {
		ChannelID int   `json:"channel_id"`
		ExpiresAt int64 `json:"expires_at"`
	}{p.channelID, expires.Unix()})
	if err != nil {
		return "", errors.New("bigcommerce token: encode request")
	}
	backoff := tokenBackoff
	for attempt := 1; ; attempt++ {
		token, retry, err := p.fetchTokenOnce(ctx, body)
		switch {
		case err == nil:
			return token, nil
		case !retry:
			return "", err
		case attempt == tokenAttempts:
			return "", fmt.Errorf("%w (after %d attempts)", err, attempt)
		}
		time.Sleep(backoff)
		backoff *= 2
	}
}

// fetchTokenOnce makes one token request and reports whether its failure is
// worth another try.
func (p *Provider) fetchTokenOnce(ctx context.Context, body []byte) (token string, retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	header := http.Header{"X-Auth-Token": {p.xAuthToken}}
	status, b, err := upstream.PostJSON(ctx, p.client, p.tokenURL, header, body, p.maxBody)
	switch {
	case err != nil:
		// A failure to send, or to read a 200 answer, is worth another try;
		// a request that cannot be made, or an answer too large, is not.
		retry := !errors.Is(err, upstream.ErrBuildRequest) && !errors.Is(err, upstream.ErrTooLarge)
		return "", retry, fmt.Errorf("bigcommerce token: %w", err)
	case status != http.StatusOK:
		retry := status == http.StatusTooManyRequests || status >= 500
		return "", retry, fmt.Errorf("bigcommerce token: unexpected status %d", status)
	}
	var reply struct {
		Data struct {
			Token string `json:"token"`
		} `json:"data"`
	}
	if err := json.Unmarshal(b, &reply); err != nil {
		return "", false, errors.New("bigcommerce token: malformed response")
	}
	if reply.Data.Token == "" || !upstream.ValidHeaderValue(reply.Data.Token) {
		return "", false, errors.New("bigcommerce token: response has no usable data.token")
	}
	return reply.Data.Token, false, nil
}

func validStoreHash(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
