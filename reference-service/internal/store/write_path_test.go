package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/platformtest"
	"example.com/deliverykit/reference-service/internal/store"
	"example.com/deliverykit/reference-service/internal/testenv"
)

// placement is a new pending order under key, as the service builds it.
func placement(tenant domain.TenantID, key string, at time.Time) domain.Placement {
	o := domain.Order{
		ID: uuid.Must(uuid.NewV7()), Tenant: tenant, CustomerEmail: "a@example.com", Currency: "EUR", AmountMinor: 100,
		Items: []domain.Item{{SKU: "A", Quantity: 1, UnitPriceMinor: 100}}, Status: domain.StatusPendingPayment,
		CardLast4: "4242", Version: 1, CreatedAt: at, UpdatedAt: at,
	}
	return domain.Placement{
		Actor: domain.Actor{Tenant: tenant, Subject: "t", RequestID: "r-" + key}, Key: key, Fingerprint: []byte("f"),
		Order: o, Event: domain.NewEvent(uuid.New(), domain.EventOrderCreated, o, at), LeaseUntil: at.Add(time.Minute), Now: at,
	}
}

// settlement pays the order BeginPlacement returned, rendering the order as JSON.
func settlement(p domain.Placement, begun domain.Order, at time.Time) domain.Settlement {
	paid := begun
	paid.Status, paid.PaymentID, paid.UpdatedAt = domain.StatusPaid, "pay-1", at
	ev := domain.NewEvent(uuid.New(), domain.EventOrderPaid, paid, at)
	return domain.Settlement{
		Actor: p.Actor, Key: p.Key, OrderID: begun.ID, Order: begun, Status: domain.StatusPaid, PaymentID: "pay-1",
		Event: &ev, Now: at,
		Render: func(o domain.Order) (domain.RecordedResponse, error) {
			b, err := json.Marshal(o)
			return domain.RecordedResponse{Status: 201, Body: b}, err
		},
	}
}

// TestWritePath holds the one-statement placement and settlement to the guarantees the
// transactional version gave: one order per key under a race, all or nothing, one settlement.
func TestWritePath(t *testing.T) {
	pg := platformtest.StartPostgres(t)

	t.Run("ConcurrentSameKeyPlacesOneOrder", func(t *testing.T) {
		t.Parallel()
		pool, _ := testenv.Database(t, pg.DSN)
		st := store.New(pool)
		now := time.Now().UTC()
		const n = 12
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			outs []domain.BeginOutcome
			errs []error
		)
		start := make(chan struct{})
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Each request builds its own order id and event, as the service does.
				p := placement("acme", "same-key", now)
				<-start
				b, err := st.BeginPlacement(context.Background(), p)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				outs = append(outs, b.Outcome)
			}()
		}
		close(start)
		wg.Wait()
		if len(outs) != 1 || outs[0] != domain.Fresh {
			t.Fatalf("outcomes %v, errors %v; want exactly one fresh placement", outs, errs)
		}
		for _, err := range errs {
			if !errors.Is(err, domain.ErrIdempotencyKeyInFlight) {
				t.Fatalf("a losing request failed with %v; want ErrIdempotencyKeyInFlight", err)
			}
		}
		for table, want := range map[string]int{"orders": 1, "idempotency_keys": 1, "outbox": 1, "audit_log": 1} {
			if got := testenv.Count(t, pool, "SELECT count(*) FROM "+table); got != want {
				t.Fatalf("%s holds %d rows after %d racing requests with one key; want %d", table, got, n, want)
			}
		}
	})

	t.Run("FailedPlacementWritesNothing", func(t *testing.T) {
		t.Parallel()
		pool, _ := testenv.Database(t, pg.DSN)
		st := store.New(pool)
		now := time.Now().UTC()
		first := placement("acme", "first", now)
		if _, err := st.BeginPlacement(context.Background(), first); err != nil {
			t.Fatal(err)
		}
		// The second placement's key and order insert fine; its event collides with the first's
		// on event_id, the third of the statement's four writes.
		second := placement("acme", "second", now)
		second.Event.ID = first.Event.ID
		if _, err := st.BeginPlacement(context.Background(), second); err == nil {
			t.Fatal("a placement whose event id is taken succeeded")
		}
		for table, want := range map[string]int{"orders": 1, "idempotency_keys": 1, "outbox": 1, "audit_log": 1} {
			if got := testenv.Count(t, pool, "SELECT count(*) FROM "+table); got != want {
				t.Fatalf("%s holds %d rows after a failed placement; want only the first order's %d", table, got, want)
			}
		}
		// Nothing of it was left to block a retry: the same key with a fresh event places the order.
		second.Event.ID = uuid.New()
		if b, err := st.BeginPlacement(context.Background(), second); err != nil || b.Outcome != domain.Fresh {
			t.Fatalf("retry after a failed placement: %+v, %v; want a fresh placement", b, err)
		}
	})

	t.Run("RacingSettlementsSettleOnce", func(t *testing.T) {
		t.Parallel()
		pool, _ := testenv.Database(t, pg.DSN)
		st := store.New(pool)
		ctx := context.Background()
		now := time.Now().UTC()
		p := placement("acme", "k", now)
		begun, err := st.BeginPlacement(ctx, p)
		if err != nil {
			t.Fatal(err)
		}
		const n = 6
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			orders []domain.Order
		)
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := settlement(p, begun.Order, now.Add(time.Duration(i+1)*time.Millisecond))
				<-start
				o, resp, err := st.FinishPlacement(ctx, s)
				if err != nil || resp.Status != 201 {
					t.Errorf("settlement %d: %d, %v", i, resp.Status, err)
					return
				}
				mu.Lock()
				orders = append(orders, o)
				mu.Unlock()
			}()
		}
		close(start)
		wg.Wait()
		for _, o := range orders {
			if o.Status != domain.StatusPaid || o.Version != 2 {
				t.Fatalf("a settlement returned %s at version %d; want paid at version 2", o.Status, o.Version)
			}
		}
		got, err := st.GetOrder(ctx, "acme", begun.Order.ID)
		if err != nil || got.Status != domain.StatusPaid || got.Version != 2 {
			t.Fatalf("order after %d racing settlements: %+v, %v; want paid at version 2", n, got, err)
		}
		if c := testenv.Count(t, pool, "SELECT count(*) FROM outbox WHERE subject = 'orders.paid'"); c != 1 {
			t.Fatalf("%d paid events; want 1", c)
		}
		if c := testenv.Count(t, pool, "SELECT count(*) FROM audit_log WHERE action = 'order.settle_payment'"); c != 1 {
			t.Fatalf("%d settlement audit rows; want 1", c)
		}
		if c := testenv.Count(t, pool, "SELECT count(*) FROM idempotency_keys WHERE recovery_point = 'finished' AND response_status = 201"); c != 1 {
			t.Fatalf("the key is not finished with the response (%d rows)", c)
		}
	})
}
