package platformtest_test

import (
	"context"
	"slices"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"
	"github.com/jackc/pgx/v5"

	"example.com/deliverykit/reference-service/internal/platformtest"
)

// TestPostgresThroughToxiproxyLatency proves the platform is real: PostgreSQL and Toxiproxy run
// as containers from the platform's images, the test reaches PostgreSQL only through a Toxiproxy
// proxy, and a latency toxic shows up in a query's round trip and goes away when removed.
func TestPostgresThroughToxiproxyLatency(t *testing.T) {
	t.Parallel()
	nw := platformtest.Network(t)
	platformtest.StartPostgres(t, &platformtest.On{Network: nw, Alias: "postgres"})
	tp := platformtest.StartToxiproxy(t, 1, &platformtest.On{Network: nw, Alias: "toxiproxy"})

	client := toxiproxy.NewClient(tp.API)
	proxy, err := client.CreateProxy("postgres", tp.ProxyListen(0), "postgres:5432")
	if err != nil {
		t.Fatalf("creating the postgres proxy: %v", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, "postgres://kit:kit@"+tp.ProxyAddr(t, 0)+"/kit?sslmode=disable")
	if err != nil {
		t.Fatalf("connecting to postgres through toxiproxy: %v", err)
	}
	defer func() { _ = conn.Close(context.Background()) }()

	baseline := medianRoundTrip(ctx, t, conn)

	const added = 150 * time.Millisecond
	if _, err := proxy.AddToxic("pg_latency", "latency", "downstream", 1,
		toxiproxy.Attributes{"latency": added.Milliseconds()}); err != nil {
		t.Fatalf("adding the latency toxic: %v", err)
	}
	slowed := medianRoundTrip(ctx, t, conn)

	if err := proxy.RemoveToxic("pg_latency"); err != nil {
		t.Fatalf("removing the latency toxic: %v", err)
	}
	recovered := medianRoundTrip(ctx, t, conn)

	t.Logf("SELECT 1 round trip: baseline %v, with %v toxic %v, after removal %v",
		baseline, added, slowed, recovered)
	// The toxic delays the server's answer once per round trip, so no round trip can be faster
	// than it; above, allow generous slack for a loaded 2-core machine. (Comparing the difference
	// with the baseline against the toxic would fail whenever the baseline sample was the slower.)
	if slowed < added || slowed-baseline > added+500*time.Millisecond {
		t.Errorf("with a %v latency toxic the round trip is %v (baseline %v); want at least %v and at most %v more than the baseline",
			added, slowed, baseline, added, added+500*time.Millisecond)
	}
	if recovered > baseline+added/2 {
		t.Errorf("after removing the toxic the round trip is %v; want back near the baseline %v",
			recovered, baseline)
	}
}

func medianRoundTrip(ctx context.Context, t *testing.T, conn *pgx.Conn) time.Duration {
	t.Helper()
	samples := make([]time.Duration, 5)
	for i := range samples {
		start := time.Now()
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("SELECT 1 through toxiproxy: got %d, %v", one, err)
		}
		samples[i] = time.Since(start)
	}
	slices.Sort(samples)
	return samples[len(samples)/2]
}
