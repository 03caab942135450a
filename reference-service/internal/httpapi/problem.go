package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/telemetry"
)

// ProblemBase prefixes every problem type; the last segment is the problem's code.
const ProblemBase = "https://deliverykit.example.com/problems/"

// InvalidParam names one wrong field, query parameter or header.
type InvalidParam struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Problem is an RFC 9457 problem details body.
type Problem struct {
	Type          string         `json:"type"`
	Title         string         `json:"title"`
	Status        int            `json:"status"`
	Code          string         `json:"code"`
	Detail        string         `json:"detail,omitempty"`
	Instance      string         `json:"instance,omitempty"`
	RequestID     string         `json:"request_id,omitempty"`
	InvalidParams []InvalidParam `json:"invalid_params,omitempty"`
}

type problemKind struct {
	status int
	code   string
	title  string
}

// Problems the edge raises before the domain is involved.
var (
	kindInvalid         = problemKind{http.StatusBadRequest, "invalid-request", "The request is invalid"}
	kindMalformedJSON   = problemKind{http.StatusBadRequest, "malformed-json", "The request body is not valid JSON for this operation"}
	kindUnknownField    = problemKind{http.StatusBadRequest, "unknown-field", "The request body has a field the API does not know"}
	kindKeyMissing      = problemKind{http.StatusBadRequest, "idempotency-key-missing", "The Idempotency-Key header is required"}
	kindUnauthorized    = problemKind{http.StatusUnauthorized, "unauthorized", "A valid bearer token is required"}
	kindForbidden       = problemKind{http.StatusForbidden, "forbidden", "The token does not allow this operation"}
	kindNotFound        = problemKind{http.StatusNotFound, "not-found", "No such resource"}
	kindMethod          = problemKind{http.StatusMethodNotAllowed, "method-not-allowed", "The method is not allowed on this resource"}
	kindTooLarge        = problemKind{http.StatusRequestEntityTooLarge, "body-too-large", "The request body is too large"}
	kindMediaType       = problemKind{http.StatusUnsupportedMediaType, "unsupported-media-type", "The request body must be application/json"}
	kindRateLimited     = problemKind{http.StatusTooManyRequests, "rate-limited", "Too many requests for this tenant"}
	kindInternal        = problemKind{http.StatusInternalServerError, "internal", "Internal error"}
	kindRequestTimedOut = problemKind{http.StatusServiceUnavailable, "request-timeout", "The request ran out of time"}
)

// domainProblems is the one table that maps domain errors onto HTTP. Order matters only in that
// the first match wins.
var domainProblems = []struct {
	err  error
	kind problemKind
}{
	{domain.ErrNotFound, problemKind{http.StatusNotFound, "order-not-found", "The order does not exist"}},
	{domain.ErrNotCancellable, problemKind{http.StatusConflict, "order-not-cancellable", "The order cannot be cancelled in its current state"}},
	{domain.ErrIdempotencyKeyMissing, kindKeyMissing},
	{domain.ErrIdempotencyKeyReused, problemKind{http.StatusUnprocessableEntity, "idempotency-key-reused", "The Idempotency-Key was already used with a different request"}},
	{domain.ErrIdempotencyKeyInFlight, problemKind{http.StatusConflict, "idempotency-key-in-flight", "A request with this Idempotency-Key is still in progress"}},
	{domain.ErrPaymentsUnavailable, problemKind{http.StatusServiceUnavailable, "payments-unavailable", "The payments service is unavailable"}},
	{domain.ErrStoreUnavailable, problemKind{http.StatusServiceUnavailable, "store-unavailable", "The order store is unavailable"}},
}

// edgeError is a failure found at the edge, already knowing its problem.
type edgeError struct {
	kind   problemKind
	detail string
	params []InvalidParam
}

func (e *edgeError) Error() string { return e.kind.code + ": " + e.detail }

func edge(kind problemKind, detail string, params ...InvalidParam) error {
	return &edgeError{kind: kind, detail: detail, params: params}
}

// fail writes err as a problem. Unknown errors become a generic 500 whose cause is logged, never
// sent.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	p := a.problemFor(r.Context(), err)
	p.Instance = r.URL.Path
	p.RequestID = telemetry.RequestID(r.Context())
	switch p.Status {
	case http.StatusServiceUnavailable, http.StatusConflict:
		if w.Header().Get("Retry-After") == "" {
			w.Header().Set("Retry-After", "1")
		}
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="orders"`)
	}
	writeProblem(w, p)
}

func (a *API) problemFor(ctx context.Context, err error) Problem {
	var ee *edgeError
	if errors.As(err, &ee) {
		return newProblem(ee.kind, ee.detail, ee.params)
	}
	var ve *domain.ValidationError
	if errors.As(err, &ve) {
		params := make([]InvalidParam, 0, len(ve.Fields))
		for _, f := range ve.Fields {
			params = append(params, InvalidParam{Name: f.Field, Reason: f.Reason})
		}
		return newProblem(kindInvalid, ve.Error(), params)
	}
	for _, m := range domainProblems {
		if errors.Is(err, m.err) {
			var params []InvalidParam
			if m.kind == kindKeyMissing {
				params = []InvalidParam{{Name: "Idempotency-Key", Reason: "is required"}}
			}
			if m.kind.status >= 500 {
				a.log.WarnContext(ctx, "dependency unavailable", "err", err)
			}
			return newProblem(m.kind, m.err.Error(), params)
		}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		a.log.WarnContext(ctx, "request budget exhausted", "err", err)
		return newProblem(kindRequestTimedOut, "", nil)
	}
	a.log.ErrorContext(ctx, "unhandled error", slog.String("err", err.Error()))
	return newProblem(kindInternal, "", nil)
}

func newProblem(k problemKind, detail string, params []InvalidParam) Problem {
	return Problem{Type: ProblemBase + k.code, Title: k.title, Status: k.status, Code: k.code, Detail: detail, InvalidParams: params}
}

func writeProblem(w http.ResponseWriter, p Problem) {
	body, err := json.Marshal(p)
	if err != nil {
		body = []byte(`{"type":"` + ProblemBase + `internal","title":"Internal error","status":500,"code":"internal"}`)
		p.Status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_, _ = w.Write(body)
}
