package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/meshauth/meshauth/internal/store"
	"github.com/meshauth/meshauth/internal/store/dynamo"
)

const dynamoRegion = "us-east-1"

var localCredentials = credentials.NewStaticCredentialsProvider("local", "local", "")

// newDynamoStore returns a store on table at endpoint, built exactly as the
// service builds its own (dynamo.New: the SDK's standard HTTP client and
// retryer, the store's call timeout).
func newDynamoStore(ctx context.Context, endpoint, table string) (*dynamo.Store, error) {
	return dynamo.New(ctx, dynamo.Options{Table: table, Region: dynamoRegion, Endpoint: endpoint, Credentials: localCredentials})
}

// dropTable deletes a table the harness created; DynamoDB Local runs in
// memory, but a long-running one should not fill up with bench tables.
func dropTable(endpoint, table string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := newDynamoStore(ctx, endpoint, table)
	if err != nil {
		return
	}
	_, _ = s.Client().DeleteTable(ctx, &dynamodb.DeleteTableInput{TableName: aws.String(table)})
}

func uniqueTable(kind string) string {
	return "meshauth-bench-" + kind + "-" + strconv.FormatInt(time.Now().UnixNano(), 36)
}

// dynamoCeiling measures what DynamoDB Local sustains for a refresh's one
// store call, issued straight from Go: users sessions in a fresh table, each
// rotated in a loop (store.Sessions.Rotate, the service's own UpdateItem with
// its condition) with a fresh random hash each time.
func dynamoCeiling(ctx context.Context, endpoint string, users int, warmup, d time.Duration, storePID int) (*Measure, error) {
	table := uniqueTable("ceiling")
	s, err := newDynamoStore(ctx, endpoint, table)
	if err != nil {
		return nil, err
	}
	if err := s.Migrate(ctx); err != nil {
		return nil, fmt.Errorf("create table %s: %w", table, err)
	}
	defer dropTable(endpoint, table)

	now := time.Now()
	ids := make([]string, users)
	hashes := make([][]byte, users)
	for i := range ids {
		ids[i] = fmt.Sprintf("ceiling-%d-%d", now.UnixNano(), i)
		hashes[i] = randomHash()
		err := s.Create(ctx, store.Session{ID: ids[i], CustomerID: "c" + strconv.Itoa(i), TokenHash: hashes[i],
			CreatedAt: now, RefreshedAt: now, ExpiresAt: now.Add(time.Hour)})
		if err != nil {
			return nil, fmt.Errorf("create session: %w", err)
		}
	}

	win := &window{start: time.Now().Add(warmup)}
	win.end = win.start.Add(d)
	all := make([]*stats, users)
	var wg sync.WaitGroup
	for i := range users {
		all[i] = newStats()
		wg.Go(func() {
			for win.open(time.Now()) && ctx.Err() == nil {
				to := randomHash()
				start := time.Now()
				_, err := s.Rotate(ctx, ids[i], store.Rotation{From: hashes[i], To: to, Now: start, ExpiresAt: start.Add(idleTTL)})
				end := time.Now()
				code := ""
				switch {
				case err == nil:
					hashes[i] = to
				case errors.Is(err, store.ErrConflict):
					code = "CONFLICT"
				case errors.Is(err, store.ErrUnavailable):
					code = "STORE_UNAVAILABLE"
				default:
					code = "ERROR"
				}
				if !end.Before(win.start) && !end.After(win.end) {
					all[i].record("rotate", end.Sub(start), code)
				}
			}
		})
	}
	m := newMeasure()
	var at0 snapshot
	m.Window, err = probeWindow(ctx, win, func(start bool) {
		if start {
			at0 = takeSnapshot(0, storePID)
			return
		}
		m.fill(at0, takeSnapshot(0, storePID))
	})
	wg.Wait()
	m.Stats = newStats()
	for _, st := range all {
		m.Stats.merge(st)
	}
	return m, err
}

func randomHash() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return b
}

// dynamoLocalPID returns the pid of the DynamoDB Local that
// scripts/dynamodb-local.sh started (from .tools/dynamodb-local/pid under
// root), or 0.
func dynamoLocalPID(root string) int {
	b, err := os.ReadFile(filepath.Join(root, ".tools", "dynamodb-local", "pid"))
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0
	}
	if _, err := procCPU(pid); err != nil {
		return 0
	}
	return pid
}
