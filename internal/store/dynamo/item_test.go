package dynamo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/meshauth/meshauth/internal/store"
)

// Realistic values for the size of a session: a desktop Chrome user agent
// (111 characters) and an IPv6 client address.
const (
	chromeUA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
	safariUA = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"
	clientV6 = "2a02:8070:a1c2:4e00:9d3c:5f1e:b0a2:73c4"
)

// mustEqual fails t unless got has every field of want.
func mustEqual(t *testing.T, got, want store.Session) {
	t.Helper()
	if !sameSession(got, want) || got.NumericCustomerID != want.NumericCustomerID {
		t.Fatalf("session\n got: %+v\nwant: %+v", got, want)
	}
}

func TestItemRoundTrip(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
	full := store.Session{
		ID: "s1", CustomerID: "c1", NumericCustomerID: true, TokenHash: []byte("cur"), PrevTokenHash: []byte("prev"),
		RotatedAt: at, CreatedAt: at.Add(-time.Hour), RefreshedAt: at, ExpiresAt: at.Add(time.Hour),
		RememberMe: true, Claims: []byte(`{"a":1}`), UserAgent: "ua", IP: "192.0.2.1",
	}
	with := func(f func(*store.Session)) store.Session { s := full; f(&s); return s }
	tests := []struct {
		name string
		sess store.Session
	}{
		{"Full", full},
		{"Bare", store.Session{ID: "s2", TokenHash: []byte("cur"), ExpiresAt: at}},
		{"IPv6", with(func(s *store.Session) { s.IP = clientV6 })},
		{"IPv4InIPv6", with(func(s *store.Session) { s.IP = "::ffff:192.0.2.1" })},
		{"IPv6NotCanonical", with(func(s *store.Session) { s.IP = "2001:DB8::0001" })},
		{"IPv6Zone", with(func(s *store.Session) { s.IP = "fe80::1%eth0" })},
		{"NotAnAddress", with(func(s *store.Session) { s.IP = "unknown" })},
		{"LongUserAgent", with(func(s *store.Session) { s.UserAgent = strings.Repeat("u", 512) })},
		{"RefreshedBeforeCreated", with(func(s *store.Session) { s.RefreshedAt = at.Add(-48 * time.Hour) })},
		{"ZeroCreated", with(func(s *store.Session) { s.CreatedAt = time.Time{} })},
		{"NotRotated", with(func(s *store.Session) { s.RotatedAt, s.PrevTokenHash = time.Time{}, nil })},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			item := encode(tc.sess)
			for name := range item {
				if !slices.Contains([]string{"pk", attrCustomer, attrHash, attrPrevHash, attrExpires, TTLAttribute, attrData}, name) {
					t.Errorf("attribute %s written", name)
				}
			}
			if _, ok := item[attrPrevHash]; ok != (len(tc.sess.PrevTokenHash) > 0) {
				t.Errorf("attribute %s present = %v", attrPrevHash, ok)
			}
			if _, ok := item[attrCustomer]; ok != (tc.sess.CustomerID != "") {
				t.Errorf("attribute %s present = %v", attrCustomer, ok)
			}
			got, err := decode(item)
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, tc.sess)
		})
	}
}

// encodeOld is the item as the code before the compact layout wrote it,
// kept verbatim: such items are still in tables and must keep working.
func encodeOld(sess store.Session) map[string]types.AttributeValue {
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

func TestOldItemsDecode(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
	old := store.Session{
		ID: "s1", CustomerID: "1001", NumericCustomerID: true, TokenHash: []byte("cur"), PrevTokenHash: []byte("prev"),
		RotatedAt: at, CreatedAt: at.Add(-time.Hour), RefreshedAt: at, ExpiresAt: at.Add(time.Hour),
		RememberMe: true, Claims: []byte(`{"a":1}`), UserAgent: chromeUA, IP: clientV6,
	}
	got, err := decode(encodeOld(old))
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, old)

	// What Rotate makes of an old item: the new native attributes, the old
	// ones it replaces removed, the rest of the old layout kept.
	rotated := encodeOld(old)
	for _, name := range []string{oldHash, oldPrevHash, oldRotated, oldRefreshed, oldExpires} {
		delete(rotated, name)
	}
	now, exp := at.Add(time.Minute), at.Add(2*time.Hour)
	rotated[attrHash], rotated[attrPrevHash] = binary([]byte("next")), binary(old.TokenHash)
	rotated[attrRotated] = &types.AttributeValueMemberN{Value: millis(now)}
	rotated[attrExpires] = &types.AttributeValueMemberN{Value: millis(exp)}
	want := old
	want.TokenHash, want.PrevTokenHash, want.RotatedAt, want.RefreshedAt, want.ExpiresAt = []byte("next"), old.TokenHash, now, now, exp
	if got, err = decode(rotated); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, want)
}

// itemSize is the size of an item as DynamoDB counts it for capacity: the
// UTF-8 length of each attribute name plus the size of its value (strings
// their UTF-8 length, binaries their length, numbers one byte per two
// significant digits plus one, booleans one byte).
func itemSize(t *testing.T, item map[string]types.AttributeValue) int {
	n := 0
	for name, v := range item {
		n += len(name)
		switch v := v.(type) {
		case *types.AttributeValueMemberS:
			n += len(v.Value)
		case *types.AttributeValueMemberB:
			n += len(v.Value)
		case *types.AttributeValueMemberBOOL:
			n++
		case *types.AttributeValueMemberN:
			digits := strings.Trim(strings.TrimLeft(v.Value, "-"), "0")
			n += (len(strings.ReplaceAll(digits, ".", ""))+1)/2 + 1
		default:
			t.Fatalf("attribute %s: type %T not counted", name, v)
		}
	}
	return n
}

// TestItemSize holds a typical session's item to 300 bytes: a session id
// as token.NewSessionID makes them, 32-byte hashes, a numeric customer id,
// a browser user agent and an IPv6 address, once rotated.
func TestItemSize(t *testing.T) {
	created := time.Date(2026, 12, 3, 9, 30, 0, 0, time.UTC)
	now := created.Add(7*time.Minute + 123*time.Millisecond)
	h := func(c byte) []byte { return bytes.Repeat([]byte{c}, 32) }
	for _, tc := range []struct {
		name, ua string
		claims   string
		max      int
	}{
		{"ChromeDesktop", chromeUA, "", 300},
		{"SafariIPhone", safariUA, "", 330},
		{"ChromeDesktopWithRoleAndStatus", chromeUA, `{"role":"customer","status":"active"}`, 340},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sess := store.Session{
				ID: "yDJBzB0l4Y2H5kVvP8s1Ag", CustomerID: "1048576", NumericCustomerID: true,
				TokenHash: h(1), PrevTokenHash: h(2), CreatedAt: created, RefreshedAt: now, RotatedAt: now,
				ExpiresAt: now.Add(15 * time.Minute).Truncate(time.Second), UserAgent: tc.ua, IP: clientV6,
			}
			if tc.claims != "" {
				sess.Claims = json.RawMessage(tc.claims)
			}
			// As stored after a rotation: the packed attribute as written at
			// login (not rotated yet), r set by Rotate.
			login := sess
			login.PrevTokenHash, login.RotatedAt, login.RefreshedAt = nil, time.Time{}, created
			item := encode(login)
			item[attrPrevHash] = binary(sess.PrevTokenHash)
			item[attrRotated] = &types.AttributeValueMemberN{Value: millis(now)}
			got, err := decode(item)
			if err != nil {
				t.Fatal(err)
			}
			mustEqual(t, got, sess)
			size, old := itemSize(t, item), itemSize(t, encodeOld(sess))
			t.Logf("item %d bytes (the layout before: %d bytes); user agent %d characters", size, old, len(tc.ua))
			if size > tc.max {
				t.Errorf("item is %d bytes, want at most %d", size, tc.max)
			}
		})
	}
}

func TestTTLSecondsRoundsUp(t *testing.T) {
	tests := []struct {
		name string
		at   time.Time
		want int64
	}{
		{"WholeSecond", time.Unix(1000, 0), 1000},
		{"OneMillisecondPast", time.Unix(1000, 1e6), 1001},
		{"SubMillisecondIgnored", time.Unix(1000, 999), 1000},
		{"BeforeEpoch", time.Unix(-2, 5e8), -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ttlSeconds(tc.at); got != fmt.Sprint(tc.want) {
				t.Fatalf("ttlSeconds(%v) = %s, want %d", tc.at, got, tc.want)
			}
		})
	}
}

func TestDecodeErrorsNameAttributesNotValues(t *testing.T) {
	item := encode(store.Session{ID: "s", TokenHash: []byte("secret-hash"), ExpiresAt: time.Unix(1, 0)})
	item[attrExpires] = &types.AttributeValueMemberS{Value: "secret-value"}
	_, err := decode(item)
	if err == nil || !strings.Contains(err.Error(), "attribute "+attrExpires+" ") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("decode = %v, want an error naming %s and no value", err, attrExpires)
	}
	item = encode(store.Session{ID: "s", TokenHash: []byte("secret-hash"), ExpiresAt: time.Unix(1, 0), UserAgent: "secret-agent"})
	d := item[attrData].(*types.AttributeValueMemberB).Value
	for n := range len(d) {
		item[attrData] = &types.AttributeValueMemberB{Value: d[:n]}
		if _, err := decode(item); err == nil || strings.Contains(err.Error(), "secret") {
			t.Fatalf("decode of d cut to %d bytes = %v, want an error without values", n, err)
		}
	}
}

func TestErrorClasses(t *testing.T) {
	tests := []struct {
		name        string
		err         error
		unavailable bool
	}{
		{"Deadline", fmt.Errorf("op: %w", context.DeadlineExceeded), true},
		{"Throttled", &types.ProvisionedThroughputExceededException{}, true},
		{"RequestLimit", &types.RequestLimitExceeded{}, true},
		{"Throttling", &smithy.GenericAPIError{Code: "ThrottlingException"}, true},
		{"InternalServerError", &types.InternalServerError{}, true},
		{"Validation", &smithy.GenericAPIError{Code: "ValidationException"}, false},
		{"ConditionFailed", &types.ConditionalCheckFailedException{}, false},
		{"Canceled", context.Canceled, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := wrap("op", tc.err)
			if got := errors.Is(err, store.ErrUnavailable); got != tc.unavailable {
				t.Fatalf("errors.Is(%v, ErrUnavailable) = %v, want %v", err, got, tc.unavailable)
			}
			if !errors.Is(err, tc.err) {
				t.Fatalf("wrap lost the cause: %v", err)
			}
		})
	}
}

// FuzzUnpackData: no value of d makes unpackData panic, and one that
// unpacks packs to a value that unpacks to the same fields.
func FuzzUnpackData(f *testing.F) {
	f.Add(packData(store.Session{UserAgent: chromeUA, IP: clientV6, Claims: []byte(`{"a":1}`), RememberMe: true}))
	f.Add(packData(store.Session{IP: "unknown", RotatedAt: time.Unix(1, 0)}))
	f.Add([]byte{dataV1, 0xff, 0x80})
	f.Fuzz(func(t *testing.T, d []byte) {
		var sess store.Session
		if err := unpackData(&sess, d); err != nil {
			return
		}
		var again store.Session
		if err := unpackData(&again, packData(sess)); err != nil {
			t.Fatalf("repacked d: %v", err)
		}
		mustEqual(t, again, sess)
	})
}
