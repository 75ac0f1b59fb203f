package graph

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/meshauth/meshauth/internal/auth"
)

// ErrorPresenter returns gqlgen's error presenter: the ONE place where errors
// become what clients see. An *auth.Error shows its code, category and fixed
// message; anything else becomes INTERNAL with a generic message, and its
// cause goes to log only. Errors gqlgen raises itself while parsing and
// validating (GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED) keep their code.
func ErrorPresenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var gqlErr *gqlerror.Error
		if errors.As(err, &gqlErr) && gqlErr.Err == nil {
			if _, ok := gqlErr.Extensions["code"]; ok {
				// gqlgen's own parse and validation errors: they keep their
				// code, but the values they quote are redacted, since a
				// value may be a password written into a malformed query.
				out := *gqlErr
				out.Message = redactValues(gqlErr.Message)
				return &out
			}
			// A transport error: gqlgen's message may quote the request body,
			// and with it a password, so it is replaced.
			return &gqlerror.Error{Message: "The request is not a valid GraphQL request.", Extensions: map[string]any{"code": string(auth.CodeBadUserInput), "category": auth.Codes[auth.CodeBadUserInput].Category}}
		}
		e, ok := errors.AsType[*auth.Error](err)
		switch {
		case ok:
		case underEntities(ctx):
			// gqlgen's federation code refusing a representation the
			// client wrote: a client mistake.
			e = &auth.Error{Code: auth.CodeBadUserInput, Detail: "An entity representation is invalid.", Cause: err}
		default:
			e = &auth.Error{Code: auth.CodeInternal, Cause: err}
		}
		if e.Cause != nil {
			logFailure(ctx, log, e)
		}
		out := present(e)
		out.Path = graphql.GetPath(ctx)
		return out
	}
}

// serverFaults are the codes that mean the service, or what it depends on,
// failed. Every other code is a client's mistake: the client is told, and
// the log keeps it at debug level only, so that a request full of mistakes
// cannot fill the log.
var serverFaults = map[auth.Code]bool{auth.CodeInternal: true, auth.CodeStoreUnavailable: true, auth.CodeUpstreamUnavailable: true}

// logFailure logs a failed field's cause: a server fault at error level,
// once per request (more in the same request go to debug), a client
// mistake at debug level.
func logFailure(ctx context.Context, log *slog.Logger, e *auth.Error) {
	level := slog.LevelDebug
	if serverFaults[e.Code] {
		level = slog.LevelError
		if st := stateOf(ctx); st != nil && !st.faultLogged.CompareAndSwap(false, true) {
			level = slog.LevelDebug
		}
	}
	log.LogAttrs(ctx, level, "request failed", slog.String("code", string(e.Code)), slog.String("cause", e.Cause.Error()))
}

// underEntities reports whether the failing field is in _entities.
func underEntities(ctx context.Context) bool {
	path := graphql.GetPath(ctx)
	if len(path) == 0 {
		return false
	}
	name, ok := path[0].(ast.PathName)
	return ok && name == "_entities"
}

// present is what a client sees of e: its fixed message and detail, its
// code and category, and retry_after with RATE_LIMITED.
func present(e *auth.Error) *gqlerror.Error {
	out := &gqlerror.Error{
		Message:    e.Message(),
		Extensions: map[string]any{"code": string(e.Code)},
	}
	if cat := auth.Codes[e.Code].Category; cat != "" {
		out.Extensions["category"] = cat
	}
	if e.RetryAfter > 0 {
		out.Extensions["retry_after"] = int64(math.Ceil(e.RetryAfter.Seconds()))
	}
	return out
}

// WriteError answers a request refused before GraphQL runs (a body over the
// limit, a mutation sent as GET) with status and e, shown as the error
// presenter shows errors. e must carry no cause: nothing is logged.
func WriteError(w http.ResponseWriter, status int, e *auth.Error) {
	body, err := json.Marshal(graphql.Response{Errors: gqlerror.List{present(e)}})
	if err != nil {
		status, body = http.StatusInternalServerError, []byte(`{"errors":[{"message":"An internal error occurred.","extensions":{"code":"INTERNAL"}}]}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// Recover turns a panic in a resolver into an INTERNAL error; the panic value
// goes to the log only.
func Recover(log *slog.Logger) graphql.RecoverFunc {
	return func(ctx context.Context, p any) error {
		log.LogAttrs(ctx, slog.LevelError, "panic in resolver", slog.String("panic", fmt.Sprint(p)))
		return &auth.Error{Code: auth.CodeInternal}
	}
}

// schemaNames are the names a parse or validation error may quote as they
// are: the schema's types, fields, arguments and enum values.
var schemaNames = sync.OnceValue(func() map[string]bool {
	names := map[string]bool{}
	for name, def := range parsedSchema.Types {
		names[name] = true
		for _, f := range def.Fields {
			names[f.Name] = true
			for _, a := range f.Arguments {
				names[a.Name] = true
			}
		}
		for _, v := range def.EnumValues {
			names[v.Name] = true
		}
	}
	for name := range parsedSchema.Directives {
		names[name] = true
	}
	return names
})

var quoted = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)

// redactValues replaces every double-quoted part of msg that is not a schema
// name with "…": gqlparser quotes both names ("Cannot query field \"x\"")
// and the values it could not use ("Unexpected String \"...\"").
func redactValues(msg string) string {
	names := schemaNames()
	return quoted.ReplaceAllStringFunc(msg, func(q string) string {
		inner := strings.TrimPrefix(q[1:len(q)-1], "$")
		if names[inner] {
			return q
		}
		return `"…"`
	})
}
