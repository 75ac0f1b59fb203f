package config_test

import (
	"strings"
	"testing"

	"github.com/meshauth/meshauth/internal/config"
)

func TestIDTokenIssuers(t *testing.T) {
	base := env{"APP_ENV": "development"}
	load := func(t *testing.T, kv ...string) (config.Config, error) {
		t.Helper()
		return config.Load(base.with(kv...).get)
	}
	c, err := load(t)
	if err != nil || len(c.IDTokens.Issuers) != 0 || !c.IDTokens.RequireVerifiedEmail {
		t.Fatalf("default: %+v, %v", c.IDTokens, err)
	}
	c, err = load(t, "FIREBASE_PROJECT_ID", "my-shop", "GOOGLE_CLIENT_IDS", "web.apps, ios.apps",
		"OIDC_ISSUERS", `[{"issuer":"https://id.example","jwks_url":"https://id.example/jwks","audiences":["shop"]}]`,
		"OIDC_REQUIRE_VERIFIED_EMAIL", "false")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, i := range c.IDTokens.Issuers {
		got[i.Issuer] = i.JWKSURL + " " + strings.Join(i.Audiences, ",")
	}
	want := map[string]string{
		"https://id.example":                     "https://id.example/jwks shop",
		"https://securetoken.google.com/my-shop": "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com my-shop",
		"https://accounts.google.com":            "https://www.googleapis.com/oauth2/v3/certs web.apps,ios.apps",
		"accounts.google.com":                    "https://www.googleapis.com/oauth2/v3/certs web.apps,ios.apps",
	}
	if len(got) != len(want) || c.IDTokens.RequireVerifiedEmail {
		t.Fatalf("issuers %v, require verified %v", got, c.IDTokens.RequireVerifiedEmail)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %q, want %q", k, got[k], v)
		}
	}
	for name, v := range map[string]string{"not JSON": `{issuer`, "no audiences": `[{"issuer":"https://a","jwks_url":"https://a/j"}]`, "bad URL": `[{"issuer":"https://a","jwks_url":"ftp://a","audiences":["x"]}]`} {
		if _, err := load(t, "OIDC_ISSUERS", v); err == nil || !strings.Contains(err.Error(), "OIDC_ISSUERS") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
