package servicetest

import (
	"context"
	"crypto/pbkdf2"
	"crypto/sha512"
	"encoding/hex"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/golang-jwt/jwt/v5"
)

// LegacyTable is the GraphQL Mesh auth module's session table in DynamoDB
// Local, written the way that module writes it.
type LegacyTable struct {
	client *dynamodb.Client
	// Name is the table's name.
	Name string
}

// NewLegacyTable creates the module's table, with its key schema, in
// DynamoDB Local at endpoint.
func NewLegacyTable(t testing.TB, endpoint string) *LegacyTable {
	t.Helper()
	ctx := context.Background()
	l := &LegacyTable{
		client: DynamoDBClient(t, endpoint),
		Name:   "legacy-auth-" + strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	_, err := l.client.CreateTable(ctx, &dynamodb.CreateTableInput{
		TableName: &l.Name,
		AttributeDefinitions: []types.AttributeDefinition{
			{AttributeName: aws.String("customer_id"), AttributeType: types.ScalarAttributeTypeS},
			{AttributeName: aws.String("refresh_token_hash"), AttributeType: types.ScalarAttributeTypeS},
		},
		KeySchema: []types.KeySchemaElement{
			{AttributeName: aws.String("customer_id"), KeyType: types.KeyTypeHash},
			{AttributeName: aws.String("refresh_token_hash"), KeyType: types.KeyTypeRange},
		},
		BillingMode: types.BillingModePayPerRequest,
	})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// LegacySession is what a client of the module holds: its refresh token and
// the access token issued with it.
type LegacySession struct {
	CustomerID string
	Refresh    string
	Access     string
	Hash       string
	End        time.Time
}

// PBKDF2Hex is hex(PBKDF2-HMAC-SHA512(password, secret, 10 000, 64)), the
// module's derivation.
func PBKDF2Hex(t testing.TB, password string, secret []byte) string {
	k, err := pbkdf2.Key(sha512.New, password, secret, 10000, 64)
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(k)
}

// Login writes a session as the module did at a login: an HS256 access token
// {customer_id, exp, refresh_expiry, iat} (customerID as a JSON number when
// numeric), the refresh token derived from customer id and exp, and the row
// keyed by the refresh token's hash with a string ttl.
func (l *LegacyTable) Login(t testing.TB, secret []byte, customerID any, issued, end time.Time) LegacySession {
	t.Helper()
	exp := issued.Add(10 * time.Minute).Unix()
	id := ""
	switch v := customerID.(type) {
	case string:
		id = v
	case int:
		id = strconv.Itoa(v)
	}
	access, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"customer_id": customerID, "exp": exp, "refresh_expiry": end.Unix(), "iat": issued.Unix(),
	}).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	s := LegacySession{CustomerID: id, Access: access, End: end}
	s.Refresh = PBKDF2Hex(t, id+strconv.FormatInt(exp, 10), secret)
	s.Hash = PBKDF2Hex(t, s.Refresh, secret)
	_, err = l.client.PutItem(context.Background(), &dynamodb.PutItemInput{TableName: &l.Name, Item: map[string]types.AttributeValue{
		"customer_id":        &types.AttributeValueMemberS{Value: id},
		"refresh_token_hash": &types.AttributeValueMemberS{Value: s.Hash},
		"ttl":                &types.AttributeValueMemberS{Value: strconv.FormatInt(end.Unix(), 10)},
	}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Has reports whether the row of s is still there.
func (l *LegacyTable) Has(t testing.TB, s LegacySession) bool {
	t.Helper()
	out, err := l.client.GetItem(context.Background(), &dynamodb.GetItemInput{TableName: &l.Name, ConsistentRead: aws.Bool(true),
		Key: map[string]types.AttributeValue{
			"customer_id":        &types.AttributeValueMemberS{Value: s.CustomerID},
			"refresh_token_hash": &types.AttributeValueMemberS{Value: s.Hash},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Item != nil
}

// DynamoDBClient is a DynamoDB client of DynamoDB Local at endpoint, for a
// test to see or change a table behind the service's back.
func DynamoDBClient(t testing.TB, endpoint string) *dynamodb.Client {
	t.Helper()
	cfg, err := config.LoadDefaultConfig(context.Background(), config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("local", "local", "")))
	if err != nil {
		t.Fatal(err)
	}
	return dynamodb.NewFromConfig(cfg, func(o *dynamodb.Options) { o.BaseEndpoint = aws.String(endpoint) })
}
