package dynamo

import (
	"encoding/json"
	"fmt"
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

// encode is the item of sess; see the package doc for the layout.
func encode(sess store.Session) map[string]types.AttributeValue {
	item := map[string]types.AttributeValue{
		"pk":          &types.AttributeValueMemberS{Value: keyPrefix + sess.ID},
		"token_hash":  binary(sess.TokenHash),
		"expires_at":  &types.AttributeValueMemberN{Value: millis(sess.ExpiresAt)},
		TTLAttribute:  &types.AttributeValueMemberN{Value: ttlSeconds(sess.ExpiresAt)},
		"remember_me": &types.AttributeValueMemberBOOL{Value: sess.RememberMe},
	}
	// An index key may not be empty: a session without a customer is in no index.
	if sess.CustomerID != "" {
		item["customer_id"] = &types.AttributeValueMemberS{Value: sess.CustomerID}
	}
	if sess.NumericCustomerID {
		item["customer_id_numeric"] = &types.AttributeValueMemberBOOL{Value: true}
	}
	if len(sess.PrevTokenHash) > 0 {
		item["prev_token_hash"] = binary(sess.PrevTokenHash)
	}
	for name, t := range map[string]time.Time{"created_at": sess.CreatedAt, "refreshed_at": sess.RefreshedAt, "rotated_at": sess.RotatedAt} {
		if !t.IsZero() {
			item[name] = &types.AttributeValueMemberN{Value: millis(t)}
		}
	}
	for name, v := range map[string]string{"claims": string(sess.Claims), "user_agent": sess.UserAgent, "ip": sess.IP} {
		if v != "" {
			item[name] = &types.AttributeValueMemberS{Value: v}
		}
	}
	return item
}

// decode is the session of item. Its errors name attributes, never values.
func decode(item map[string]types.AttributeValue) (store.Session, error) {
	d := decoder{item: item}
	pk := d.str("pk")
	sess := store.Session{
		ID:            strings.TrimPrefix(pk, keyPrefix),
		CustomerID:    d.str("customer_id"),
		TokenHash:     d.bytes("token_hash"),
		PrevTokenHash: d.bytes("prev_token_hash"),
		CreatedAt:     d.time("created_at"),
		RefreshedAt:   d.time("refreshed_at"),
		RotatedAt:     d.time("rotated_at"),
		ExpiresAt:     d.time("expires_at"),
		UserAgent:     d.str("user_agent"),
		IP:            d.str("ip"),
	}
	sess.RememberMe = d.boolean("remember_me")
	sess.NumericCustomerID = d.boolean("customer_id_numeric")
	if c := d.str("claims"); c != "" {
		sess.Claims = json.RawMessage(c)
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
