package storetest

import (
	"os"
	"testing"
)

// DynamoDBLocal returns DynamoDB Local's endpoint (DYNAMODB_TEST_ENDPOINT,
// as scripts/dynamodb-local.sh sets it), or skips the test; under CI=true,
// which must run it, it fails instead.
func DynamoDBLocal(t testing.TB) string {
	t.Helper()
	ep := os.Getenv("DYNAMODB_TEST_ENDPOINT")
	if ep == "" {
		msg := "needs DynamoDB Local: run the tests with scripts/dynamodb-local.sh run -- go test ./..."
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return ep
}
