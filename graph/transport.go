package graph

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/errcode"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/meshauth/meshauth/internal/auth"
)

// Response media types (GraphQL over HTTP, section 6.4).
const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// requests is the transport of queries and mutations: POST with a JSON body
// (GraphQL over HTTP, section 5.2) and GET with the query in the URL
// (section 5.1; queries only). Every malformed request gets a coded error
// that never quotes what was sent, and a body over the limit set by the HTTP
// layer (http.MaxBytesReader) is answered 413. The body is read once, into a
// buffer of its announced length, and a successful answer is written as the
// executor produced it: a refresh allocates as little as the transport can.
type requests struct{}

var _ graphql.Transport = requests{}

// Supports implements graphql.Transport.
func (requests) Supports(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" {
		return false
	}
	switch r.Method {
	case http.MethodGet:
		return true
	case http.MethodPost:
		mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
		return err == nil && mt == mediaJSON
	}
	return false
}

// Do implements graphql.Transport.
func (requests) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	raw := &graphql.RawParams{Headers: r.Header}
	raw.ReadTime.Start = graphql.Now()
	if r.Method == http.MethodGet {
		if !fromQueryString(w, r, raw) {
			return
		}
	} else if !fromBody(w, r, raw) {
		return
	}
	raw.ReadTime.End = graphql.Now()

	ctx := withState(r.Context())
	mediaType := responseMediaType(r.Header.Get("Accept"))
	rc, errs := exec.CreateOperationContext(ctx, raw)
	if errs != nil {
		status := http.StatusOK
		if errcode.GetErrorKind(errs) == errcode.KindProtocol {
			status = http.StatusUnprocessableEntity
			if mediaType == mediaGraphQLResponse {
				status = http.StatusBadRequest
			}
		}
		w.Header().Set("Content-Type", mediaType)
		w.WriteHeader(status)
		writeJSON(w, exec.DispatchError(graphql.WithOperationContext(ctx, rc), errs))
		return
	}
	if r.Method == http.MethodGet && rc.Operation.Operation != ast.Query {
		WriteError(w, http.StatusNotAcceptable, &auth.Error{Code: auth.CodeBadUserInput, Detail: "A GET request may carry a query only: send mutations as POST."})
		return
	}
	w.Header().Set("Content-Type", mediaType)
	responses, ctx := exec.DispatchOperation(ctx, rc)
	writeJSON(w, responses(ctx))
}

// fromQueryString reads a GET request's parameters into raw, or answers
// the request and returns false.
func fromQueryString(w http.ResponseWriter, r *http.Request, raw *graphql.RawParams) bool {
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		WriteError(w, http.StatusBadRequest, &auth.Error{Code: auth.CodeBadUserInput, Detail: "The query string is not valid URL encoding."})
		return false
	}
	raw.Query, raw.OperationName = query.Get("query"), query.Get("operationName")
	for _, p := range []struct {
		name string
		dst  *map[string]any
	}{{"variables", &raw.Variables}, {"extensions", &raw.Extensions}} {
		if v := query.Get(p.name); v != "" {
			if decodeJSON(strings.NewReader(v), p.dst) != nil {
				WriteError(w, http.StatusBadRequest, &auth.Error{Code: auth.CodeBadUserInput, Detail: p.name + " must be a JSON object."})
				return false
			}
		}
	}
	return true
}

// fromBody reads a POST request's JSON body into raw, or answers the
// request and returns false.
func fromBody(w http.ResponseWriter, r *http.Request, raw *graphql.RawParams) bool {
	body, err := readBody(r)
	if err != nil {
		if tooLarge, ok := errors.AsType[*http.MaxBytesError](err); ok {
			WriteBodyTooLarge(w, tooLarge.Limit)
		} else {
			// The client stopped sending, or too slowly (HTTP_READ_TIMEOUT_IN_SECONDS).
			WriteError(w, http.StatusBadRequest, &auth.Error{Code: auth.CodeBadUserInput, Detail: "The request body could not be read."})
		}
		return false
	}
	if decodeJSON(bytes.NewReader(body), raw) != nil {
		WriteError(w, http.StatusBadRequest, &auth.Error{Code: auth.CodeBadUserInput, Detail: "The request body must be a JSON object with a query string, and optionally operationName, variables and extensions."})
		return false
	}
	return true
}

// decodeJSON decodes one JSON value, keeping numbers as json.Number so
// that large integers in variables are not rounded.
func decodeJSON(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.UseNumber()
	return dec.Decode(v)
}

// readBody reads the whole body: into a buffer of the announced length when
// that is small (a client cannot make the service set aside much memory for
// bytes it has not sent), else growing as it comes.
func readBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	if n := r.ContentLength; n >= 0 && n <= maxPresizedBody {
		b := make([]byte, n)
		if _, err := io.ReadFull(r.Body, b); err != nil {
			return nil, err
		}
		return b, nil
	}
	return io.ReadAll(r.Body)
}

// maxPresizedBody bounds the buffer allocated from Content-Length before
// any byte has arrived; every token operation's body is far smaller.
const maxPresizedBody = 8 << 10

// WriteBodyTooLarge answers 413: the body is over limit bytes.
func WriteBodyTooLarge(w http.ResponseWriter, limit int64) {
	WriteError(w, http.StatusRequestEntityTooLarge, &auth.Error{
		Code: auth.CodeBadUserInput, Detail: "The request body is too large: at most " + strconv.FormatInt(limit, 10) + " bytes are accepted.",
	})
}

// responseMediaType is the media type of the answer, as gqlgen's POST
// transport chooses it from the Accept header.
func responseMediaType(accept string) string {
	if accept == "" {
		return mediaJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "*/*", "application/*", mediaJSON:
			return mediaJSON
		case mediaGraphQLResponse:
			return mediaGraphQLResponse
		}
	}
	return mediaGraphQLResponse
}

// writeJSON writes resp. An answer with data alone, the common case, is
// written as the executor serialized it, without a second encoding pass.
func writeJSON(w http.ResponseWriter, resp *graphql.Response) {
	if len(resp.Errors) == 0 && len(resp.Extensions) == 0 && resp.Label == "" && resp.Path == nil && resp.HasNext == nil && len(resp.Data) > 0 {
		_, _ = io.WriteString(w, `{"data":`)
		_, _ = w.Write(resp.Data)
		_, _ = io.WriteString(w, "}")
		return
	}
	b, err := json.Marshal(resp)
	if err != nil {
		b = []byte(`{"errors":[{"message":"An internal error occurred.","extensions":{"code":"INTERNAL"}}]}`)
	}
	_, _ = w.Write(b)
}
