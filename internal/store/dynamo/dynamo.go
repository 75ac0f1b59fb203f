// Package dynamo keeps sessions in an Amazon DynamoDB table: one item per
// session, a keys-only global secondary index (customer_id-index) to find a
// customer's sessions, and DynamoDB's time to live to drop sessions nobody
// ended. Every write that must be atomic is one conditional request, so
// Rotate never reads and then writes across two calls.
//
// The table design, attribute by attribute, why it is so, the atomicity and
// consistency each call gives, and the capacity each costs are written down
// once, in docs/dynamodb.md at the repository's root.
package dynamo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"

	"github.com/meshauth/meshauth/internal/store"
)

var _ store.Store = (*Store)(nil)

const (
	// DefaultCallTimeout bounds each call to DynamoDB when Options.CallTimeout is zero.
	DefaultCallTimeout = 2 * time.Second
	// DefaultMaxAttempts is how many times the SDK tries a request, the first
	// included, when Options.MaxAttempts is zero.
	DefaultMaxAttempts = 3
	// CustomerIndex is the global secondary index on customer_id.
	CustomerIndex = "customer_id-index"
	// TTLAttribute is the attribute DynamoDB's time to live reads.
	TTLAttribute = "ttl"

	keyPrefix = "SESSION#"
	// writeBatchSize and getBatchSize are the most requests one
	// BatchWriteItem and one BatchGetItem take.
	writeBatchSize = 25
	getBatchSize   = 100
	// batchAttempts bounds how often a batch's unprocessed requests are sent.
	batchAttempts = 8
)

// Options configure New.
type Options struct {
	// Table is the table's name. Required.
	Table string
	// Region is the AWS region. Empty takes it from the environment
	// (AWS_REGION) or the shared config file; New fails when there is none.
	Region string
	// Endpoint, when set, replaces DynamoDB's endpoint, e.g.
	// http://127.0.0.1:8000 for DynamoDB Local.
	Endpoint string
	// CallTimeout bounds each call to DynamoDB, its retries included; a page
	// of a query and a batch of deletes are calls of their own. Zero means
	// DefaultCallTimeout.
	CallTimeout time.Duration
	// MaxAttempts is how many times the SDK's standard retryer tries a
	// request, the first included. Zero means DefaultMaxAttempts.
	MaxAttempts int
	// Credentials replace the standard credentials chain when set (tests use
	// static ones against DynamoDB Local).
	Credentials aws.CredentialsProvider
	// OnCapacity, when set, makes every request ask for the capacity it
	// consumed (ReturnConsumedCapacity INDEXES: the total in CapacityUnits,
	// split into Table and GlobalSecondaryIndexes) and receives it, with op
	// the Store method's name. DynamoDB reports no capacity for a conditional
	// write whose condition failed, so Create, Rotate, Extend and Delete call
	// it only when they succeed.
	OnCapacity func(op string, cc *types.ConsumedCapacity)
}

// Store is the DynamoDB backend. It is safe for concurrent use.
type Store struct {
	client     *dynamodb.Client
	table      string
	timeout    time.Duration
	onCapacity func(op string, cc *types.ConsumedCapacity)
	// pageLimit, when positive, caps the items of one query page; tests set
	// it to exercise pagination.
	pageLimit int32
}

// New builds a Store from the standard AWS configuration (environment,
// shared files, then the container or instance role), with the SDK's standard
// retryer bounded to o.MaxAttempts. It sends no request: call Migrate or
// Verify, then Ping, to find out whether the table is usable.
func New(ctx context.Context, o Options) (*Store, error) {
	if o.Table == "" {
		return nil, errors.New("dynamodb store: no table name")
	}
	timeout := o.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	attempts := o.MaxAttempts
	if attempts <= 0 {
		attempts = DefaultMaxAttempts
	}
	load := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = attempts
				// Keep the backoff short enough that retries fit in one call's time.
				so.MaxBackoff = timeout / 4
			})
		}),
	}
	if o.Region != "" {
		load = append(load, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		load = append(load, config.WithCredentialsProvider(o.Credentials))
	}
	cfg, err := config.LoadDefaultConfig(ctx, load...)
	if err != nil {
		return nil, fmt.Errorf("dynamodb store: load AWS config: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("dynamodb store: no region: set it in the config or AWS_REGION")
	}
	client := dynamodb.NewFromConfig(cfg, func(do *dynamodb.Options) {
		if o.Endpoint != "" {
			do.BaseEndpoint = aws.String(o.Endpoint)
			// The SDK checks DynamoDB's x-amz-crc32 response header when
			// present; a local or proxy endpoint need not send a right one.
			do.DisableValidateResponseChecksum = true
		}
	})
	o.CallTimeout = timeout
	return NewFromClient(client, o), nil
}

// NewFromClient builds a Store on a client configured by the caller. Of o it
// uses only Table, CallTimeout (zero means DefaultCallTimeout) and OnCapacity.
func NewFromClient(client *dynamodb.Client, o Options) *Store {
	timeout := o.CallTimeout
	if timeout <= 0 {
		timeout = DefaultCallTimeout
	}
	return &Store{client: client, table: o.Table, timeout: timeout, onCapacity: o.OnCapacity}
}

// Client returns the DynamoDB client the store uses.
func (s *Store) Client() *dynamodb.Client { return s.client }

// Table returns the table's name.
func (s *Store) Table() string { return s.table }

// call bounds one request by the store's call timeout.
func (s *Store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// capacity is the ReturnConsumedCapacity setting: only when someone listens,
// and then INDEXES, which is the TOTAL plus its split between table and indexes.
func (s *Store) capacity() types.ReturnConsumedCapacity {
	if s.onCapacity == nil {
		return types.ReturnConsumedCapacityNone
	}
	return types.ReturnConsumedCapacityIndexes
}

func (s *Store) report(op string, cc *types.ConsumedCapacity) {
	if s.onCapacity != nil && cc != nil {
		s.onCapacity(op, cc)
	}
}

// Close releases nothing: the client holds no resource that needs closing.
func (s *Store) Close() error { return nil }

// Ping reports whether the table can be described, which needs the endpoint,
// the credentials and the table.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	if err := s.credentials(ctx, "ping"); err != nil {
		return err
	}
	if _, err := s.client.DescribeTable(ctx, &dynamodb.DescribeTableInput{TableName: &s.table}); err != nil {
		return wrap("ping "+s.table, err)
	}
	return nil
}

// Create stores sess with one PutItem conditioned on attribute_not_exists(pk),
// so that it never overwrites a session; a session with the same id gives
// store.ErrAlreadyExists.
func (s *Store) Create(ctx context.Context, sess store.Session) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.client.PutItem(ctx, &dynamodb.PutItemInput{
		TableName:              &s.table,
		Item:                   encode(sess),
		ConditionExpression:    aws.String("attribute_not_exists(pk)"),
		ReturnConsumedCapacity: s.capacity(),
	})
	if err != nil {
		if conditionFailed(err) != nil {
			return store.ErrAlreadyExists
		}
		return wrap("create session", err)
	}
	s.report("Create", out.ConsumedCapacity)
	return nil
}

// Get reads the session with a strongly consistent GetItem, so that it sees
// every write that succeeded before it; a missing session gives
// store.ErrNotFound. Expired sessions are returned until DynamoDB's TTL
// deletes them.
func (s *Store) Get(ctx context.Context, id string) (store.Session, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.client.GetItem(ctx, &dynamodb.GetItemInput{
		TableName:              &s.table,
		Key:                    key(id),
		ConsistentRead:         aws.Bool(true),
		ReturnConsumedCapacity: s.capacity(),
	})
	if err != nil {
		return store.Session{}, wrap("get session", err)
	}
	s.report("Get", out.ConsumedCapacity)
	if len(out.Item) == 0 {
		return store.Session{}, store.ErrNotFound
	}
	return decode(out.Item)
}

// Rotate is one UpdateItem whose condition is that the session exists, that
// its token hash equals r.From and that its expiry is after r.Now.
// DynamoDB evaluates the condition and applies the update as one atomic step
// for the item, so of concurrent rotations from the same hash exactly one
// wins (refresh-token rotation, RFC 9700 section 4.14.2). The winner gets the
// updated session (ReturnValues ALL_NEW). A loser gets the item as it stood
// when its condition failed, from the same request
// (ReturnValuesOnConditionCheckFailure ALL_OLD), with store.ErrConflict; no
// item means the session does not exist, and gives store.ErrNotFound.
//
// DynamoDB, not this process, compares the hashes; they are keyed hashes of
// random tokens, so how long a comparison takes tells an attacker nothing
// usable about a token.
func (s *Store) Rotate(ctx context.Context, id string, r store.Rotation) (store.Session, error) {
	now := &types.AttributeValueMemberN{Value: millis(r.Now)}
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &s.table,
		Key:                      key(id),
		ConditionExpression:      aws.String(rotateCondition),
		UpdateExpression:         aws.String(rotateUpdate),
		ExpressionAttributeNames: map[string]string{"#ttl": TTLAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":from": binary(r.From),
			":to":   binary(r.To),
			":now":  now,
			":exp":  &types.AttributeValueMemberN{Value: millis(r.ExpiresAt)},
			":ttl":  &types.AttributeValueMemberN{Value: ttlSeconds(r.ExpiresAt)},
		},
		ReturnValues:                        types.ReturnValueAllNew,
		ReturnValuesOnConditionCheckFailure: types.ReturnValuesOnConditionCheckFailureAllOld,
		ReturnConsumedCapacity:              s.capacity(),
	})
	if err != nil {
		if ccf := conditionFailed(err); ccf != nil {
			if len(ccf.Item) == 0 {
				return store.Session{}, store.ErrNotFound
			}
			cur, err := decode(ccf.Item)
			if err != nil {
				return store.Session{}, err
			}
			return cur, store.ErrConflict
		}
		return store.Session{}, wrap("rotate session", err)
	}
	s.report("Rotate", out.ConsumedCapacity)
	return decode(out.Attributes)
}

// Extend sets the expiry (and ttl) with one UpdateItem conditioned on the
// session existing, and returns the updated session; a missing session gives
// store.ErrNotFound.
func (s *Store) Extend(ctx context.Context, id string, expiresAt time.Time) (store.Session, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.client.UpdateItem(ctx, &dynamodb.UpdateItemInput{
		TableName:                &s.table,
		Key:                      key(id),
		ConditionExpression:      aws.String("attribute_exists(pk)"),
		UpdateExpression:         aws.String(extendUpdate),
		ExpressionAttributeNames: map[string]string{"#ttl": TTLAttribute},
		ExpressionAttributeValues: map[string]types.AttributeValue{
			":exp": &types.AttributeValueMemberN{Value: millis(expiresAt)},
			":ttl": &types.AttributeValueMemberN{Value: ttlSeconds(expiresAt)},
		},
		ReturnValues:           types.ReturnValueAllNew,
		ReturnConsumedCapacity: s.capacity(),
	})
	if err != nil {
		if conditionFailed(err) != nil {
			return store.Session{}, store.ErrNotFound
		}
		return store.Session{}, wrap("extend session", err)
	}
	s.report("Extend", out.ConsumedCapacity)
	return decode(out.Attributes)
}

// Delete removes the session with one DeleteItem conditioned on it existing
// and returns it as it was (ReturnValues ALL_OLD); a missing session gives
// store.ErrNotFound.
func (s *Store) Delete(ctx context.Context, id string) (store.Session, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	out, err := s.client.DeleteItem(ctx, &dynamodb.DeleteItemInput{
		TableName:              &s.table,
		Key:                    key(id),
		ConditionExpression:    aws.String("attribute_exists(pk)"),
		ReturnValues:           types.ReturnValueAllOld,
		ReturnConsumedCapacity: s.capacity(),
	})
	if err != nil {
		if conditionFailed(err) != nil {
			return store.Session{}, store.ErrNotFound
		}
		return store.Session{}, wrap("delete session", err)
	}
	s.report("Delete", out.ConsumedCapacity)
	return decode(out.Attributes)
}

// ListByCustomer queries customer_id-index, page by page, for the keys of
// the customer's sessions, then reads the sessions with strongly consistent
// BatchGetItem requests of up to 100 keys. The index is eventually
// consistent, so a session created or deleted a moment ago may be missing
// from, or still in, the index; the consistent read drops the sessions that
// no longer exist and returns the others as they stand. Sessions stored with
// an empty customer id are in no index and are never listed.
func (s *Store) ListByCustomer(ctx context.Context, customerID string) ([]store.Session, error) {
	keys, err := s.customerKeys(ctx, "ListByCustomer", customerID)
	if err != nil || len(keys) == 0 {
		return nil, err
	}
	var out []store.Session
	for len(keys) > 0 {
		chunk := keys[:min(getBatchSize, len(keys))]
		keys = keys[len(chunk):]
		pending := &types.KeysAndAttributes{Keys: chunk, ConsistentRead: aws.Bool(true)}
		err := s.retryBatch(ctx, func(ctx context.Context) (int, error) {
			res, err := s.client.BatchGetItem(ctx, &dynamodb.BatchGetItemInput{
				RequestItems:           map[string]types.KeysAndAttributes{s.table: *pending},
				ReturnConsumedCapacity: s.capacity(),
			})
			if err != nil {
				return 0, wrap("read sessions by customer", err)
			}
			for i := range res.ConsumedCapacity {
				s.report("ListByCustomer", &res.ConsumedCapacity[i])
			}
			for _, item := range res.Responses[s.table] {
				sess, err := decode(item)
				if err != nil {
					return 0, err
				}
				out = append(out, sess)
			}
			left := res.UnprocessedKeys[s.table]
			pending.Keys = left.Keys
			return len(left.Keys), nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TrimByCustomer counts the customer's sessions with one keys-only query of
// customer_id-index; only when there are more than keep does it read them
// (as ListByCustomer) and delete the least recently refreshed, one
// conditional DeleteItem each. The index is eventually consistent, so a
// session created a moment ago may not be counted yet.
func (s *Store) TrimByCustomer(ctx context.Context, customerID string, keep int) (int, error) {
	keys, err := s.customerKeys(ctx, "TrimByCustomer", customerID)
	if err != nil || len(keys) <= keep {
		return 0, err
	}
	list, err := s.ListByCustomer(ctx, customerID)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, sess := range store.LeastRecent(list, keep) {
		switch _, err := s.Delete(ctx, sess.ID); {
		case err == nil:
			n++
		case !errors.Is(err, store.ErrNotFound):
			return n, err
		}
	}
	return n, nil
}

// DeleteByCustomer finds the keys of the customer's sessions as
// ListByCustomer does and deletes them with BatchWriteItem requests of up to
// 25 deletes. It returns how many sessions it deleted, also when it fails part
// way. It is not atomic: a session created meanwhile, or not yet in the
// index, may survive, and a session deleted meanwhile by someone else is
// counted.
func (s *Store) DeleteByCustomer(ctx context.Context, customerID string) (int, error) {
	keys, err := s.customerKeys(ctx, "DeleteByCustomer", customerID)
	if err != nil {
		return 0, err
	}
	n := 0
	for len(keys) > 0 {
		chunk := keys[:min(writeBatchSize, len(keys))]
		keys = keys[len(chunk):]
		pending := make([]types.WriteRequest, len(chunk))
		for i, k := range chunk {
			pending[i] = types.WriteRequest{DeleteRequest: &types.DeleteRequest{Key: k}}
		}
		n += len(chunk)
		err := s.retryBatch(ctx, func(ctx context.Context) (int, error) {
			res, err := s.client.BatchWriteItem(ctx, &dynamodb.BatchWriteItemInput{
				RequestItems:           map[string][]types.WriteRequest{s.table: pending},
				ReturnConsumedCapacity: s.capacity(),
			})
			if err != nil {
				return 0, wrap("delete sessions by customer", err)
			}
			for i := range res.ConsumedCapacity {
				s.report("DeleteByCustomer", &res.ConsumedCapacity[i])
			}
			pending = res.UnprocessedItems[s.table]
			return len(pending), nil
		})
		if err != nil {
			return n - len(pending), err
		}
	}
	return n, nil
}

// retryBatch calls send, each call bounded by the call timeout, until it
// reports nothing left unprocessed, at most batchAttempts times, waiting
// between calls with exponential backoff and full jitter as AWS advises for
// unprocessed batch items.
func (s *Store) retryBatch(ctx context.Context, send func(ctx context.Context) (left int, err error)) error {
	backoff := 25 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cctx, cancel := s.call(ctx)
		left, err := send(cctx)
		cancel()
		if err != nil || left == 0 {
			return err
		}
		if attempt == batchAttempts {
			return fmt.Errorf("dynamodb batch: %w: %d requests still unprocessed after %d attempts", store.ErrUnavailable, left, attempt)
		}
		wait := time.Duration(rand.Int64N(int64(backoff))) + time.Millisecond
		backoff = min(2*backoff, time.Second)
		select {
		case <-ctx.Done():
			return wrap("batch", ctx.Err())
		case <-time.After(wait):
		}
	}
}

// customerKeys returns the primary keys of customerID's sessions in the
// index, querying one page (and one call timeout) at a time.
func (s *Store) customerKeys(ctx context.Context, op, customerID string) ([]map[string]types.AttributeValue, error) {
	if customerID == "" {
		return nil, nil
	}
	in := &dynamodb.QueryInput{
		TableName:                 &s.table,
		IndexName:                 aws.String(CustomerIndex),
		KeyConditionExpression:    aws.String("customer_id = :c"),
		ExpressionAttributeValues: map[string]types.AttributeValue{":c": &types.AttributeValueMemberS{Value: customerID}},
		ProjectionExpression:      aws.String("pk"),
		ReturnConsumedCapacity:    s.capacity(),
	}
	if s.pageLimit > 0 {
		in.Limit = aws.Int32(s.pageLimit)
	}
	var keys []map[string]types.AttributeValue
	pages := dynamodb.NewQueryPaginator(s.client, in)
	for pages.HasMorePages() {
		cctx, cancel := s.call(ctx)
		page, err := pages.NextPage(cctx)
		cancel()
		if err != nil {
			return nil, wrap("query sessions by customer", err)
		}
		s.report(op, page.ConsumedCapacity)
		for _, item := range page.Items {
			pk, ok := item["pk"]
			if !ok {
				return nil, errors.New("dynamodb query sessions by customer: an index entry has no pk")
			}
			keys = append(keys, map[string]types.AttributeValue{"pk": pk})
		}
	}
	return keys, nil
}
