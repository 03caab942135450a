package httpapi_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/paymentsim"
	"example.com/deliverykit/reference-service/internal/platformtest"
	"example.com/deliverykit/reference-service/internal/telemetry"
	"example.com/deliverykit/reference-service/internal/testenv"
)

// TestAPI runs every HTTP-level test against one PostgreSQL and one Redis container; each
// subtest has its own database, payments stand-in and server, and they run in parallel.
func TestAPI(t *testing.T) {
	stopTracing, err := telemetry.SetupTracing(context.Background(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stopTracing(context.Background()) })
	d := deps{pg: platformtest.StartPostgres(t), redis: platformtest.StartRedis(t)}
	tests := map[string]func(*testing.T, deps){
		"CreateGetAndAudit":                    testCreateGetAndAudit,
		"DeclinedPayment":                      testDeclinedPayment,
		"IdempotencyKeyMissing":                testIdempotencyKeyMissing,
		"IdempotencyReplay":                    testIdempotencyReplay,
		"IdempotencyDifferentBody":             testIdempotencyDifferentBody,
		"IdempotencyInFlight":                  testIdempotencyInFlight,
		"IdempotencyConcurrentDuplicates":      testIdempotencyConcurrentDuplicates,
		"IdempotencyScopedPerTenant":           testIdempotencyScopedPerTenant,
		"IdempotencyResumeAfterPaymentsOutage": testIdempotencyResumeAfterPaymentsOutage,
		"TenantIsolation":                      testTenantIsolation,
		"BadInput":                             testBadInput,
		"Auth":                                 testAuth,
		"Cancel":                               testCancel,
		"CancelWhilePaying":                    testCancelWhilePaying,
		"ListPagination":                       testListPagination,
		"RateLimit":                            testRateLimit,
		"KillSwitches":                         testKillSwitches,
		"CacheAside":                           testCacheAside,
		"UnmatchedRoutes":                      testUnmatchedRoutes,
		"LogsMaskPII":                          testLogsMaskPII,
		"HealthAndMetrics":                     testHealthAndMetrics,
	}
	for name, fn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, d)
		})
	}
}

func testCreateGetAndAudit(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	tok := testenv.Token(t, "acme", "alice")
	r := e.create(tok, "k1", validOrder)
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	o := r.json(t)
	if o["status"] != "paid" || o["amount_minor"] != float64(2500) || o["card_last4"] != "4242" || o["payment_id"] == nil {
		t.Fatalf("unexpected order: %s", r.body)
	}
	if strings.Contains(string(r.body), "4242424242424242") {
		t.Fatal("the full card number came back")
	}
	loc := r.header.Get("Location")
	if loc != "/v1/orders/"+o["id"].(string) {
		t.Fatalf("Location %q", loc)
	}
	g := e.do(req{method: http.MethodGet, path: loc, token: tok})
	if g.status != http.StatusOK || g.json(t)["status"] != "paid" {
		t.Fatalf("get: %d %s", g.status, g.body)
	}
	id := uuid.MustParse(o["id"].(string))
	trail, err := e.store.Audit(context.Background(), "acme", id)
	if err != nil {
		t.Fatal(err)
	}
	if len(trail) != 2 || trail[0].Action != "order.create" || trail[1].To != "paid" || trail[0].Actor != "alice" || trail[0].RequestID == "" {
		t.Fatalf("audit trail: %+v", trail)
	}
	if n := testenv.Count(t, e.pool, "SELECT count(*) FROM outbox WHERE tenant_id = 'acme'"); n != 2 {
		t.Fatalf("outbox holds %d events, want created and paid", n)
	}
	_, calls := e.sim.Calls()
	if len(calls) != 1 || calls[0].IdempotencyKey != id.String() || calls[0].Traceparent == "" {
		t.Fatalf("payments calls: %+v", calls)
	}
}

func testDeclinedPayment(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	r := e.create(testenv.Token(t, "acme", "bob"), "k1", declinedOrder)
	if r.status != http.StatusCreated || r.json(t)["status"] != "payment_declined" {
		t.Fatalf("declined: %d %s", r.status, r.body)
	}
	if v := testutil.ToFloat64(e.metrics.PaymentsCalls.WithLabelValues("declined")); v != 1 {
		t.Fatalf("declined calls metric %v", v)
	}
	if v := testutil.ToFloat64(e.metrics.PaymentsRetries); v != 0 {
		t.Fatalf("a decline was retried %v times", v)
	}
}

func testIdempotencyKeyMissing(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	r := e.create(testenv.Token(t, "acme", "alice"), "", validOrder)
	namesField(t, r.problem(t, http.StatusBadRequest, "idempotency-key-missing"), "Idempotency-Key")
	long := e.create(testenv.Token(t, "acme", "alice"), strings.Repeat("k", 256), validOrder)
	namesField(t, long.problem(t, http.StatusBadRequest, "invalid-request"), "Idempotency-Key")
	if n := testenv.Count(t, e.pool, "SELECT count(*) FROM orders"); n != 0 {
		t.Fatalf("%d orders written", n)
	}
}

func testIdempotencyReplay(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	tok := testenv.Token(t, "acme", "alice")
	first := e.create(tok, "k1", validOrder)
	// The same order, spelt differently, is the same request.
	respelt := `{"items":[{"unit_price_minor":1250,"quantity":2,"sku":"BOOK-1"}], "currency":"EUR","card_number":"4242424242424242","customer_email":"alice@example.com"}`
	second := e.create(tok, "k1", respelt)
	if first.status != http.StatusCreated || second.status != first.status || string(second.body) != string(first.body) {
		t.Fatalf("replay differs:\nfirst  %d %s\nsecond %d %s", first.status, first.body, second.status, second.body)
	}
	if second.header.Get("Idempotent-Replayed") != "true" || first.header.Get("Idempotent-Replayed") != "" {
		t.Fatal("Idempotent-Replayed header wrong")
	}
	if second.header.Get("Location") != first.header.Get("Location") {
		t.Fatal("replay has another Location")
	}
	sum, _ := e.sim.Calls()
	if sum.Calls != 1 || testenv.Count(t, e.pool, "SELECT count(*) FROM orders") != 1 || testenv.Count(t, e.pool, "SELECT count(*) FROM outbox") != 2 {
		t.Fatalf("the replay had an effect: %+v", sum)
	}
}

func testIdempotencyDifferentBody(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	tok := testenv.Token(t, "acme", "alice")
	if r := e.create(tok, "k1", validOrder); r.status != http.StatusCreated {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	other := strings.Replace(validOrder, `"quantity":2`, `"quantity":3`, 1)
	e.create(tok, "k1", other).problem(t, http.StatusUnprocessableEntity, "idempotency-key-reused")
	if n := testenv.Count(t, e.pool, "SELECT count(*) FROM orders"); n != 1 {
		t.Fatalf("%d orders", n)
	}
}

func testIdempotencyInFlight(t *testing.T, d deps) {
	e := newEnv(t, d, options{behaviour: paymentsim.Behaviour{Latency: 1500 * time.Millisecond}})
	tok := testenv.Token(t, "acme", "alice")
	done := make(chan response, 1)
	go func() { done <- e.create(tok, "k1", validOrder) }()
	// Wait until the first request has committed its key and is waiting on payments.
	deadline := time.Now().Add(5 * time.Second)
	for testenv.Count(t, e.pool, "SELECT count(*) FROM idempotency_keys") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("first request never wrote its key")
		}
		time.Sleep(10 * time.Millisecond)
	}
	r := e.create(tok, "k1", validOrder)
	r.problem(t, http.StatusConflict, "idempotency-key-in-flight")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("409 without Retry-After")
	}
	if first := <-done; first.status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	if again := e.create(tok, "k1", validOrder); again.status != http.StatusCreated || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("after completion: %d %s", again.status, again.body)
	}
}

func testIdempotencyConcurrentDuplicates(t *testing.T, d deps) {
	e := newEnv(t, d, options{behaviour: paymentsim.Behaviour{Latency: 100 * time.Millisecond}})
	tok := testenv.Token(t, "acme", "alice")
	const n = 12
	var wg sync.WaitGroup
	results := make([]response, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			results[i] = e.create(tok, "same-key", validOrder)
		})
	}
	close(start)
	wg.Wait()
	created, conflicts := 0, 0
	var body string
	for _, r := range results {
		switch r.status {
		case http.StatusCreated:
			created++
			if body != "" && string(r.body) != body {
				t.Fatalf("two different 201 bodies for one key:\n%s\n%s", body, r.body)
			}
			body = string(r.body)
		case http.StatusConflict:
			r.problem(t, http.StatusConflict, "idempotency-key-in-flight")
			conflicts++
		default:
			t.Fatalf("unexpected %d %s", r.status, r.body)
		}
	}
	sum, _ := e.sim.Calls()
	if created < 1 || created+conflicts != n || sum.Charges != 1 || sum.Calls != 1 {
		t.Fatalf("created %d conflicts %d, payments %+v", created, conflicts, sum)
	}
	if c := testenv.Count(t, e.pool, "SELECT count(*) FROM orders"); c != 1 {
		t.Fatalf("%d orders for one key", c)
	}
}

func testIdempotencyScopedPerTenant(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	a := e.create(testenv.Token(t, "acme", "alice"), "shared", validOrder)
	b := e.create(testenv.Token(t, "globex", "gina"), "shared", validOrder)
	if a.status != http.StatusCreated || b.status != http.StatusCreated || b.header.Get("Idempotent-Replayed") != "" {
		t.Fatalf("a %d b %d %s", a.status, b.status, b.body)
	}
	if a.json(t)["id"] == b.json(t)["id"] {
		t.Fatal("one tenant's key replayed another tenant's order")
	}
}

func testIdempotencyResumeAfterPaymentsOutage(t *testing.T, d deps) {
	e := newEnv(t, d, options{behaviour: paymentsim.Behaviour{ErrorRate: 1}})
	tok := testenv.Token(t, "acme", "alice")
	r := e.create(tok, "k1", validOrder)
	r.problem(t, http.StatusServiceUnavailable, "payments-unavailable")
	if r.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	// The order and its created event were committed with the key, in one transaction.
	if testenv.Count(t, e.pool, "SELECT count(*) FROM orders WHERE status = 'pending_payment'") != 1 ||
		testenv.Count(t, e.pool, "SELECT count(*) FROM idempotency_keys WHERE recovery_point = 'order_created' AND locked_until IS NULL") != 1 ||
		testenv.Count(t, e.pool, "SELECT count(*) FROM outbox") != 1 {
		t.Fatal("order, key and event are not together after a payments failure")
	}
	if v := testutil.ToFloat64(e.metrics.PaymentsRetries); v != 2 {
		t.Fatalf("retries %v, want 2 (3 attempts)", v)
	}
	e.sim.SetBehaviour(paymentsim.Behaviour{})
	again := e.create(tok, "k1", validOrder)
	if again.status != http.StatusCreated || again.json(t)["status"] != "paid" {
		t.Fatalf("resume: %d %s", again.status, again.body)
	}
	sum, calls := e.sim.Calls()
	if sum.Charges != 1 {
		t.Fatalf("payments: %+v", sum)
	}
	for _, c := range calls {
		if c.IdempotencyKey != calls[0].IdempotencyKey || c.IdempotencyKey == "" {
			t.Fatalf("attempts used different payments keys: %+v", calls)
		}
	}
	if n := testenv.Count(t, e.pool, "SELECT count(*) FROM orders"); n != 1 {
		t.Fatalf("%d orders", n)
	}
	if v := testutil.ToFloat64(e.metrics.IdempotencyOutcomes.WithLabelValues("resumed")); v != 1 {
		t.Fatalf("resumed outcomes %v", v)
	}
}

func testTenantIsolation(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	acme, globex := testenv.Token(t, "acme", "alice"), testenv.Token(t, "globex", "gina")
	r := e.create(acme, "k1", declinedOrder)
	path := r.header.Get("Location")
	e.do(req{method: http.MethodGet, path: path, token: globex}).problem(t, http.StatusNotFound, "order-not-found")
	e.do(req{method: http.MethodPost, path: path + "/cancel", token: globex}).problem(t, http.StatusNotFound, "order-not-found")
	list := e.do(req{method: http.MethodGet, path: "/v1/orders", token: globex})
	if items := list.json(t)["items"].([]any); len(items) != 0 {
		t.Fatalf("globex sees %d acme orders", len(items))
	}
	if g := e.do(req{method: http.MethodGet, path: path, token: acme}); g.json(t)["status"] != "payment_declined" {
		t.Fatalf("another tenant changed the order: %s", g.body)
	}
}

var beyondSchema = map[string]bool{"bad card": true, "bad email": true, "oversize": true, "trailing data": true}

func testBadInput(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	tok := testenv.Token(t, "acme", "alice")
	big := `{"customer_email":"` + strings.Repeat("a", 70000) + `"}`
	cases := []struct {
		name, body, ct string
		status         int
		code, field    string
	}{
		{"empty body", " ", "", 400, "malformed-json", "body"},
		{"not json", "{oops", "", 400, "malformed-json", "body"},
		{"truncated", `{"customer_email":"a@b.c"`, "", 400, "malformed-json", "body"},
		{"array", `[]`, "", 400, "malformed-json", "body"},
		{"trailing data", validOrder + `{}`, "", 400, "malformed-json", "body"},
		{"unknown field", `{"customer_email":"a@b.co","discount":5}`, "", 400, "unknown-field", "discount"},
		{"unknown nested field", `{"customer_email":"a@b.co","currency":"EUR","card_number":"4242424242424242","items":[{"sku":"A","quantity":1,"unit_price_minor":1,"colour":"red"}]}`, "", 400, "unknown-field", "colour"},
		{"wrong type", `{"customer_email":42}`, "", 400, "malformed-json", "customer_email"},
		{"wrong nested type", `{"items":[{"quantity":"two"}]}`, "", 400, "malformed-json", "items.quantity"},
		{"number too big", `{"items":[{"quantity":99999999999999999999}]}`, "", 400, "malformed-json", "items.quantity"},
		{"float quantity", `{"items":[{"quantity":1.5}]}`, "", 400, "malformed-json", "items.quantity"},
		{"missing email", `{"currency":"EUR","card_number":"4242424242424242","items":[{"sku":"A","quantity":1,"unit_price_minor":1}]}`, "", 400, "invalid-request", "customer_email"},
		{"null email", strings.Replace(validOrder, `"alice@example.com"`, `null`, 1), "", 400, "invalid-request", "customer_email"},
		{"bad email", strings.Replace(validOrder, "alice@example.com", "Alice <alice@example.com>", 1), "", 400, "invalid-request", "customer_email"},
		{"bad currency", strings.Replace(validOrder, "EUR", "eur", 1), "", 400, "invalid-request", "currency"},
		{"bad card", strings.Replace(validOrder, "4242424242424242", "4242424242424241", 1), "", 400, "invalid-request", "card_number"},
		{"no items", `{"customer_email":"a@b.co","currency":"EUR","card_number":"4242424242424242","items":[]}`, "", 400, "invalid-request", "items"},
		{"zero quantity", strings.Replace(validOrder, `"quantity":2`, `"quantity":0`, 1), "", 400, "invalid-request", "items[0].quantity"},
		{"negative price", strings.Replace(validOrder, `"unit_price_minor":1250`, `"unit_price_minor":-1`, 1), "", 400, "invalid-request", "items[0].unit_price_minor"},
		{"missing sku", strings.Replace(validOrder, `"sku":"BOOK-1",`, ``, 1), "", 400, "invalid-request", "items[0].sku"},
		{"bad sku", strings.Replace(validOrder, `BOOK-1`, `BOOK 1`, 1), "", 400, "invalid-request", "items[0].sku"},
		{"too many items", `{"customer_email":"a@b.co","currency":"EUR","card_number":"4242424242424242","items":[` + strings.TrimSuffix(strings.Repeat(`{"sku":"A","quantity":1,"unit_price_minor":1},`, 51), ",") + `]}`, "", 400, "invalid-request", "items"},
		{"oversize", big, "", 413, "body-too-large", "body"},
		{"wrong media type", validOrder, "text/plain", 415, "unsupported-media-type", "Content-Type"},
	}
	if err := e.contractAccepts(validOrder, ""); err != nil {
		t.Fatalf("the contract refuses a valid order: %v", err)
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := e.do(req{method: http.MethodPost, path: "/v1/orders", token: tok, key: fmt.Sprintf("bad-%d", i), body: c.body, contentType: c.ct})
			namesField(t, r.problem(t, c.status, c.code), c.field)
			// The contract must say so too, except where a rule is beyond JSON Schema (the card's
			// check digit, a display name around an address) or a transport limit.
			if !beyondSchema[c.name] {
				if err := e.contractAccepts(c.body, c.ct); err == nil {
					t.Errorf("api/openapi.yaml accepts what the service refuses")
				}
			}
		})
	}
	params := []struct{ path, field string }{
		{"/v1/orders/not-a-uuid", "id"},
		{"/v1/orders?limit=0", "limit"},
		{"/v1/orders?limit=abc", "limit"},
		{"/v1/orders?limit=101", "limit"},
		{"/v1/orders?limit=", "limit"},
		{"/v1/orders?cursor=!!!", "cursor"},
		{"/v1/orders?cursor=%zz", "query"},
		{"/v1/orders?cursor=bm90LWpzb24", "cursor"},
	}
	for _, p := range params {
		t.Run(p.path, func(t *testing.T) {
			namesField(t, e.do(req{method: http.MethodGet, path: p.path, token: tok}).problem(t, 400, "invalid-request"), p.field)
		})
	}
	t.Run("kill switch body", func(t *testing.T) {
		admin := testenv.Token(t, "ops", "root", "admin")
		r := e.do(req{method: http.MethodPut, path: "/admin/kill-switches", token: admin, body: `{"cache_enabled":true}`})
		namesField(t, r.problem(t, 400, "invalid-request"), "payments_enabled")
	})
	if n := testenv.Count(t, e.pool, "SELECT count(*) FROM orders"); n != 0 {
		t.Fatalf("bad input wrote %d orders", n)
	}
	if n := testenv.Count(t, e.pool, "SELECT count(*) FROM idempotency_keys"); n != 0 {
		t.Fatalf("bad input wrote %d keys", n)
	}
}

func testAuth(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	expired := signRaw(t, map[string]any{"sub": "a", "tenant_id": "acme", "exp": time.Now().Add(-time.Hour).Unix()}, testenv.JWTSecret)
	wrongKey := signRaw(t, map[string]any{"sub": "a", "tenant_id": "acme", "exp": time.Now().Add(time.Hour).Unix()}, "another-secret-another-secret-0123456")
	noTenant := signRaw(t, map[string]any{"sub": "a", "exp": time.Now().Add(time.Hour).Unix()}, testenv.JWTSecret)
	noExp := signRaw(t, map[string]any{"sub": "a", "tenant_id": "acme"}, testenv.JWTSecret)
	// alg "none" must never be accepted.
	none := "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhIiwidGVuYW50X2lkIjoiYWNtZSIsImV4cCI6NDEwMjQ0NDgwMH0."
	for name, tok := range map[string]string{"missing": "", "garbage": "x.y.z", "expired": expired, "wrong key": wrongKey, "no tenant": noTenant, "no exp": noExp, "alg none": none} {
		t.Run(name, func(t *testing.T) {
			r := e.do(req{method: http.MethodGet, path: "/v1/orders", token: tok})
			namesField(t, r.problem(t, http.StatusUnauthorized, "unauthorized"), "Authorization")
			if r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	e.do(req{method: http.MethodGet, path: "/admin/kill-switches", token: testenv.Token(t, "acme", "alice")}).problem(t, http.StatusForbidden, "forbidden")
}

func testCancel(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	tok := testenv.Token(t, "acme", "alice")
	declined := e.create(tok, "k1", declinedOrder).header.Get("Location")
	for range 2 {
		r := e.do(req{method: http.MethodPost, path: declined + "/cancel", token: tok})
		if r.status != http.StatusOK || r.json(t)["status"] != "cancelled" {
			t.Fatalf("cancel: %d %s", r.status, r.body)
		}
	}
	if n := testenv.Count(t, e.pool, "SELECT count(*) FROM audit_log WHERE action = 'order.cancel'"); n != 1 {
		t.Fatalf("%d cancel audit rows; a repeated cancel must change nothing", n)
	}
	if n := testenv.Count(t, e.pool, "SELECT count(*) FROM outbox WHERE subject = 'orders.cancelled'"); n != 1 {
		t.Fatalf("%d cancelled events", n)
	}
	paid := e.create(tok, "k2", validOrder).header.Get("Location")
	e.do(req{method: http.MethodPost, path: paid + "/cancel", token: tok}).problem(t, http.StatusConflict, "order-not-cancellable")
	e.do(req{method: http.MethodPost, path: "/v1/orders/" + uuid.NewString() + "/cancel", token: tok}).problem(t, http.StatusNotFound, "order-not-found")
}

func testListPagination(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	tok := testenv.Token(t, "acme", "alice")
	want := map[string]bool{}
	for i := range 7 {
		r := e.create(tok, fmt.Sprintf("k%d", i), validOrder)
		want[r.json(t)["id"].(string)] = true
	}
	seen := map[string]bool{}
	path := "/v1/orders?limit=3"
	pages := 0
	var last time.Time
	for {
		r := e.do(req{method: http.MethodGet, path: path, token: tok})
		if r.status != http.StatusOK {
			t.Fatalf("list: %d %s", r.status, r.body)
		}
		pages++
		page := r.json(t)
		for _, it := range page["items"].([]any) {
			o := it.(map[string]any)
			created, _ := time.Parse(time.RFC3339Nano, o["created_at"].(string))
			if !last.IsZero() && created.After(last) {
				t.Fatal("list is not newest first")
			}
			last = created
			if seen[o["id"].(string)] {
				t.Fatalf("order %s on two pages", o["id"])
			}
			seen[o["id"].(string)] = true
		}
		next, _ := page["next_cursor"].(string)
		if next == "" {
			break
		}
		path = "/v1/orders?limit=3&cursor=" + next
	}
	if pages != 3 || len(seen) != len(want) {
		t.Fatalf("%d pages, %d orders, want 3 pages and %d orders", pages, len(seen), len(want))
	}
	// The contract's cursor is any 32 characters of base64url: each one is a position, never a
	// 400. The first 8 bytes are signed Unix microseconds, clamped to years 1 to 9999.
	for cursor, wantN := range map[string]int{
		"f" + strings.Repeat("_", 31): len(want), // the largest time: every order is older
		"g" + strings.Repeat("A", 31): 0,         // the smallest time: nothing is older
		strings.Repeat("_", 32):       0,         // one microsecond before 1970
		strings.Repeat("A", 32):       0,         // 1970, the nil id
	} {
		r := e.do(req{method: http.MethodGet, path: "/v1/orders?limit=100&cursor=" + cursor, token: tok})
		if r.status != http.StatusOK {
			t.Fatalf("cursor %s: %d %s", cursor, r.status, r.body)
		}
		if n := len(r.json(t)["items"].([]any)); n != wantN {
			t.Errorf("cursor %s: %d orders, want %d", cursor, n, wantN)
		}
	}
}

func testRateLimit(t *testing.T, d deps) {
	e := newEnv(t, d, options{rateLimit: 0.5, burst: 3})
	tok := testenv.Token(t, "acme", "alice")
	statuses := []int{}
	var limited response
	for range 5 {
		r := e.do(req{method: http.MethodGet, path: "/v1/orders", token: tok})
		statuses = append(statuses, r.status)
		if r.status == http.StatusTooManyRequests {
			limited = r
		}
	}
	if fmt.Sprint(statuses) != "[200 200 200 429 429]" {
		t.Fatalf("statuses %v", statuses)
	}
	limited.problem(t, http.StatusTooManyRequests, "rate-limited")
	if ra := limited.header.Get("Retry-After"); ra != "2" {
		t.Fatalf("Retry-After %q, want 2 (one token per 2 s)", ra)
	}
	// Another tenant has its own bucket.
	if r := e.do(req{method: http.MethodGet, path: "/v1/orders", token: testenv.Token(t, "globex", "gina")}); r.status != http.StatusOK {
		t.Fatalf("globex limited by acme's traffic: %d", r.status)
	}
}

func testKillSwitches(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	admin := testenv.Token(t, "ops", "root", "admin")
	r := e.do(req{method: http.MethodPut, path: "/admin/kill-switches", token: admin, body: `{"cache_enabled":false,"payments_enabled":false}`})
	if r.status != http.StatusOK || r.json(t)["payments_enabled"] != false {
		t.Fatalf("set switches: %d %s", r.status, r.body)
	}
	tok := testenv.Token(t, "acme", "alice")
	c := e.create(tok, "k1", validOrder)
	if c.status != http.StatusCreated || c.json(t)["status"] != string(domain.StatusPendingPayment) {
		t.Fatalf("payments off: %d %s", c.status, c.body)
	}
	if sum, _ := e.sim.Calls(); sum.Calls != 0 {
		t.Fatalf("payments called while switched off: %+v", sum)
	}
	e.do(req{method: http.MethodGet, path: c.header.Get("Location"), token: tok})
	if v := testutil.ToFloat64(e.metrics.CacheRequests.WithLabelValues("get", "bypass")); v != 1 {
		t.Fatalf("cache bypass count %v", v)
	}
	g := e.do(req{method: http.MethodGet, path: "/admin/kill-switches", token: admin})
	if g.json(t)["cache_enabled"] != false {
		t.Fatalf("switches: %s", g.body)
	}
}

func testCacheAside(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	tok := testenv.Token(t, "acme", "alice")
	loc := e.create(tok, "k1", declinedOrder).header.Get("Location")
	first := e.do(req{method: http.MethodGet, path: loc, token: tok})
	second := e.do(req{method: http.MethodGet, path: loc, token: tok})
	if string(first.body) != string(second.body) {
		t.Fatal("cached read differs")
	}
	if testutil.ToFloat64(e.metrics.CacheRequests.WithLabelValues("get", "hit")) != 1 ||
		testutil.ToFloat64(e.metrics.CacheRequests.WithLabelValues("get", "miss")) != 1 {
		t.Fatal("expected one miss then one hit")
	}
	// A change invalidates: the next read shows it.
	e.do(req{method: http.MethodPost, path: loc + "/cancel", token: tok})
	if g := e.do(req{method: http.MethodGet, path: loc, token: tok}); g.json(t)["status"] != "cancelled" {
		t.Fatalf("stale read after cancel: %s", g.body)
	}
}

func testUnmatchedRoutes(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	e.do(req{method: http.MethodGet, path: "/nope"}).problem(t, http.StatusNotFound, "not-found")
	r := e.do(req{method: http.MethodDelete, path: "/v1/orders"})
	r.problem(t, http.StatusMethodNotAllowed, "method-not-allowed")
	if !strings.Contains(r.header.Get("Allow"), "POST") {
		t.Fatalf("Allow %q", r.header.Get("Allow"))
	}
}

func testLogsMaskPII(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	r := e.do(req{method: http.MethodPost, path: "/v1/orders", token: testenv.Token(t, "acme", "alice"), key: "k1", body: validOrder,
		header: map[string]string{"Traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "X-Request-ID": "req-123"}})
	if r.status != http.StatusCreated {
		t.Fatalf("create: %d", r.status)
	}
	logs := e.logs.String()
	if strings.Contains(logs, "alice@example.com") || strings.Contains(logs, "4242424242424242") {
		t.Fatalf("PII in logs:\n%s", logs)
	}
	if !strings.Contains(logs, `"a***@example.com"`) || !strings.Contains(logs, `"****4242"`) {
		t.Fatalf("masked values missing from debug log:\n%s", logs)
	}
	for _, line := range strings.Split(strings.TrimSpace(logs), "\n") {
		if !strings.Contains(line, `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`) || !strings.Contains(line, `"request_id":"req-123"`) {
			t.Fatalf("log line without the request's trace and request ids: %s", line)
		}
	}
	if r.header.Get("X-Request-ID") != "req-123" {
		t.Fatal("request id not echoed")
	}
	// The traceparent is continued: same trace id, the server's own span id.
	tr := strings.Split(r.header.Get("traceresponse"), "-")
	if len(tr) != 4 || tr[1] != "4bf92f3577b34da6a3ce929d0e0e4736" || tr[2] == "00f067aa0ba902b7" || len(tr[2]) != 16 {
		t.Fatalf("traceresponse %q does not continue the trace", r.header.Get("traceresponse"))
	}
}

func testHealthAndMetrics(t *testing.T, d deps) {
	e := newEnv(t, d, options{})
	if r := e.do(req{method: http.MethodGet, path: "/livez"}); r.status != http.StatusOK {
		t.Fatalf("livez %d", r.status)
	}
	if r := e.do(req{method: http.MethodGet, path: "/readyz"}); r.status != http.StatusOK {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
	tok := testenv.Token(t, "acme", "alice")
	loc := e.create(tok, "k1", validOrder).header.Get("Location")
	e.do(req{method: http.MethodGet, path: loc, token: tok})
	m := e.do(req{method: http.MethodGet, path: "/metrics"})
	for _, want := range []string{
		`http_server_requests_total{code_class="2xx",method="POST",route="POST /v1/orders"} 1`,
		`payments_client_calls_total{outcome="succeeded"} 1`,
		`orders_idempotency_outcomes_total{outcome="fresh"} 1`,
		"payments_client_breaker_state", "outbox_backlog_events", "cache_degraded",
		`cache_operation_duration_seconds_count{op="get"}`,
	} {
		if !strings.Contains(string(m.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func testCancelWhilePaying(t *testing.T, d deps) {
	e := newEnv(t, d, options{behaviour: paymentsim.Behaviour{Latency: 1500 * time.Millisecond}})
	tok := testenv.Token(t, "acme", "alice")
	done := make(chan response, 1)
	go func() { done <- e.create(tok, "k1", validOrder) }()
	deadline := time.Now().Add(5 * time.Second)
	for testenv.Count(t, e.pool, "SELECT count(*) FROM orders") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the order never appeared")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var id string
	if err := e.pool.QueryRow(context.Background(), "SELECT id::text FROM orders").Scan(&id); err != nil {
		t.Fatal(err)
	}
	e.do(req{method: http.MethodPost, path: "/v1/orders/" + id + "/cancel", token: tok}).problem(t, http.StatusConflict, "order-not-cancellable")
	if r := <-done; r.status != http.StatusCreated || r.json(t)["status"] != "paid" {
		t.Fatalf("the charged order: %d %s", r.status, r.body)
	}
}
