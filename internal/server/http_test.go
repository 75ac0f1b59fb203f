package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// get sends a GraphQL GET request and returns the status, the header and
// the parsed body.
func (e *env) get(t *testing.T, query string, header http.Header) (int, http.Header, response) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+"/graphql?"+url.Values{"query": {query}}.Encode(), nil)
	h, r := roundTrip(t, req, header)
	return r.Status, h, r
}

// TestGraphQLResponsesAreNotStored: every /graphql answer, those carrying
// tokens first of all, says Cache-Control: no-store, so that no browser or
// proxy cache keeps a token (RFC 6749 section 5.1 asks the same of token
// responses); refusals and preflights too, so that no path is forgotten.
func TestGraphQLResponsesAreNotStored(t *testing.T) {
	e := startCustom(t, options{env: map[string]string{"MAX_BODY_BYTES": "2048", "CORS_ALLOWED_ORIGINS": "https://shop.example"}})
	login, _ := json.Marshal(map[string]any{"query": loginQ, "variables": map[string]any{"e": "ada@example.com", "p": password}})
	request := func(method, contentType, body string, header http.Header) *http.Request {
		req, _ := http.NewRequest(method, e.url+"/graphql", strings.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		for k, v := range header {
			req.Header[k] = v
		}
		return req
	}
	tests := []struct {
		name string
		req  *http.Request
	}{
		{"login", request(http.MethodPost, "application/json", string(login), nil)},
		{"refused refresh", request(http.MethodPost, "application/json", `{"query":"mutation { refreshCustomerToken(refresh_token: \"x\") { token } }"}`, nil)},
		{"GET query", request(http.MethodGet, "", "", nil)},
		{"body over the limit", request(http.MethodPost, "application/json", `{"query":"{ __typename }","variables":{"pad":"`+strings.Repeat("x", 4096)+`"}}`, nil)},
		{"form post", request(http.MethodPost, "application/x-www-form-urlencoded", "query=x", nil)},
		{"preflight", request(http.MethodOptions, "", "", http.Header{"Origin": {"https://shop.example"}, "Access-Control-Request-Method": {"POST"}})},
	}
	tests[2].req.URL.RawQuery = "query=%7B__typename%7D"
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := http.DefaultClient.Do(tc.req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if got := res.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("status %d, Cache-Control %q, want no-store", res.StatusCode, got)
			}
		})
	}
}

// TestGETCarriesQueriesOnly: GET runs queries; a mutation sent as GET is
// refused with 406 and a coded error, before it runs.
func TestGETCarriesQueriesOnly(t *testing.T) {
	e := start(t, options{})
	p := e.login(t, "ada@example.com", false)
	status, _, r := e.get(t, `{ currentCustomer { customer_id } }`, bearer(p.Token))
	if status != http.StatusOK || len(r.Errors) > 0 {
		t.Fatalf("GET query: %d %s", status, r.Raw)
	}
	status, _, r = e.get(t, `mutation { revokeCustomerToken(refresh_token: "`+p.RefreshToken+`") { result } }`, nil)
	if status != http.StatusNotAcceptable {
		t.Errorf("GET mutation: status %d, want 406", status)
	}
	if c := code(t, r); c != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "POST") {
		t.Errorf("GET mutation: %s", r.Raw)
	}
	if strings.Contains(r.Raw, p.RefreshToken) {
		t.Error("the refusal echoes the refresh token")
	}
	e.notRotated(t, p.RefreshToken) // the revoke never ran

	// Malformed GET requests are coded too, and never echo the request.
	for name, tc := range map[string]struct {
		rawQuery string
		status   int
		code     string
	}{
		"variables not JSON": {"query=%7B__typename%7D&variables=" + url.QueryEscape(`{"p": "`+password), http.StatusBadRequest, "BAD_USER_INPUT"},
		"bad URL encoding":   {"query=%7B__typename%7D&x=%zz" + password, http.StatusBadRequest, "BAD_USER_INPUT"},
		"no query":           {"", http.StatusUnprocessableEntity, "GRAPHQL_VALIDATION_FAILED"},
	} {
		res, err := http.Get(e.url + "/graphql?" + tc.rawQuery)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(res.Body)
		res.Body.Close()
		var r response
		_ = json.Unmarshal(raw, &r)
		r.Raw = string(raw)
		if res.StatusCode != tc.status || code(t, r) != tc.code || strings.Contains(r.Raw, password) {
			t.Errorf("%s: %d %s", name, res.StatusCode, raw)
		}
	}
}
