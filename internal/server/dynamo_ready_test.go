package server_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/meshauth/meshauth"
	"github.com/meshauth/meshauth/internal/servicetest"
)

// readyz is /readyz's status.
func readyz(t *testing.T, url string) int {
	t.Helper()
	res, err := http.Get(url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestTableGoneWhileRunning: DynamoDB Local in memory forgets the table when
// it alone restarts (docker compose). The service notices at its readiness
// check: without DYNAMO_DB_CREATE_TABLE it answers 503 and logs that the
// table is missing and how to create it; with it, it creates the table
// again and is ready, and logins work again.
func TestTableGoneWhileRunning(t *testing.T) {
	endpoint := servicetest.DynamoDBLocal(t)
	client := servicetest.DynamoDBClient(t, endpoint)
	for _, create := range []bool{false, true} {
		t.Run("DYNAMO_DB_CREATE_TABLE="+strconv.FormatBool(create), func(t *testing.T) {
			table := "meshauth-gone-" + strconv.FormatInt(time.Now().UnixNano(), 36)
			vars := map[string]string{
				"STORE": "dynamodb", "DYNAMO_DB_ENDPOINT": endpoint, "DYNAMO_DB_REGION": "us-east-1",
				"DYNAMO_DB_AUTH_TABLE": table, "DYNAMO_DB_CREATE_TABLE": "true", "DYNAMO_DB_TIMEOUT_IN_MILLISECONDS": "10000",
			}
			s := servicetest.Start(t, vars, meshauth.Options{Login: users()})
			t.Cleanup(func() { _, _ = client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &table}) })
			if !create {
				// An instance that only verifies the table the first made.
				vars["DYNAMO_DB_CREATE_TABLE"] = "false"
				s = servicetest.Start(t, vars, meshauth.Options{Login: users()})
			}
			e := &env{url: s.URL, clock: s.Clock, logs: s.Logs}
			if c := readyz(t, s.URL); c != http.StatusOK {
				t.Fatalf("/readyz before: %d", c)
			}
			if _, err := client.DeleteTable(context.Background(), &dynamodb.DeleteTableInput{TableName: &table}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			status := readyz(t, s.URL)
			for create && status != http.StatusOK && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
				status = readyz(t, s.URL)
			}
			if !create {
				if status != http.StatusServiceUnavailable {
					t.Fatalf("/readyz with the table gone: %d, want 503", status)
				}
				want := "DynamoDB table " + table + " is missing"
				if logs := s.Logs.String(); !strings.Contains(logs, want) || !strings.Contains(logs, "DYNAMO_DB_CREATE_TABLE=true") {
					t.Fatalf("the log does not say %q and how to create it:\n%s", want, logs)
				}
				// Clients are told to retry later, not that the service broke.
				r := e.do(t, loginQ, map[string]any{"e": "ada@example.com", "p": password}, nil)
				if c := code(t, r); c != "STORE_UNAVAILABLE" {
					t.Fatalf("login with the table gone: %s", r.Raw)
				}
				return
			}
			if status != http.StatusOK {
				t.Fatalf("/readyz did not recover: %d\n%s", status, s.Logs)
			}
			if !strings.Contains(s.Logs.String(), "created again") {
				t.Errorf("the log does not say the table was created again:\n%s", s.Logs)
			}
			e.login(t, "ada@example.com", false)
		})
	}
}
