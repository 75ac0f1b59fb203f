package dynamo

import (
	"context"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/meshauth/meshauth/internal/store"
)

var _ store.Counters = (*Store)(nil)

// counterPrefix starts the partition key of a counter item, beside the
// sessions in the same table: pk "COUNT#<key>", one number attribute per
// window, named by the window (the service names the longest window "n",
// as before windows shared an item), expires_at (N, unix ms) the longest
// window's end, and ttl (N, unix s) so that DynamoDB deletes it.
const counterPrefix = "COUNT#"

func counterKey(k string) map[string]types.AttributeValue {
	return map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: counterPrefix + k}}
}

// condition is what every window of a counter update must satisfy.
type condition int

const (
	always     condition = iota
	belowMax             // Reserve: the window is below its Max (missing is zero)
	canTakeAll           // a negative Add: the window is at least -delta
)

// counterUpdate is the one UpdateItem of a call: ADD delta to every window
// of l, provided each satisfies cond, with the item's end and time-to-live
// set when it is created, the new counts returned (or, when the condition
// fails, the item as it stands).
func (s *Store) counterUpdate(l store.Limit, delta int64, cond condition) *dynamodb.UpdateItemInput {
	names := map[string]string{"#ttl": TTLAttribute}
	values := map[string]types.AttributeValue{
		":d":   &types.AttributeValueMemberN{Value: strconv.FormatInt(delta, 10)},
		":exp": &types.AttributeValueMemberN{Value: millis(l.ExpiresAt)},
		":ttl": &types.AttributeValueMemberN{Value: ttlSeconds(l.ExpiresAt)},
	}
	var add, conds []string
	for i, w := range l.Windows {
		attr, bound := "#w"+strconv.Itoa(i), ":b"+strconv.Itoa(i)
		names[attr] = w.Name
		add = append(add, attr+" :d")
		switch cond {
		case belowMax:
			values[bound] = &types.AttributeValueMemberN{Value: strconv.FormatInt(w.Max, 10)}
			if w.Max > 0 {
				conds = append(conds, "(attribute_not_exists("+attr+") OR "+attr+" < "+bound+")")
			} else {
				// No room even for a missing count (zero): a comparison with
				// a missing attribute is false.
				conds = append(conds, attr+" < "+bound)
			}
		case canTakeAll:
			values[bound] = &types.AttributeValueMemberN{Value: strconv.FormatInt(-delta, 10)}
			conds = append(conds, attr+" >= "+bound)
		}
	}
	in := &dynamodb.UpdateItemInput{
		TableName:                           &s.table,
		Key:                                 counterKey(l.Key),
		UpdateExpression:                    aws.String("ADD " + strings.Join(add, ", ") + " SET expires_at = if_not_exists(expires_at, :exp), #ttl = if_not_exists(#ttl, :ttl)"),
		ExpressionAttributeNames:            names,
		ExpressionAttributeValues:           values,
		ReturnValues:                        types.ReturnValueUpdatedNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		ReturnConsumedCapacity:              s.capacity(),
	}
	if len(conds) > 0 {
		in.ConditionExpression = aws.String(strings.Join(conds, " AND "))
	}
	return in
}

// counts are the windows of l in item, 0 where missing.
func counts(l store.Limit, item map[string]types.AttributeValue) []int64 {
	out := make([]int64, len(l.Windows))
	for i, w := range l.Windows {
		if v, ok := item[w.Name].(*types.AttributeValueMemberN); ok {
			out[i], _ = strconv.ParseInt(v.Value, 10, 64)
		}
	}
	return out
}

// Add implements store.Counters with one UpdateItem ("ADD #w0 :d, ...").
// A negative delta has the condition that every window can take it.
func (s *Store) Add(ctx context.Context, l store.Limit, delta int64) ([]int64, error) {
	cond := always
	if delta < 0 {
		cond = canTakeAll
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.client.UpdateItem(ctx, s.counterUpdate(l, delta, cond))
	if err != nil {
		if ccf := conditionFailed(err); ccf != nil {
			return counts(l, ccf.Item), nil
		}
		return nil, wrap("add to counter", err)
	}
	s.report("CounterAdd", out.ConsumedCapacity)
	return counts(l, out.Attributes), nil
}

// Reserve implements store.Counters with one conditional UpdateItem ("ADD
// #w0 1, ..." if every window is below its Max).
func (s *Store) Reserve(ctx context.Context, l store.Limit) ([]int64, bool, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.client.UpdateItem(ctx, s.counterUpdate(l, 1, belowMax))
	if err != nil {
		if ccf := conditionFailed(err); ccf != nil {
			return counts(l, ccf.Item), false, nil
		}
		return nil, false, wrap("reserve counter", err)
	}
	s.report("CounterReserve", out.ConsumedCapacity)
	return counts(l, out.Attributes), true, nil
}
