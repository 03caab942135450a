// Package telemetry builds the service's metrics, logger and tracer. Metric names here are a
// contract: dashboards/ and the verifier's scenarios read them.
package telemetry

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the service's Prometheus collectors, on their own registry.
type Metrics struct {
	Registry *prometheus.Registry

	HTTPRequests *prometheus.CounterVec
	HTTPDuration *prometheus.HistogramVec
	HTTPInFlight prometheus.Gauge
	RateLimited  prometheus.Counter

	IdempotencyOutcomes *prometheus.CounterVec

	PaymentsCalls        *prometheus.CounterVec
	PaymentsAttempts     *prometheus.CounterVec
	PaymentsRetries      prometheus.Counter
	PaymentsDuration     prometheus.Histogram
	PaymentsBreakerState prometheus.Gauge

	CacheRequests *prometheus.CounterVec
	CacheDuration *prometheus.HistogramVec
	CacheDegraded prometheus.Gauge

	DBQueryDuration *prometheus.HistogramVec

	OutboxBacklog       prometheus.Gauge
	OutboxOldestAge     prometheus.Gauge
	OutboxPublished     prometheus.Counter
	OutboxPublishErrors prometheus.Counter
}

// NewMetrics registers every collector on a fresh registry, with Go and process collectors.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f := promauto.With(reg)
	latency := []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}
	return &Metrics{
		Registry: reg,
		HTTPRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "http_server_requests_total", Help: "HTTP requests by route, method and status class.",
		}, []string{"route", "method", "code_class"}),
		HTTPDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "http_server_request_duration_seconds", Help: "HTTP request latency by route, method and status class.",
			Buckets: latency,
		}, []string{"route", "method", "code_class"}),
		HTTPInFlight: f.NewGauge(prometheus.GaugeOpts{
			Name: "http_server_requests_in_flight", Help: "HTTP requests being served.",
		}),
		RateLimited: f.NewCounter(prometheus.CounterOpts{
			Name: "http_server_rate_limited_total", Help: "Requests refused with 429 by the per-tenant limit.",
		}),
		IdempotencyOutcomes: f.NewCounterVec(prometheus.CounterOpts{
			Name: "orders_idempotency_outcomes_total", Help: "Create-order requests by idempotency outcome (fresh, replay, resumed, reused, in_flight).",
		}, []string{"outcome"}),
		PaymentsCalls: f.NewCounterVec(prometheus.CounterOpts{
			Name: "payments_client_calls_total", Help: "Logical charge calls by outcome (succeeded, declined, unavailable, breaker_open, no_budget).",
		}, []string{"outcome"}),
		PaymentsAttempts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "payments_client_attempts_total", Help: "HTTP attempts to payments by result; attempts/calls is the retry amplification.",
		}, []string{"result"}),
		PaymentsRetries: f.NewCounter(prometheus.CounterOpts{
			Name: "payments_client_retries_total", Help: "Attempts that were retries.",
		}),
		PaymentsDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name: "payments_client_attempt_duration_seconds", Help: "Latency of one attempt to payments.", Buckets: latency,
		}),
		PaymentsBreakerState: f.NewGauge(prometheus.GaugeOpts{
			Name: "payments_client_breaker_state", Help: "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
		}),
		CacheRequests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "cache_requests_total", Help: "Cache operations by op and result (hit, miss, ok, error, bypass).",
		}, []string{"op", "result"}),
		CacheDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cache_operation_duration_seconds", Help: "Latency of Redis operations by op.", Buckets: latency,
		}, []string{"op"}),
		DBQueryDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name: "db_query_duration_seconds", Help: "PostgreSQL query latency by sqlc query name and outcome.", Buckets: latency,
		}, []string{"query", "outcome"}),
		CacheDegraded: f.NewGauge(prometheus.GaugeOpts{
			Name: "cache_degraded", Help: "1 while the last cache operation failed and reads fall back to PostgreSQL.",
		}),
		OutboxBacklog: f.NewGauge(prometheus.GaugeOpts{
			Name: "outbox_backlog_events", Help: "Events written but not yet published (counted up to 100000).",
		}),
		OutboxOldestAge: f.NewGauge(prometheus.GaugeOpts{
			Name: "outbox_oldest_event_age_seconds", Help: "Age of the oldest unpublished event, the head of the relay's queue (0 when none).",
		}),
		OutboxPublished: f.NewCounter(prometheus.CounterOpts{
			Name: "outbox_published_total", Help: "Events published to JetStream and acknowledged.",
		}),
		OutboxPublishErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "outbox_publish_errors_total", Help: "Failed publish attempts.",
		}),
	}
}

// ObservePool exports the PostgreSQL pool's own statistics, read at each scrape: how many
// connections are in use and idle against the maximum, and how often a query had to wait for a
// connection (an empty acquire) and for how long. Waiting acquires are the pool's saturation: the
// query timings in db_query_duration_seconds do not include them.
func (m *Metrics) ObservePool(pool *pgxpool.Pool) {
	type read = func(*pgxpool.Stat) float64
	f := promauto.With(m.Registry)
	for _, g := range []struct {
		opts prometheus.GaugeOpts
		read read
	}{
		{prometheus.GaugeOpts{Name: "db_pool_acquired_connections", Help: "PostgreSQL connections in use by a query or transaction."},
			func(s *pgxpool.Stat) float64 { return float64(s.AcquiredConns()) }},
		{prometheus.GaugeOpts{Name: "db_pool_idle_connections", Help: "PostgreSQL connections open and ready (ORDERS_DATABASE_MIN_IDLE_CONNS keeps a floor)."},
			func(s *pgxpool.Stat) float64 { return float64(s.IdleConns()) }},
		{prometheus.GaugeOpts{Name: "db_pool_max_connections", Help: "The pool's limit (ORDERS_DATABASE_MAX_CONNS)."},
			func(s *pgxpool.Stat) float64 { return float64(s.MaxConns()) }},
	} {
		f.NewGaugeFunc(g.opts, func() float64 { return g.read(pool.Stat()) })
	}
	for _, c := range []struct {
		opts prometheus.CounterOpts
		read read
	}{
		{prometheus.CounterOpts{Name: "db_pool_acquires_total", Help: "Connections taken from the pool."},
			func(s *pgxpool.Stat) float64 { return float64(s.AcquireCount()) }},
		{prometheus.CounterOpts{Name: "db_pool_empty_acquires_total", Help: "Acquires that found no idle connection and waited for one to open or come back."},
			func(s *pgxpool.Stat) float64 { return float64(s.EmptyAcquireCount()) }},
		{prometheus.CounterOpts{Name: "db_pool_empty_acquire_wait_seconds_total", Help: "Time spent by those waiting acquires."},
			func(s *pgxpool.Stat) float64 { return s.EmptyAcquireWaitTime().Seconds() }},
		{prometheus.CounterOpts{Name: "db_pool_new_connections_total", Help: "Connections opened, each a TCP and SCRAM handshake with PostgreSQL."},
			func(s *pgxpool.Stat) float64 { return float64(s.NewConnsCount()) }},
	} {
		f.NewCounterFunc(c.opts, func() float64 { return c.read(pool.Stat()) })
	}
}
