package embedded

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/meshauth/meshauth/internal/store"
)

// A session's value in the sessions bucket (its key is the session id) is,
// since version 1, a compact binary record:
//
//	0x01 or 0x02               version
//	flags (1)                  flagRemember, flagNumericID, flagRotated, flagBinaryIP
//	created                    varint, unix milliseconds
//	refreshed, expires         varint each, milliseconds after created
//	rotated                    varint, milliseconds after created; only with flagRotated
//	customer id, token hash,   each a uvarint length and the bytes; the ip
//	previous token hash,       as its 4 or 16 bytes with flagBinaryIP, else
//	claims, user agent, ip     as text; the user agent as text in version 1,
//	                           in version 2 as the key (agentKeyLen bytes) of
//	                           its text in the agents bucket
//
// Records written before version 1 are the JSON of store.Session, which
// always starts with '{'; decodeSession reads all three, encodeSession
// writes versions 1 and 2. A version-2 record is a version of its own, not
// a flag, so that a binary that knows only version 1 refuses it rather than
// read the key as text and write it back so; for the same reason a record
// with a flag this code does not know is refused. Times keep milliseconds,
// as on DynamoDB.
const (
	recordV1      = 0x01
	recordV2      = 0x02
	flagRemember  = 1 << 0
	flagNumericID = 1 << 1
	flagRotated   = 1 << 2
	flagBinaryIP  = 1 << 3
	knownFlags    = flagRemember | flagNumericID | flagRotated | flagBinaryIP
)

var errRecord = errors.New("decode session: truncated or unknown record")

// encodeSession returns the record of sess, in one allocation: version 1,
// or with agent not nil version 2, which holds agent, the key of the user
// agent's text in the agents bucket, instead of the text.
func encodeSession(sess store.Session, agent []byte) []byte {
	return appendSession(nil, sess, agent)
}

// appendSession appends the record of sess to dst, growing it at most
// once, to the exact length.
func appendSession(dst []byte, sess store.Session, agent []byte) []byte {
	var flags byte
	version, ua := byte(recordV1), []byte(nil)
	if agent != nil {
		version, ua = recordV2, agent
	}
	if sess.RememberMe {
		flags |= flagRemember
	}
	if sess.NumericCustomerID {
		flags |= flagNumericID
	}
	if !sess.RotatedAt.IsZero() {
		flags |= flagRotated
	}
	var ipBytes [16]byte
	ip, binaryIP := store.AppendAddr(ipBytes[:0], sess.IP)
	if binaryIP {
		flags |= flagBinaryIP
	}
	created := sess.CreatedAt.UnixMilli()
	times := [...]int64{created, sess.RefreshedAt.UnixMilli() - created, sess.ExpiresAt.UnixMilli() - created, sess.RotatedAt.UnixMilli() - created}
	nt := 3
	if flags&flagRotated != 0 {
		nt = 4
	}
	ipLen := len(sess.IP)
	if flags&flagBinaryIP != 0 {
		ipLen = len(ip)
	}
	n := 2
	for _, t := range times[:nt] {
		n += uvarintLen(uint64(t<<1) ^ uint64(t>>63)) // binary.AppendVarint's zig-zag
	}
	uaLen := len(sess.UserAgent)
	if agent != nil {
		uaLen = len(ua)
	}
	for _, l := range [...]int{len(sess.CustomerID), len(sess.TokenHash), len(sess.PrevTokenHash), len(sess.Claims), uaLen, ipLen} {
		n += uvarintLen(uint64(l)) + l
	}
	b := dst
	if cap(b)-len(b) < n {
		b = append(make([]byte, 0, len(dst)+n), dst...)
	}
	b = append(b, version, flags)
	for _, t := range times[:nt] {
		b = binary.AppendVarint(b, t)
	}
	b = appendString(b, sess.CustomerID)
	b = appendBytes(b, sess.TokenHash)
	b = appendBytes(b, sess.PrevTokenHash)
	b = appendBytes(b, sess.Claims)
	if agent != nil {
		b = appendBytes(b, ua)
	} else {
		b = appendString(b, sess.UserAgent)
	}
	if flags&flagBinaryIP != 0 {
		return appendBytes(b, ip)
	}
	return appendString(b, sess.IP)
}

// decodeSession reads the record v of session id, in either format, and
// the key of its user agent's text when the record holds that instead of
// the text (UserAgent is then empty). The results share no memory with v,
// which bbolt owns.
func decodeSession(id string, v []byte) (store.Session, []byte, error) {
	if len(v) > 0 && v[0] == '{' {
		var sess store.Session
		if err := json.Unmarshal(v, &sess); err != nil {
			return store.Session{}, nil, fmt.Errorf("decode session: %w", err)
		}
		return sess, nil, nil
	}
	r, err := splitRecord(v)
	if err != nil {
		return store.Session{}, nil, err
	}
	sess := store.Session{
		ID:                id,
		RememberMe:        r.flags&flagRemember != 0,
		NumericCustomerID: r.flags&flagNumericID != 0,
		CreatedAt:         time.UnixMilli(r.ms[0]).UTC(),
		RefreshedAt:       time.UnixMilli(r.ms[0] + r.ms[1]).UTC(),
		ExpiresAt:         r.end(),
	}
	if r.flags&flagRotated != 0 {
		sess.RotatedAt = time.UnixMilli(r.ms[0] + r.ms[3]).UTC()
	}
	// The variable fields are copied: the three byte fields into one
	// allocation, the strings into another.
	field := r.field
	buf := make([]byte, 0, len(field[1])+len(field[2])+len(field[3])+len(r.agent))
	bytesField := func(f []byte) []byte {
		if len(f) == 0 {
			return nil
		}
		start := len(buf)
		buf = append(buf, f...)
		return buf[start:len(buf):len(buf)]
	}
	sess.TokenHash, sess.PrevTokenHash, sess.Claims = bytesField(field[1]), bytesField(field[2]), bytesField(field[3])
	agent := bytesField(r.agent)
	ip := field[5]
	if r.flags&flagBinaryIP != 0 {
		a, ok := netip.AddrFromSlice(ip)
		if !ok {
			return store.Session{}, nil, errRecord
		}
		sess.IP, ip = a.String(), nil
	}
	strs := string(append(append(append(make([]byte, 0, len(field[0])+len(field[4])+len(ip)), field[0]...), field[4]...), ip...))
	a, b := len(field[0]), len(field[0])+len(field[4])
	sess.CustomerID, sess.UserAgent = strs[:a], strs[a:b]
	if ip != nil {
		sess.IP = strs[b:]
	}
	return sess, agent, nil
}

// recordEndAndAgent reads only what Sweep needs of every record v: the end
// of the session, and the key of its user agent's text when the record
// holds one (a slice of v).
func recordEndAndAgent(v []byte) (time.Time, []byte, error) {
	if len(v) > 0 && v[0] == '{' {
		sess, _, err := decodeSession("", v)
		return sess.ExpiresAt, nil, err
	}
	r, err := splitRecord(v)
	if err != nil {
		return time.Time{}, nil, err
	}
	return r.end(), r.agent, nil
}

// binaryRecord is a binary record split into its parts, slices of it.
type binaryRecord struct {
	flags byte
	ms    [4]int64 // created, then refreshed, expires and rotated after it
	// customer id, token hash, previous token hash, claims, user agent
	// (nil in version 2), ip
	field [6][]byte
	agent []byte // version 2: the key of the user agent's text
}

func (r *binaryRecord) end() time.Time { return time.UnixMilli(r.ms[0] + r.ms[2]).UTC() }

// splitRecord splits binary record v, checking its version, flags and
// lengths, without copying.
func splitRecord(v []byte) (binaryRecord, error) {
	var r binaryRecord
	if len(v) < 2 || v[0] != recordV1 && v[0] != recordV2 || v[1]&^knownFlags != 0 {
		return r, errRecord
	}
	r.flags = v[1]
	rest := v[2:]
	for i := range r.ms {
		if i == 3 && r.flags&flagRotated == 0 {
			break
		}
		d, n := binary.Varint(rest)
		if n <= 0 {
			return r, errRecord
		}
		r.ms[i], rest = d, rest[n:]
	}
	for i := range r.field {
		l, n := binary.Uvarint(rest)
		if n <= 0 || l > uint64(len(rest)-n) {
			return r, errRecord
		}
		r.field[i], rest = rest[n:n+int(l)], rest[n+int(l):]
	}
	if len(rest) != 0 {
		return r, errRecord
	}
	if v[0] == recordV2 {
		if len(r.field[4]) != agentKeyLen {
			return r, errRecord
		}
		r.agent, r.field[4] = r.field[4], nil
	}
	return r, nil
}

func uvarintLen(l uint64) int {
	n := 1
	for ; l >= 0x80; l >>= 7 {
		n++
	}
	return n
}

func appendString(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendBytes(b, s []byte) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}
