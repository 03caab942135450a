// Command bare is the benchmark baseline: a bare net/http handler that decodes a create-order
// body and inserts the order row, and nothing else — no auth, idempotency, outbox, audit,
// payments, metrics, tracing or logging. `make bench-service` runs it beside the full service so
// the playbook's cost is a ratio.
//
// With BARE_PAYMENTS_URL set it does instead the same storage and downstream work as the service
// for a new order — the service's two statements (key, order, event and audit row; then the
// settled order, its event and audit row, and the recorded response) around one payments call —
// still without auth, validation, rate limits, timeout budgets, retries, circuit breaking,
// metrics, tracing or logging. Beside it the service's ratio is the cost of that middleware alone.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/store"
	"example.com/deliverykit/reference-service/internal/store/db"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
}

type orderBody struct {
	CustomerEmail string        `json:"customer_email"`
	Currency      string        `json:"currency"`
	CardNumber    string        `json:"card_number"`
	Items         []domain.Item `json:"items"`
}

func run(ctx context.Context, _ []string, getenv func(string) string, stdout, _ io.Writer) error {
	pc, err := pgxpool.ParseConfig(getenv("BARE_DATABASE_URL"))
	if err != nil {
		return fmt.Errorf("BARE_DATABASE_URL: %w", err)
	}
	store.Configure(pc) // as the service does
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return fmt.Errorf("pool: %w", err)
	}
	defer pool.Close()
	mctx, cancel := context.WithTimeout(ctx, time.Minute)
	err = store.Migrate(mctx, pool)
	cancel()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	if u := getenv("BARE_PAYMENTS_URL"); u != "" {
		// As many idle connections to payments as the service keeps (internal/payments).
		transport := http.DefaultTransport.(*http.Transport).Clone()
		transport.MaxIdleConnsPerHost = 64
		mux.Handle("POST /v1/orders", &sameWork{q: db.New(pool), chargeURL: u + "/v1/charges", http: &http.Client{Transport: transport}})
	} else {
		mux.HandleFunc("POST /v1/orders", insertOnly(pool))
	}
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", getenv("BARE_HTTP_ADDR"))
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	_, _ = fmt.Fprintf(stdout, "listening on %s\n", ln.Addr())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer scancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// insertOnly decodes the body and inserts the order row: the baseline.
func insertOnly(pool *pgxpool.Pool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var b orderBody
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&b); err != nil || len(b.Items) == 0 || len(b.CardNumber) < 4 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		items, _ := json.Marshal(b.Items)
		id := uuid.Must(uuid.NewV7())
		now := time.Now().UTC()
		_, err := pool.Exec(r.Context(), `INSERT INTO orders (tenant_id, id, customer_email, currency, amount_minor, items, status, card_last4, created_at, updated_at)
			VALUES ('bench', $1, $2, $3, $4, $5, 'pending_payment', $6, $7, $7)`,
			id, b.CustomerEmail, b.Currency, b.total(), items, b.CardNumber[len(b.CardNumber)-4:], now)
		if err != nil {
			http.Error(w, "insert failed", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, `{"id":%q}`, id)
	}
}

func (b *orderBody) total() int64 {
	var t int64
	for _, it := range b.Items {
		t += it.Quantity * it.UnitPriceMinor
	}
	return t
}

// sameWork is the service's storage and downstream work for a new order without its middleware.
type sameWork struct {
	q         *db.Queries
	chargeURL string
	http      *http.Client
}

func (h *sameWork) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	raw, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	var b orderBody
	if err != nil || json.Unmarshal(raw, &b) != nil || len(b.Items) == 0 || len(b.CardNumber) < 4 {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	ctx, key, hash := r.Context(), r.Header.Get("Idempotency-Key"), sha256.Sum256(raw)
	items, _ := json.Marshal(b.Items)
	now := time.Now().UTC().Truncate(time.Microsecond)
	o := domain.Order{ID: uuid.Must(uuid.NewV7()), Tenant: "bench", CustomerEmail: domain.Email(b.CustomerEmail),
		Currency: b.Currency, AmountMinor: b.total(), Items: b.Items, Status: domain.StatusPendingPayment,
		CardLast4: b.CardNumber[len(b.CardNumber)-4:], Version: 1, CreatedAt: now, UpdatedAt: now}
	created := domain.NewEvent(uuid.Must(uuid.NewV7()), domain.EventOrderCreated, o, now)
	payload, _ := json.Marshal(created)
	written, err := h.q.PlaceOrderFast(ctx, db.PlaceOrderFastParams{
		TenantID: "bench", Key: key, RequestHash: hash[:], OrderID: o.ID, LockedUntil: now.Add(30 * time.Second), Now: now,
		CustomerEmail: b.CustomerEmail, Currency: o.Currency, AmountMinor: o.AmountMinor, Items: items, Status: string(o.Status),
		CardLast4: o.CardLast4, EventID: created.ID, Subject: created.Subject(), Payload: payload, Actor: "bench", RequestID: key,
	})
	if err != nil || written != 1 {
		http.Error(w, "placing failed", http.StatusServiceUnavailable)
		return
	}
	charge, _ := json.Marshal(map[string]any{"order_id": o.ID, "tenant_id": "bench", "amount_minor": o.AmountMinor,
		"currency": o.Currency, "card_number": b.CardNumber})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.chargeURL, bytes.NewReader(charge))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	resp, err := h.http.Do(req)
	if err != nil {
		http.Error(w, "payments failed", http.StatusServiceUnavailable)
		return
	}
	var reply struct {
		ID string `json:"id"`
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&reply)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		http.Error(w, "payments failed", http.StatusServiceUnavailable)
		return
	}
	o.Status, o.PaymentID, o.Version, o.UpdatedAt = domain.StatusPaid, reply.ID, 2, time.Now().UTC().Truncate(time.Microsecond)
	// The response holds the same fields as the service's (field names aside), so the recorded
	// response row is about the same size.
	body, _ := json.Marshal(o)
	paid := domain.NewEvent(uuid.Must(uuid.NewV7()), domain.EventOrderPaid, o, o.UpdatedAt)
	payload, _ = json.Marshal(paid)
	written, err = h.q.SettleOrderFast(ctx, db.SettleOrderFastParams{
		Status: string(o.Status), PaymentID: pgtype.Text{String: o.PaymentID, Valid: true}, Now: o.UpdatedAt, TenantID: "bench",
		OrderID: o.ID, Version: 1, EventID: paid.ID, Subject: paid.Subject(), Payload: payload, Actor: "bench", RequestID: key,
		ResponseStatus: http.StatusCreated, ResponseBody: body, Key: key,
	})
	if err != nil || written != 1 {
		http.Error(w, "settling failed", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(body)
}
