package server_test

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshauth/meshauth"
	"github.com/meshauth/meshauth/internal/login"
	"github.com/meshauth/meshauth/internal/servicetest"
)

// slowPlatform rejects every password after a pause, so that concurrent
// attempts overlap, and counts the checks that reached it.
type slowPlatform struct{ checks atomic.Int64 }

func (p *slowPlatform) Login(context.Context, string, string) (login.Identity, error) {
	p.checks.Add(1)
	time.Sleep(30 * time.Millisecond)
	return login.Identity{}, login.ErrInvalidCredentials
}

// TestLoginLimitsOnDynamoDB: the attempt limits against DynamoDB Local, on
// one instance and on two sharing the table, attacked at once: of 40
// concurrent wrong passwords for one account, at most Max reach the platform
// through one instance, at most Max + 1 through two (and one fewer when a
// failure's count crosses a reservation: the bound errs on the safe side).
// The binding window (5 an hour) shares its item with a day's window.
func TestLoginLimitsOnDynamoDB(t *testing.T) {
	endpoint := servicetest.DynamoDBLocal(t)
	for _, instances := range []int{1, 2} {
		t.Run(strconv.Itoa(instances)+" instances", func(t *testing.T) {
			vars := map[string]string{
				"STORE": "dynamodb", "DYNAMO_DB_ENDPOINT": endpoint, "DYNAMO_DB_REGION": "us-east-1", "DYNAMO_DB_CREATE_TABLE": "true",
				"DYNAMO_DB_AUTH_TABLE": "meshauth-limits-" + strconv.FormatInt(time.Now().UnixNano(), 36),
				"LOGIN_LIMIT_ACCOUNT":  "5/1h,50/24h", "LOGIN_LIMIT_IP": "off",
			}
			platform := &slowPlatform{}
			var urls []string
			for range instances {
				s := servicetest.Start(t, vars, meshauth.Options{Login: platform})
				urls = append(urls, s.URL)
			}
			const n = 40
			codes := make([]string, n)
			var wg sync.WaitGroup
			for i := range n {
				e := &env{url: urls[i%len(urls)]}
				wg.Go(func() {
					codes[i] = code(t, e.do(t, loginQ, map[string]any{"e": "target@example.com", "p": "wrong"}, nil))
				})
			}
			wg.Wait()
			count := map[string]int{}
			for _, c := range codes {
				count[c]++
			}
			checks := int(platform.checks.Load())
			if checks < 4 || checks > 5+instances-1 || count["INVALID_CREDENTIALS"] != checks || count["RATE_LIMITED"] != n-checks {
				t.Fatalf("%d instances: %d checks reached the platform (want 4 to %d), codes %v", instances, checks, 5+instances-1, count)
			}
		})
	}
}
