package static

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Argon2id parameters for new hashes: the OWASP Password Storage Cheat Sheet's
// first recommended configuration (m=19 MiB, t=2, p=1).
const (
	argonMemoryKiB = 19 * 1024
	argonTime      = 2
	argonThreads   = 1
	argonKeyLen    = 32
	argonSaltLen   = 16
)

// HashPassword returns an argon2id hash of password in the PHC string format
// ($argon2id$v=19$m=...,t=...,p=...$salt$key).
func HashPassword(password string) (string, error) {
	return hashArgon2id(password, argon2Params{memory: argonMemoryKiB, time: argonTime, threads: argonThreads,
		salt: make([]byte, argonSaltLen), key: make([]byte, argonKeyLen)})
}

// hashArgon2id hashes password with p's parameters and a new random salt of
// p's salt length, giving a key of p's key length.
func hashArgon2id(password string, p argon2Params) (string, error) {
	salt := make([]byte, len(p.salt))
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(password), salt, p.time, p.memory, p.threads, uint32(len(p.key)))
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.memory, p.time, p.threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Hash kinds, as kindOf names them.
const (
	kindArgon2id = "argon2id"
	kindBcrypt   = "bcrypt"
)

// kindOf names the kind of a hash validHash accepts, or "".
func kindOf(hash string) string {
	switch {
	case strings.HasPrefix(hash, "$argon2id$"):
		return kindArgon2id
	case strings.HasPrefix(hash, "$2a$"), strings.HasPrefix(hash, "$2b$"), strings.HasPrefix(hash, "$2y$"):
		return kindBcrypt
	}
	return ""
}

// validHash checks that hash is an argon2id (PHC) or bcrypt hash this package
// can check, without the cost of checking a password against it.
func validHash(hash string) error {
	switch kindOf(hash) {
	case kindArgon2id:
		_, err := parseArgon2id(hash)
		return err
	case kindBcrypt:
		_, err := bcrypt.Cost([]byte(hash))
		return err
	default:
		return errors.New("unsupported password hash: want argon2id or bcrypt")
	}
}

// checkHash reports whether password matches an argon2id (PHC) or bcrypt hash.
// The comparison is constant-time. A hash it cannot read is an error.
func checkHash(hash, password string) (bool, error) {
	switch kindOf(hash) {
	case kindArgon2id:
		p, err := parseArgon2id(hash)
		if err != nil {
			return false, err
		}
		key := argon2.IDKey([]byte(password), p.salt, p.time, p.memory, p.threads, uint32(len(p.key)))
		return subtle.ConstantTimeCompare(key, p.key) == 1, nil
	case kindBcrypt:
		err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(password))
		if errors.Is(err, bcrypt.ErrMismatchedHashAndPassword) {
			return false, nil
		}
		return err == nil, err
	default:
		return false, errors.New("unsupported password hash: want argon2id or bcrypt")
	}
}

type argon2Params struct {
	memory  uint32
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// costlier reports whether checking a password against p takes longer than
// against q. The work is memory × passes (RFC 9106 section 3.4: each pass
// fills every block), spread over the lanes, which golang.org/x/crypto/argon2
// fills in parallel; at equal time per lane, more work is costlier.
func (p argon2Params) costlier(q argon2Params) bool {
	pw, qw := uint64(p.memory)*uint64(p.time), uint64(q.memory)*uint64(q.time)
	if pl, ql := pw/uint64(p.threads), qw/uint64(q.threads); pl != ql {
		return pl > ql
	}
	return pw > qw
}

func parseArgon2id(hash string) (argon2Params, error) {
	var p argon2Params
	parts := strings.Split(hash, "$")
	bad := errors.New("malformed argon2id hash")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, bad
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, bad
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.memory, &p.time, &p.threads); err != nil ||
		p.memory == 0 || p.memory > 1<<20 || p.time == 0 || p.time > 16 || p.threads == 0 {
		return p, bad
	}
	var err1, err2 error
	p.salt, err1 = base64.RawStdEncoding.DecodeString(parts[4])
	p.key, err2 = base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(p.salt) < 8 || len(p.key) < 16 || len(p.key) > 64 {
		return p, bad
	}
	return p, nil
}
