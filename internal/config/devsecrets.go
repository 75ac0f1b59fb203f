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
// saving those missing, so that sessions survive restarts with no setup.
// Outside development it does nothing. It returns whether it used the file.
//
// The file is its owner's only (0600): a new or rewritten file is written
// to a temporary file of that mode and renamed over the old one, and an
// existing file that others could read is made 0600. Its secrets are held
// to the environment's rules: at least MinSecretLen bytes, and the JWT and
// refresh secrets in use different (compared in constant time); the error
// names the file and what to do, never a value.
func EnsureDevSecrets(c *Config) (bool, error) {
	needJWT := c.JWT.Algorithm == "HS256" && c.JWT.Secret == nil
	needEd := c.JWT.Algorithm == "EdDSA" && c.JWT.Ed25519Key == nil
	if !c.Development() || (!needJWT && !needEd && c.RefreshSecret != nil) {
		return false, nil
	}
	path := filepath.Join(c.DataDir, DevSecretsFile)
	var s devSecrets
	b, err := os.ReadFile(path)
	exists := err == nil
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &s); err != nil {
			return false, fmt.Errorf("%s is not valid JSON; delete it to start over", path)
		}
	case !errors.Is(err, os.ErrNotExist):
		return false, fmt.Errorf("read development secrets: %w", err)
	}
	if err := s.check(path); err != nil {
		return false, err
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
	switch {
	case changed:
		if err := writeDevSecrets(c.DataDir, path, s); err != nil {
			return false, fmt.Errorf("save development secrets: %w", err)
		}
	case exists:
		if err := os.Chmod(path, 0o600); err != nil {
			return false, fmt.Errorf("development secrets: %w", err)
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
	fileRefresh := c.RefreshSecret == nil
	if fileRefresh {
		c.RefreshSecret = []byte(s.RefreshSecret)
	}
	// One secret from the environment, the other from the file: Load
	// compared the environment's two, check above the file's two.
	if c.JWT.Algorithm == "HS256" && sameSecret(c.JWT.Secret, c.RefreshSecret) {
		if fileRefresh {
			return false, fmt.Errorf("JWT_PRIVATE_KEY equals refresh_secret in %s: set REFRESH_TOKEN_SECRET to another secret, or delete the file to generate a new one", path)
		}
		return false, fmt.Errorf("REFRESH_TOKEN_SECRET equals jwt_secret in %s: set JWT_PRIVATE_KEY to another secret, or delete the file to generate a new one", path)
	}
	return true, nil
}

// check holds the file's secrets to the environment's rules. Empty ones are
// generated afterwards.
func (s devSecrets) check(path string) error {
	var errs []error
	for _, f := range []struct{ name, v string }{{"jwt_secret", s.JWTSecret}, {"refresh_secret", s.RefreshSecret}} {
		if f.v != "" && len(f.v) < MinSecretLen {
			errs = append(errs, fmt.Errorf("%s: %s is shorter than %d bytes; delete the file to generate new development secrets", path, f.name, MinSecretLen))
		}
	}
	if sameSecret([]byte(s.JWTSecret), []byte(s.RefreshSecret)) {
		errs = append(errs, fmt.Errorf("%s: jwt_secret and refresh_secret are equal; delete the file to generate new development secrets", path))
	}
	return errors.Join(errs...)
}

// writeDevSecrets replaces the file at path with s: written to a temporary
// file of mode 0600 in the same directory, then renamed, so that the file
// is never readable by others nor half written, whatever mode it had.
func writeDevSecrets(dir, path string, s devSecrets) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	out, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".dev-secrets-*.json") // mode 0600
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(out); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
