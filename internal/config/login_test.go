package config_test

import (
	"strings"
	"testing"
	"time"

	"github.com/meshauth/meshauth/internal/config"
)

func TestLoginProviders(t *testing.T) {
	const xAuth = "bc-x-auth-token-value"
	const shared = "shared-http-secret-value"
	tests := []struct {
		name      string
		env       env
		wantErrs  []string // variable names the error must name; none: valid
		wantCheck func(t *testing.T, c config.Config)
	}{
		{"http", env{"LOGIN_PROVIDER": "http", "LOGIN_HTTP_URL": "https://shop.example/login", "LOGIN_HTTP_SECRET_HEADER": "X-Secret", "LOGIN_HTTP_SECRET": shared, "LOGIN_TIMEOUT_IN_SECONDS": "3"}, nil,
			func(t *testing.T, c config.Config) {
				if c.HTTPLogin.URL != "https://shop.example/login" || c.HTTPLogin.HeaderName != "X-Secret" || c.HTTPLogin.HeaderValue != shared || c.LoginTimeout != 3*time.Second {
					t.Errorf("http config %+v, timeout %v", c.HTTPLogin, c.LoginTimeout)
				}
			}},
		{"http needs a URL", env{"LOGIN_PROVIDER": "http"}, []string{"LOGIN_HTTP_URL"}, nil},
		{"http secret header without a value", env{"LOGIN_PROVIDER": "http", "LOGIN_HTTP_URL": "https://x", "LOGIN_HTTP_SECRET_HEADER": "X-Secret"}, []string{"LOGIN_HTTP_SECRET"}, nil},
		{"bigcommerce", env{"LOGIN_PROVIDER": "bigcommerce", "STORE_HASH": "abc123", "X_AUTH_TOKEN": xAuth, "BC_GRAPHQL_API": "https://store-abc123.mybigcommerce.com/graphql", "BC_CHANNEL_ID": "7"}, nil,
			func(t *testing.T, c config.Config) {
				b := c.BigCommerce
				if b.StoreHash != "abc123" || b.XAuthToken != xAuth || b.ChannelID != 7 || b.APIBase != "https://api.bigcommerce.com" || c.LoginTimeout != 10*time.Second {
					t.Errorf("bigcommerce config %+v", b)
				}
			}},
		{"bigcommerce needs its three", env{"LOGIN_PROVIDER": "bigcommerce"}, []string{"STORE_HASH", "X_AUTH_TOKEN", "BC_GRAPHQL_API"}, nil},
		{"bigcommerce bad channel", env{"LOGIN_PROVIDER": "bigcommerce", "STORE_HASH": "a", "X_AUTH_TOKEN": xAuth, "BC_GRAPHQL_API": "https://x", "BC_CHANNEL_ID": "zero"}, []string{"BC_CHANNEL_ID"}, nil},
		{"unknown provider", env{"LOGIN_PROVIDER": "shopify"}, []string{"LOGIN_PROVIDER"}, nil},
		{"bad timeout", env{"LOGIN_PROVIDER": "http", "LOGIN_HTTP_URL": "https://x", "LOGIN_TIMEOUT_IN_SECONDS": "0"}, []string{"LOGIN_TIMEOUT_IN_SECONDS"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := env{"APP_ENV": "production", "JWT_PRIVATE_KEY": strings.Repeat("j", 32), "REFRESH_TOKEN_SECRET": strings.Repeat("r", 32)}
			for k, v := range tc.env {
				e[k] = v
			}
			c, err := config.Load(func(k string) string { return e[k] })
			if len(tc.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				tc.wantCheck(t, c)
				return
			}
			if err == nil {
				t.Fatal("Load accepted it")
			}
			for _, name := range tc.wantErrs {
				if !strings.Contains(err.Error(), name) {
					t.Errorf("error does not name %s: %v", name, err)
				}
			}
			for _, secret := range []string{xAuth, shared} {
				if strings.Contains(err.Error(), secret) {
					t.Error("error shows a secret")
				}
			}
		})
	}
}
