package dynamo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/storetest"
)

// testCallTimeout is generous: the race detector and 50 concurrent rotations
// slow DynamoDB Local down.
const testCallTimeout = 10 * time.Second

var localCredentials = credentials.NewStaticCredentialsProvider("local", "local", "")

// endpoint returns DYNAMODB_TEST_ENDPOINT, or skips the test when it is
// unset; under CI=true it fails instead, because CI must run these tests.
func endpoint(t *testing.T) string {
	t.Helper()
	ep := os.Getenv("DYNAMODB_TEST_ENDPOINT")
	if ep == "" {
		msg := "DynamoDB Local not running: run `scripts/dynamodb-local.sh run -- go test ./internal/store/dynamo/` (or set DYNAMODB_TEST_ENDPOINT)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return ep
}

func tableName(t *testing.T) string {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return "meshauth-test-" + hex.EncodeToString(b)
}

// dropTable deletes the table when the test ends.
func dropTable(t *testing.T, client *dynamodb.Client, table string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), testCallTimeout)
		defer cancel()
		if _, err := client.DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: &table}); err != nil {
			t.Errorf("delete table %s: %v", table, err)
		}
	})
}

// newLocalStore returns a Store on a new, migrated table of its own in
// DynamoDB Local, built by New with static credentials.
func newLocalStore(t *testing.T) *Store {
	t.Helper()
	ep := endpoint(t)
	s, err := New(context.Background(), Options{
		Table: tableName(t), Region: "us-east-1", Endpoint: ep,
		Credentials: localCredentials, CallTimeout: testCallTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	dropTable(t, s.Client(), s.Table())
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	endpoint(t)
	storetest.Run(t, func(t *testing.T) store.Store {
		s := newLocalStore(t)
		// Small pages, so that ListByCustomer and DeleteByCustomer page.
		s.pageLimit = 7
		return s
	})
}

func TestMigrateIsIdempotentAndEnablesTTL(t *testing.T) {
	ctx := context.Background()
	s := newLocalStore(t) // migrated once
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("second Migrate: %v", err)
	}
	if err := s.Verify(ctx); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	out, err := s.Client().DescribeTimeToLive(ctx, &dynamodb.DescribeTimeToLiveInput{TableName: aws.String(s.Table())})
	if err != nil {
		t.Fatal(err)
	}
	d := out.TimeToLiveDescription
	if d == nil || d.TimeToLiveStatus != types.TimeToLiveStatusEnabled || aws.ToString(d.AttributeName) != TTLAttribute {
		t.Fatalf("time to live = %+v, want ENABLED on %q", d, TTLAttribute)
	}
	// The item carries ttl in seconds, rounded up from expires_at.
	exp := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
	if err := s.Create(ctx, store.Session{ID: "s", CustomerID: "c", TokenHash: []byte("h"), ExpiresAt: exp}); err != nil {
		t.Fatal(err)
	}
	item, err := s.Client().GetItem(ctx, &dynamodb.GetItemInput{TableName: aws.String(s.Table()), Key: key("s"), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := item.Item[TTLAttribute].(*types.AttributeValueMemberN); !ok || got.Value != fmt.Sprint(exp.Unix()+1) {
		t.Fatalf("ttl attribute = %#v, want %d", item.Item[TTLAttribute], exp.Unix()+1)
	}
}

func TestMigrateAndVerifyRejectAnotherSchema(t *testing.T) {
	ctx := context.Background()
	s := newLocalStore(t)
	other := NewFromClient(s.Client(), Options{Table: tableName(t), CallTimeout: testCallTimeout})
	if err := other.Verify(ctx); err == nil {
		t.Fatal("Verify of a missing table succeeded")
	}
	if err := other.Ping(ctx); !errors.Is(err, ErrNoTable) {
		t.Fatalf("Ping of a missing table = %v, want ErrNoTable", err)
	}
	_, err := s.Client().CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName:            aws.String(other.Table()),
		BillingMode:          types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{{AttributeName: aws.String("id"), AttributeType: types.ScalarAttributeTypeS}},
		KeySchema:            []types.KeySchemaElement{{AttributeName: aws.String("id"), KeyType: types.KeyTypeHash}},
	})
	if err != nil {
		t.Fatal(err)
	}
	dropTable(t, s.Client(), other.Table())
	err = other.Migrate(ctx)
	if err == nil || !strings.Contains(err.Error(), "partition key pk") || !strings.Contains(err.Error(), "no global secondary index") {
		t.Fatalf("Migrate over a foreign table = %v, want both problems named", err)
	}
}

// TestUnavailable needs no DynamoDB: an endpoint that refuses connections and
// one that accepts them but never answers must both give ErrUnavailable, in
// about the call timeout.
func TestUnavailable(t *testing.T) {
	const callTimeout = 300 * time.Millisecond
	tests := []struct {
		name     string
		endpoint func(t *testing.T) string
	}{
		{"ClosedPort", func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := l.Addr().String()
			l.Close()
			return "http://" + addr
		}},
		{"SilentListener", func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var (
				mu    sync.Mutex
				conns []net.Conn
			)
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					mu.Lock()
					conns = append(conns, c) // read nothing, answer nothing
					mu.Unlock()
				}
			}()
			t.Cleanup(func() {
				l.Close()
				mu.Lock()
				defer mu.Unlock()
				for _, c := range conns {
					c.Close()
				}
			})
			return "http://" + l.Addr().String()
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(context.Background(), Options{
				Table: "sessions", Region: "us-east-1", Endpoint: tc.endpoint(t),
				Credentials: localCredentials, CallTimeout: callTimeout, MaxAttempts: 3,
			})
			if err != nil {
				t.Fatal(err)
			}
			calls := map[string]func(ctx context.Context) error{
				"Get": func(ctx context.Context) error { _, err := s.Get(ctx, "s"); return err },
				"Rotate": func(ctx context.Context) error {
					_, err := s.Rotate(ctx, "s", store.Rotation{From: []byte("secret-from"), To: []byte("secret-to"), Now: time.Now(), ExpiresAt: time.Now()})
					return err
				},
				"ListByCustomer": func(ctx context.Context) error { _, err := s.ListByCustomer(ctx, "c"); return err },
				"Ping":           s.Ping,
			}
			for name, call := range calls {
				start := time.Now()
				err := call(context.Background())
				took := time.Since(start)
				if !errors.Is(err, store.ErrUnavailable) {
					t.Fatalf("%s: got %v, want ErrUnavailable", name, err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Fatalf("%s: error shows a value sent: %v", name, err)
				}
				if took > 20*callTimeout {
					t.Fatalf("%s took %v with a call timeout of %v", name, took, callTimeout)
				}
				t.Logf("%s: %v after %v", name, err, took.Round(time.Millisecond))
			}
		})
	}
}

// TestCapacityPerOperation counts the HTTP requests each step of the token
// flow sends and logs the capacity DynamoDB Local reports for them.
func TestCapacityPerOperation(t *testing.T) {
	ep := endpoint(t)
	ctx := context.Background()
	var (
		mu       sync.Mutex
		requests = map[string]int{}
		units    = map[string]float64{}
		split    = map[string]string{}
		reports  = map[string]int{}
	)
	countRequests := func(stack *middleware.Stack) error {
		return stack.Finalize.Add(middleware.FinalizeMiddlewareFunc("countRequests",
			func(ctx context.Context, in middleware.FinalizeInput, next middleware.FinalizeHandler) (middleware.FinalizeOutput, middleware.Metadata, error) {
				mu.Lock()
				requests[awsmiddleware.GetOperationName(ctx)]++
				mu.Unlock()
				return next.HandleFinalize(ctx, in)
			}), middleware.After) // after the retry middleware: one count per attempt
	}
	client := dynamodb.New(dynamodb.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(ep), Credentials: localCredentials,
		DisableValidateResponseChecksum: true,
		APIOptions:                      []func(*middleware.Stack) error{countRequests},
	})
	s := NewFromClient(client, Options{
		Table: tableName(t), CallTimeout: testCallTimeout,
		OnCapacity: func(op string, cc *types.ConsumedCapacity) {
			mu.Lock()
			units[op] += aws.ToFloat64(cc.CapacityUnits)
			reports[op]++
			if cc.Table != nil {
				split[op] += fmt.Sprintf(" table %.1f", aws.ToFloat64(cc.Table.CapacityUnits))
			}
			for name, c := range cc.GlobalSecondaryIndexes {
				split[op] += fmt.Sprintf(" %s %.1f", name, aws.ToFloat64(c.CapacityUnits))
			}
			mu.Unlock()
		},
	})
	dropTable(t, client, s.Table())
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}

	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	h := func(s string) []byte { return []byte(fmt.Sprintf("%-32s", s)) }
	sess := store.Session{
		ID: "0123456789abcdef0123456789abcdef", CustomerID: "customer-42", TokenHash: h("t0"),
		CreatedAt: now, RefreshedAt: now, ExpiresAt: now.Add(15 * time.Minute), RememberMe: true,
		Claims: []byte(`{"group":"vip"}`), UserAgent: "Mozilla/5.0 (X11; Linux x86_64)", IP: "192.0.2.1",
	}
	steps := []struct {
		name, op string
		requests int
		run      func() error
	}{
		{"login (Create)", "Create", 1, func() error { return s.Create(ctx, sess) }},
		{"refresh (Rotate)", "Rotate", 1, func() error {
			_, err := s.Rotate(ctx, sess.ID, store.Rotation{From: h("t0"), To: h("t1"), Now: now.Add(time.Minute), ExpiresAt: now.Add(16 * time.Minute)})
			return err
		}},
		{"grace refresh (Rotate, conflict)", "Rotate", 1, func() error {
			_, err := s.Rotate(ctx, sess.ID, store.Rotation{From: h("t0"), To: h("t1b"), Now: now.Add(time.Minute), ExpiresAt: now.Add(16 * time.Minute)})
			if !errors.Is(err, store.ErrConflict) {
				return fmt.Errorf("got %v, want ErrConflict", err)
			}
			return nil
		}},
		{"extend (Extend)", "Extend", 1, func() error { _, err := s.Extend(ctx, sess.ID, now.Add(time.Hour)); return err }},
		{"read (Get)", "Get", 1, func() error { _, err := s.Get(ctx, sess.ID); return err }},
		// A query of the keys-only index, then a consistent read of the sessions.
		{"list (ListByCustomer)", "ListByCustomer", 2, func() error { _, err := s.ListByCustomer(ctx, sess.CustomerID); return err }},
		{"revoke (Delete)", "Delete", 1, func() error { _, err := s.Delete(ctx, sess.ID); return err }},
	}
	for _, step := range steps {
		mu.Lock()
		clear(requests)
		clear(units)
		clear(split)
		clear(reports)
		mu.Unlock()
		if err := step.run(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		mu.Lock()
		n := 0
		for _, c := range requests {
			n += c
		}
		capacity := "not reported"
		if reports[step.op] > 0 {
			capacity = fmt.Sprintf("%.1f capacity units (%s)", units[step.op], strings.TrimSpace(split[step.op]))
		}
		t.Logf("%-34s %d request(s) %v, %s", step.name, n, requests, capacity)
		mu.Unlock()
		if n != step.requests {
			t.Errorf("%s sent %d requests, want exactly %d", step.name, n, step.requests)
		}
	}
}

func TestCountersConformance(t *testing.T) {
	endpoint(t)
	s := newLocalStore(t)
	storetest.RunCounters(t, func(*testing.T) store.Counters { return s })
}
