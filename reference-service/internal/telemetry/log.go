package telemetry

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

type requestIDKey struct{}

// WithRequestID returns ctx carrying the request id every log line of the request shows.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey{}, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey{}).(string)
	return id
}

// NewLogger returns a JSON logger that stamps each line with the trace, span and request ids of
// its context and masks attributes whose names say they hold secrets or personal data.
func NewLogger(w io.Writer, level slog.Level) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: mask})
	return slog.New(contextHandler{h})
}

// sensitive names attributes whose values never reach a log in clear. Typed values (domain.Email,
// domain.CardNumber) mask themselves; this catches the plain strings.
var sensitive = []string{"password", "secret", "token", "authorization", "card", "email", "dsn"}

func mask(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindString {
		return a
	}
	k := strings.ToLower(a.Key)
	for _, s := range sensitive {
		if strings.Contains(k, s) {
			return slog.String(a.Key, MaskString(k, a.Value.String()))
		}
	}
	return a
}

// MaskString hides a sensitive value, keeping only what helps an operator correlate it.
func MaskString(key, v string) string {
	switch {
	case v == "":
		return ""
	case strings.Contains(key, "email"):
		if at := strings.LastIndexByte(v, '@'); at > 0 {
			return v[:1] + "***" + v[at:]
		}
	case strings.Contains(key, "card") && len(v) > 4:
		return "****" + v[len(v)-4:]
	}
	return "***"
}

type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(attrs)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
