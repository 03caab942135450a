package telemetry

import (
	"context"
	"fmt"
	"io"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/exporters/stdout/stdouttrace"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
)

// SetupTracing installs the global tracer provider and the W3C trace-context propagator.
// Spans always exist, so logs carry trace ids and `traceparent` propagates downstream;
// exporter "" or "none" records nothing, "otlp" sends them over OTLP/HTTP (configured by the
// standard OTEL_EXPORTER_OTLP_* variables), "stdout" writes them to w as JSON for debugging.
// The returned function flushes and stops the provider.
func SetupTracing(ctx context.Context, exporter string, w io.Writer) (func(context.Context) error, error) {
	// Without an exporter nothing would read a recorded span, so spans are not recorded; they
	// still carry trace and span ids (continuing an incoming traceparent) for logs and
	// propagation.
	opts := []sdktrace.TracerProviderOption{sdktrace.WithSampler(sdktrace.NeverSample())}
	switch exporter {
	case "", "none":
	case "otlp":
		// Endpoint, headers and TLS come from the standard OTEL_EXPORTER_OTLP_* variables.
		exp, err := otlptracehttp.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("otlp trace exporter: %w", err)
		}
		opts = []sdktrace.TracerProviderOption{
			sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample())),
			sdktrace.WithBatcher(exp),
		}
	case "stdout":
		opts = []sdktrace.TracerProviderOption{sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.AlwaysSample()))}
		exp, err := stdouttrace.New(stdouttrace.WithWriter(w))
		if err != nil {
			return nil, fmt.Errorf("stdout trace exporter: %w", err)
		}
		opts = append(opts, sdktrace.WithBatcher(exp))
	default:
		return nil, fmt.Errorf("unknown trace exporter %q (want none, otlp or stdout)", exporter)
	}
	tp := sdktrace.NewTracerProvider(opts...)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	return tp.Shutdown, nil
}
