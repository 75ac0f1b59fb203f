package server_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/parser"

	"github.com/meshauth/meshauth/internal/token"
)

var devFields = []string{"getUserAuth", "getAllAuthItemsById", "updateUserAuth", "removeUserAuth", "removeAllUserAuthItems", "GetAuthUser", "RemoveUserAuth"}

func bearer(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

// TestFederationSDL: gateways compose _service { sdl }. It is served with
// introspection off, declares Federation v2, has the Customer entity only
// with FEDERATION_CUSTOMER_ENTITY=true, and outside development lacks the
// development-only operations.
func TestFederationSDL(t *testing.T) {
	for _, dev := range []bool{false, true} {
		t.Run(fmt.Sprintf("development=%v", dev), func(t *testing.T) {
			e := start(t, options{dev: dev})
			sdl := field[struct{ SDL string }](t, e.do(t, `{ _service { sdl } }`, nil, nil), "_service").SDL
			for _, want := range []string{`@link(url: "https://specs.apollo.dev/federation/v2.3"`, "customerSessions", "currentCustomer", "generateCustomerToken"} {
				if !strings.Contains(sdl, want) {
					t.Errorf("SDL lacks %s", want)
				}
			}
			doc, err := parser.ParseSchema(&ast.Source{Input: sdl})
			if err != nil {
				t.Fatal(err)
			}
			for _, def := range append(doc.Definitions, doc.Extensions...) {
				if def.Name == "Customer" {
					t.Error("SDL defines type Customer, which clashes with a Magento-style schema")
				}
				if def.Name == "Query" && def.Fields.ForName("customer") != nil {
					t.Error("SDL defines Query.customer, which clashes with a Magento-style schema")
				}
			}
			withEntity := start(t, options{dev: dev, env: map[string]string{"FEDERATION_CUSTOMER_ENTITY": "true"}})
			entitySDL := field[struct{ SDL string }](t, withEntity.do(t, `{ _service { sdl } }`, nil, nil), "_service").SDL
			if !strings.Contains(entitySDL, `type Customer @key(fields: "id")`) {
				t.Error("FEDERATION_CUSTOMER_ENTITY=true: SDL lacks the Customer entity")
			}
			for _, f := range devFields {
				if strings.Contains(sdl, f) != dev {
					t.Errorf("SDL contains %s: %v, want %v", f, !dev, dev)
				}
			}
			// Introspection of anything else stays off outside development.
			if r := e.do(t, `{ _service { sdl } __schema { types { name } } }`, nil, nil); dev == (len(r.Errors) > 0) {
				t.Errorf("introspection beside _service: %s", r.Raw)
			}
		})
	}
}

// TestServiceBesideOtherFields: with introspection off, _service { sdl } is
// served when it is all an operation asks for (what gateways send). Beside
// other root fields it is refused with BAD_USER_INPUT and a message that
// says what to do, not INTERNAL; with introspection on, both are answered.
func TestServiceBesideOtherFields(t *testing.T) {
	for _, introspection := range []bool{false, true} {
		t.Run(fmt.Sprintf("introspection=%v", introspection), func(t *testing.T) {
			e := startWith(t, options{}, introspection)
			p := e.login(t, "ada@example.com", false)
			for _, q := range []string{
				`{ _service { sdl } customerSessions { id } }`,
				`{ customerSessions { id } s: _service { sdl } }`,
				`{ ...f } fragment f on Query { _service { sdl } currentCustomer { customer_id } }`,
			} {
				r := e.do(t, q, nil, bearer(p.Token))
				if introspection {
					if len(r.Errors) > 0 || !strings.Contains(r.Raw, "generateCustomerToken") {
						t.Errorf("%s: %s", q, r.Raw)
					}
					continue
				}
				if c := code(t, r); c != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "_service") {
					t.Errorf("%s: %s", q, r.Raw)
				}
			}
			// On its own it is served, through a fragment too.
			sdl := field[struct{ SDL string }](t, e.do(t, `{ ...f } fragment f on Query { __typename ... on Query { _service { sdl } } }`, nil, nil), "_service").SDL
			if !strings.Contains(sdl, "generateCustomerToken") {
				t.Errorf("_service through a fragment: %.200s", sdl)
			}
			if strings.Contains(e.logs.String(), `"code":"INTERNAL"`) {
				t.Error("logged as INTERNAL")
			}
		})
	}
}

// TestIntrospectionHidesDevTools: with introspection enabled in production,
// the development-only operations are absent, not merely refused.
func TestIntrospectionHidesDevTools(t *testing.T) {
	e := start(t, options{})
	r := e.do(t, `{ __schema { types { name } } }`, nil, nil)
	if c := code(t, r); c != "FORBIDDEN" {
		t.Fatalf("introspection in production: %s", r.Raw)
	}

	e = startWith(t, options{}, true)
	raw := e.do(t, `{ __schema { queryType { fields { name } } mutationType { fields { name } } types { name } } }`, nil, nil).Raw
	if !strings.Contains(raw, `"customerSessions"`) {
		t.Fatalf("introspection: %s", raw)
	}
	for _, f := range devFields {
		if strings.Contains(raw, `"`+f+`"`) {
			t.Errorf("introspection shows %s", f)
		}
	}
	if r := e.do(t, `{ __type(name: "GetAuthUser") { name } }`, nil, nil); !strings.Contains(r.Raw, `"__type":null`) {
		t.Errorf("__type(GetAuthUser): %s", r.Raw)
	}
	if r := e.do(t, `{ __type(name: "CustomerSession") { name } }`, nil, nil); !strings.Contains(r.Raw, `"name":"CustomerSession"`) {
		t.Errorf("__type(CustomerSession): %s", r.Raw)
	}
}

type session struct {
	ID        string  `json:"id"`
	Current   bool    `json:"current"`
	Remember  bool    `json:"remember_me"`
	UserAgent *string `json:"user_agent"`
	IP        *string `json:"ip"`
	Expires   string  `json:"expires_at"`
}

const sessionsQ = `{ customerSessions { id current remember_me user_agent ip expires_at created_at last_refreshed_at } }`

func TestCustomerSessions(t *testing.T) {
	e := start(t, options{})
	phone := e.login(t, "ada@example.com", true)
	laptop := e.login(t, "ada@example.com", false)
	bob := e.login(t, "bob@example.com", false)

	list := field[[]session](t, e.do(t, sessionsQ, nil, bearer(laptop.Token)), "customerSessions")
	if len(list) != 2 {
		t.Fatalf("%d sessions, want 2", len(list))
	}
	current := 0
	for _, s := range list {
		if s.Current {
			current++
			if s.Remember {
				t.Error("the current (laptop) session shows remember_me")
			}
		}
		if s.UserAgent == nil || !strings.HasPrefix(*s.UserAgent, "Go-http-client") || s.IP == nil || *s.IP != "127.0.0.1" {
			t.Errorf("session without user agent or IP: %+v", s)
		}
	}
	if current != 1 {
		t.Fatalf("%d sessions marked current", current)
	}

	// Sign out other devices: the phone ends, the laptop lives, bob is untouched.
	if n := field[int](t, e.do(t, `mutation { revokeCustomerSessions(scope: OTHERS) }`, nil, bearer(laptop.Token)), "revokeCustomerSessions"); n != 1 {
		t.Fatalf("revokeCustomerSessions(OTHERS) = %d, want 1", n)
	}
	if c := code(t, e.refresh(t, phone.RefreshToken, nil)); c != "INVALID_REFRESH_TOKEN" {
		t.Fatalf("phone after sign-out: %s", c)
	}
	laptop = field[pair](t, e.refresh(t, laptop.RefreshToken, nil), "refreshCustomerToken")
	field[pair](t, e.refresh(t, bob.RefreshToken, nil), "refreshCustomerToken")

	// Ending one session by id: bob's id is not ada's to end.
	bobSessions := field[[]session](t, e.do(t, sessionsQ, nil, bearer(bob.Token)), "customerSessions")
	revokeOne := `mutation($id: ID!) { revokeCustomerSession(id: $id) }`
	if ok := field[bool](t, e.do(t, revokeOne, map[string]any{"id": bobSessions[0].ID}, bearer(laptop.Token)), "revokeCustomerSession"); ok {
		t.Fatal("ada ended bob's session")
	}
	tablet := e.login(t, "ada@example.com", false)
	tabletID := ""
	for _, s := range field[[]session](t, e.do(t, sessionsQ, nil, bearer(tablet.Token)), "customerSessions") {
		if s.Current {
			tabletID = s.ID
		}
	}
	if ok := field[bool](t, e.do(t, revokeOne, map[string]any{"id": tabletID}, bearer(laptop.Token)), "revokeCustomerSession"); !ok {
		t.Fatal("revokeCustomerSession of the customer's own session failed")
	}
	// The tablet's access token is valid until it expires, but its session has
	// ended: it can no longer manage sessions.
	if c := code(t, e.do(t, sessionsQ, nil, bearer(tablet.Token))); c != "UNAUTHENTICATED" {
		t.Fatalf("sessions with an ended session's token: %s", c)
	}

	if n := field[int](t, e.do(t, `mutation { revokeCustomerSessions(scope: ALL) }`, nil, bearer(laptop.Token)), "revokeCustomerSessions"); n != 1 {
		t.Fatalf("revokeCustomerSessions(ALL) = %d, want 1", n)
	}
	field[pair](t, e.refresh(t, bob.RefreshToken, nil), "refreshCustomerToken")
}

// TestAccessTokenChecks: every operation that needs an access token refuses
// a bad one with UNAUTHENTICATED.
func TestAccessTokenChecks(t *testing.T) {
	e := start(t, options{})
	good := e.login(t, "ada@example.com", false).Token
	parts := strings.Split(good, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	tampered := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), `"customer_id":1`, `"customer_id":2`, 1))) + "." + parts[2]
	claims := jwt.MapClaims{}
	_ = json.Unmarshal(payload, &claims)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	wrongAud := resign(t, claims, "aud", "someone-else")
	expired := resign(t, claims, "exp", time.Now().Add(-2*time.Minute).Unix())
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	eddsa, _ := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims).SignedString(edKey)

	for name, header := range map[string]http.Header{
		"none":                    nil,
		"empty bearer":            {"Authorization": {"Bearer "}},
		"basic":                   {"Authorization": {"Basic Zm9vOmJhcg=="}},
		"garbage":                 bearer("garbage"),
		"tampered payload":        bearer(tampered),
		"alg none":                bearer(none),
		"wrong algorithm (EdDSA)": bearer(eddsa),
		"wrong audience":          bearer(wrongAud),
		"expired beyond leeway":   bearer(expired),
		"forged with another key": bearer(forge(t, "1")),
	} {
		t.Run(name, func(t *testing.T) {
			for _, q := range []string{sessionsQ, `mutation { revokeCustomerSessions(scope: ALL) }`, `mutation { revokeCustomerSession(id: "x") }`} {
				if c := code(t, e.do(t, q, nil, header)); c != "UNAUTHENTICATED" {
					t.Errorf("%s: %s", q, c)
				}
			}
		})
	}
	if n := e.sessionCount(t, good); n != 1 {
		t.Fatalf("%d sessions after refused requests, want 1", n)
	}
}

func resign(t *testing.T, c jwt.MapClaims, k string, v any) string {
	t.Helper()
	m := jwt.MapClaims{}
	for a, b := range c {
		m[a] = b
	}
	m[k] = v
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, m).SignedString([]byte("jwt-secret-jwt-secret-jwt-secret-jwt"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestCustomerEntity: other subgraphs resolve Customer by id; the sessions
// resolve only for the customer the request's access token names.
func TestCustomerEntity(t *testing.T) {
	e := start(t, options{env: map[string]string{"FEDERATION_CUSTOMER_ENTITY": "true"}})
	ada := e.login(t, "ada@example.com", false)
	e.login(t, "bob@example.com", false)
	q := `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id sessions { id current } } } }`
	reps := map[string]any{"r": []any{map[string]any{"__typename": "Customer", "id": "1"}, map[string]any{"__typename": "Customer", "id": "2"}}}
	type entity struct {
		ID       string    `json:"id"`
		Sessions []session `json:"sessions"`
	}
	got := field[[]entity](t, e.do(t, q, reps, bearer(ada.Token)), "_entities")
	if len(got) != 2 || got[0].ID != "1" || len(got[0].Sessions) != 1 || !got[0].Sessions[0].Current {
		t.Fatalf("ada's entity: %+v", got)
	}
	if got[1].ID != "2" || len(got[1].Sessions) != 0 {
		t.Fatalf("bob's sessions resolved for ada's token: %+v", got[1])
	}
	anon := field[[]entity](t, e.do(t, q, reps, nil), "_entities")
	if len(anon[0].Sessions) != 0 || len(anon[1].Sessions) != 0 {
		t.Fatalf("sessions without a token: %+v", anon)
	}
}

// TestEntityAmplification: one request names at most 100 representations,
// and a customer named many times is resolved once: 100 copies of one
// representation cost one session lookup.
func TestEntityAmplification(t *testing.T) {
	e := start(t, options{env: map[string]string{"FEDERATION_CUSTOMER_ENTITY": "true"}})
	ada := e.login(t, "ada@example.com", false)
	q := `query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id sessions { id } } } }`
	reps := func(n int) map[string]any {
		list := make([]any, n)
		for i := range list {
			list[i] = map[string]any{"__typename": "Customer", "id": "1"}
		}
		return map[string]any{"r": list}
	}
	r := e.do(t, q, reps(101), bearer(ada.Token))
	if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "BAD_USER_INPUT" {
		t.Fatalf("101 representations: %.300s", r.Raw)
	}
	// The refusal is an operation like any other in the metrics.
	if m := scrape(t, e.url); !strings.Contains(m, `meshauth_graphql_operations_total{code="BAD_USER_INPUT",operation="_entities"} 1`) {
		t.Error("the refused _entities is not in meshauth_graphql_operations_total")
	}
	lookups := func() int {
		for _, line := range strings.Split(scrape(t, e.url), "\n") {
			if strings.HasPrefix(line, `meshauth_store_calls_total{call="list_by_customer",result="ok"}`) {
				n, _ := strconv.Atoi(strings.Fields(line)[1])
				return n
			}
		}
		return 0
	}
	before := lookups()
	got := field[[]map[string]any](t, e.do(t, q, reps(100), bearer(ada.Token)), "_entities")
	if len(got) != 100 {
		t.Fatalf("%d entities, want 100", len(got))
	}
	if n := lookups() - before; n != 1 {
		t.Fatalf("100 copies of one customer made %d session lookups, want 1", n)
	}
}

// TestAnotherServiceVerifiesWithJWKSOnly: a service that knows nothing but
// the JWKS URL verifies our EdDSA access tokens, across a key rotation.
func TestAnotherServiceVerifiesWithJWKSOnly(t *testing.T) {
	_, oldKey, _ := ed25519.GenerateKey(rand.Reader)
	_, newKey, _ := ed25519.GenerateKey(rand.Reader)
	oldSigner, _ := token.NewEdDSA(oldKey, "old", "meshauth", "meshauth")
	// Mid-rotation, configured as the README's key rotation says: signing
	// with the new key, still publishing the old one.
	newPEM, err := token.MarshalEd25519PrivateKey(newKey)
	if err != nil {
		t.Fatal(err)
	}
	oldPub, err := x509.MarshalPKIXPublicKey(oldKey.Public())
	if err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(t.TempDir(), "previous-keys.pem")
	if err := os.WriteFile(extra, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"kid": "old"}, Bytes: oldPub}), 0o600); err != nil {
		t.Fatal(err)
	}
	e := start(t, options{env: map[string]string{
		"JWT_ALGORITHM": "EdDSA", "JWT_ED25519_PRIVATE_KEY": string(newPEM), "JWT_KEY_ID": "new",
		"JWT_ED25519_EXTRA_PUBLIC_KEYS_FILE": extra, "JWT_PRIVATE_KEY": "",
	}})
	tokens := e.login(t, "ada@example.com", false)
	oldToken, _ := oldSigner.Sign(token.Claims{CustomerID: "1", SessionID: "s", IssuedAt: time.Now(), Expires: time.Now().Add(time.Minute), RefreshExpiry: time.Now().Add(time.Hour)})

	keys := fetchJWKS(t, e.url+"/.well-known/jwks.json")
	if len(keys) != 2 {
		t.Fatalf("JWKS has %d keys, want the signing and the previous key", len(keys))
	}
	for name, tok := range map[string]string{"current key": tokens.Token, "previous key": oldToken} {
		parsed, err := jwt.Parse(tok, func(t *jwt.Token) (any, error) {
			kid, _ := t.Header["kid"].(string)
			if k, ok := keys[kid]; ok {
				return k, nil
			}
			return nil, errors.New("unknown kid")
		}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithAudience("meshauth"), jwt.WithIssuer("meshauth"))
		if err != nil || !parsed.Valid {
			t.Fatalf("%s: %v", name, err)
		}
		if c := parsed.Claims.(jwt.MapClaims); fmt.Sprint(c["customer_id"]) != "1" {
			t.Fatalf("%s: claims %v", name, c)
		}
	}
}

// fetchJWKS is all another service needs: the JWKS URL.
func fetchJWKS(t *testing.T, url string) map[string]ed25519.PublicKey {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("JWKS content type %q", ct)
	}
	var set struct {
		Keys []struct{ Kty, Crv, X, Kid, Alg string }
	}
	b, _ := io.ReadAll(res.Body)
	if err := json.Unmarshal(b, &set); err != nil {
		t.Fatal(err)
	}
	out := map[string]ed25519.PublicKey{}
	for _, k := range set.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		if k.Kty != "OKP" || k.Crv != "Ed25519" || k.Alg != "EdDSA" || err != nil || len(x) != ed25519.PublicKeySize {
			t.Fatalf("bad JWK %+v", k)
		}
		out[k.Kid] = x
	}
	return out
}

func TestJWKSEmptyWithHS256(t *testing.T) {
	e := start(t, options{})
	res, err := http.Get(e.url + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if string(b) != `{"keys":[]}` {
		t.Fatalf("JWKS with HS256: %s (the shared secret must never be published)", b)
	}
}

// TestCustomerEntityOffByDefault: without FEDERATION_CUSTOMER_ENTITY the
// entity is not there at all: introspection does not know Customer, and a
// request naming it or _entities is refused like any unknown field.
func TestCustomerEntityOffByDefault(t *testing.T) {
	e := start(t, options{dev: true}) // introspection on
	var typ struct {
		Type *struct{ Name string } `json:"__type"`
	}
	r := e.do(t, `{ __type(name: "Customer") { name } }`, nil, nil)
	if err := json.Unmarshal([]byte(r.Raw), &struct{ Data *struct{} }{}); err != nil || len(r.Errors) > 0 {
		t.Fatalf("introspection: %s", r.Raw)
	}
	_ = json.Unmarshal(r.Data["__type"], &typ.Type)
	if typ.Type != nil {
		t.Errorf("introspection knows Customer: %s", r.Raw)
	}
	for _, q := range []string{
		`query($r: [_Any!]!) { _entities(representations: $r) { ... on Customer { id } } }`,
		`{ customer { customer_id } }`,
	} {
		r := e.do(t, q, map[string]any{"r": []any{map[string]any{"__typename": "Customer", "id": "1"}}}, nil)
		if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "GRAPHQL_VALIDATION_FAILED" || !strings.Contains(r.Raw, "Cannot query field") {
			t.Errorf("%s: %s", q, r.Raw)
		}
	}
}
