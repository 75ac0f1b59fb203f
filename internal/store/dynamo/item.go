package dynamo

import (
	enc "encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/meshauth/meshauth/internal/store"
)

// key is the primary key of session id.
func key(id string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: keyPrefix + id}}
}

// millis is t as unix milliseconds, the precision the table keeps.
func millis(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// ttlSeconds is t as unix seconds rounded up, so that DynamoDB's TTL never
// deletes a session before it has expired.
func ttlSeconds(t time.Time) string {
	ms := t.UnixMilli()
	sec := ms / 1000
	if ms%1000 > 0 {
		sec++
	}
	return strconv.FormatInt(sec, 10)
}

// binary is b as a B value; DynamoDB takes an empty one but not a missing one.
func binary(b []byte) *types.AttributeValueMemberB {
	if b == nil {
		b = []byte{}
	}
	return &types.AttributeValueMemberB{Value: b}
}

// The session item's attributes (docs/dynamodb.md, "Table design"). The
// ones a conditional update reads or writes are native and named short;
// what is written once at login is packed into one binary attribute, d.
const (
	attrHash     = "h" // B: keyed hash of the current refresh token
	attrPrevHash = "p" // B: keyed hash of the previous one; absent before the first rotation
	attrExpires  = "e" // N: unix ms
	attrRotated  = "r" // N: unix ms of the last rotation, which is also the last refresh
	attrData     = "d" // B: the packed fields, see packData
	attrCustomer = "customer_id"
)

// The attributes of items written before the compact layout. decode reads
// them where the new ones are missing; Rotate and Extend remove the ones
// they replace, so an old item turns into the new layout as it is used.
const (
	oldHash      = "token_hash"
	oldPrevHash  = "prev_token_hash"
	oldExpires   = "expires_at"
	oldRotated   = "rotated_at"
	oldRefreshed = "refreshed_at"
)

// rotateCondition and rotateUpdate are Rotate's expressions; they accept an
// item of either layout and leave it in the new one.
const (
	rotateCondition = "attribute_exists(pk) AND (" + attrHash + " = :from OR " + oldHash + " = :from) AND (" +
		attrExpires + " > :now OR " + oldExpires + " > :now)"
	rotateUpdate = "SET " + attrHash + " = :to, " + attrPrevHash + " = :from, " + attrRotated + " = :now, " +
		attrExpires + " = :exp, #ttl = :ttl REMOVE " + oldHash + ", " + oldPrevHash + ", " + oldRotated + ", " +
		oldRefreshed + ", " + oldExpires
	extendUpdate = "SET " + attrExpires + " = :exp, #ttl = :ttl REMOVE " + oldExpires
)

// encode is the item of sess; see docs/dynamodb.md for the layout.
func encode(sess store.Session) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		"pk":         &types.AttributeValueMemberS{Value: keyPrefix + sess.ID},
		attrHash:     binary(sess.TokenHash),
		attrExpires:  &types.AttributeValueMemberN{Value: millis(sess.ExpiresAt)},
		TTLAttribute: &types.AttributeValueMemberN{Value: ttlSeconds(sess.ExpiresAt)},
		attrData:     &types.AttributeValueMemberB{Value: packData(sess)},
	}
	// An index key may not be empty: a session without a customer is in no index.
	if sess.CustomerID != "" {
		item[attrCustomer] = &types.AttributeValueMemberS{Value: sess.CustomerID}
	}
	if len(sess.PrevTokenHash) > 0 {
		item[attrPrevHash] = binary(sess.PrevTokenHash)
	}
	return item
}

// d, the packed attribute, is
//
//	0x01                      version
//	flags (1)                 dataRemember, dataNumericID, dataRotated, dataBinaryIP
//	created                   varint, unix ms
//	refreshed                 varint, ms after created
//	rotated                   varint, ms after created; only with dataRotated
//	claims, user agent, ip    each a uvarint length and the bytes; the ip as
//	                          its 4 or 16 bytes with dataBinaryIP, else as text
//
// as the session was created. A rotation does not rewrite it: r, when
// present, is both RotatedAt and RefreshedAt.
const (
	dataV1        = 0x01
	dataRemember  = 1 << 0
	dataNumericID = 1 << 1
	dataRotated   = 1 << 2
	dataBinaryIP  = 1 << 3
)

func packData(sess store.Session) []byte {
	ip := []byte(sess.IP)
	var flags byte
	if sess.RememberMe {
		flags |= dataRemember
	}
	if sess.NumericCustomerID {
		flags |= dataNumericID
	}
	if !sess.RotatedAt.IsZero() {
		flags |= dataRotated
	}
	if b, ok := store.AppendAddr(nil, sess.IP); ok {
		flags |= dataBinaryIP
		ip = b
	}
	created := sess.CreatedAt.UnixMilli()
	b := make([]byte, 0, 2+3*enc.MaxVarintLen64+3*enc.MaxVarintLen32+len(sess.Claims)+len(sess.UserAgent)+len(ip))
	b = append(b, dataV1, flags)
	b = enc.AppendVarint(b, created)
	b = enc.AppendVarint(b, sess.RefreshedAt.UnixMilli()-created)
	if flags&dataRotated != 0 {
		b = enc.AppendVarint(b, sess.RotatedAt.UnixMilli()-created)
	}
	for _, f := range [][]byte{sess.Claims, []byte(sess.UserAgent), ip} {
		b = append(enc.AppendUvarint(b, uint64(len(f))), f...)
	}
	return b
}

// unpackData fills in sess the fields packed in d.
func unpackData(sess *store.Session, d []byte) error {
	bad := errors.New("decode session: attribute d is truncated or of an unknown version")
	if len(d) < 2 || d[0] != dataV1 {
		return bad
	}
	flags, rest := d[1], d[2:]
	next := func() (int64, bool) {
		v, n := enc.Varint(rest)
		if n <= 0 {
			return 0, false
		}
		rest = rest[n:]
		return v, true
	}
	created, ok1 := next()
	refreshed, ok2 := next()
	if !ok1 || !ok2 {
		return bad
	}
	sess.CreatedAt = time.UnixMilli(created).UTC()
	sess.RefreshedAt = time.UnixMilli(created + refreshed).UTC()
	if flags&dataRotated != 0 {
		rotated, ok := next()
		if !ok {
			return bad
		}
		sess.RotatedAt = time.UnixMilli(created + rotated).UTC()
	}
	var field [3][]byte
	for i := range field {
		l, n := enc.Uvarint(rest)
		if n <= 0 || l > uint64(len(rest)-n) {
			return bad
		}
		field[i], rest = rest[n:n+int(l)], rest[n+int(l):]
	}
	if len(field[0]) > 0 {
		sess.Claims = json.RawMessage(field[0])
	}
	sess.UserAgent = string(field[1])
	if flags&dataBinaryIP != 0 {
		a, ok := netip.AddrFromSlice(field[2])
		if !ok {
			return bad
		}
		sess.IP = a.String()
	} else {
		sess.IP = string(field[2])
	}
	sess.RememberMe = flags&dataRemember != 0
	sess.NumericCustomerID = flags&dataNumericID != 0
	return nil
}

// decode is the session of item, in the new layout, the old one, or a mix
// of both (an old item that has been rotated or extended since). Its errors
// name attributes, never values.
func decode(item map[string]types.AttributeValue) (store.Session, error) {
	d := decoder{item: item}
	pk := d.str("pk")
	sess := store.Session{
		ID:            strings.TrimPrefix(pk, keyPrefix),
		CustomerID:    d.str(attrCustomer),
		TokenHash:     d.bytes(d.either(attrHash, oldHash)),
		PrevTokenHash: d.bytes(d.either(attrPrevHash, oldPrevHash)),
		ExpiresAt:     d.time(d.either(attrExpires, oldExpires)),
	}
	if _, ok := item[attrData]; ok {
		if err := unpackData(&sess, d.bytes(attrData)); err != nil && d.err == nil {
			d.err = err
		}
	} else {
		sess.CreatedAt = d.time("created_at")
		sess.RefreshedAt = d.time(oldRefreshed)
		sess.RotatedAt = d.time(oldRotated)
		sess.UserAgent = d.str("user_agent")
		sess.IP = d.str("ip")
		sess.RememberMe = d.boolean("remember_me")
		sess.NumericCustomerID = d.boolean("customer_id_numeric")
		if c := d.str("claims"); c != "" {
			sess.Claims = json.RawMessage(c)
		}
	}
	if _, ok := item[attrRotated]; ok {
		sess.RotatedAt = d.time(attrRotated)
		sess.RefreshedAt = sess.RotatedAt
	}
	if d.err == nil && !strings.HasPrefix(pk, keyPrefix) {
		d.err = fmt.Errorf("decode session: pk lacks the %s prefix", keyPrefix)
	}
	if d.err != nil {
		return store.Session{}, d.err
	}
	return sess, nil
}

// decoder reads optional attributes and keeps the first type error.
type decoder struct {
	item map[string]types.AttributeValue
	err  error
}

func (d *decoder) fail(name, want string) {
	if d.err == nil {
		d.err = fmt.Errorf("decode session: attribute %s is not of type %s", name, want)
	}
}

// either returns name when the item has it, else old.
func (d *decoder) either(name, old string) string {
	if _, ok := d.item[name]; ok {
		return name
	}
	return old
}

func (d *decoder) boolean(name string) bool {
	v, ok := d.item[name]
	if !ok {
		return false
	}
	b, ok := v.(*types.AttributeValueMemberBOOL)
	if !ok {
		d.fail(name, "BOOL")
		return false
	}
	return b.Value
}

func (d *decoder) str(name string) string {
	v, ok := d.item[name]
	if !ok {
		return ""
	}
	s, ok := v.(*types.AttributeValueMemberS)
	if !ok {
		d.fail(name, "S")
		return ""
	}
	return s.Value
}

func (d *decoder) bytes(name string) []byte {
	v, ok := d.item[name]
	if !ok {
		return nil
	}
	b, ok := v.(*types.AttributeValueMemberB)
	if !ok {
		d.fail(name, "B")
		return nil
	}
	return b.Value
}

func (d *decoder) time(name string) time.Time {
	v, ok := d.item[name]
	if !ok {
		return time.Time{}
	}
	n, ok := v.(*types.AttributeValueMemberN)
	if !ok {
		d.fail(name, "N")
		return time.Time{}
	}
	ms, err := strconv.ParseInt(n.Value, 10, 64)
	if err != nil {
		d.fail(name, "N (integer milliseconds)")
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}
