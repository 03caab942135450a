package httpapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/time/rate"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/telemetry"
)

func errorIs(err, target error) bool { return errors.Is(err, target) }

// tracing starts a server span per request, continuing a W3C traceparent when one arrives.
func (a *API) tracing(next http.Handler) http.Handler {
	return otelhttp.NewHandler(next, "http.server", otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string {
		return r.Method
	}))
}

var requestIDRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// instrument gives a route its request id, access log, RED metrics and panic recovery. It runs
// per route so that metrics carry the route pattern, never the raw path with its ids.
func (a *API) instrument(route string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := r.Header.Get("X-Request-ID")
		if !requestIDRE.MatchString(id) {
			var b [8]byte
			_, _ = rand.Read(b[:])
			id = hex.EncodeToString(b[:])
		}
		ctx := telemetry.WithRequestID(r.Context(), id)
		span := trace.SpanFromContext(ctx)
		span.SetName(route)
		w.Header().Set("X-Request-ID", id)
		// W3C Trace Context Level 2: the server's span, so a caller can tell its traceparent was
		// continued (same trace id) and find the request's log lines by it.
		if sc := span.SpanContext(); sc.IsValid() {
			w.Header().Set("traceresponse", "00-"+sc.TraceID().String()+"-"+sc.SpanID().String()+"-"+sc.TraceFlags().String())
		}
		rec := &recorder{ResponseWriter: w, status: http.StatusOK}
		r = r.WithContext(ctx)
		a.metrics.HTTPInFlight.Inc()
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { //nolint:errorlint // sentinel compared as net/http does.
					panic(p)
				}
				a.log.ErrorContext(ctx, "panic serving request", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if !rec.wrote {
					writeProblem(rec, newProblem(kindInternal, "", nil))
				}
			}
			a.metrics.HTTPInFlight.Dec()
			elapsed := time.Since(start)
			class := strconv.Itoa(rec.status/100) + "xx"
			a.metrics.HTTPRequests.WithLabelValues(route, r.Method, class).Inc()
			a.metrics.HTTPDuration.WithLabelValues(route, r.Method, class).Observe(elapsed.Seconds())
			a.log.InfoContext(ctx, "request", "method", r.Method, "route", route, "path", r.URL.Path,
				"status", rec.status, "bytes", rec.bytes, "duration_ms", float64(elapsed.Microseconds())/1000)
		}()
		next.ServeHTTP(rec, r)
	})
}

type recorder struct {
	http.ResponseWriter
	status int
	bytes  int
	wrote  bool
}

func (r *recorder) WriteHeader(status int) {
	if !r.wrote {
		r.status, r.wrote = status, true
	}
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	r.wrote = true
	n, err := r.ResponseWriter.Write(b)
	r.bytes += n
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (flush, deadlines).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// budget bounds the whole request; downstream calls size their timeouts from what is left.
func (a *API) budget(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.RequestBudget)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// Claims are the token claims the service reads.
type Claims struct {
	TenantID string   `json:"tenant_id"`
	Roles    []string `json:"roles,omitempty"`
	jwt.RegisteredClaims
}

var tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

type principalKey struct{}

type principal struct {
	actor domain.Actor
	roles []string
}

func actorFrom(ctx context.Context) domain.Actor {
	p, _ := ctx.Value(principalKey{}).(principal)
	p.actor.RequestID = telemetry.RequestID(ctx)
	return p.actor
}

// authenticate admits requests with a valid HS256 bearer token naming a tenant. The tenant comes
// only from the token, never from the request, so every query below is scoped by it.
func (a *API) authenticate(next http.Handler) http.Handler {
	parser := jwt.NewParser(a.parserOptions()...)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || raw == "" {
			a.fail(w, r, edge(kindUnauthorized, "missing bearer token", InvalidParam{Name: "Authorization", Reason: "must be a bearer token"}))
			return
		}
		var c Claims
		if _, err := parser.ParseWithClaims(raw, &c, func(*jwt.Token) (any, error) { return a.cfg.JWTSecret, nil }); err != nil {
			a.fail(w, r, edge(kindUnauthorized, "invalid token", InvalidParam{Name: "Authorization", Reason: "must be a valid, unexpired token"}))
			return
		}
		if !tenantRE.MatchString(c.TenantID) || c.Subject == "" {
			a.fail(w, r, edge(kindUnauthorized, "token lacks tenant or subject", InvalidParam{Name: "Authorization", Reason: "token must carry tenant_id and sub"}))
			return
		}
		p := principal{actor: domain.Actor{Tenant: domain.TenantID(c.TenantID), Subject: c.Subject}, roles: c.Roles}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}

func (a *API) parserOptions() []jwt.ParserOption {
	opts := []jwt.ParserOption{
		jwt.WithValidMethods([]string{"HS256"}),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(30 * time.Second),
	}
	if a.cfg.JWTIssuer != "" {
		opts = append(opts, jwt.WithIssuer(a.cfg.JWTIssuer))
	}
	if a.cfg.JWTAudience != "" {
		opts = append(opts, jwt.WithAudience(a.cfg.JWTAudience))
	}
	return opts
}

func (a *API) requireAdmin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p, _ := r.Context().Value(principalKey{}).(principal)
		if !slices.Contains(p.roles, "admin") {
			a.fail(w, r, edge(kindForbidden, "the admin role is required"))
			return
		}
		next(w, r)
	}
}

// rateLimit applies one token bucket per tenant and tells refused callers when to come back.
func (a *API) rateLimit(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		wait := a.limiter.reserve(actorFrom(r.Context()).Tenant, time.Now())
		if wait > 0 {
			a.metrics.RateLimited.Inc()
			w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
			a.fail(w, r, edge(kindRateLimited, fmt.Sprintf("retry in %s", wait.Round(time.Millisecond))))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// maxTenants bounds the limiter table; past it the table starts afresh, which can only ever
// grant a tenant a fresh burst, never refuse one wrongly.
const maxTenants = 10_000

type tenantLimiter struct {
	mu    sync.Mutex
	limit rate.Limit
	burst int
	by    map[domain.TenantID]*rate.Limiter
}

func newTenantLimiter(perSecond float64, burst int) *tenantLimiter {
	return &tenantLimiter{limit: rate.Limit(perSecond), burst: burst, by: map[domain.TenantID]*rate.Limiter{}}
}

// reserve takes a token for tenant, or returns how long until one is available (taking none).
func (l *tenantLimiter) reserve(tenant domain.TenantID, now time.Time) time.Duration {
	if l.limit <= 0 {
		return 0
	}
	l.mu.Lock()
	lim, ok := l.by[tenant]
	if !ok {
		if len(l.by) >= maxTenants {
			clear(l.by)
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.by[tenant] = lim
	}
	l.mu.Unlock()
	res := lim.ReserveN(now, 1)
	if !res.OK() {
		return time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return d
	}
	return 0
}
