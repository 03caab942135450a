package cache_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"example.com/deliverykit/reference-service/internal/cache"
	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/platformtest"
	"example.com/deliverykit/reference-service/internal/store"
	"example.com/deliverykit/reference-service/internal/telemetry"
	"example.com/deliverykit/reference-service/internal/testenv"
)

// TestReadsSurviveSlowAndDeadRedis puts Toxiproxy between the cache and a real Redis, makes Redis
// slow and then unreachable, and checks that reads keep coming from PostgreSQL, quickly, with the
// degradation visible in metrics, and that the cache is used again once Redis recovers.
func TestReadsSurviveSlowAndDeadRedis(t *testing.T) {
	nw := platformtest.Network(t)
	pg := platformtest.StartPostgres(t)
	platformtest.StartRedis(t, &platformtest.On{Network: nw, Alias: "redis"})
	tp := platformtest.StartToxiproxy(t, 1, &platformtest.On{Network: nw, Alias: "toxiproxy"})
	proxy, err := toxiproxy.NewClient(tp.API).CreateProxy("redis", tp.ProxyListen(0), "redis:6379")
	if err != nil {
		t.Fatal(err)
	}
	pool, _ := testenv.Database(t, pg.DSN)
	rdb := redis.NewClient(&redis.Options{Addr: tp.ProxyAddr(t, 0), MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 100 * time.Millisecond, WriteTimeout: 100 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	m := telemetry.NewMetrics()
	const cooldown = 300 * time.Millisecond
	c := cache.New(store.New(pool), rdb, cache.Config{TTL: time.Minute, OpTimeout: 50 * time.Millisecond, Cooldown: cooldown},
		func() bool { return true }, m, slog.New(slog.NewTextHandler(io.Discard, nil)))

	id := seed(t, store.New(pool))
	read := func(what string) time.Duration {
		t.Helper()
		start := time.Now()
		o, err := c.GetOrder(context.Background(), "acme", id)
		if err != nil || o.ID != id {
			t.Fatalf("%s: read failed: %v", what, err)
		}
		return time.Since(start)
	}
	hits := func() float64 { return testutil.ToFloat64(m.CacheRequests.WithLabelValues("get", "hit")) }

	read("cold")
	read("warm")
	if hits() != 1 || testutil.ToFloat64(m.CacheDegraded) != 0 {
		t.Fatal("healthy Redis should serve the second read")
	}

	if _, err := proxy.AddToxic("slow", "latency", "downstream", 1, toxiproxy.Attributes{"latency": 500}); err != nil {
		t.Fatal(err)
	}
	if d := read("slow redis"); d > 400*time.Millisecond {
		t.Fatalf("a slow Redis held the read for %v", d)
	}
	if testutil.ToFloat64(m.CacheDegraded) != 1 {
		t.Fatal("degradation not visible in cache_degraded")
	}
	// Within the cooldown, reads skip Redis altogether: no new Redis error, one more bypass.
	errorsBefore := testutil.ToFloat64(m.CacheRequests.WithLabelValues("get", "error"))
	read("cooldown")
	if testutil.ToFloat64(m.CacheRequests.WithLabelValues("get", "error")) != errorsBefore ||
		testutil.ToFloat64(m.CacheRequests.WithLabelValues("get", "bypass")) != 1 {
		t.Fatal("a read during the cooldown went to Redis")
	}

	if err := proxy.RemoveToxic("slow"); err != nil {
		t.Fatal(err)
	}
	if err := proxy.Disable(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(cooldown)
	if d := read("dead redis"); d > 400*time.Millisecond {
		t.Fatalf("a dead Redis held the read for %v", d)
	}
	if testutil.ToFloat64(m.CacheRequests.WithLabelValues("get", "error")) < 2 {
		t.Fatal("Redis errors not counted")
	}

	if err := proxy.Enable(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	before := hits()
	for hits() == before {
		if time.Now().After(deadline) {
			t.Fatal("the cache was never used again after Redis recovered")
		}
		time.Sleep(cooldown)
		read("recovered")
	}
	if testutil.ToFloat64(m.CacheDegraded) != 0 {
		t.Fatal("cache_degraded still set after recovery")
	}
}

func seed(t *testing.T, st *store.Store) uuid.UUID {
	t.Helper()
	now := time.Now().UTC().Truncate(time.Microsecond)
	o := domain.Order{
		ID: uuid.Must(uuid.NewV7()), Tenant: "acme", CustomerEmail: "a@example.com", Currency: "EUR", AmountMinor: 100,
		Items: []domain.Item{{SKU: "A", Quantity: 1, UnitPriceMinor: 100}}, Status: domain.StatusPendingPayment,
		CardLast4: "4242", Version: 1, CreatedAt: now, UpdatedAt: now,
	}
	_, err := st.BeginPlacement(context.Background(), domain.Placement{
		Actor: domain.Actor{Tenant: "acme", Subject: "t", RequestID: "r"}, Key: "k", Fingerprint: []byte("f"),
		Order: o, Event: domain.NewEvent(uuid.New(), domain.EventOrderCreated, o, now), LeaseUntil: now, Now: now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return o.ID
}
