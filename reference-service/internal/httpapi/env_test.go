package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"example.com/deliverykit/reference-service/api"
	"example.com/deliverykit/reference-service/internal/cache"
	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/httpapi"
	"example.com/deliverykit/reference-service/internal/killswitch"
	"example.com/deliverykit/reference-service/internal/payments"
	"example.com/deliverykit/reference-service/internal/paymentsim"
	"example.com/deliverykit/reference-service/internal/platformtest"
	"example.com/deliverykit/reference-service/internal/store"
	"example.com/deliverykit/reference-service/internal/telemetry"
	"example.com/deliverykit/reference-service/internal/testenv"
)

// deps are the containers every subtest of TestAPI shares; each subtest gets its own database.
type deps struct {
	pg    *platformtest.Postgres
	redis *platformtest.Redis
}

var (
	contractOnce   sync.Once
	contractRouter routers.Router
	contractErr    error
)

// contract loads api/openapi.yaml once and validates it.
func contract(t *testing.T) routers.Router {
	t.Helper()
	contractOnce.Do(func() {
		loader := openapi3.NewLoader()
		doc, err := loader.LoadFromData(api.OpenAPI)
		if err != nil {
			contractErr = err
			return
		}
		if err = doc.Validate(context.Background()); err != nil {
			contractErr = err
			return
		}
		// Match any host: the test server listens on a random port.
		doc.Servers = nil
		contractRouter, contractErr = gorillamux.NewRouter(doc)
	})
	if contractErr != nil {
		t.Fatalf("api/openapi.yaml: %v", contractErr)
	}
	return contractRouter
}

type options struct {
	rateLimit float64
	burst     int
	behaviour paymentsim.Behaviour
	noCache   bool
}

type env struct {
	t        *testing.T
	pool     *pgxpool.Pool
	srv      *httptest.Server
	sim      *paymentsim.Sim
	metrics  *telemetry.Metrics
	switches *killswitch.Switches
	store    *store.Store
	logs     *testenv.SyncBuffer
	router   routers.Router
}

func newEnv(t *testing.T, d deps, o options) *env {
	t.Helper()
	pool, _ := testenv.Database(t, d.pg.DSN)
	sim := paymentsim.New(o.behaviour)
	simSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(simSrv.Close)

	m := telemetry.NewMetrics()
	logs := &testenv.SyncBuffer{}
	log := telemetry.NewLogger(logs, slog.LevelDebug)
	switches := killswitch.New(!o.noCache, true)
	pg := store.New(pool)
	var orders domain.Store = pg
	if !o.noCache {
		rdb := redis.NewClient(&redis.Options{Addr: d.redis.Addr, MaxRetries: -1})
		t.Cleanup(func() { _ = rdb.Close() })
		orders = cache.New(orders, rdb, cache.Config{TTL: time.Minute, OpTimeout: 200 * time.Millisecond, Cooldown: time.Second}, switches.CacheEnabled, m, log)
	}
	pcfg := payments.DefaultConfig(simSrv.URL)
	pcfg.BackoffInitial = 5 * time.Millisecond
	// Tests hold a payment in flight for 1.5 s to race requests against it.
	pcfg.AttemptTimeout = 2 * time.Second
	svc := &domain.Service{
		Store: orders, Payments: payments.New(pcfg, m), PaymentsEnabled: switches.PaymentsEnabled,
		Lease: 10 * time.Second, Now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		NewID: func() uuid.UUID { return uuid.Must(uuid.NewV7()) }, Logger: log,
	}
	if o.rateLimit == 0 {
		o.rateLimit, o.burst = 1000, 1000
	}
	a := httpapi.New(httpapi.Config{
		JWTSecret: []byte(testenv.JWTSecret), RateLimit: o.rateLimit, RateBurst: o.burst, RequestBudget: 3 * time.Second,
	}, svc, switches, m, log, pool.Ping)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	return &env{t: t, pool: pool, srv: srv, sim: sim, metrics: m, switches: switches, store: pg, logs: logs, router: contract(t)}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response body is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// problem asserts r is a problem+json with status and code, and returns its body.
func (r response) problem(t *testing.T, status int, code string) map[string]any {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("Content-Type %q, want application/problem+json", ct)
	}
	p := r.json(t)
	if p["code"] != code || p["type"] != httpapi.ProblemBase+code {
		t.Fatalf("problem code %v type %v, want %s: %s", p["code"], p["type"], code, r.body)
	}
	return p
}

// namesField asserts the problem names field among its invalid_params.
func namesField(t *testing.T, p map[string]any, field string) {
	t.Helper()
	params, _ := p["invalid_params"].([]any)
	for _, x := range params {
		if m, ok := x.(map[string]any); ok && m["name"] == field {
			return
		}
	}
	t.Fatalf("problem does not name %q: %v", field, p)
}

type req struct {
	method, path string
	token        string
	key          string
	contentType  string
	body         string
	header       map[string]string
}

// do sends r and checks the response against the OpenAPI contract whenever the route exists in it.
func (e *env) do(r req) response {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hreq, err := http.NewRequestWithContext(ctx, r.method, e.srv.URL+r.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if r.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+r.token)
	}
	if r.key != "" {
		hreq.Header.Set("Idempotency-Key", r.key)
	}
	if r.body != "" {
		ct := r.contentType
		if ct == "" {
			ct = "application/json"
		}
		hreq.Header.Set("Content-Type", ct)
	}
	for k, v := range r.header {
		hreq.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	e.checkContract(hreq, resp, raw)
	return response{status: resp.StatusCode, header: resp.Header, body: raw}
}

func (e *env) checkContract(hreq *http.Request, resp *http.Response, raw []byte) {
	e.t.Helper()
	route, params, err := e.router.FindRoute(hreq)
	if err != nil {
		return // not a documented route: the unmatched-route tests assert those by hand
	}
	in := &openapi3filter.RequestValidationInput{
		Request: hreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	// What the service accepts, the contract must accept too.
	if resp.StatusCode < 300 {
		if hreq.GetBody != nil {
			body, err := hreq.GetBody()
			if err != nil {
				e.t.Fatal(err)
			}
			hreq.Body = body
		}
		if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
			e.t.Errorf("%s %s was accepted with %d but breaks api/openapi.yaml: %v", hreq.Method, hreq.URL.Path, resp.StatusCode, err)
		}
	}
	err = openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Body: io.NopCloser(bytes.NewReader(raw)), Options: &openapi3filter.Options{IncludeResponseStatus: true},
	})
	if err != nil {
		e.t.Errorf("%s %s -> %d does not match api/openapi.yaml: %v\nbody: %s", hreq.Method, hreq.URL.Path, resp.StatusCode, err, raw)
	}
}

const validOrder = `{"customer_email":"alice@example.com","currency":"EUR","card_number":"4242424242424242","items":[{"sku":"BOOK-1","quantity":2,"unit_price_minor":1250}]}`

// declinedOrder uses a card the payments stand-in declines.
const declinedOrder = `{"customer_email":"bob@example.com","currency":"EUR","card_number":"4000000000000002","items":[{"sku":"BOOK-2","quantity":1,"unit_price_minor":999}]}`

func (e *env) create(token, key, body string) response {
	e.t.Helper()
	return e.do(req{method: http.MethodPost, path: "/v1/orders", token: token, key: key, body: body})
}

func splitHostPort(t *testing.T, addr string) (string, uint16) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		t.Fatal(err)
	}
	return host, uint16(p)
}

// contractAccepts reports whether api/openapi.yaml accepts a create-order request with body and
// content type ct, so tests can check that the contract refuses what the service refuses.
func (e *env) contractAccepts(body, ct string) error {
	e.t.Helper()
	if ct == "" {
		ct = "application/json"
	}
	hreq := httptest.NewRequest(http.MethodPost, "/v1/orders", strings.NewReader(body))
	hreq.Header.Set("Content-Type", ct)
	hreq.Header.Set("Idempotency-Key", "k")
	route, params, err := e.router.FindRoute(hreq)
	if err != nil {
		e.t.Fatal(err)
	}
	return openapi3filter.ValidateRequest(context.Background(), &openapi3filter.RequestValidationInput{
		Request: hreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	})
}
