// Package cache is a cache-aside decorator for domain.Store over Redis. Redis is an optimisation
// here, never a dependency: every Redis failure or slow answer falls through to the store and
// shows in metrics, and a kill switch takes the path out entirely.
package cache

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/telemetry"
)

// Config tunes the cache.
type Config struct {
	// TTL bounds staleness when an invalidation is lost while Redis is unreachable.
	TTL time.Duration
	// OpTimeout caps each Redis operation; past it the read goes to PostgreSQL.
	OpTimeout time.Duration
	// Cooldown is how long reads skip Redis after it failed, so a dead Redis costs one
	// OpTimeout per Cooldown instead of one per request.
	Cooldown time.Duration
}

// Store decorates a domain.Store with cache-aside reads of single orders.
type Store struct {
	domain.Store
	rdb     redis.UniversalClient
	cfg     Config
	enabled func() bool
	m       *telemetry.Metrics
	log     *slog.Logger
	// skipUntil is the UnixNano time before which reads bypass Redis.
	skipUntil atomic.Int64
}

// New wraps inner. enabled is the kill switch, read on every call.
func New(inner domain.Store, rdb redis.UniversalClient, cfg Config, enabled func() bool, m *telemetry.Metrics, log *slog.Logger) *Store {
	return &Store{Store: inner, rdb: rdb, cfg: cfg, enabled: enabled, m: m, log: log}
}

func key(tenant domain.TenantID, id uuid.UUID) string {
	return "orders:v1:" + string(tenant) + ":" + id.String()
}

// cached is the cache's own encoding of an order, decoupled from the wire format.
type cached struct {
	ID            uuid.UUID     `json:"id"`
	Tenant        string        `json:"t"`
	CustomerEmail string        `json:"e"`
	Currency      string        `json:"c"`
	AmountMinor   int64         `json:"a"`
	Items         []domain.Item `json:"i"`
	Status        string        `json:"s"`
	CardLast4     string        `json:"l4"`
	PaymentID     string        `json:"p"`
	Version       int32         `json:"v"`
	CreatedAt     time.Time     `json:"ca"`
	UpdatedAt     time.Time     `json:"ua"`
}

// GetOrder reads through the cache.
func (s *Store) GetOrder(ctx context.Context, tenant domain.TenantID, id uuid.UUID) (domain.Order, error) {
	if !s.enabled() || time.Now().UnixNano() < s.skipUntil.Load() {
		s.m.CacheRequests.WithLabelValues("get", "bypass").Inc()
		return s.Store.GetOrder(ctx, tenant, id)
	}
	k := key(tenant, id)
	if o, ok := s.lookup(ctx, k); ok {
		return o, nil
	}
	o, err := s.Store.GetOrder(ctx, tenant, id)
	if err != nil {
		return o, err
	}
	s.fill(ctx, k, o)
	return o, nil
}

func (s *Store) lookup(ctx context.Context, k string) (domain.Order, bool) {
	opCtx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	start := time.Now()
	raw, err := s.rdb.Get(opCtx, k).Bytes()
	s.m.CacheDuration.WithLabelValues("get").Observe(time.Since(start).Seconds())
	switch {
	case errors.Is(err, redis.Nil):
		s.ok("get", "miss")
		return domain.Order{}, false
	case err != nil:
		s.degraded(ctx, "get", err)
		return domain.Order{}, false
	}
	var c cached
	if err := json.Unmarshal(raw, &c); err != nil {
		s.degraded(ctx, "get", err)
		return domain.Order{}, false
	}
	s.ok("get", "hit")
	return domain.Order{
		ID: c.ID, Tenant: domain.TenantID(c.Tenant), CustomerEmail: domain.Email(c.CustomerEmail), Currency: c.Currency,
		AmountMinor: c.AmountMinor, Items: c.Items, Status: domain.Status(c.Status), CardLast4: c.CardLast4,
		PaymentID: c.PaymentID, Version: c.Version, CreatedAt: c.CreatedAt, UpdatedAt: c.UpdatedAt,
	}, true
}

func (s *Store) fill(ctx context.Context, k string, o domain.Order) {
	raw, err := json.Marshal(cached{
		ID: o.ID, Tenant: string(o.Tenant), CustomerEmail: string(o.CustomerEmail), Currency: o.Currency,
		AmountMinor: o.AmountMinor, Items: o.Items, Status: string(o.Status), CardLast4: o.CardLast4,
		PaymentID: o.PaymentID, Version: o.Version, CreatedAt: o.CreatedAt, UpdatedAt: o.UpdatedAt,
	})
	if err != nil {
		s.degraded(ctx, "set", err)
		return
	}
	opCtx, cancel := context.WithTimeout(ctx, s.cfg.OpTimeout)
	defer cancel()
	start := time.Now()
	err = s.rdb.Set(opCtx, k, raw, s.cfg.TTL).Err()
	s.m.CacheDuration.WithLabelValues("set").Observe(time.Since(start).Seconds())
	if err != nil {
		s.degraded(ctx, "set", err)
		return
	}
	s.ok("set", "ok")
}

// invalidate drops a changed order. It runs even while the cache path is switched off, so that
// switching it back on never serves what changed meanwhile (within TTL, if Redis was down).
func (s *Store) invalidate(ctx context.Context, tenant domain.TenantID, id uuid.UUID) {
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.OpTimeout)
	defer cancel()
	start := time.Now()
	err := s.rdb.Del(opCtx, key(tenant, id)).Err()
	s.m.CacheDuration.WithLabelValues("del").Observe(time.Since(start).Seconds())
	if err != nil {
		s.degraded(ctx, "del", err)
		return
	}
	s.ok("del", "ok")
}

func (s *Store) ok(op, result string) {
	s.m.CacheRequests.WithLabelValues(op, result).Inc()
	s.m.CacheDegraded.Set(0)
}

func (s *Store) degraded(ctx context.Context, op string, err error) {
	s.m.CacheRequests.WithLabelValues(op, "error").Inc()
	s.m.CacheDegraded.Set(1)
	s.skipUntil.Store(time.Now().Add(s.cfg.Cooldown).UnixNano())
	s.log.WarnContext(ctx, "cache degraded, serving from the store", "op", op, "err", err)
}

// FinishPlacement invalidates the order after it settles.
func (s *Store) FinishPlacement(ctx context.Context, st domain.Settlement) (domain.Order, domain.RecordedResponse, error) {
	o, resp, err := s.Store.FinishPlacement(ctx, st)
	if err == nil {
		s.invalidate(ctx, st.Actor.Tenant, st.OrderID)
	}
	return o, resp, err
}

// CancelOrder invalidates the order after it is cancelled.
func (s *Store) CancelOrder(ctx context.Context, c domain.Cancellation) (domain.Order, error) {
	o, err := s.Store.CancelOrder(ctx, c)
	if err == nil {
		s.invalidate(ctx, c.Actor.Tenant, c.OrderID)
	}
	return o, err
}
