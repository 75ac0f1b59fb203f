package auth_test

import (
	"os"
	"strings"
	"testing"

	"github.com/meshauth/meshauth/internal/auth"
)

// TestCodesArePinned: codes are API. Renaming or dropping one breaks clients;
// this list changes only by adding, and docs/api.md's error table documents
// each.
func TestCodesArePinned(t *testing.T) {
	want := map[auth.Code]string{
		"BAD_USER_INPUT":          "graphql-input",
		"INVALID_CREDENTIALS":     "graphql-authentication",
		"INVALID_REFRESH_TOKEN":   "graphql-authorization",
		"REFRESH_TOKEN_REUSED":    "graphql-authorization",
		"SESSION_EXPIRED":         "graphql-authorization",
		"UNAUTHENTICATED":         "graphql-authentication",
		"ACCOUNT_INACTIVE":        "graphql-authorization",
		"CUSTOMER_NOT_REGISTERED": "graphql-authentication",
		"INVALID_ID_TOKEN":        "graphql-authentication",
		"EMAIL_NOT_VERIFIED":      "graphql-authentication",
		"FORBIDDEN":               "graphql-authorization",
		"RATE_LIMITED":            "graphql-input",
		"UPSTREAM_UNAVAILABLE":    "",
		"STORE_UNAVAILABLE":       "",
		"INTERNAL":                "",
	}
	if len(auth.Codes) != len(want) {
		t.Errorf("%d codes, want %d", len(auth.Codes), len(want))
	}
	doc, err := os.ReadFile("../../docs/api.md")
	if err != nil {
		t.Fatal(err)
	}
	for code, category := range want {
		got, ok := auth.Codes[code]
		if !ok {
			t.Errorf("code %s is gone", code)
			continue
		}
		if got.Category != category {
			t.Errorf("%s: category %q, want %q", code, got.Category, category)
		}
		if got.Message == "" {
			t.Errorf("%s has no message", code)
		}
		if !strings.Contains(string(doc), "| `"+string(code)+"` |") {
			t.Errorf("docs/api.md's error table lacks %s", code)
		}
	}
}
