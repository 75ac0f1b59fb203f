package config

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/meshauth/meshauth/internal/token"
)

// DevSecretsFile is where development secrets are kept, inside DATA_DIR.
const DevSecretsFile = "dev-secrets.json"

type devSecrets struct {
	JWTSecret     string `json:"jwt_secret,omitempty"`
	RefreshSecret string `json:"refresh_secret,omitempty"`
	Ed25519Key    string `json:"ed25519_private_key,omitempty"`
}

// EnsureDevSecrets fills in, in development only, the secrets the environment
// left unset: it reads them from DATA_DIR/dev-secrets.json, generating and
// saving (mode 0600) those missing, so that sessions survive restarts with no
// setup. Outside development it does nothing. It returns whether it used the file.
func EnsureDevSecrets(c *Config) (bool, error) {
	needJWT := c.JWT.Algorithm == "HS256" && c.JWT.Secret == nil
	needEd := c.JWT.Algorithm == "EdDSA" && c.JWT.Ed25519Key == nil
	if !c.Development() || (!needJWT && !needEd && c.RefreshSecret != nil) {
		return false, nil
	}
	path := filepath.Join(c.DataDir, DevSecretsFile)
	var s devSecrets
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &s); err != nil {
			return false, fmt.Errorf("%s is not valid JSON; delete it to start over", path)
		}
	case !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("read development secrets: %w", err)
	}
	changed := false
	random := func(dst *string) error {
		if *dst != "" {
			return nil
		}
		buf := make([]byte, 32)
		if _, err := rand.Read(buf); err != nil {
			return err
		}
		*dst, changed = base64.RawURLEncoding.EncodeToString(buf), true
		return nil
	}
	if err := errors.Join(random(&s.JWTSecret), random(&s.RefreshSecret)); err != nil {
		return false, err
	}
	if s.Ed25519Key == "" {
		_, key, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return false, err
		}
		pemBytes, err := token.MarshalEd25519PrivateKey(key)
		if err != nil {
			return false, err
		}
		s.Ed25519Key, changed = string(pemBytes), true
	}
	if changed {
		if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
			return false, fmt.Errorf("save development secrets: %w", err)
		}
		out, _ := json.MarshalIndent(s, "", "  ")
		if err := os.WriteFile(path, out, 0o600); err != nil {
			return false, fmt.Errorf("save development secrets: %w", err)
		}
	}
	if needJWT {
		c.JWT.Secret = []byte(s.JWTSecret)
	}
	if needEd {
		key, err := token.ParseEd25519PrivateKey([]byte(s.Ed25519Key))
		if err != nil {
			return false, fmt.Errorf("%s: %w; delete it to start over", path, err)
		}
		c.JWT.Ed25519Key = key
		if c.JWT.KeyID == "" {
			c.JWT.KeyID = token.Thumbprint(key.Public().(ed25519.PublicKey))
		}
	}
	if c.RefreshSecret == nil {
		c.RefreshSecret = []byte(s.RefreshSecret)
	}
	return true, nil
}
