package outbox_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/outbox"
	"example.com/deliverykit/reference-service/internal/platformtest"
	"example.com/deliverykit/reference-service/internal/store"
	"example.com/deliverykit/reference-service/internal/store/db"
	"example.com/deliverykit/reference-service/internal/telemetry"
	"example.com/deliverykit/reference-service/internal/testenv"
)

// TestRelayDeliversEverythingAfterNATSOutage cuts the relay off from NATS (Toxiproxy disables the
// proxy), writes orders meanwhile, and checks that they wait in the outbox, show as backlog, and
// are all delivered once NATS is back: once each, in commit order, with Nats-Msg-Id = event id.
func TestRelayDeliversEverythingAfterNATSOutage(t *testing.T) {
	nw := platformtest.Network(t)
	pg := platformtest.StartPostgres(t)
	natsC := platformtest.StartNATS(t, &platformtest.On{Network: nw, Alias: "nats"})
	tp := platformtest.StartToxiproxy(t, 1, &platformtest.On{Network: nw, Alias: "toxiproxy"})
	proxy, err := toxiproxy.NewClient(tp.API).CreateProxy("nats", tp.ProxyListen(0), "nats:4222")
	if err != nil {
		t.Fatalf("creating the nats proxy: %v", err)
	}

	pool, dsn := testenv.Database(t, pg.DSN)
	st := store.New(pool)
	// The relay gets a pool of one connection: a step must never need a second one (reading the
	// backlog inside the batch's transaction would wait for itself and leave the gauge stale).
	relayPool := testenv.Pool(t, dsn, func(pc *pgxpool.Config) { pc.MaxConns = 1 })
	m := telemetry.NewMetrics()
	relayConn, err := nats.Connect("nats://"+tp.ProxyAddr(t, 0), nats.MaxReconnects(-1),
		nats.ReconnectWait(100*time.Millisecond), nats.RetryOnFailedConnect(true))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(relayConn.Close)
	js, err := jetstream.New(relayConn)
	if err != nil {
		t.Fatal(err)
	}
	cfg := outbox.DefaultConfig()
	cfg.PollInterval = 20 * time.Millisecond
	cfg.PublishTimeout = 300 * time.Millisecond
	relay := outbox.New(relayPool, js, cfg, m, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	relayDone := make(chan error, 1)
	go func() { relayDone <- relay.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-relayDone; err != nil {
			t.Errorf("relay: %v", err)
		}
	})

	var want []uuid.UUID
	place := func(n int) {
		for range n {
			want = append(want, placeOrder(t, st))
		}
	}
	place(5)
	waitFor(t, 20*time.Second, "the first events to be published", func() bool {
		return testutil.ToFloat64(m.OutboxPublished) == 5
	})

	// A transaction still open holds back every event committed after it began, so a late
	// commit can never be overtaken and skipped.
	tx, err := pool.Begin(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	slow := uuid.Must(uuid.NewV7())
	payload, _ := json.Marshal(domain.Event{ID: slow, Kind: domain.EventOrderCreated, Tenant: "acme", OrderID: uuid.New()})
	if err := db.New(tx).InsertOutbox(context.Background(), db.InsertOutboxParams{
		EventID: slow, TenantID: "acme", Subject: "orders.created", Payload: payload, CreatedAt: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	fast := placeOrder(t, st)
	time.Sleep(500 * time.Millisecond)
	if got := testutil.ToFloat64(m.OutboxPublished); got != 5 {
		t.Fatalf("%v events published while an older transaction was open, want 5", got)
	}
	if err := tx.Commit(context.Background()); err != nil {
		t.Fatal(err)
	}
	want = append(want, slow, fast)
	waitFor(t, 10*time.Second, "the held-back events", func() bool { return testutil.ToFloat64(m.OutboxPublished) == 7 })

	if err := proxy.Disable(); err != nil {
		t.Fatal(err)
	}
	place(20)
	time.Sleep(1500 * time.Millisecond)
	if got := testutil.ToFloat64(m.OutboxPublished); got != 7 {
		t.Fatalf("%v events published while NATS was unreachable", got-7)
	}
	if n := testenv.Count(t, pool, "SELECT count(*) FROM outbox WHERE published_at IS NULL"); n != 20 {
		t.Fatalf("%d events waiting in the outbox, want 20", n)
	}
	waitFor(t, 5*time.Second, "the backlog metric", func() bool { return testutil.ToFloat64(m.OutboxBacklog) == 20 })

	if err := proxy.Enable(); err != nil {
		t.Fatal(err)
	}
	place(5)
	waitFor(t, 30*time.Second, "every event to be published after NATS returned", func() bool {
		return testutil.ToFloat64(m.OutboxPublished) == 32
	})
	waitFor(t, 5*time.Second, "the backlog to drain", func() bool { return testutil.ToFloat64(m.OutboxBacklog) == 0 })

	// Read the stream directly from NATS, not through the proxy.
	got := readStream(t, natsC.URL, len(want))
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("event %d is %s, want %s (order or delivery broken)", i, got[i], want[i])
		}
	}
}

// placeOrder commits one order with its created event, as the service does, and returns the
// event id.
func placeOrder(t *testing.T, st *store.Store) uuid.UUID {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	o := domain.Order{
		ID: uuid.Must(uuid.NewV7()), Tenant: "acme", CustomerEmail: "a@example.com", Currency: "EUR", AmountMinor: 100,
		Items: []domain.Item{{SKU: "A", Quantity: 1, UnitPriceMinor: 100}}, Status: domain.StatusPendingPayment,
		CardLast4: "4242", Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	ev := domain.NewEvent(uuid.Must(uuid.NewV7()), domain.EventOrderCreated, o, now)
	_, err := st.BeginPlacement(context.Background(), domain.Placement{
		Actor: domain.Actor{Tenant: "acme", Subject: "test", RequestID: "r"}, Key: o.ID.String(), Fingerprint: []byte("f"),
		Order: o, Event: ev, LeaseUntil: now.Add(time.Minute), Now: now,
	})
	if err != nil {
		t.Fatalf("placing order: %v", err)
	}
	return ev.ID
}

func readStream(t *testing.T, url string, n int) []uuid.UUID {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cons, err := js.OrderedConsumer(ctx, "ORDERS", jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := cons.FetchNoWait(n + 10)
	if err != nil {
		t.Fatal(err)
	}
	var ids []uuid.UUID
	for msg := range batch.Messages() {
		var ev domain.Event
		if err := json.Unmarshal(msg.Data(), &ev); err != nil {
			t.Fatalf("event payload: %v", err)
		}
		if msg.Headers().Get(jetstream.MsgIDHeader) != ev.ID.String() {
			t.Fatalf("Nats-Msg-Id %q, want the event id %s", msg.Headers().Get(jetstream.MsgIDHeader), ev.ID)
		}
		ids = append(ids, ev.ID)
	}
	if len(ids) != n {
		t.Fatalf("the stream holds %d events, want %d exactly once", len(ids), n)
	}
	return ids
}

func waitFor(t *testing.T, limit time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", limit, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestWatchBacklogReportsEventsNoRelayPublishes: a service without a relay still exports the
// backlog gauges, so the outbox alerts see its events pile up and age.
func TestWatchBacklogReportsEventsNoRelayPublishes(t *testing.T) {
	pg := platformtest.StartPostgres(t)
	pool, _ := testenv.Database(t, pg.DSN)
	st := store.New(pool)
	m := telemetry.NewMetrics()
	for range 3 {
		placeOrder(t, st)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		outbox.WatchBacklog(ctx, pool, m, slog.New(slog.NewTextHandler(io.Discard, nil)), 20*time.Millisecond)
	}()
	waitFor(t, 5*time.Second, "the backlog gauge", func() bool { return testutil.ToFloat64(m.OutboxBacklog) == 3 })
	waitFor(t, 5*time.Second, "the oldest event's age", func() bool { return testutil.ToFloat64(m.OutboxOldestAge) > 0 })
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("WatchBacklog did not stop when its context ended")
	}
}
