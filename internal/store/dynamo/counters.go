package dynamo

import (
	"context"
	"maps"
	"strconv"

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

func counterKey(k string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: counterPrefix + k}}
}

// counterUpdate is the UpdateItem of one counter: ADD delta, with the
// counter's end and time-to-live set when it is created, and the new count
// returned (or, when the condition fails, the count as it stands).
func (s *Store) counterUpdate(l store.Limit, delta int64, condition string, values map[string]types.AttributeValue) *dynamodb.UpdateItemInput {
	v := map[string]types.AttributeValue{
		":d":   &types.AttributeValueMemberN{Value: strconv.FormatInt(delta, 10)},
		":exp": &types.AttributeValueMemberN{Value: millis(l.ExpiresAt)},
		":ttl": &types.AttributeValueMemberN{Value: ttlSeconds(l.ExpiresAt)},
	}
	maps.Copy(v, values)
	return &dynamodb.UpdateItemInput{
		TableName:                           &s.table,
		Key:                                 counterKey(l.Key),
		UpdateExpression:                    aws.String("ADD n :d SET expires_at = if_not_exists(expires_at, :exp), #ttl = if_not_exists(#ttl, :ttl)"),
		ConditionExpression:                 aws.String(condition),
		ExpressionAttributeNames:            map[string]string{"#ttl": TTLAttribute},
		ExpressionAttributeValues:           v,
		ReturnValues:                        types.ReturnValueUpdatedNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		ReturnConsumedCapacity:              s.capacity(),
	}
}

// count is the n attribute of item, 0 when missing.
func count(item map[string]types.AttributeValue) int64 {
	if v, ok := item["n"].(*types.AttributeValueMemberN); ok {
		n, _ := strconv.ParseInt(v.Value, 10, 64)
		return n
	}
	return 0
}

// Add implements store.Counters with one UpdateItem ("ADD n delta"). A
// negative delta applies only while the count stays at zero or above.
func (s *Store) Add(ctx context.Context, l store.Limit, delta int64) (int64, error) {
	cond := "attribute_not_exists(n) OR n >= :zero"
	vals := map[string]types.AttributeValue{":zero": &types.AttributeValueMemberN{Value: "0"}}
	if delta < 0 {
		cond = "n >= :need"
		vals = map[string]types.AttributeValue{":need": &types.AttributeValueMemberN{Value: strconv.FormatInt(-delta, 10)}}
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.client.UpdateItem(ctx, s.counterUpdate(l, delta, cond, vals))
	if err != nil {
		if ccf := conditionFailed(err); ccf != nil {
			return count(ccf.Item), nil
		}
		return 0, wrap("add to counter", err)
	}
	s.report("CounterAdd", out.ConsumedCapacity)
	return count(out.Attributes), nil
}

// Reserve implements store.Counters with one conditional UpdateItem ("ADD
// n 1" if n < Max).
func (s *Store) Reserve(ctx context.Context, l store.Limit) (int64, bool, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.client.UpdateItem(ctx, s.counterUpdate(l, 1, "attribute_not_exists(n) OR n < :max",
		map[string]types.AttributeValue{":max": &types.AttributeValueMemberN{Value: strconv.FormatInt(l.Max, 10)}}))
	if err != nil {
		if ccf := conditionFailed(err); ccf != nil {
			return count(ccf.Item), false, nil
		}
		return 0, false, wrap("reserve counter", err)
	}
	s.report("CounterReserve", out.ConsumedCapacity)
	return count(out.Attributes), true, nil
}
