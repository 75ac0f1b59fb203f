package dynamo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
)

// MigrateTimeout bounds how long Migrate waits for a new table to become active.
const MigrateTimeout = 5 * time.Minute

// Migrate makes the table ready, and may be called any number of times: it
// creates the table with its customer_id-index (keys only, on-demand
// billing) unless it exists, waits until the table and its indexes are ACTIVE, checks them as
// Verify does, and turns on time to live on the ttl attribute unless it is on.
func (s *Store) Migrate(ctx context.Context) error {
	if err := s.credentials(ctx, "create table "+s.table); err != nil {
		return err
	}
	cctx, cancel := s.call(ctx)
	_, err := s.client.CreateTable(cctx, &dynamodb.CreateTableInput{
		TableName:   &s.table,
		BillingMode: types.BillingModePayPerRequest,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("pk"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("customer_id"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{{AttributeName: aws.String("pk"), KeyType: types.KeyTypeHash}},
		GlobalSecondaryIndexes: []types.GlobalSecondaryIndex{{
			IndexName:  aws.String(CustomerIndex),
			KeySchema:  []types.KeySchemaElement{{AttributeName: aws.String("customer_id"), KeyType: types.KeyTypeHash}},
			Projection: &types.Projection{ProjectionType: types.ProjectionTypeKeysOnly},
		}},
	})
	cancel()
	var inUse *types.ResourceInUseException
	if err != nil && !errors.As(err, &inUse) {
		return wrap("create table "+s.table, err)
	}
	waiter := dynamodb.NewTableExistsWaiter(s.client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 500 * time.Millisecond
		o.MaxDelay = 5 * time.Second
		o.Retryable = tableNotReady
	})
	out, err := waiter.WaitForOutput(ctx, &dynamodb.DescribeTableInput{TableName: &s.table}, MigrateTimeout)
	if err != nil {
		return wrap("wait for table "+s.table, err)
	}
	if err := s.check(out.Table); err != nil {
		return err
	}
	return s.enableTTL(ctx)
}

// tableNotReady tells the waiter to go on until the table and every global
// secondary index are ACTIVE.
func tableNotReady(_ context.Context, _ *dynamodb.DescribeTableInput, out *dynamodb.DescribeTableOutput, err error) (bool, error) {
	if err != nil {
		var missing *types.ResourceNotFoundException
		if errors.As(err, &missing) {
			return true, nil
		}
		return false, err
	}
	if out.Table == nil || out.Table.TableStatus != types.TableStatusActive {
		return true, nil
	}
	for _, gsi := range out.Table.GlobalSecondaryIndexes {
		if gsi.IndexStatus != types.IndexStatusActive {
			return true, nil
		}
	}
	return false, nil
}

// Verify checks, without changing anything, that the table exists with the
// key and index this package needs; use it instead of Migrate when the table
// is created elsewhere. It does not check time to live. A missing table is
// ErrNoTable; missing credentials are ErrNoCredentials.
func (s *Store) Verify(ctx context.Context) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.credentials(ctx, "describe table "+s.table); err != nil {
		return err
	}
	out, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &s.table})
	if err != nil {
		return wrap("describe table "+s.table, err)
	}
	return s.check(out.Table)
}

// check reports every way in which t differs from the table this package needs.
func (s *Store) check(t *types.TableDescription) error {
	if t == nil {
		return fmt.Errorf("dynamodb table %s: no description", s.table)
	}
	var problems []string
	attrType := map[string]types.ScalarAttributeType{}
	for _, a := range t.AttributeDefinitions {
		attrType[aws.ToString(a.AttributeName)] = a.AttributeType
	}
	if len(t.KeySchema) != 1 || aws.ToString(t.KeySchema[0].AttributeName) != "pk" || attrType["pk"] != types.ScalarAttributeTypeS {
		problems = append(problems, "its key must be the string partition key pk alone")
	}
	var gsi *types.GlobalSecondaryIndexDescription
	for i := range t.GlobalSecondaryIndexes {
		if aws.ToString(t.GlobalSecondaryIndexes[i].IndexName) == CustomerIndex {
			gsi = &t.GlobalSecondaryIndexes[i]
		}
	}
	switch {
	case gsi == nil:
		problems = append(problems, "it has no global secondary index "+CustomerIndex)
	case len(gsi.KeySchema) != 1 || aws.ToString(gsi.KeySchema[0].AttributeName) != "customer_id" || attrType["customer_id"] != types.ScalarAttributeTypeS:
		problems = append(problems, "index "+CustomerIndex+" must have the string partition key customer_id alone")
	}
	if len(problems) > 0 {
		return fmt.Errorf("dynamodb table %s: %s", s.table, strings.Join(problems, "; "))
	}
	return nil
}

// enableTTL turns on time to live on the ttl attribute unless it is on.
func (s *Store) enableTTL(ctx context.Context) error {
	cctx, cancel := s.call(ctx)
	desc, err := s.client.DescribeTimeToLive(cctx, &dynamodb.DescribeTimeToLiveInput{TableName: &s.table})
	cancel()
	if err != nil {
		return wrap("describe time to live of "+s.table, err)
	}
	if d := desc.TimeToLiveDescription; d != nil &&
		(d.TimeToLiveStatus == types.TimeToLiveStatusEnabled || d.TimeToLiveStatus == types.TimeToLiveStatusEnabling) {
		if name := aws.ToString(d.AttributeName); name != TTLAttribute {
			return fmt.Errorf("dynamodb table %s: time to live is on attribute %q, not %q", s.table, name, TTLAttribute)
		}
		return nil
	}
	cctx, cancel = s.call(ctx)
	defer cancel()
	_, err = s.client.UpdateTimeToLive(cctx, &dynamodb.UpdateTimeToLiveInput{
		TableName: &s.table,
		TimeToLiveSpecification: &types.TimeToLiveSpecification{
			AttributeName: aws.String(TTLAttribute),
			Enabled:       aws.Bool(true),
		},
	})
	var api smithy.APIError
	if errors.As(err, &api) && api.ErrorCode() == "ValidationException" &&
		strings.Contains(strings.ToLower(api.ErrorMessage()), "already enabled") {
		return nil // another instance turned it on since we looked
	}
	if err != nil {
		return wrap("enable time to live on "+s.table, err)
	}
	return nil
}
