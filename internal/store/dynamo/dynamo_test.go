package dynamo

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
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
	ep := storetest.DynamoDBLocal(t)
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
	storetest.DynamoDBLocal(t)
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

// TestUnavailable needs no DynamoDB: an endpoint that drops every connection
// and one that accepts them but never answers must both give ErrUnavailable,
// in about the call timeout. (The first keeps its port: a port closed for the
// test could be taken by another process and answer.)
func TestUnavailable(t *testing.T) {
	const callTimeout = 300 * time.Millisecond
	tests := []struct {
		name     string
		endpoint func(t *testing.T) string
	}{
		{"DroppedConnections", func(t *testing.T) string {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
			t.Cleanup(func() { l.Close() })
			return "http://" + l.Addr().String()
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

// TestOldItemsServe: an item in the layout written before the compact one
// (encodeOld) is read, rotated, refused with a stale hash, extended, listed
// and deleted like any other, and the first rotation leaves it in the new
// layout for the attributes it writes.
func TestOldItemsServe(t *testing.T) {
	s := newLocalStore(t)
	ctx := context.Background()
	at := time.Date(2030, 1, 2, 3, 4, 5, 6e6, time.UTC)
	h := func(s string) []byte { return []byte(fmt.Sprintf("%-32s", s)) }
	old := store.Session{
		ID: "old-1", CustomerID: "1001", NumericCustomerID: true, TokenHash: h("t0"),
		CreatedAt: at, RefreshedAt: at, ExpiresAt: at.Add(15 * time.Minute), RememberMe: true,
		Claims: []byte(`{"group":"vip"}`), UserAgent: chromeUA, IP: clientV6,
	}
	if _, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: encodeOld(old)}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, old)

	now := at.Add(time.Minute)
	rotated := old
	rotated.TokenHash, rotated.PrevTokenHash = h("t1"), h("t0")
	rotated.RotatedAt, rotated.RefreshedAt, rotated.ExpiresAt = now, now, now.Add(15*time.Minute)
	got, err = s.Rotate(ctx, old.ID, store.Rotation{From: h("t0"), To: h("t1"), Now: now, ExpiresAt: rotated.ExpiresAt})
	if err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, rotated)
	raw, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{TableName: &s.table, Key: key(old.ID), ConsistentRead: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{oldHash, oldPrevHash, oldExpires, oldRotated, oldRefreshed} {
		if _, ok := raw.Item[name]; ok {
			t.Errorf("rotation left the old attribute %s", name)
		}
	}
	if got, err = s.Rotate(ctx, old.ID, store.Rotation{From: h("t0"), To: h("t2"), Now: now, ExpiresAt: now.Add(time.Hour)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rotation from the previous hash: %v, want ErrConflict", err)
	}
	mustEqual(t, got, rotated)

	// An old item extended before any rotation keeps its old hash attribute,
	// and the next rotation still matches it.
	other := old
	other.ID = "old-2"
	if _, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{TableName: &s.table, Item: encodeOld(other)}); err != nil {
		t.Fatal(err)
	}
	if got, err = s.Extend(ctx, other.ID, at.Add(time.Hour)); err != nil || !got.ExpiresAt.Equal(at.Add(time.Hour)) {
		t.Fatalf("Extend = %+v, %v", got, err)
	}
	if _, err := s.Rotate(ctx, other.ID, store.Rotation{From: h("t0"), To: h("t1"), Now: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatalf("rotation after Extend: %v", err)
	}
	if _, err := s.Rotate(ctx, other.ID, store.Rotation{From: h("t1"), To: h("t2"), Now: at.Add(2 * time.Hour), ExpiresAt: at.Add(3 * time.Hour)}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rotation after the end: %v, want ErrConflict", err)
	}

	list, err := s.ListByCustomer(ctx, old.CustomerID)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListByCustomer = %d sessions, %v; want 2", len(list), err)
	}
	if got, err = s.Delete(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	mustEqual(t, got, rotated)
}

// TestCapacityPerOperation counts the HTTP requests each step of the token
// flow sends and logs the capacity DynamoDB Local reports for them.
func TestCapacityPerOperation(t *testing.T) {
	ep := storetest.DynamoDBLocal(t)
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
		ID: "yDJBzB0l4Y2H5kVvP8s1Ag", CustomerID: "1048576", NumericCustomerID: true, TokenHash: h("t0"),
		CreatedAt: now, RefreshedAt: now, ExpiresAt: now.Add(15 * time.Minute), RememberMe: true,
		Claims: []byte(`{"group":"vip"}`), UserAgent: chromeUA, IP: clientV6,
	}
	t.Logf("item at login %d bytes, %d after the first rotation (the layout before: %d and %d)",
		itemSize(t, encode(sess)), itemSize(t, encode(sess))+len(attrPrevHash)+32+len(attrRotated)+8,
		itemSize(t, encodeOld(sess)), itemSize(t, encodeOld(sess))+len(oldPrevHash)+32+len(oldRotated)+8)
	capacityLimit := store.Limit{Key: "capacity-test", Windows: []store.Window{{Name: "n", Max: 20}, {Name: "w60_1", Max: 5}}, ExpiresAt: now.Add(time.Hour)}
	steps := []struct {
		name, op string
		requests int
		run      func() error
	}{
		{"login (Create)", "Create", 1, func() error { return s.Create(ctx, sess) }},
		// The session cap's count after a login: a keys-only query, under the cap.
		{"login cap (TrimByCustomer)", "TrimByCustomer", 1, func() error { _, err := s.TrimByCustomer(ctx, sess.CustomerID, 50); return err }},
		// A wrong password adds to its account's counter and its address's:
		// one request each, for every window (here the defaults', a minute
		// within an hour).
		{"wrong password, per subject (counter Add)", "CounterAdd", 1, func() error {
			_, err := s.Add(ctx, capacityLimit, 1)
			return err
		}},
		{"reservation, per subject (counter Reserve)", "CounterReserve", 1, func() error {
			_, _, err := s.Reserve(ctx, capacityLimit)
			return err
		}},
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
		if step.op == "Rotate" && reports[step.op] > 0 && units[step.op] != 1 {
			t.Errorf("%s consumed %.1f capacity units, want 1", step.name, units[step.op])
		}
	}
}

func TestCountersConformance(t *testing.T) {
	storetest.DynamoDBLocal(t)
	s := newLocalStore(t)
	storetest.RunCounters(t, func(*testing.T) store.Counters { return s })
}
