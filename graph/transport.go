package graph

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
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

// queriesOverGET is the GET transport (GraphQL over HTTP, section 5.1):
// queries only, since a GET must not change state. It answers as gqlgen's
// does, except that every refusal carries extensions.code and none quotes
// the request: a malformed query string or variables is 400, a mutation is
// 406 (refused before it runs).
type queriesOverGET struct{}

var _ graphql.Transport = queriesOverGET{}

// Supports implements graphql.Transport.
func (queriesOverGET) Supports(r *http.Request) bool {
	return r.Method == http.MethodGet && r.Header.Get("Upgrade") == ""
}

// Do implements graphql.Transport.
func (queriesOverGET) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	query, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		WriteError(w, http.StatusBadRequest, &auth.Error{Code: auth.CodeBadUserInput, Detail: "The query string is not valid URL encoding."})
		return
	}
	raw := &graphql.RawParams{Query: query.Get("query"), OperationName: query.Get("operationName"), Headers: r.Header}
	raw.ReadTime.Start = graphql.Now()
	for _, p := range []struct {
		name string
		dst  *map[string]any
	}{{"variables", &raw.Variables}, {"extensions", &raw.Extensions}} {
		if v := query.Get(p.name); v != "" {
			dec := json.NewDecoder(strings.NewReader(v))
			dec.UseNumber()
			if err := dec.Decode(p.dst); err != nil {
				WriteError(w, http.StatusBadRequest, &auth.Error{Code: auth.CodeBadUserInput, Detail: p.name + " must be a JSON object."})
				return
			}
		}
	}
	raw.ReadTime.End = graphql.Now()

	mediaType := responseMediaType(r.Header.Get("Accept"))
	rc, errs := exec.CreateOperationContext(r.Context(), raw)
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
		writeJSON(w, exec.DispatchError(graphql.WithOperationContext(r.Context(), rc), errs))
		return
	}
	if rc.Operation.Operation != ast.Query {
		WriteError(w, http.StatusNotAcceptable, &auth.Error{Code: auth.CodeBadUserInput, Detail: "A GET request may carry a query only: send mutations as POST."})
		return
	}
	w.Header().Set("Content-Type", mediaType)
	responses, ctx := exec.DispatchOperation(r.Context(), rc)
	writeJSON(w, responses(ctx))
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

func writeJSON(w http.ResponseWriter, resp *graphql.Response) {
	b, err := json.Marshal(resp)
	if err != nil {
		b = []byte(`{"errors":[{"message":"An internal error occurred.","extensions":{"code":"INTERNAL"}}]}`)
	}
	_, _ = w.Write(b)
}
