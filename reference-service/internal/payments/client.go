// Package payments is the client for the downstream payments API: each call gets a timeout cut
// from the request's remaining budget, retries only with an idempotency key, with capped
// exponential backoff and jitter, under a retry budget and behind a circuit breaker.
package payments

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sony/gobreaker/v2"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/telemetry"
)

// Config tunes the client. Zero fields take the defaults in DefaultConfig.
type Config struct {
	BaseURL string
	// AttemptTimeout caps one attempt; the request's remaining budget may cut it shorter.
	AttemptTimeout time.Duration
	// Reserve is budget kept back for the work after the call (the database write).
	Reserve time.Duration
	// MaxAttempts bounds amplification per call: 1 + retries.
	MaxAttempts uint
	// BackoffInitial and BackoffMax shape the exponential backoff; jitter is ±50 %.
	BackoffInitial time.Duration
	BackoffMax     time.Duration
	// RetryRatio is the retry budget: retries may add at most this fraction to the calls made
	// (plus a small floor), so a struggling dependency never sees a retry storm.
	RetryRatio float64
	// BreakerFailures consecutive failures open the breaker for BreakerOpenFor.
	BreakerFailures uint32
	BreakerOpenFor  time.Duration
}

// DefaultConfig is the playbook's default for a synchronous downstream on the request path.
func DefaultConfig(baseURL string) Config {
	return Config{
		BaseURL: baseURL, AttemptTimeout: 800 * time.Millisecond, Reserve: 300 * time.Millisecond,
		MaxAttempts: 3, BackoffInitial: 50 * time.Millisecond, BackoffMax: 400 * time.Millisecond,
		RetryRatio: 0.2, BreakerFailures: 5, BreakerOpenFor: 5 * time.Second,
	}
}

// Client charges cards through the payments API.
type Client struct {
	cfg     Config
	http    *http.Client
	breaker *gobreaker.CircuitBreaker[chargeReply]
	budget  *retryBudget
	m       *telemetry.Metrics
}

// New returns a client. The transport is traced so `traceparent` reaches payments.
func New(cfg Config, m *telemetry.Metrics) *Client {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	c := &Client{
		cfg:    cfg,
		http:   &http.Client{Transport: otelhttp.NewTransport(transport)},
		budget: newRetryBudget(cfg.RetryRatio, 10),
		m:      m,
	}
	c.breaker = gobreaker.NewCircuitBreaker[chargeReply](gobreaker.Settings{
		Name:        "payments",
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpenFor,
		ReadyToTrip: func(counts gobreaker.Counts) bool { return counts.ConsecutiveFailures >= cfg.BreakerFailures },
		// A decline is a healthy answer; only transport failures and 5xx count against payments.
		IsSuccessful: func(err error) bool { return err == nil || errors.Is(err, errDeclined) },
		// A call never made because a slow database or cache spent the request's budget, or one
		// abandoned because our own caller went away, says nothing about payments: counting it
		// would open the breaker on a healthy payments service and keep failing requests after
		// the slow dependency recovered.
		IsExcluded: func(err error) bool { return errors.Is(err, errNoBudget) || errors.Is(err, errCallerGone) },
		OnStateChange: func(_ string, _, to gobreaker.State) {
			m.PaymentsBreakerState.Set(float64(to))
		},
	})
	return c
}

var (
	errDeclined  = errors.New("declined")
	errNoBudget  = errors.New("no time left in the request budget")
	errRetryable = errors.New("retryable payments failure")
	// errCallerGone: the request that needed the charge was cancelled while the call ran.
	errCallerGone = errors.New("the caller went away")
)

type chargeBody struct {
	OrderID     string `json:"order_id"`
	TenantID    string `json:"tenant_id"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
	CardNumber  string `json:"card_number"`
}

type chargeReply struct {
	ID     string `json:"id"`
	Status string `json:"status"`
}

// Charge implements domain.Payments.
func (c *Client) Charge(ctx context.Context, req domain.ChargeRequest) (domain.ChargeResult, error) {
	body, err := json.Marshal(chargeBody{
		OrderID: req.OrderID.String(), TenantID: string(req.Tenant), AmountMinor: req.AmountMinor,
		Currency: req.Currency, CardNumber: string(req.Card),
	})
	if err != nil {
		return domain.ChargeResult{}, fmt.Errorf("encoding charge: %w", err)
	}
	c.budget.deposit()
	attempt := 0
	op := func() (chargeReply, error) {
		attempt++
		if attempt > 1 {
			// Without an idempotency key a retry could charge twice; never retry then.
			if req.IdempotencyKey == "" || !c.budget.withdraw() {
				return chargeReply{}, backoff.Permanent(errRetryable)
			}
			c.m.PaymentsRetries.Inc()
		}
		reply, err := c.breaker.Execute(func() (chargeReply, error) { return c.attempt(ctx, req.IdempotencyKey, body) })
		switch {
		case err == nil:
			return reply, nil
		case errors.Is(err, errDeclined):
			return reply, backoff.Permanent(err)
		case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
			c.m.PaymentsAttempts.WithLabelValues("breaker_open").Inc()
			return reply, backoff.Permanent(err)
		case errors.Is(err, errNoBudget), ctx.Err() != nil:
			return reply, backoff.Permanent(err)
		}
		return reply, err
	}
	exp := backoff.NewExponentialBackOff()
	exp.InitialInterval = c.cfg.BackoffInitial
	exp.MaxInterval = c.cfg.BackoffMax
	exp.RandomizationFactor = 0.5
	reply, err := backoff.Retry(ctx, op, backoff.WithBackOff(exp), backoff.WithMaxTries(c.cfg.MaxAttempts))
	switch {
	case err == nil:
		c.m.PaymentsCalls.WithLabelValues("succeeded").Inc()
		return domain.ChargeResult{PaymentID: reply.ID}, nil
	case errors.Is(err, errDeclined):
		c.m.PaymentsCalls.WithLabelValues("declined").Inc()
		return domain.ChargeResult{PaymentID: reply.ID, Declined: true}, nil
	case errors.Is(err, gobreaker.ErrOpenState), errors.Is(err, gobreaker.ErrTooManyRequests):
		c.m.PaymentsCalls.WithLabelValues("breaker_open").Inc()
	case errors.Is(err, errNoBudget):
		c.m.PaymentsCalls.WithLabelValues("no_budget").Inc()
	default:
		c.m.PaymentsCalls.WithLabelValues("unavailable").Inc()
	}
	return domain.ChargeResult{}, fmt.Errorf("%w: %w", domain.ErrPaymentsUnavailable, err)
}

// attempt makes one HTTP call with a timeout cut from the remaining budget.
func (c *Client) attempt(parent context.Context, key string, body []byte) (chargeReply, error) {
	ctx := parent
	timeout := c.cfg.AttemptTimeout
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl) - c.cfg.Reserve
		if left < 20*time.Millisecond {
			c.m.PaymentsAttempts.WithLabelValues("no_budget").Inc()
			return chargeReply{}, errNoBudget
		}
		timeout = min(timeout, left)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.BaseURL+"/v1/charges", bytes.NewReader(body))
	if err != nil {
		return chargeReply{}, fmt.Errorf("building request: %w", err)
	}
	hreq.Header.Set("Content-Type", "application/json")
	if key != "" {
		hreq.Header.Set("Idempotency-Key", key)
	}
	start := time.Now()
	resp, err := c.http.Do(hreq)
	c.m.PaymentsDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		if errors.Is(parent.Err(), context.Canceled) {
			c.m.PaymentsAttempts.WithLabelValues("caller_gone").Inc()
			return chargeReply{}, fmt.Errorf("calling payments: %w: %w", errCallerGone, err)
		}
		c.m.PaymentsAttempts.WithLabelValues("transport_error").Inc()
		return chargeReply{}, fmt.Errorf("calling payments: %w", err)
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if err != nil {
		c.m.PaymentsAttempts.WithLabelValues("transport_error").Inc()
		return chargeReply{}, fmt.Errorf("reading payments reply: %w", err)
	}
	c.m.PaymentsAttempts.WithLabelValues(strconv.Itoa(resp.StatusCode/100) + "xx").Inc()
	var reply chargeReply
	switch {
	case resp.StatusCode == http.StatusCreated || resp.StatusCode == http.StatusOK:
		if err := json.Unmarshal(raw, &reply); err != nil || reply.ID == "" {
			return chargeReply{}, fmt.Errorf("payments reply is not a charge: %s", truncate(raw))
		}
		return reply, nil
	case resp.StatusCode == http.StatusPaymentRequired:
		_ = json.Unmarshal(raw, &reply)
		return reply, errDeclined
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return chargeReply{}, fmt.Errorf("payments answered %d: %w", resp.StatusCode, errRetryable)
	default:
		// Any other 4xx is our bug; retrying would repeat it.
		return chargeReply{}, backoff.Permanent(fmt.Errorf("payments refused the request with %d: %s", resp.StatusCode, truncate(raw)))
	}
}

func truncate(b []byte) string {
	if len(b) > 200 {
		b = b[:200]
	}
	return string(b)
}

// retryBudget allows retries up to ratio of recent calls, plus a floor of tokens for quiet
// periods (Finagle's RetryBudget, simplified to a token bucket without decay).
type retryBudget struct {
	mu     sync.Mutex
	ratio  float64
	tokens float64
	max    float64
}

func newRetryBudget(ratio, floor float64) *retryBudget {
	return &retryBudget{ratio: ratio, tokens: floor, max: floor + 100*ratio}
}

func (b *retryBudget) deposit() {
	b.mu.Lock()
	b.tokens = min(b.max, b.tokens+b.ratio)
	b.mu.Unlock()
}

func (b *retryBudget) withdraw() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}
