package graph

import (
	"context"
	"net/http"
	"time"

	"github.com/meshauth/meshauth/graph/model"
	"github.com/meshauth/meshauth/internal/auth"
	"github.com/meshauth/meshauth/internal/config"
)

// refreshCookie is the HttpOnly refresh-token cookie mode
// (REFRESH_TOKEN_COOKIE) for web storefronts: the refresh token is kept out
// of JavaScript's reach. Its settings are config.Cookie's; a zero value is off.
type refreshCookie config.Cookie

// CSRFHeader must be present on requests whose refresh token comes from the
// cookie. A cross-site form cannot set it, and a cross-site script can only
// with a CORS preflight the service answers for allowed origins alone.
const CSRFHeader = "X-Requested-With"

type httpKey struct{}

type exchange struct {
	w http.ResponseWriter
	r *http.Request
}

// WithHTTP returns a context through which resolvers read the request's
// cookies and set the response's.
func WithHTTP(ctx context.Context, w http.ResponseWriter, r *http.Request) context.Context {
	return context.WithValue(ctx, httpKey{}, exchange{w: w, r: r})
}

// refreshToken is the argument, or in cookie mode and without one, the
// cookie's token (fromCookie), provided the request passes the CSRF check.
func (c refreshCookie) refreshToken(ctx context.Context, arg *string) (token string, fromCookie bool, err error) {
	if arg != nil && *arg != "" {
		return *arg, false, nil
	}
	x, ok := ctx.Value(httpKey{}).(exchange)
	if !c.Enabled || !ok {
		return "", false, nil // the service answers "refresh_token is required"
	}
	cookie, err := x.r.Cookie(c.Name)
	if err != nil || cookie.Value == "" {
		return "", false, nil
	}
	if x.r.Header.Get(CSRFHeader) == "" {
		return "", false, &auth.Error{Code: auth.CodeBadUserInput, Detail: "A request that relies on the refresh-token cookie must send the " + CSRFHeader + " header."}
	}
	return cookie.Value, true, nil
}

// issue is what a client receives of freshly issued tokens. In cookie mode
// the refresh token goes in the cookie and nowhere else: the body's
// refresh_token is null, so no script, an injected one included, can read
// it. Otherwise the body carries both tokens.
func (c refreshCookie) issue(ctx context.Context, t auth.Tokens) *model.CustomerToken {
	out := customerToken(t)
	if c.Enabled {
		c.write(ctx, t.Refresh, t.RefreshExpiresAt)
		out.RefreshToken = nil
	}
	return out
}

// refused clears the cookie when a refresh or a logout with the cookie's
// token failed because that token can never work again (malformed, invalid,
// reused, or its session expired): the browser stops presenting it. Other
// failures (the store unreachable, say) keep it, so a retry may succeed.
func (c refreshCookie) refused(ctx context.Context, fromCookie bool, err error) {
	if !fromCookie {
		return
	}
	switch auth.CodeOf(err) {
	case auth.CodeBadUserInput, auth.CodeInvalidRefreshToken, auth.CodeRefreshTokenReused, auth.CodeSessionExpired:
		c.clear(ctx)
	}
}

// clear removes the cookie, in cookie mode.
func (c refreshCookie) clear(ctx context.Context) { c.write(ctx, "", time.Time{}) }

func (c refreshCookie) write(ctx context.Context, value string, expires time.Time) {
	x, ok := ctx.Value(httpKey{}).(exchange)
	if !c.Enabled || !ok {
		return
	}
	cookie := &http.Cookie{
		Name: c.Name, Value: value, Path: c.Path, Domain: c.Domain,
		Secure: c.Secure, HttpOnly: true, SameSite: c.SameSite,
	}
	if value == "" {
		cookie.MaxAge = -1
	} else {
		cookie.Expires = expires
	}
	http.SetCookie(x.w, cookie)
}
