package payments_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/payments"
	"example.com/deliverykit/reference-service/internal/paymentsim"
	"example.com/deliverykit/reference-service/internal/telemetry"
)

func setup(t *testing.T, b paymentsim.Behaviour, tune func(*payments.Config)) (*payments.Client, *paymentsim.Sim, *telemetry.Metrics) {
	t.Helper()
	sim := paymentsim.New(b)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	cfg := payments.DefaultConfig(srv.URL)
	cfg.BackoffInitial, cfg.BackoffMax = time.Millisecond, 5*time.Millisecond
	if tune != nil {
		tune(&cfg)
	}
	m := telemetry.NewMetrics()
	return payments.New(cfg, m), sim, m
}

func charge(key string) domain.ChargeRequest {
	return domain.ChargeRequest{IdempotencyKey: key, Tenant: "acme", OrderID: uuid.New(), AmountMinor: 100, Currency: "EUR", Card: "4242424242424242"}
}

func TestRetriesForwardTheSameKey(t *testing.T) {
	t.Parallel()
	c, sim, m := setup(t, paymentsim.Behaviour{ErrorRate: 1}, nil)
	_, err := c.Charge(context.Background(), charge("order-1"))
	if !errors.Is(err, domain.ErrPaymentsUnavailable) {
		t.Fatalf("err %v, want ErrPaymentsUnavailable", err)
	}
	_, calls := sim.Calls()
	if len(calls) != 3 {
		t.Fatalf("%d attempts, want 3", len(calls))
	}
	for _, call := range calls {
		if call.IdempotencyKey != "order-1" {
			t.Fatalf("attempt without the key: %+v", call)
		}
	}
	if testutil.ToFloat64(m.PaymentsRetries) != 2 || testutil.ToFloat64(m.PaymentsAttempts.WithLabelValues("5xx")) != 3 ||
		testutil.ToFloat64(m.PaymentsCalls.WithLabelValues("unavailable")) != 1 {
		t.Fatal("retry amplification not visible in metrics")
	}
}

func TestNoRetryWithoutKey(t *testing.T) {
	t.Parallel()
	c, sim, _ := setup(t, paymentsim.Behaviour{ErrorRate: 1}, nil)
	if _, err := c.Charge(context.Background(), charge("")); err == nil {
		t.Fatal("want an error")
	}
	if sum, _ := sim.Calls(); sum.Calls != 1 {
		t.Fatalf("%d attempts without an idempotency key, want 1", sum.Calls)
	}
}

func TestDeclineIsAnAnswerNotRetried(t *testing.T) {
	t.Parallel()
	c, sim, _ := setup(t, paymentsim.Behaviour{}, nil)
	req := charge("k")
	req.Card = "4000000000000002"
	res, err := c.Charge(context.Background(), req)
	if err != nil || !res.Declined {
		t.Fatalf("res %+v err %v", res, err)
	}
	if sum, _ := sim.Calls(); sum.Calls != 1 {
		t.Fatalf("%d attempts for a decline", sum.Calls)
	}
}

func TestBreakerOpensAndStopsCalls(t *testing.T) {
	t.Parallel()
	c, sim, m := setup(t, paymentsim.Behaviour{ErrorRate: 1}, func(cfg *payments.Config) {
		cfg.MaxAttempts, cfg.BreakerFailures, cfg.BreakerOpenFor = 1, 3, time.Minute
	})
	for i := range 5 {
		_, err := c.Charge(context.Background(), charge(uuid.NewString()))
		if !errors.Is(err, domain.ErrPaymentsUnavailable) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if sum, _ := sim.Calls(); sum.Calls != 3 {
		t.Fatalf("payments saw %d calls; the breaker should have stopped them after 3", sum.Calls)
	}
	if testutil.ToFloat64(m.PaymentsBreakerState) != 2 || testutil.ToFloat64(m.PaymentsCalls.WithLabelValues("breaker_open")) != 2 {
		t.Fatal("breaker state not visible in metrics")
	}
}

func TestABudgetSpentElsewhereDoesNotOpenTheBreaker(t *testing.T) {
	t.Parallel()
	c, sim, m := setup(t, paymentsim.Behaviour{}, func(cfg *payments.Config) {
		cfg.BreakerFailures, cfg.BreakerOpenFor, cfg.Reserve = 3, time.Minute, 200*time.Millisecond
	})
	// A slow database left less than the reserve: no call is made, five times over.
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 210*time.Millisecond)
		_, err := c.Charge(ctx, charge(uuid.NewString()))
		cancel()
		if !errors.Is(err, domain.ErrPaymentsUnavailable) {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// A caller that goes away mid-call does not count either.
	slow, _, slowM := setup(t, paymentsim.Behaviour{Latency: time.Second}, func(cfg *payments.Config) {
		cfg.BreakerFailures, cfg.BreakerOpenFor, cfg.MaxAttempts = 1, time.Minute, 1
	})
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := slow.Charge(ctx, charge("gone")); err == nil {
		t.Fatal("a cancelled call succeeded")
	}
	if testutil.ToFloat64(slowM.PaymentsBreakerState) != 0 || testutil.ToFloat64(slowM.PaymentsAttempts.WithLabelValues("caller_gone")) != 1 {
		t.Fatal("a caller going away opened the breaker or was not counted as caller_gone")
	}
	// Payments itself is healthy, so the breaker is still closed and the next call goes through.
	if _, err := c.Charge(context.Background(), charge("after")); err != nil {
		t.Fatalf("breaker opened on a healthy payments service: %v", err)
	}
	if sum, _ := sim.Calls(); sum.Calls != 1 {
		t.Fatalf("payments saw %d calls, want 1", sum.Calls)
	}
	if testutil.ToFloat64(m.PaymentsBreakerState) != 0 || testutil.ToFloat64(m.PaymentsAttempts.WithLabelValues("no_budget")) != 5 {
		t.Fatal("breaker state or no_budget attempts not as expected in metrics")
	}
}

func TestAttemptTimeoutComesFromTheBudget(t *testing.T) {
	t.Parallel()
	c, _, m := setup(t, paymentsim.Behaviour{Latency: 3 * time.Second}, func(cfg *payments.Config) {
		cfg.AttemptTimeout, cfg.Reserve = 5*time.Second, 300*time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	start := time.Now()
	_, err := c.Charge(ctx, charge("k"))
	elapsed := time.Since(start)
	if !errors.Is(err, domain.ErrPaymentsUnavailable) {
		t.Fatalf("err %v", err)
	}
	// The request had 1 s; the call must give up about 300 ms before that, leaving the reserve
	// for the database write, and never retry into the reserve.
	if elapsed < 650*time.Millisecond || elapsed > 950*time.Millisecond {
		t.Fatalf("call took %v of a 1 s budget with a 300 ms reserve", elapsed)
	}
	if testutil.ToFloat64(m.PaymentsAttempts.WithLabelValues("transport_error")) < 1 {
		t.Fatal("the timed-out attempt is not counted")
	}
}

// The idle time between attempts, from the end of one (the log's at) to the start of the next
// (started_at), is the backoff: at least the initial interval less its 50 % jitter, and the
// attempt's own duration does not count towards it.
func TestRetriesWaitAfterTheFailedAttemptEnds(t *testing.T) {
	t.Parallel()
	c, sim, _ := setup(t, paymentsim.Behaviour{ErrorRate: 1, Latency: 30 * time.Millisecond}, func(cfg *payments.Config) {
		cfg.BackoffInitial, cfg.BackoffMax = 40*time.Millisecond, 400*time.Millisecond
	})
	if _, err := c.Charge(context.Background(), charge("idle")); err == nil {
		t.Fatal("want an error")
	}
	_, calls := sim.Calls()
	if len(calls) != 3 {
		t.Fatalf("%d attempts, want 3", len(calls))
	}
	for i := 1; i < len(calls); i++ {
		if took := calls[i-1].At.Sub(calls[i-1].StartedAt); took < 30*time.Millisecond {
			t.Fatalf("attempt %d took %v in the log, want the 30ms delay", i, took)
		}
		if idle := calls[i].StartedAt.Sub(calls[i-1].At); idle < 20*time.Millisecond {
			t.Fatalf("idle %v before attempt %d, want at least 20ms", idle, i+1)
		}
	}
}
