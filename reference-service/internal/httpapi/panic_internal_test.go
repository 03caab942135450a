package httpapi

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"example.com/deliverykit/reference-service/internal/telemetry"
)

// TestPanicBecomesInternalProblem checks the last line of defence: a handler that panics
// answers a generic 500 problem, and the cause stays in the log.
func TestPanicBecomesInternalProblem(t *testing.T) {
	t.Parallel()
	a := &API{metrics: telemetry.NewMetrics(), log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	h := a.instrument("GET /boom", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/boom", nil))
	var p Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if rec.Code != http.StatusInternalServerError || p.Code != "internal" || p.Detail != "" ||
		rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("%d %+v", rec.Code, p)
	}
}
