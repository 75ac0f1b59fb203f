package dynamo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/meshauth/meshauth/internal/store"
)

var _ store.Counters = (*Store)(nil)

// counterPrefix starts the partition key of a counter item, beside the
// sessions in the same table: pk "COUNT#<key>", n (N) the count, expires_at
// (N, unix ms) its end, and ttl (N, unix s) so that DynamoDB deletes it.
const counterPrefix = "COUNT#"

// conflictAttempts bounds the retries of a transaction that lost to a
// concurrent one on the same counter.
const conflictAttempts = 4

func counterKey(k string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: counterPrefix + k}}
}

// Acquire implements store.Counters with one TransactWriteItems: every
// counter gets "ADD n 1" on the condition that it is below its Max, so the
// transaction adds to all or to none. A transaction cancelled by a failed
// condition names, per item, which counters were full. One cancelled by a
// concurrent transaction on the same counters is retried; when that keeps
// happening, every limit is reported full: under that much contention on
// one account or address, refusing is the safe answer.
func (s *Store) Acquire(ctx context.Context, limits []store.Limit) ([]int, error) {
	if len(limits) == 0 {
		return nil, nil
	}
	items := make([]types.TransactWriteItem, len(limits))
	for i, l := range limits {
		items[i] = types.TransactWriteItem{Update: &types.Update{
			TableName:                &s.table,
			Key:                      counterKey(l.Key),
			UpdateExpression:         aws.String("ADD n :one SET expires_at = if_not_exists(expires_at, :exp), #ttl = if_not_exists(#ttl, :ttl)"),
			ConditionExpression:      aws.String("attribute_not_exists(n) OR n < :max"),
			ExpressionAttributeNames: map[string]string{"#ttl": TTLAttribute},
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":one": &types.AttributeValueMemberN{Value: "1"},
				":max": &types.AttributeValueMemberN{Value: strconv.FormatInt(l.Max, 10)},
				":exp": &types.AttributeValueMemberN{Value: millis(l.ExpiresAt)},
				":ttl": &types.AttributeValueMemberN{Value: ttlSeconds(l.ExpiresAt)},
			},
		}}
	}
	for attempt := 1; ; attempt++ {
		reasons, err := s.transact(ctx, "acquire counters", items)
		if err != nil || reasons == nil {
			return nil, err
		}
		var full []int
		conflict := false
		for i, r := range reasons {
			switch aws.ToString(r.Code) {
			case "ConditionalCheckFailed":
				full = append(full, i)
			case "TransactionConflict":
				conflict = true
			}
		}
		if len(full) > 0 {
			return full, nil
		}
		if !conflict {
			return nil, fmt.Errorf("dynamodb acquire counters: %w: transaction cancelled", store.ErrUnavailable)
		}
		if attempt == conflictAttempts {
			all := make([]int, len(limits))
			for i := range all {
				all[i] = i
			}
			return all, nil
		}
		if err := sleep(ctx, time.Duration(rand.Int64N(int64(20*time.Millisecond)))+time.Millisecond); err != nil {
			return nil, wrap("acquire counters", err)
		}
	}
}

// Release implements store.Counters with one TransactWriteItems of
// "ADD n -1" on counters that still exist above zero; counters that do not
// (their window ended and DynamoDB deleted them) are left out and the rest
// released again.
func (s *Store) Release(ctx context.Context, limits []store.Limit) error {
	pending := make([]types.TransactWriteItem, 0, len(limits))
	for _, l := range limits {
		pending = append(pending, types.TransactWriteItem{Update: &types.Update{
			TableName:           &s.table,
			Key:                 counterKey(l.Key),
			UpdateExpression:    aws.String("ADD n :minus"),
			ConditionExpression: aws.String("n > :zero"),
			ExpressionAttributeValues: map[string]types.AttributeValue{
				":minus": &types.AttributeValueMemberN{Value: "-1"},
				":zero":  &types.AttributeValueMemberN{Value: "0"},
			},
		}})
	}
	for attempt := 1; len(pending) > 0 && attempt <= conflictAttempts; attempt++ {
		reasons, err := s.transact(ctx, "release counters", pending)
		if err != nil || reasons == nil {
			return err
		}
		var again []types.TransactWriteItem
		for i, r := range reasons {
			if aws.ToString(r.Code) != "ConditionalCheckFailed" {
				again = append(again, pending[i])
			}
		}
		pending = again
	}
	return nil
}

// transact runs one TransactWriteItems. It returns the cancellation reasons,
// one per item, when DynamoDB cancelled the transaction, and nil when it
// was applied.
func (s *Store) transact(ctx context.Context, op string, items []types.TransactWriteItem) ([]types.CancellationReason, error) {
	cctx, cancel := s.call(ctx)
	defer cancel()
	_, err := s.client.TransactWriteItems(cctx, &dynamodb.TransactWriteItemsInput{TransactItems: items})
	var cancelled *types.TransactionCanceledException
	if errors.As(err, &cancelled) && len(cancelled.CancellationReasons) == len(items) {
		return cancelled.CancellationReasons, nil
	}
	if err != nil {
		return nil, wrap(op, err)
	}
	return nil, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}
