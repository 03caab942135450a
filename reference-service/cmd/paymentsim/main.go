// Command paymentsim is the payments stand-in: configurable latency, jitter and error rate, an
// idempotent charge endpoint and a call log at GET /v1/calls.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"example.com/deliverykit/reference-service/internal/paymentsim"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "paymentsim:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("paymentsim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", envOr(getenv, "PAYMENTSIM_ADDR", "127.0.0.1:8090"), "listen address (PAYMENTSIM_ADDR)")
	latency := fs.String("latency", envOr(getenv, "PAYMENTSIM_LATENCY", "20ms"), "added latency per charge (PAYMENTSIM_LATENCY)")
	jitter := fs.String("jitter", envOr(getenv, "PAYMENTSIM_JITTER", "10ms"), "extra random latency up to this (PAYMENTSIM_JITTER)")
	errorRate := fs.Float64("error-rate", 0, "probability 0..1 of answering 503 (PAYMENTSIM_ERROR_RATE)")
	if v := getenv("PAYMENTSIM_ERROR_RATE"); v != "" {
		if err := fs.Set("error-rate", v); err != nil {
			return fmt.Errorf("PAYMENTSIM_ERROR_RATE: %w", err)
		}
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	b, err := paymentsim.ParseBehaviour(*latency, *jitter, *errorRate)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil))
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	srv := &http.Server{
		Handler:           paymentsim.New(b).Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "latency", b.Latency.String(), "jitter", b.Jitter.String(), "error_rate", b.ErrorRate)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shut); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func envOr(getenv func(string) string, name, def string) string {
	if v := getenv(name); v != "" {
		return v
	}
	return def
}
