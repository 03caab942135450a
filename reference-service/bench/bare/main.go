// Command bare is the benchmark baseline: a bare net/http handler that decodes a create-order
// body and inserts the order row, and nothing else — no auth, idempotency, outbox, audit,
// payments, metrics, tracing or logging. `make bench-service` runs it beside the full service so
// the playbook's cost is a ratio.
package main

import (
	"context"
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
	"github.com/jackc/pgx/v5/pgxpool"

	"example.com/deliverykit/reference-service/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bare:", err)
		os.Exit(1)
	}
}

type item struct {
	SKU            string `json:"sku"`
	Quantity       int64  `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
}

type orderBody struct {
	CustomerEmail string `json:"customer_email"`
	Currency      string `json:"currency"`
	CardNumber    string `json:"card_number"`
	Items         []item `json:"items"`
}

func run(ctx context.Context, _ []string, getenv func(string) string, stdout, _ io.Writer) error {
	pool, err := pgxpool.New(ctx, getenv("BARE_DATABASE_URL"))
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
	mux.HandleFunc("POST /v1/orders", func(w http.ResponseWriter, r *http.Request) {
		var b orderBody
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&b); err != nil || len(b.Items) == 0 || len(b.CardNumber) < 4 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		items, _ := json.Marshal(b.Items)
		var total int64
		for _, it := range b.Items {
			total += it.Quantity * it.UnitPriceMinor
		}
		id := uuid.Must(uuid.NewV7())
		now := time.Now().UTC()
		_, err := pool.Exec(r.Context(), `INSERT INTO orders (tenant_id, id, customer_email, currency, amount_minor, items, status, card_last4, created_at, updated_at)
			VALUES ('bench', $1, $2, $3, $4, $5, 'pending_payment', $6, $7, $7)`,
			id, b.CustomerEmail, b.Currency, total, items, b.CardNumber[len(b.CardNumber)-4:], now)
		if err != nil {
			http.Error(w, "insert failed", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		_, _ = fmt.Fprintf(w, `{"id":%q}`, id)
	})
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
