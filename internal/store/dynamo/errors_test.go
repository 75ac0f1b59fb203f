package dynamo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/storetest"
)

// noCredentials empties the standard credentials chain for the test: no
// keys in the environment, empty shared files, no profile, no container
// or web-identity role, and no instance metadata service to wait for.
func noCredentials(t *testing.T) {
	t.Helper()
	dir := t.TempDir()
	for _, f := range []string{"config", "credentials"} {
		if err := os.WriteFile(filepath.Join(dir, f), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string]string{
		"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SESSION_TOKEN": "", "AWS_PROFILE": "", "AWS_DEFAULT_PROFILE": "",
		"AWS_WEB_IDENTITY_TOKEN_FILE": "", "AWS_ROLE_ARN": "", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "", "AWS_CONTAINER_CREDENTIALS_FULL_URI": "",
		"AWS_EC2_METADATA_DISABLED": "true",
		"AWS_CONFIG_FILE":           filepath.Join(dir, "config"), "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(dir, "credentials"),
	} {
		t.Setenv(k, v)
	}
}

// TestVerifyWithoutCredentials: with no credentials anywhere, Verify,
// Migrate and Ping say so (ErrNoCredentials), before any request, and never
// that the table is missing or that DynamoDB is unreachable.
func TestVerifyWithoutCredentials(t *testing.T) {
	noCredentials(t)
	// Nothing listens there: no request must be needed to tell.
	s, err := New(context.Background(), Options{Table: "t", Region: "us-east-1", Endpoint: "http://127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func(context.Context) error{"Verify": s.Verify, "Migrate": s.Migrate, "Ping": s.Ping} {
		err := call(context.Background())
		if !errors.Is(err, ErrNoCredentials) {
			t.Errorf("%s: %v, want ErrNoCredentials", name, err)
		}
		if errors.Is(err, ErrNoTable) || errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: %v also reads as a missing table or an unreachable DynamoDB", name, err)
		}
	}
}

// TestVerifyMissingTable: a table that does not exist is ErrNoTable, from
// Verify and Ping alike, and store.ErrUnavailable (clients retry later),
// never missing credentials.
func TestVerifyMissingTable(t *testing.T) {
	ep := storetest.DynamoDBLocal(t)
	s, err := New(context.Background(), Options{Table: tableName(t), Region: "us-east-1", Endpoint: ep, Credentials: localCredentials, CallTimeout: testCallTimeout})
	if err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func(context.Context) error{"Verify": s.Verify, "Ping": s.Ping} {
		err := call(context.Background())
		if !errors.Is(err, ErrNoTable) || errors.Is(err, ErrNoCredentials) || !errors.Is(err, store.ErrUnavailable) {
			t.Errorf("%s: %v, want ErrNoTable and ErrUnavailable", name, err)
		}
		if !strings.Contains(err.Error(), s.Table()) {
			t.Errorf("%s: %v does not name the table", name, err)
		}
	}
	if err := newLocalStore(t).Verify(context.Background()); err != nil {
		t.Errorf("Verify of a migrated table: %v", err)
	}
}
