package store

import (
	"context"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// QueryMetrics is a pgx tracer that times every query by its sqlc name. Install it on the pool's
// ConnConfig.Tracer.
type QueryMetrics struct {
	Duration *prometheus.HistogramVec // labels: query, outcome (ok, error)
}

type queryStartKey struct{}

type queryStart struct {
	name string
	at   time.Time
}

// TraceQueryStart implements pgx.QueryTracer.
func (m QueryMetrics) TraceQueryStart(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryStartData) context.Context {
	return context.WithValue(ctx, queryStartKey{}, queryStart{name: queryName(data.SQL), at: time.Now()})
}

// TraceQueryEnd implements pgx.QueryTracer.
func (m QueryMetrics) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, data pgx.TraceQueryEndData) {
	s, ok := ctx.Value(queryStartKey{}).(queryStart)
	if !ok {
		return
	}
	outcome := "ok"
	if data.Err != nil && data.Err != pgx.ErrNoRows { //nolint:errorlint // pgx passes its sentinel unwrapped.
		outcome = "error"
	}
	m.Duration.WithLabelValues(s.name, outcome).Observe(time.Since(s.at).Seconds())
}

// queryName reads the name sqlc puts first in every query ("-- name: GetOrder :one"); anything
// else (transaction control, migrations) is "other", which keeps the label set bounded.
func queryName(sql string) string {
	rest, ok := strings.CutPrefix(sql, "-- name: ")
	if !ok {
		return "other"
	}
	if i := strings.IndexByte(rest, ' '); i > 0 {
		return rest[:i]
	}
	return "other"
}
