package httpapi_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

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

// TestDatabaseOutage reaches PostgreSQL through Toxiproxy and takes it away: requests must get
// 503 store-unavailable (never 500), /readyz must fail, and both must recover with the database.
func TestDatabaseOutage(t *testing.T) {
	nw := platformtest.Network(t)
	pg := platformtest.StartPostgres(t, &platformtest.On{Network: nw, Alias: "postgres"})
	tp := platformtest.StartToxiproxy(t, 1, &platformtest.On{Network: nw, Alias: "toxiproxy"})
	proxy, err := toxiproxy.NewClient(tp.API).CreateProxy("postgres", tp.ProxyListen(0), "postgres:5432")
	if err != nil {
		t.Fatal(err)
	}
	_, dsn := testenv.Database(t, pg.DSN)
	// Same database, reached through the proxy.
	pool := testenv.Pool(t, dsn, func(pc *pgxpool.Config) {
		pc.ConnConfig.Host, pc.ConnConfig.Port = splitHostPort(t, tp.ProxyAddr(t, 0))
		pc.ConnConfig.ConnectTimeout = time.Second
	})

	sim := httptest.NewServer(paymentsim.New(paymentsim.Behaviour{}).Handler())
	t.Cleanup(sim.Close)
	m := telemetry.NewMetrics()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc := &domain.Service{
		Store: store.New(pool), Payments: payments.New(payments.DefaultConfig(sim.URL), m), Lease: 10 * time.Second,
		Now: func() time.Time { return time.Now().UTC() }, NewID: uuid.New, Logger: log,
	}
	a := httpapi.New(httpapi.Config{JWTSecret: []byte(testenv.JWTSecret), RateLimit: 1000, RateBurst: 1000, RequestBudget: 2 * time.Second},
		svc, killswitch.New(false, true), m, log, pool.Ping)
	srv := httptest.NewServer(a.Handler())
	t.Cleanup(srv.Close)
	e := &env{t: t, srv: srv, router: contract(t)}
	tok := testenv.Token(t, "acme", "alice")

	if r := e.create(tok, "k1", validOrder); r.status != http.StatusCreated {
		t.Fatalf("before the outage: %d %s", r.status, r.body)
	}
	if err := proxy.Disable(); err != nil {
		t.Fatal(err)
	}
	e.do(req{method: http.MethodGet, path: "/v1/orders", token: tok}).problem(t, http.StatusServiceUnavailable, "store-unavailable")
	e.create(tok, "k2", validOrder).problem(t, http.StatusServiceUnavailable, "store-unavailable")
	if r := e.do(req{method: http.MethodGet, path: "/readyz"}); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz during the outage: %d", r.status)
	}
	if err := proxy.Enable(); err != nil {
		t.Fatal(err)
	}
	if r := e.create(tok, "k2", validOrder); r.status != http.StatusCreated {
		t.Fatalf("after the outage: %d %s", r.status, r.body)
	}
	if r := e.do(req{method: http.MethodGet, path: "/readyz"}); r.status != http.StatusOK {
		t.Fatalf("readyz after the outage: %d", r.status)
	}
}
