package dynamo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"

	"github.com/meshauth/meshauth/internal/store"
)

func TestItemRoundTrip(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
	tests := []struct {
		name string
		sess store.Session
	}{
		{"Full", store.Session{
			ID: "s1", CustomerID: "c1", TokenHash: []byte("cur"), PrevTokenHash: []byte("prev"),
			RotatedAt: at, CreatedAt: at.Add(-time.Hour), RefreshedAt: at, ExpiresAt: at.Add(time.Hour),
			RememberMe: true, Claims: []byte(`{"a":1}`), UserAgent: "ua", IP: "192.0.2.1",
		}},
		{"Bare", store.Session{ID: "s2", TokenHash: []byte("cur"), ExpiresAt: at}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			item := encode(tc.sess)
			for _, name := range []string{"prev_token_hash", "rotated_at", "claims", "user_agent", "ip", "customer_id"} {
				if _, ok := item[name]; ok != (tc.name == "Full") {
					t.Errorf("attribute %s present = %v", name, ok)
				}
			}
			got, err := decode(item)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.sess
			if got.ID != want.ID || got.CustomerID != want.CustomerID || !bytes.Equal(got.TokenHash, want.TokenHash) ||
				!bytes.Equal(got.PrevTokenHash, want.PrevTokenHash) || !got.RotatedAt.Equal(want.RotatedAt) ||
				!got.CreatedAt.Equal(want.CreatedAt) || !got.RefreshedAt.Equal(want.RefreshedAt) ||
				!got.ExpiresAt.Equal(want.ExpiresAt) || got.RememberMe != want.RememberMe ||
				string(got.Claims) != string(want.Claims) || got.UserAgent != want.UserAgent || got.IP != want.IP {
				t.Fatalf("round trip\n got: %+v\nwant: %+v", got, want)
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
	item["expires_at"] = &types.AttributeValueMemberS{Value: "secret-value"}
	_, err := decode(item)
	if err == nil || !strings.Contains(err.Error(), "expires_at") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("decode = %v, want an error naming expires_at and no value", err)
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
