package telemetry_test

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"go.opentelemetry.io/otel"

	"example.com/deliverykit/reference-service/internal/telemetry"
)

// The tracer provider is process-global, so these tests run one after another.

func TestStdoutExporterWritesSpans(t *testing.T) {
	var buf bytes.Buffer
	stop, err := telemetry.SetupTracing(context.Background(), "stdout", &buf)
	if err != nil {
		t.Fatal(err)
	}
	_, span := otel.Tracer("test").Start(context.Background(), "work")
	id := span.SpanContext().TraceID().String()
	span.End()
	if err := stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), id) {
		t.Fatalf("span %s not exported: %s", id, buf.String())
	}
}

func TestNoExporterStillGivesIDs(t *testing.T) {
	stop, err := telemetry.SetupTracing(context.Background(), "none", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop(context.Background()) }()
	ctx, span := otel.Tracer("test").Start(context.Background(), "work")
	defer span.End()
	if !span.SpanContext().IsValid() || span.IsRecording() {
		t.Fatal("want ids without recording")
	}
	var buf bytes.Buffer
	telemetry.NewLogger(&buf, slog.LevelInfo).InfoContext(telemetry.WithRequestID(ctx, "r1"), "hello",
		"customer_email", "alice@example.com", "card_number", "4242424242424242", "authorization", "Bearer sekrit-token")
	out := buf.String()
	for _, want := range []string{span.SpanContext().TraceID().String(), `"request_id":"r1"`, "a***@example.com", "****4242", `"authorization":"***"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s: %s", want, out)
		}
	}
	if strings.Contains(out, "alice@") || strings.Contains(out, "424242424242") || strings.Contains(out, "sekrit") {
		t.Fatalf("secret in log: %s", out)
	}
}

func TestUnknownExporterIsAnError(t *testing.T) {
	if _, err := telemetry.SetupTracing(context.Background(), "zipkin", nil); err == nil {
		t.Fatal("want an error")
	}
}
