// Package upstream holds what the HTTP login providers and the ID-token
// verifier share with the services they call: a client that
// never follows redirects or keeps cookies, bounded reads, and error scrubbing.
package upstream

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// NewClient returns a new client for talking to a login upstream: a pool of
// kept-alive connections (128 idle in all, 64 per host) on a clone of
// http.DefaultTransport, no cookie jar, so that a session cookie one customer's
// login sets is never sent with another's, and no redirects, so that
// credentials are never resent to another address. A redirect comes back as
// its 3xx response, with a nil error from Do.
func NewClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConns = 128
	t.MaxIdleConnsPerHost = 64
	return &http.Client{
		Transport: t,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// ErrBuildRequest is what PostJSON returns when it cannot make a request of
// its arguments (a URL that does not parse, a nil context). Nothing was sent.
var ErrBuildRequest = errors.New("build request")

// PostJSON posts body, a JSON document, to url with c and reads the answer.
// The request carries Content-Type and Accept application/json, then every
// field of header (its keys canonicalized as by http.Header.Set), which
// replaces a default of the same name; header is not modified or kept.
//
// For a 200 answer PostJSON returns 200 and the body, read with ReadBody(max).
// For any other status (a redirect is one when c follows none, as NewClient's
// does not) it drains up to max bytes of the body and returns the status with
// a nil body and a nil error: what a status means is the caller's business.
// The body is closed in every case.
//
// Its errors never quote url, header or either body: ErrBuildRequest (status
// 0); a failure to send or to get an answer, through TransportError (status
// 0), so that errors.Is still finds a context's error; a failure reading a 200
// body, as ReadBody gives it (status 200), ErrTooLarge among them.
func PostJSON(ctx context.Context, c *http.Client, url string, header http.Header, body []byte, max int64) (status int, respBody []byte, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, ErrBuildRequest
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, vs := range header {
		req.Header.Del(k)
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, TransportError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		Drain(resp.Body, max)
		return resp.StatusCode, nil, nil
	}
	b, err := ReadBody(resp.Body, max)
	if err != nil {
		return http.StatusOK, nil, err
	}
	return http.StatusOK, b, nil
}

// ErrTooLarge is what ReadBody returns when the body is longer than allowed.
var ErrTooLarge = errors.New("response too large")

// ReadBody reads all of r if it is at most max bytes long. It reads at most
// max+1 bytes: a longer body gives ErrTooLarge itself (not wrapped), never a
// truncated body. A read failure gives an error that starts "read response: ",
// has been through TransportError, and wraps the cause.
func ReadBody(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, fmt.Errorf("read response: %w", TransportError(err))
	}
	if int64(len(b)) > max {
		return nil, ErrTooLarge
	}
	return b, nil
}

// Drain reads and discards up to max bytes of r, ignoring errors, so that the
// connection a response body came on can be reused once the body is closed.
func Drain(r io.Reader, max int64) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r, max))
}

// TransportError strips the request URL, which may carry a secret in its path
// or query, from an error an http.Client returned: for a *url.Error anywhere
// in err's chain it returns that error's cause (a timeout, a refused
// connection), which errors.Is still matches, for example against
// context.DeadlineExceeded. Any other error, and nil, it returns unchanged.
func TransportError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// CheckURL reports whether s is an absolute http or https URL with a host. Its
// error is a predicate meant to follow the setting's name ("GraphQL URL is
// required", "URL has no host") and never quotes s.
func CheckURL(s string) error {
	u, err := url.Parse(s)
	switch {
	case s == "":
		return errors.New("is required")
	case err != nil:
		return errors.New("is not a valid URL")
	case u.Scheme != "http" && u.Scheme != "https":
		return errors.New("must be an absolute http or https URL")
	case u.Host == "":
		return errors.New("has no host")
	}
	return nil
}

// IsInteger reports whether s is a JSON integer literal: an optional minus
// sign and decimal digits without a leading zero, and no fraction or
// exponent ("-0" is one; "007", "1e3" and "12.0" are not). Such a literal can
// be kept as written, so ids beyond float64 precision stay exact.
func IsInteger(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ValidHeaderName reports whether s is a non-empty RFC 9110 token, and so
// usable as an HTTP header name.
func ValidHeaderName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return s != ""
}

// ValidHeaderValue reports whether s has no control characters other than
// tab (no CR, LF, NUL or DEL), so that sending it as a header value cannot
// split or corrupt the request. The empty string is valid.
func ValidHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}
