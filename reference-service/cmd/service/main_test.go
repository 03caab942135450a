package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"example.com/deliverykit/reference-service/internal/paymentsim"
	"example.com/deliverykit/reference-service/internal/platformtest"
	"example.com/deliverykit/reference-service/internal/testenv"
)

// TestRunServesAndShutsDownGracefully starts the whole service through run, with real
// PostgreSQL, Redis and NATS, places an order, then shuts down while a slow order is in flight:
// readiness must fail first, the in-flight order must complete, and the outbox relay must drain
// every event to JetStream before run returns.
func TestRunServesAndShutsDownGracefully(t *testing.T) {
	pg := platformtest.StartPostgres(t)
	rd := platformtest.StartRedis(t)
	nt := platformtest.StartNATS(t)
	_, dsn := testenv.Database(t, pg.DSN)
	sim := paymentsim.New(paymentsim.Behaviour{})
	simSrv := httptest.NewServer(sim.Handler())
	t.Cleanup(simSrv.Close)

	env := map[string]string{
		"ORDERS_HTTP_ADDR":    "127.0.0.1:0",
		"ORDERS_DATABASE_URL": dsn,
		"ORDERS_REDIS_ADDR":   rd.Addr,
		"ORDERS_NATS_URL":     nt.URL,
		"ORDERS_PAYMENTS_URL": simSrv.URL,
		"ORDERS_JWT_SECRET":   testenv.JWTSecret,
		"ORDERS_DRAIN_DELAY":  "700ms",
		// The in-flight order below waits 1.2 s on payments; let one attempt last that long.
		"ORDERS_PAYMENTS_ATTEMPT_TIMEOUT": "2s",
	}
	stdout, stderr := &testenv.SyncBuffer{}, &testenv.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"service"}, func(k string) string { return env[k] }, stdout, stderr) }()

	addrRE := regexp.MustCompile(`"msg":"listening","addr":"([^"]+)"`)
	var base string
	deadline := time.Now().Add(30 * time.Second)
	for base == "" {
		if m := addrRE.FindStringSubmatch(stdout.String()); m != nil {
			base = "http://" + m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\nstderr: %s\nstdout: %s", err, stderr, stdout)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("service never listened:\n%s", stdout)
		}
	}

	cfgOut := stderr.String()
	if !strings.Contains(cfgOut, "ORDERS_JWT_SECRET=*****") || strings.Contains(cfgOut, testenv.JWTSecret) ||
		strings.Contains(cfgOut, "kit:kit@") || !strings.Contains(cfgOut, "kit:*****@") {
		t.Fatalf("configuration not printed with secrets masked:\n%s", cfgOut)
	}

	tok := testenv.Token(t, "acme", "alice")
	order := `{"customer_email":"alice@example.com","currency":"EUR","card_number":"4242424242424242","items":[{"sku":"A","quantity":1,"unit_price_minor":100}]}`
	if st := post(t, base, tok, "k1", order); st != http.StatusCreated {
		t.Fatalf("create: %d", st)
	}

	pm := fetch(t, base+"/metrics")
	if !strings.Contains(pm, `db_query_duration_seconds_count{outcome="ok",query="PlaceOrderFast"} 1`) {
		t.Fatalf("query latency not measured by query name:\n%s", pm)
	}
	// The pool's own statistics: its limit, the warm floor of ORDERS_DATABASE_MIN_IDLE_CONNS (2)
	// opened at start, and the acquires the order and the relay made.
	if v := metricValue(t, pm, "db_pool_max_connections"); v != 20 {
		t.Errorf("db_pool_max_connections %v, want the default 20", v)
	}
	if open := metricValue(t, pm, "db_pool_idle_connections") + metricValue(t, pm, "db_pool_acquired_connections"); open < 2 {
		t.Errorf("%v connections open, want at least the 2 idle ones the pool keeps", open)
	}
	if v := metricValue(t, pm, "db_pool_new_connections_total"); v < 2 {
		t.Errorf("db_pool_new_connections_total %v, want at least 2", v)
	}
	if v := metricValue(t, pm, "db_pool_acquires_total"); v < 2 {
		t.Errorf("db_pool_acquires_total %v, want the order's acquires counted", v)
	}
	metricValue(t, pm, "db_pool_empty_acquires_total")
	metricValue(t, pm, "db_pool_empty_acquire_wait_seconds_total")

	// A slow order is in flight when shutdown begins.
	sim.SetBehaviour(paymentsim.Behaviour{Latency: 1200 * time.Millisecond})
	inflight := make(chan int, 1)
	go func() { inflight <- post(t, base, tok, "k2", order) }()
	time.Sleep(300 * time.Millisecond)
	cancel()

	sawNotReady := false
	for range 50 {
		if get(t, base+"/readyz") == http.StatusServiceUnavailable {
			sawNotReady = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !sawNotReady {
		t.Fatal("/readyz never failed during the drain delay")
	}
	if st := <-inflight; st != http.StatusCreated {
		t.Fatalf("in-flight order cut by shutdown: %d", st)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("run did not return after shutdown")
	}

	// Two orders, each created and paid: four events, all published before run returned.
	nc, err := nats.Connect(nt.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer scancel()
	stream, err := js.Stream(sctx, "ORDERS")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(sctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 4 {
		t.Fatalf("stream holds %d events after shutdown, want 4", info.State.Msgs)
	}
}

func post(t *testing.T, base, tok, key, body string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/orders", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Idempotency-Key", key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("POST: %v", err)
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func get(t *testing.T, url string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	defer func() { _ = resp.Body.Close() }()
	var v map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&v)
	return resp.StatusCode
}

func TestRunRejectsBadConfiguration(t *testing.T) {
	t.Parallel()
	env := map[string]string{"ORDERS_JWT_SECRET": "short", "ORDERS_REQUEST_BUDGET": "fast"}
	err := run(context.Background(), []string{"service"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"ORDERS_DATABASE_URL is required", "ORDERS_PAYMENTS_URL is required", "ORDERS_JWT_SECRET must be at least 32 bytes", "ORDERS_REQUEST_BUDGET must be"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func fetch(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// metricValue reads an unlabelled sample from a Prometheus text exposition.
func metricValue(t *testing.T, exposition, name string) float64 {
	t.Helper()
	for line := range strings.Lines(exposition) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			return f
		}
	}
	t.Fatalf("%s is not exported", name)
	return 0
}
