// Package outbox publishes the events that store writes into the outbox table, to NATS
// JetStream, in commit order, at least once; JetStream's deduplication on Nats-Msg-Id (the event
// id) turns a re-publish after a crash into a no-op within the stream's duplicate window.
package outbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go/jetstream"

	"example.com/deliverykit/reference-service/internal/store/db"
	"example.com/deliverykit/reference-service/internal/telemetry"
)

// Config tunes the relay.
type Config struct {
	Stream   string
	Subjects []string
	// Duplicates is JetStream's deduplication window; a relay that crashes between publishing
	// and marking must come back within it.
	Duplicates     time.Duration
	Batch          int32
	PollInterval   time.Duration
	PublishTimeout time.Duration
	// DrainTimeout bounds the last publishing pass at shutdown.
	DrainTimeout time.Duration
	// MaxAge bounds how long the stream keeps events; consumers must catch up within it.
	MaxAge time.Duration
}

// DefaultConfig is the relay's default for the orders stream.
func DefaultConfig() Config {
	return Config{
		Stream: "ORDERS", Subjects: []string{"orders.>"}, Duplicates: 10 * time.Minute,
		Batch: 200, PollInterval: 100 * time.Millisecond, PublishTimeout: 2 * time.Second,
		DrainTimeout: 5 * time.Second, MaxAge: 7 * 24 * time.Hour,
	}
}

// relayLockKey is the advisory lock that makes one relay, across all replicas, the publisher:
// two publishers would interleave and break commit order.
const relayLockKey int64 = 0x6f7574626f78 // "outbox"

// Relay moves events from the outbox to JetStream.
type Relay struct {
	pool          *pgxpool.Pool
	js            jetstream.JetStream
	cfg           Config
	m             *telemetry.Metrics
	log           *slog.Logger
	streamReady   bool
	lastBacklogAt time.Time
}

// New returns a relay.
func New(pool *pgxpool.Pool, js jetstream.JetStream, cfg Config, m *telemetry.Metrics, log *slog.Logger) *Relay {
	return &Relay{pool: pool, js: js, cfg: cfg, m: m, log: log}
}

// Run publishes until ctx ends, then makes one bounded pass to drain what is committed.
func (r *Relay) Run(ctx context.Context) error {
	backoff := r.cfg.PollInterval
	for {
		n, err := r.Step(ctx)
		switch {
		case ctx.Err() != nil:
			return r.drain(ctx)
		case err != nil:
			r.m.OutboxPublishErrors.Inc()
			r.log.WarnContext(ctx, "outbox relay step failed; events wait in the outbox", "err", err)
			backoff = min(backoff*2, 5*time.Second)
		case n == int(r.cfg.Batch):
			backoff = 0 // a full batch: more is likely waiting
		default:
			backoff = r.cfg.PollInterval
		}
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return r.drain(ctx)
			case <-time.After(backoff):
			}
		}
	}
}

// drain runs after ctx has ended, so it detaches from it and keeps only its values.
func (r *Relay) drain(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.DrainTimeout)
	defer cancel()
	for {
		n, err := r.Step(ctx)
		if err != nil {
			return fmt.Errorf("draining outbox: %w", err)
		}
		if n < int(r.cfg.Batch) {
			return nil
		}
	}
}

// Step publishes one batch and returns how many events it published. It holds one pooled
// connection at a time: the backlog gauges are read after the batch's transaction has ended, so
// the relay never takes a second connection from the requests and the readiness probe.
func (r *Relay) Step(ctx context.Context) (int, error) {
	n, err := r.publishBatch(ctx)
	r.refreshBacklog(ctx)
	return n, err
}

func (r *Relay) publishBatch(ctx context.Context) (int, error) {
	if !r.streamReady {
		if err := r.ensureStream(ctx); err != nil {
			return 0, err
		}
		r.streamReady = true
	}
	tx, err := r.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("begin: %w", err)
	}
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	q := db.New(tx)
	locked, err := q.TryRelayLock(ctx, relayLockKey)
	if err != nil {
		return 0, fmt.Errorf("relay lock: %w", err)
	}
	if !locked {
		return 0, nil // another replica publishes
	}
	rows, err := q.PendingOutbox(ctx, r.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("reading outbox: %w", err)
	}
	done := make([]int64, 0, len(rows))
	var pubErr error
	for _, row := range rows {
		pubCtx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
		_, pubErr = r.js.Publish(pubCtx, row.Subject, row.Payload, jetstream.WithMsgID(row.EventID.String()))
		cancel()
		if pubErr != nil {
			// Stop at the first failure: publishing later rows first would break commit order.
			pubErr = fmt.Errorf("publishing event %s: %w", row.EventID, pubErr)
			break
		}
		done = append(done, row.Seq)
	}
	if len(done) > 0 {
		now := time.Now()
		if err := q.MarkOutboxPublished(ctx, db.MarkOutboxPublishedParams{PublishedAt: &now, Seqs: done}); err != nil {
			return 0, fmt.Errorf("marking published: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return 0, fmt.Errorf("commit: %w", err)
		}
		r.m.OutboxPublished.Add(float64(len(done)))
	}
	if pubErr != nil {
		var apiErr *jetstream.APIError
		if errors.As(pubErr, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamNotFound {
			r.streamReady = false
		}
		return len(done), pubErr
	}
	return len(done), nil
}

func (r *Relay) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	_, err := r.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: r.cfg.Stream, Subjects: r.cfg.Subjects, Duplicates: r.cfg.Duplicates,
		Storage: jetstream.FileStorage, MaxAge: r.cfg.MaxAge,
	})
	if err != nil {
		return fmt.Errorf("ensuring stream %s: %w", r.cfg.Stream, err)
	}
	return nil
}

// refreshBacklog updates the backlog gauges at most once a second.
func (r *Relay) refreshBacklog(ctx context.Context) {
	if time.Since(r.lastBacklogAt) < time.Second {
		return
	}
	r.lastBacklogAt = time.Now()
	readBacklog(ctx, r.pool, r.m, r.log)
}

// readBacklog sets the backlog gauges from the outbox table: how many events wait, and how old
// the oldest is.
func readBacklog(ctx context.Context, pool *pgxpool.Pool, m *telemetry.Metrics, log *slog.Logger) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	b, err := db.New(pool).OutboxBacklog(ctx)
	if err != nil {
		log.WarnContext(ctx, "reading outbox backlog", "err", err)
		return
	}
	m.OutboxBacklog.Set(float64(b.Pending))
	age := 0.0
	if b.Pending > 0 {
		age = time.Since(b.Oldest).Seconds()
	}
	m.OutboxOldestAge.Set(age)
}

// WatchBacklog keeps the backlog gauges current every interval until ctx ends, for a service
// that runs no relay (no NATS URL): its events pile up in the outbox, and the backlog and
// staleness alerts must see them pile up rather than find no series at all.
func WatchBacklog(ctx context.Context, pool *pgxpool.Pool, m *telemetry.Metrics, log *slog.Logger, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		readBacklog(ctx, pool, m, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
