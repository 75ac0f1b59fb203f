package token

import (
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
)

// ParseEd25519PrivateKey reads a PKCS #8 PEM Ed25519 private key, the form
// `openssl genpkey -algorithm ed25519` writes. Errors never quote the input.
func ParseEd25519PrivateKey(pemBytes []byte) (ed25519.PrivateKey, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, errors.New("want a PEM block of type PRIVATE KEY (PKCS #8)")
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("not a PKCS #8 private key")
	}
	ek, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("not an Ed25519 key")
	}
	return ek, nil
}

// MarshalEd25519PrivateKey writes key as PKCS #8 PEM.
func MarshalEd25519PrivateKey(key ed25519.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// Thumbprint returns the RFC 7638 JWK thumbprint of an Ed25519 public key
// (RFC 8037 section 2 gives its JWK members), the default key id.
func Thumbprint(pub ed25519.PublicKey) string {
	jwk := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(jwk))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// ParsePublicKeys reads one or more PEM blocks of type PUBLIC KEY holding
// Ed25519 keys. A block's "kid" header gives its key id; without one the id
// is the key's RFC 7638 thumbprint (the default key id of a signing key).
func ParsePublicKeys(pemBytes []byte) ([]PublicKey, error) {
	var out []PublicKey
	for {
		var block *pem.Block
		block, pemBytes = pem.Decode(pemBytes)
		if block == nil {
			break
		}
		if block.Type != "PUBLIC KEY" {
			return nil, errors.New("want PEM blocks of type PUBLIC KEY")
		}
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			return nil, errors.New("not a PKIX public key")
		}
		ek, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, errors.New("not an Ed25519 key")
		}
		id := block.Headers["kid"]
		if id == "" {
			id = Thumbprint(ek)
		}
		out = append(out, PublicKey{ID: id, Key: ek})
	}
	if len(out) == 0 {
		return nil, errors.New("no PEM block of type PUBLIC KEY")
	}
	return out, nil
}
