// Package config reads the service's configuration from the environment, once, at start.
package config

import (
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is every setting of cmd/service. Secrets are marked and never printed in clear.
type Config struct {
	HTTPAddr        string
	DatabaseURL     string // secret: its password
	DatabaseMaxConn int32
	// DatabaseMinIdle is how many idle connections the pool keeps open, so a readiness probe or
	// the first request after a quiet spell does not pay for a connection handshake.
	DatabaseMinIdle int32
	RedisAddr       string // empty: no cache
	RedisPassword   string // secret
	NATSURL         string // empty: no relay (events wait in the outbox)
	PaymentsURL     string
	JWTSecret       string // secret
	JWTIssuer       string
	JWTAudience     string
	RateLimit       float64
	RateBurst       int
	RequestBudget   time.Duration
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	IdleTimeout     time.Duration
	ShutdownGrace   time.Duration
	// DrainDelay keeps serving after /readyz turns 503, so load balancers notice first.
	DrainDelay         time.Duration
	CacheEnabled       bool
	PaymentsEnabled    bool
	CacheTTL           time.Duration
	IdempotencyLease   time.Duration
	IdempotencyRetain  time.Duration
	LogLevel           string
	TraceExporter      string
	PaymentsAttempts   uint
	PaymentsAttemptTTL time.Duration
	// PprofAddr serves net/http/pprof on its own listener when set; keep it on loopback.
	PprofAddr string

	// Redis is optional: its client fails fast, and a cache operation that fails or outlasts
	// CacheOpTimeout sends the read to PostgreSQL. After a failure reads skip Redis for
	// CacheCooldown, so a dead Redis costs one CacheOpTimeout per cooldown, not one per request.
	RedisDialTimeout  time.Duration
	RedisReadTimeout  time.Duration
	RedisWriteTimeout time.Duration
	RedisMaxRetries   int // 0: a failed command is not retried
	RedisPoolSize     int
	CacheOpTimeout    time.Duration
	CacheCooldown     time.Duration
}

// Load parses the environment. Every problem is reported, not only the first.
func Load(getenv func(string) string) (Config, error) {
	p := parser{getenv: getenv}
	c := Config{
		HTTPAddr:           p.str("ORDERS_HTTP_ADDR", "127.0.0.1:8080"),
		DatabaseURL:        p.required("ORDERS_DATABASE_URL"),
		DatabaseMaxConn:    int32(p.intRange("ORDERS_DATABASE_MAX_CONNS", 20, 1, 1000)),     //nolint:gosec // bounded by intRange.
		DatabaseMinIdle:    int32(p.intRange("ORDERS_DATABASE_MIN_IDLE_CONNS", 2, 0, 1000)), //nolint:gosec // bounded by intRange.
		RedisAddr:          p.str("ORDERS_REDIS_ADDR", ""),
		RedisPassword:      p.str("ORDERS_REDIS_PASSWORD", ""),
		RedisDialTimeout:   p.positiveDur("ORDERS_REDIS_DIAL_TIMEOUT", 200*time.Millisecond),
		RedisReadTimeout:   p.positiveDur("ORDERS_REDIS_READ_TIMEOUT", 100*time.Millisecond),
		RedisWriteTimeout:  p.positiveDur("ORDERS_REDIS_WRITE_TIMEOUT", 100*time.Millisecond),
		RedisMaxRetries:    p.intRange("ORDERS_REDIS_MAX_RETRIES", 0, 0, 10),
		RedisPoolSize:      p.intRange("ORDERS_REDIS_POOL_SIZE", 32, 1, 1000),
		NATSURL:            p.str("ORDERS_NATS_URL", ""),
		PaymentsURL:        p.required("ORDERS_PAYMENTS_URL"),
		JWTSecret:          p.required("ORDERS_JWT_SECRET"),
		JWTIssuer:          p.str("ORDERS_JWT_ISSUER", ""),
		JWTAudience:        p.str("ORDERS_JWT_AUDIENCE", ""),
		RateLimit:          p.float("ORDERS_RATE_LIMIT_RPS", 100),
		RateBurst:          p.intRange("ORDERS_RATE_LIMIT_BURST", 200, 1, 1_000_000),
		RequestBudget:      p.dur("ORDERS_REQUEST_BUDGET", 3*time.Second),
		ReadTimeout:        p.dur("ORDERS_HTTP_READ_TIMEOUT", 5*time.Second),
		WriteTimeout:       p.dur("ORDERS_HTTP_WRITE_TIMEOUT", 10*time.Second),
		IdleTimeout:        p.dur("ORDERS_HTTP_IDLE_TIMEOUT", 60*time.Second),
		ShutdownGrace:      p.dur("ORDERS_SHUTDOWN_GRACE", 15*time.Second),
		DrainDelay:         p.dur("ORDERS_DRAIN_DELAY", 5*time.Second),
		CacheEnabled:       p.boolean("ORDERS_CACHE_ENABLED", true),
		PaymentsEnabled:    p.boolean("ORDERS_PAYMENTS_ENABLED", true),
		CacheTTL:           p.dur("ORDERS_CACHE_TTL", 30*time.Second),
		CacheOpTimeout:     p.positiveDur("ORDERS_CACHE_OP_TIMEOUT", 50*time.Millisecond),
		CacheCooldown:      p.dur("ORDERS_CACHE_COOLDOWN", time.Second),
		IdempotencyLease:   p.dur("ORDERS_IDEMPOTENCY_LEASE", 30*time.Second),
		IdempotencyRetain:  p.dur("ORDERS_IDEMPOTENCY_RETAIN", 72*time.Hour),
		LogLevel:           p.str("ORDERS_LOG_LEVEL", "info"),
		TraceExporter:      p.str("ORDERS_TRACE_EXPORTER", "none"),
		PaymentsAttempts:   uint(p.intRange("ORDERS_PAYMENTS_MAX_ATTEMPTS", 3, 1, 10)), //nolint:gosec // bounded by intRange.
		PaymentsAttemptTTL: p.dur("ORDERS_PAYMENTS_ATTEMPT_TIMEOUT", 800*time.Millisecond),
		PprofAddr:          p.str("ORDERS_PPROF_ADDR", ""),
	}
	if len(c.JWTSecret) > 0 && len(c.JWTSecret) < 32 {
		p.fail("ORDERS_JWT_SECRET", "must be at least 32 bytes for HS256")
	}
	if c.IdempotencyRetain < 24*time.Hour {
		p.fail("ORDERS_IDEMPOTENCY_RETAIN", "must be at least 24h (the Idempotency-Key draft's minimum)")
	}
	if c.DatabaseMinIdle > c.DatabaseMaxConn {
		p.fail("ORDERS_DATABASE_MIN_IDLE_CONNS", fmt.Sprintf("(%d) must not exceed ORDERS_DATABASE_MAX_CONNS (%d)", c.DatabaseMinIdle, c.DatabaseMaxConn))
	}
	if c.IdempotencyLease <= c.RequestBudget {
		p.fail("ORDERS_IDEMPOTENCY_LEASE", "must exceed ORDERS_REQUEST_BUDGET, or a live request could lose its key")
	}
	if c.WriteTimeout <= c.RequestBudget {
		p.fail("ORDERS_HTTP_WRITE_TIMEOUT", "must exceed ORDERS_REQUEST_BUDGET, or the answer to a slow request is cut off")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.fail("ORDERS_LOG_LEVEL", "must be debug, info, warn or error")
	}
	return c, errors.Join(p.errs...)
}

// Print writes the configuration, one setting a line, with secrets masked.
func (c Config) Print(w io.Writer) error {
	lines := [][2]string{
		{"ORDERS_HTTP_ADDR", c.HTTPAddr},
		{"ORDERS_DATABASE_URL", MaskURL(c.DatabaseURL)},
		{"ORDERS_DATABASE_MAX_CONNS", strconv.Itoa(int(c.DatabaseMaxConn))},
		{"ORDERS_DATABASE_MIN_IDLE_CONNS", strconv.Itoa(int(c.DatabaseMinIdle))},
		{"ORDERS_REDIS_ADDR", c.RedisAddr},
		{"ORDERS_REDIS_PASSWORD", mask(c.RedisPassword)},
		{"ORDERS_REDIS_DIAL_TIMEOUT", c.RedisDialTimeout.String()},
		{"ORDERS_REDIS_READ_TIMEOUT", c.RedisReadTimeout.String()},
		{"ORDERS_REDIS_WRITE_TIMEOUT", c.RedisWriteTimeout.String()},
		{"ORDERS_REDIS_MAX_RETRIES", strconv.Itoa(c.RedisMaxRetries)},
		{"ORDERS_REDIS_POOL_SIZE", strconv.Itoa(c.RedisPoolSize)},
		{"ORDERS_NATS_URL", MaskURL(c.NATSURL)},
		{"ORDERS_PAYMENTS_URL", MaskURL(c.PaymentsURL)},
		{"ORDERS_JWT_SECRET", mask(c.JWTSecret)},
		{"ORDERS_JWT_ISSUER", c.JWTIssuer},
		{"ORDERS_JWT_AUDIENCE", c.JWTAudience},
		{"ORDERS_RATE_LIMIT_RPS", strconv.FormatFloat(c.RateLimit, 'g', -1, 64)},
		{"ORDERS_RATE_LIMIT_BURST", strconv.Itoa(c.RateBurst)},
		{"ORDERS_REQUEST_BUDGET", c.RequestBudget.String()},
		{"ORDERS_HTTP_READ_TIMEOUT", c.ReadTimeout.String()},
		{"ORDERS_HTTP_WRITE_TIMEOUT", c.WriteTimeout.String()},
		{"ORDERS_HTTP_IDLE_TIMEOUT", c.IdleTimeout.String()},
		{"ORDERS_SHUTDOWN_GRACE", c.ShutdownGrace.String()},
		{"ORDERS_DRAIN_DELAY", c.DrainDelay.String()},
		{"ORDERS_CACHE_ENABLED", strconv.FormatBool(c.CacheEnabled)},
		{"ORDERS_PAYMENTS_ENABLED", strconv.FormatBool(c.PaymentsEnabled)},
		{"ORDERS_CACHE_TTL", c.CacheTTL.String()},
		{"ORDERS_CACHE_OP_TIMEOUT", c.CacheOpTimeout.String()},
		{"ORDERS_CACHE_COOLDOWN", c.CacheCooldown.String()},
		{"ORDERS_IDEMPOTENCY_LEASE", c.IdempotencyLease.String()},
		{"ORDERS_IDEMPOTENCY_RETAIN", c.IdempotencyRetain.String()},
		{"ORDERS_LOG_LEVEL", c.LogLevel},
		{"ORDERS_TRACE_EXPORTER", c.TraceExporter},
		{"ORDERS_PAYMENTS_MAX_ATTEMPTS", strconv.FormatUint(uint64(c.PaymentsAttempts), 10)},
		{"ORDERS_PAYMENTS_ATTEMPT_TIMEOUT", c.PaymentsAttemptTTL.String()},
		{"ORDERS_PPROF_ADDR", c.PprofAddr},
	}
	var b strings.Builder
	b.WriteString("configuration:\n")
	for _, l := range lines {
		fmt.Fprintf(&b, "  %s=%s\n", l[0], l[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mask(s string) string {
	if s == "" {
		return ""
	}
	return "*****"
}

// MaskURL hides a URL's password.
func MaskURL(s string) string {
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "*****")
	}
	return strings.Replace(u.String(), "%2A%2A%2A%2A%2A", "*****", 1)
}

type parser struct {
	getenv func(string) string
	errs   []error
}

func (p *parser) fail(name, why string) { p.errs = append(p.errs, fmt.Errorf("%s %s", name, why)) }

func (p *parser) str(name, def string) string {
	if v := p.getenv(name); v != "" {
		return v
	}
	return def
}

func (p *parser) required(name string) string {
	v := p.getenv(name)
	if v == "" {
		p.fail(name, "is required")
	}
	return v
}

func (p *parser) intRange(name string, def, lo, hi int) int {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		p.fail(name, fmt.Sprintf("must be an integer from %d to %d, not %q", lo, hi, v))
		return def
	}
	return n
}

func (p *parser) float(name string, def float64) float64 {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || f < 0 {
		p.fail(name, fmt.Sprintf("must be a non-negative number, not %q", v))
		return def
	}
	return f
}

func (p *parser) dur(name string, def time.Duration) time.Duration {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		p.fail(name, fmt.Sprintf("must be a non-negative duration like 250ms, not %q", v))
		return def
	}
	return d
}

// positiveDur is dur for settings where zero means nothing sensible (a timeout of none).
func (p *parser) positiveDur(name string, def time.Duration) time.Duration {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		p.fail(name, fmt.Sprintf("must be a positive duration like 250ms, not %q", v))
		return def
	}
	return d
}

func (p *parser) boolean(name string, def bool) bool {
	v := p.getenv(name)
	if v == "" {
		return def
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		p.fail(name, fmt.Sprintf("must be true or false, not %q", v))
		return def
	}
	return b
}
