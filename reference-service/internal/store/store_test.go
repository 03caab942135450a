package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/platformtest"
	"example.com/deliverykit/reference-service/internal/store"
	"example.com/deliverykit/reference-service/internal/testenv"
)

func place(t *testing.T, st *store.Store, tenant domain.TenantID, key string, at time.Time) domain.Order {
	t.Helper()
	o := domain.Order{
		ID: uuid.Must(uuid.NewV7()), Tenant: tenant, CustomerEmail: "a@example.com", Currency: "EUR", AmountMinor: 100,
		Items: []domain.Item{{SKU: "A", Quantity: 1, UnitPriceMinor: 100}}, Status: domain.StatusPendingPayment,
		CardLast4: "4242", Version: 1, CreatedAt: at, UpdatedAt: at,
	}
	_, err := st.BeginPlacement(context.Background(), domain.Placement{
		Actor: domain.Actor{Tenant: tenant, Subject: "t", RequestID: "r"}, Key: key, Fingerprint: []byte("f"),
		Order: o, Event: domain.NewEvent(uuid.New(), domain.EventOrderCreated, o, at), LeaseUntil: at.Add(time.Minute), Now: at,
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestStore(t *testing.T) {
	pg := platformtest.StartPostgres(t)

	t.Run("TenantScoping", func(t *testing.T) {
		t.Parallel()
		pool, _ := testenv.Database(t, pg.DSN)
		st := store.New(pool)
		o := place(t, st, "acme", "k", time.Now().UTC())
		if _, err := st.GetOrder(context.Background(), "globex", o.ID); !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("another tenant read the order: %v", err)
		}
		_, err := st.CancelOrder(context.Background(), domain.Cancellation{Actor: domain.Actor{Tenant: "globex", Subject: "x"}, OrderID: o.ID, EventID: uuid.New(), Now: time.Now()})
		if !errors.Is(err, domain.ErrNotFound) {
			t.Fatalf("another tenant cancelled the order: %v", err)
		}
		got, err := st.GetOrder(context.Background(), "acme", o.ID)
		if err != nil || got.ID != o.ID || got.Status != domain.StatusPendingPayment || got.CreatedAt.UnixMicro() != o.CreatedAt.UnixMicro() {
			t.Fatalf("read back %+v, %v", got, err)
		}
	})

	t.Run("IdsTravelAsBinaryUUIDs", func(t *testing.T) {
		t.Parallel()
		pool, _ := testenv.Database(t, pg.DSN)
		id := uuid.Must(uuid.NewV7())
		var back any
		if err := pool.QueryRow(context.Background(), "SELECT $1::uuid", id).Scan(&back); err != nil {
			t.Fatal(err)
		}
		// pgx's own uuid codec decodes to [16]byte; only the codec Configure registers gives uuid.UUID.
		if got, ok := back.(uuid.UUID); !ok || got != id {
			t.Fatalf("read back %T %v; want the uuid.UUID %v (store.Configure not applied?)", back, back, id)
		}
	})

	t.Run("ExpiryKeepsWhatIsYoungOrUnfinished", func(t *testing.T) {
		t.Parallel()
		pool, _ := testenv.Database(t, pg.DSN)
		st := store.New(pool)
		ctx := context.Background()
		old := time.Now().UTC().Add(-100 * time.Hour)
		oldDone := place(t, st, "acme", "old-finished", old)
		place(t, st, "acme", "old-unfinished", old)
		place(t, st, "acme", "young", time.Now().UTC())
		if _, err := pool.Exec(ctx, "UPDATE idempotency_keys SET recovery_point = 'finished' WHERE key IN ('old-finished', 'young')"); err != nil {
			t.Fatal(err)
		}
		// Publish the two oldest events; the young one stays pending.
		if _, err := pool.Exec(ctx, "UPDATE outbox SET published_at = now() WHERE created_at < now() - interval '1 hour'"); err != nil {
			t.Fatal(err)
		}
		cutoff := time.Now().Add(-72 * time.Hour)
		if n, err := st.DeleteExpiredKeys(ctx, cutoff); err != nil || n != 1 {
			t.Fatalf("deleted %d keys, %v; want only the old finished one", n, err)
		}
		if n, err := st.DeletePublishedEvents(ctx, cutoff); err != nil || n != 2 {
			t.Fatalf("deleted %d events, %v; want the two old published ones", n, err)
		}
		if testenv.Count(t, pool, "SELECT count(*) FROM outbox WHERE published_at IS NULL") != 1 {
			t.Fatal("an unpublished event was deleted")
		}
		if _, err := st.GetOrder(ctx, "acme", oldDone.ID); err != nil {
			t.Fatalf("expiry touched an order: %v", err)
		}
	})
}
