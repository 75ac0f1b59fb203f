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

// TestIDTokenIssuersNeedHTTPS: outside development an OIDC_ISSUERS issuer
// and its JWKS URL are https, so that neither a plain-http key fetch nor
// one aimed at a cloud metadata address or a local service is accepted.
// Development may use http for a local issuer.
func TestIDTokenIssuersNeedHTTPS(t *testing.T) {
	issuers := func(iss, jwks string) string {
		return `[{"issuer":"` + iss + `","jwks_url":"` + jwks + `","audiences":["shop"]}]`
	}
	tests := []struct {
		name, value string
		envs        []string // APP_ENV values that must refuse it
		allowed     []string // APP_ENV values that must accept it
	}{
		{"https", issuers("https://id.example", "https://id.example/jwks"), nil, []string{"production", "staging", "development"}},
		{"cloud metadata JWKS", issuers("https://id.example", "http://169.254.169.254/latest/meta-data/"), []string{"production", "staging"}, []string{"development"}},
		{"local Redis JWKS", issuers("https://id.example", "http://127.0.0.1:6379/"), []string{"production", "staging"}, []string{"development"}},
		{"http issuer", issuers("http://id.example", "https://id.example/jwks"), []string{"production", "staging"}, []string{"development"}},
		{"issuer without a scheme", issuers("id.example", "https://id.example/jwks"), []string{"production", "staging"}, nil},
		{"HTTPS in capitals", issuers("https://id.example", "HTTPS://id.example/jwks"), nil, []string{"production"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, appEnv := range tt.envs {
				_, err := config.Load(production.with("APP_ENV", appEnv, "OIDC_ISSUERS", tt.value).get)
				if err == nil || !strings.Contains(err.Error(), "OIDC_ISSUERS") || !strings.Contains(err.Error(), "https") {
					t.Errorf("%s: Load error = %v, want one naming OIDC_ISSUERS and https", appEnv, err)
				} else if strings.Contains(err.Error(), "169.254") || strings.Contains(err.Error(), "6379") {
					t.Errorf("%s: the error quotes the URL: %v", appEnv, err)
				}
			}
			for _, appEnv := range tt.allowed {
				if _, err := config.Load(production.with("APP_ENV", appEnv, "OIDC_ISSUERS", tt.value).get); err != nil {
					t.Errorf("%s: Load: %v", appEnv, err)
				}
			}
		})
	}
}
