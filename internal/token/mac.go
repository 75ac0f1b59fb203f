package token

import (
	"crypto/hmac"
	"crypto/sha256"
	"hash"
	"sync"
)

// macPool keeps HMAC-SHA256 states keyed with one key for reuse, so that a
// refresh's five MACs (the token's tag, two hashes, the successor's secret,
// the access token's signature) do not each build a new one: two SHA-256
// states and the padded key.
type macPool struct{ pool sync.Pool }

func newMACPool(key []byte) *macPool {
	key = append([]byte(nil), key...)
	p := &macPool{}
	p.pool.New = func() any { return hmac.New(sha256.New, key) }
	return p
}

// sum appends HMAC-SHA256(key, a | b) to dst; b may be nil.
func (p *macPool) sum(dst, a, b []byte) []byte {
	m := p.pool.Get().(hash.Hash)
	m.Write(a)
	if b != nil {
		m.Write(b)
	}
	dst = m.Sum(dst)
	m.Reset()
	p.pool.Put(m)
	return dst
}
