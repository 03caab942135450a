// Command service is the orders API. Configuration comes from ORDERS_* environment variables;
// see internal/config and docs/playbook.md.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"

	"example.com/deliverykit/reference-service/internal/cache"
	"example.com/deliverykit/reference-service/internal/config"
	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/httpapi"
	"example.com/deliverykit/reference-service/internal/killswitch"
	"example.com/deliverykit/reference-service/internal/outbox"
	"example.com/deliverykit/reference-service/internal/payments"
	"example.com/deliverykit/reference-service/internal/store"
	"example.com/deliverykit/reference-service/internal/telemetry"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "service:", err)
		os.Exit(1)
	}
}

// run starts the service and blocks until ctx ends, then shuts down gracefully: readiness fails
// first, in-flight requests finish, the outbox relay drains, and connections close.
func run(ctx context.Context, _ []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := config.Load(getenv)
	if err != nil {
		return fmt.Errorf("configuration: %w", err)
	}
	if err := cfg.Print(stderr); err != nil {
		return fmt.Errorf("printing configuration: %w", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	log := telemetry.NewLogger(stdout, level)
	stopTracing, err := telemetry.SetupTracing(ctx, cfg.TraceExporter, stderr)
	if err != nil {
		return err
	}
	defer func() {
		flushCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = stopTracing(flushCtx)
	}()
	metrics := telemetry.NewMetrics()

	pool, err := openPool(ctx, cfg, store.QueryMetrics{Duration: metrics.DBQueryDuration})
	if err != nil {
		return err
	}
	defer pool.Close()
	metrics.ObservePool(pool)
	migrateCtx, cancel := context.WithTimeout(ctx, time.Minute)
	err = store.Migrate(migrateCtx, pool)
	cancel()
	if err != nil {
		return err
	}

	switches := killswitch.New(cfg.CacheEnabled, cfg.PaymentsEnabled)
	pgStore := store.New(pool)
	var orders domain.Store = pgStore
	if cfg.RedisAddr != "" {
		rdb := redis.NewClient(redisOptions(cfg))
		defer func() { _ = rdb.Close() }()
		orders = cache.New(orders, rdb, cache.Config{TTL: cfg.CacheTTL, OpTimeout: cfg.CacheOpTimeout, Cooldown: cfg.CacheCooldown},
			switches.CacheEnabled, metrics, log)
	} else {
		switches.Set(false, cfg.PaymentsEnabled)
	}

	pcfg := payments.DefaultConfig(cfg.PaymentsURL)
	pcfg.MaxAttempts = cfg.PaymentsAttempts
	pcfg.AttemptTimeout = cfg.PaymentsAttemptTTL
	svc := &domain.Service{
		Store: orders, Payments: payments.New(pcfg, metrics), PaymentsEnabled: switches.PaymentsEnabled,
		Lease: cfg.IdempotencyLease, Now: func() time.Time { return time.Now().UTC().Truncate(time.Microsecond) },
		NewID: newID, Logger: log,
	}
	api := httpapi.New(httpapi.Config{
		JWTSecret: []byte(cfg.JWTSecret), JWTIssuer: cfg.JWTIssuer, JWTAudience: cfg.JWTAudience,
		RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst, RequestBudget: cfg.RequestBudget,
	}, svc, switches, metrics, log, pool.Ping)

	var background sync.WaitGroup
	bgCtx, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	if cfg.NATSURL != "" {
		nc, err := nats.Connect(cfg.NATSURL, nats.Name("orders-service"),
			// NATS being down must not stop the service: events wait in the outbox meanwhile.
			nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond))
		if err != nil {
			return fmt.Errorf("nats: %w", err)
		}
		defer nc.Close()
		js, err := jetstream.New(nc)
		if err != nil {
			return fmt.Errorf("jetstream: %w", err)
		}
		relay := outbox.New(pool, js, outbox.DefaultConfig(), metrics, log)
		background.Go(func() {
			if err := relay.Run(bgCtx); err != nil {
				log.Warn("outbox relay stopped with events left", "err", err)
			}
		})
	} else {
		log.Warn("ORDERS_NATS_URL is empty: events are kept in the outbox and not published")
		// No relay reads the backlog: the outbox alerts must still see events pile up.
		background.Go(func() { outbox.WatchBacklog(bgCtx, pool, metrics, log, time.Second) })
	}
	background.Go(func() { expireKeys(bgCtx, pgStore, cfg.IdempotencyRetain, log) })

	if cfg.PprofAddr != "" {
		stopPprof, err := servePprof(ctx, cfg.PprofAddr, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}

	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           api.Handler(),
		ReadTimeout:       cfg.ReadTimeout,
		ReadHeaderTimeout: cfg.ReadTimeout,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       cfg.IdleTimeout,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())

	select {
	case err := <-serveErr:
		stopBackground()
		background.Wait()
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down: readiness off", "drain_delay", cfg.DrainDelay.String())
	api.StartDraining()
	time.Sleep(cfg.DrainDelay)
	shutCtx, cancelShut := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace)
	defer cancelShut()
	if err := srv.Shutdown(shutCtx); err != nil {
		log.Warn("in-flight requests cut at the grace deadline", "err", err)
	}
	stopBackground()
	background.Wait()
	if err := <-serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	log.Info("stopped")
	return nil
}

func openPool(ctx context.Context, cfg config.Config, tracer store.QueryMetrics) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.DatabaseURL)
	if err != nil {
		return nil, fmt.Errorf("ORDERS_DATABASE_URL: %w", err)
	}
	pc.MaxConns = cfg.DatabaseMaxConn
	pc.MinIdleConns = cfg.DatabaseMinIdle
	pc.ConnConfig.ConnectTimeout = 5 * time.Second
	pc.ConnConfig.Tracer = tracer
	store.Configure(pc)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("database pool: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("database %s: %w", config.MaskURL(cfg.DatabaseURL), err)
	}
	return pool, nil
}

// redisOptions is the Redis client the configuration asks for. Redis is optional: the client fails
// fast and the cache falls through to PostgreSQL.
func redisOptions(cfg config.Config) *redis.Options {
	retries := cfg.RedisMaxRetries
	if retries == 0 {
		retries = -1 // go-redis reads 0 as its default of 3 retries; -1 is none
	}
	return &redis.Options{
		Addr: cfg.RedisAddr, Password: cfg.RedisPassword,
		DialTimeout: cfg.RedisDialTimeout, ReadTimeout: cfg.RedisReadTimeout, WriteTimeout: cfg.RedisWriteTimeout,
		MaxRetries: retries, PoolSize: cfg.RedisPoolSize,
	}
}

// newID returns time-ordered UUIDs (v7), which keep the primary-key index append-mostly.
func newID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.New()
	}
	return id
}

// expireKeys deletes finished idempotency keys and published outbox events older than retain,
// hourly.
func expireKeys(ctx context.Context, s *store.Store, retain time.Duration, log *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		opCtx, cancel := context.WithTimeout(ctx, time.Minute)
		keys, err := s.DeleteExpiredKeys(opCtx, time.Now().Add(-retain))
		if err == nil {
			// Published events are kept as long as keys, for audits of what was sent.
			var events int64
			events, err = s.DeletePublishedEvents(opCtx, time.Now().Add(-retain))
			log.Info("expired idempotency keys and published events", "keys", keys, "events", events)
		}
		cancel()
		if err != nil {
			log.Warn("expiring idempotency keys and published events", "err", err)
		}
	}
}

// servePprof serves the profiler on its own listener, never on the API's, so it is reachable
// only where the operator bound it.
func servePprof(ctx context.Context, addr string, log *slog.Logger) (func(), error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("pprof listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return func() { _ = srv.Close() }, nil
}
