package dynamo

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/meshauth/meshauth/internal/store"
)

var _ store.LegacySessions = (*Legacy)(nil)

// Legacy is the table of the GraphQL Mesh auth module meshauth replaces:
// partition key customer_id (S), sort key refresh_token_hash (S), and ttl
// (S, unix seconds). meshauth only ever deletes its rows; the table can be
// dropped once the longest legacy session has ended.
type Legacy struct {
	s     *Store
	table string
}

// Legacy returns the module's table named table, reached with s's client
// and per-call bound.
func (s *Store) Legacy(table string) *Legacy { return &Legacy{s: s, table: table} }

// DeleteLegacy implements store.LegacySessions: one conditional DeleteItem,
// so that of concurrent callers exactly one consumes the row.
func (l *Legacy) DeleteLegacy(ctx context.Context, customerID, tokenHash string) error {
	ctx, cancel := l.s.call(ctx)
	defer cancel()
	out, err := l.s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName: &l.table,
		Key: map[string]types.AttributeValue{
			"customer_id":        &types.AttributeValueMemberS{Value: customerID},
			"refresh_token_hash": &types.AttributeValueMemberS{Value: tokenHash},
		},
		ConditionExpression:    aws.String("attribute_exists(customer_id)"),
		ReturnConsumedCapacity: l.s.capacity(),
	})
	if err != nil {
		if conditionFailed(err) != nil {
			return store.ErrNotFound
		}
		return wrap("delete legacy session", err)
	}
	l.s.report("DeleteLegacy", out.ConsumedCapacity)
	return nil
}
