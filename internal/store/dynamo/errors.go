package dynamo

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/meshauth/meshauth/internal/store"
)

// Errors of this backend beyond the store's sentinels, for the service to
// tell an operator what to do. Callers test them with errors.Is.
var (
	// ErrNoCredentials: the standard AWS credentials chain found no
	// credentials (no keys in the environment, no profile, no container or
	// instance role). No request was sent.
	ErrNoCredentials = errors.New("no AWS credentials")
	// ErrNoTable: DynamoDB answered that the table (or its index) does not
	// exist (ResourceNotFoundException).
	ErrNoTable = errors.New("table does not exist")
)

// credentials retrieves the client's credentials (the SDK caches them), so
// that missing ones are reported as ErrNoCredentials rather than as a
// failed request, before any request is sent.
func (s *Store) credentials(ctx context.Context, op string) error {
	p := s.client.Options().Credentials
	if p == nil {
		return nil
	}
	if _, err := p.Retrieve(ctx); err != nil {
		return fmt.Errorf("dynamodb %s: %w: %w", op, ErrNoCredentials, err)
	}
	return nil
}

// conditionFailed returns the ConditionalCheckFailedException in err, or nil.
func conditionFailed(err error) *types.ConditionalCheckFailedException {
	var ccf *types.ConditionalCheckFailedException
	if errors.As(err, &ccf) {
		return ccf
	}
	return nil
}

// unavailableCodes are the error codes that mean DynamoDB is overloaded or
// failing rather than that the request was wrong.
var unavailableCodes = map[string]bool{
	"ProvisionedThroughputExceededException": true,
	"RequestLimitExceeded":                   true,
	"ThrottlingException":                    true,
	"InternalServerError":                    true,
	"ServiceUnavailable":                     true,
}

// unavailable reports whether err means that DynamoDB could not be reached or
// did not answer in time, as opposed to a request it refused.
func unavailable(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var api smithy.APIError
	if errors.As(err, &api) && unavailableCodes[api.ErrorCode()] {
		return true
	}
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) {
		return true
	}
	var resp *smithyhttp.ResponseError
	if errors.As(err, &resp) && resp.HTTPStatusCode() >= 500 {
		return true
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// wrap adds op to err, and store.ErrUnavailable when the backend could not be
// reached or answered too slowly, or its table is missing (clients are told
// to retry later, as the table may be created again). It adds no attribute
// value: the SDK's message carries the operation, request id, error code and
// DynamoDB's reason.
func wrap(op string, err error) error {
	var missing *types.ResourceNotFoundException
	if errors.As(err, &missing) {
		return fmt.Errorf("dynamodb %s: %w: %w: %w", op, ErrNoTable, store.ErrUnavailable, err)
	}
	if unavailable(err) {
		return fmt.Errorf("dynamodb %s: %w: %w", op, store.ErrUnavailable, err)
	}
	return fmt.Errorf("dynamodb %s: %w", op, err)
}
