// Package httpapi is the HTTP edge of the orders service: routing, parsing untrusted input into
// domain types, authentication, rate limiting, and mapping results onto the OpenAPI contract in
// api/openapi.yaml.
package httpapi

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/killswitch"
	"example.com/deliverykit/reference-service/internal/telemetry"
)

// Config is what the edge needs to know.
type Config struct {
	JWTSecret   []byte
	JWTIssuer   string // optional; checked when set
	JWTAudience string // optional; checked when set
	// RateLimit is requests per second per tenant, RateBurst the bucket size.
	RateLimit float64
	RateBurst int
	// RequestBudget bounds each /v1 request end to end; dependency calls take their timeouts
	// from what is left of it.
	RequestBudget time.Duration
}

// API serves the orders contract.
type API struct {
	cfg      Config
	svc      *domain.Service
	switches *killswitch.Switches
	metrics  *telemetry.Metrics
	log      *slog.Logger
	ready    func(context.Context) error
	limiter  *tenantLimiter
	fpKey    []byte
	draining atomic.Bool
}

// New builds the API. ready reports whether the instance's hard dependencies answer.
func New(cfg Config, svc *domain.Service, switches *killswitch.Switches, m *telemetry.Metrics, log *slog.Logger, ready func(context.Context) error) *API {
	// Fingerprints are keyed so that a stored fingerprint cannot be brute-forced back into the
	// card number it covers.
	mac := hmac.New(sha256.New, cfg.JWTSecret)
	mac.Write([]byte("deliverykit/idempotency-fingerprint"))
	return &API{
		cfg: cfg, svc: svc, switches: switches, metrics: m, log: log, ready: ready,
		limiter: newTenantLimiter(cfg.RateLimit, cfg.RateBurst),
		fpKey:   mac.Sum(nil),
	}
}

// StartDraining makes /readyz fail so load balancers stop sending traffic before shutdown.
func (a *API) StartDraining() { a.draining.Store(true) }

// Handler returns the routed handler with every middleware applied.
func (a *API) Handler() http.Handler {
	mux := http.NewServeMux()
	v1 := func(pattern string, h http.HandlerFunc) {
		mux.Handle(pattern, a.instrument(pattern, a.budget(a.authenticate(a.rateLimit(h)))))
	}
	v1("POST /v1/orders", a.createOrder)
	v1("GET /v1/orders", a.listOrders)
	v1("GET /v1/orders/{id}", a.getOrder)
	v1("POST /v1/orders/{id}/cancel", a.cancelOrder)
	v1("GET /admin/kill-switches", a.requireAdmin(a.getSwitches))
	v1("PUT /admin/kill-switches", a.requireAdmin(a.setSwitches))
	mux.Handle("GET /livez", a.instrument("GET /livez", http.HandlerFunc(a.livez)))
	mux.Handle("GET /readyz", a.instrument("GET /readyz", http.HandlerFunc(a.readyz)))
	mux.Handle("GET /metrics", a.instrument("GET /metrics", promhttp.HandlerFor(a.metrics.Registry, promhttp.HandlerOpts{})))
	return a.tracing(a.unmatched(mux))
}

// unmatched answers requests no route takes with a problem body instead of ServeMux's plain text.
func (a *API) unmatched(mux *http.ServeMux) http.Handler {
	notFound := a.instrument("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, edge(kindNotFound, "no route for "+r.Method+" "+r.URL.Path))
	}))
	methodNotAllowed := a.instrument("unmatched", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, edge(kindMethod, r.Method+" is not allowed on "+r.URL.Path))
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, pattern := mux.Handler(r); pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		// ServeMux knows whether another method would match; ask it without letting it write.
		probe := &statusProbe{header: http.Header{}}
		h, _ := mux.Handler(r)
		h.ServeHTTP(probe, r)
		if probe.status == http.StatusMethodNotAllowed {
			w.Header().Set("Allow", probe.header.Get("Allow"))
			methodNotAllowed.ServeHTTP(w, r)
			return
		}
		notFound.ServeHTTP(w, r)
	})
}

type statusProbe struct {
	header http.Header
	status int
}

func (p *statusProbe) Header() http.Header         { return p.header }
func (p *statusProbe) Write(b []byte) (int, error) { return len(b), nil }
func (p *statusProbe) WriteHeader(status int)      { p.status = status }

func (a *API) livez(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (a *API) readyz(w http.ResponseWriter, r *http.Request) {
	if a.draining.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "shutting_down"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), time.Second)
	defer cancel()
	if err := a.ready(ctx); err != nil {
		a.log.WarnContext(ctx, "not ready", "err", err)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "database_unavailable"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// orderDTO is the wire form of an order, as the contract's Order schema says.
type orderDTO struct {
	ID            uuid.UUID     `json:"id"`
	Status        domain.Status `json:"status"`
	CustomerEmail string        `json:"customer_email"`
	Currency      string        `json:"currency"`
	AmountMinor   int64         `json:"amount_minor"`
	Items         []domain.Item `json:"items"`
	CardLast4     string        `json:"card_last4"`
	PaymentID     *string       `json:"payment_id"`
	Version       int32         `json:"version"`
	CreatedAt     time.Time     `json:"created_at"`
	UpdatedAt     time.Time     `json:"updated_at"`
}

func toDTO(o domain.Order) orderDTO {
	d := orderDTO{
		ID: o.ID, Status: o.Status, CustomerEmail: string(o.CustomerEmail), Currency: o.Currency,
		AmountMinor: o.AmountMinor, Items: o.Items, CardLast4: o.CardLast4, Version: o.Version,
		CreatedAt: o.CreatedAt.UTC(), UpdatedAt: o.UpdatedAt.UTC(),
	}
	if o.PaymentID != "" {
		d.PaymentID = &o.PaymentID
	}
	return d
}

type itemDTO struct {
	SKU            *string      `json:"sku"`
	Quantity       *wholeNumber `json:"quantity"`
	UnitPriceMinor *wholeNumber `json:"unit_price_minor"`
}

// wholeNumber is a JSON number without a fractional part, in any notation: JSON Schema's
// `integer` (the contract's type) admits 2.0 and 2e0 as well as 2, and so does the service.
// Strings, fractions and numbers beyond int64 are refused as encoding/json refuses them for an
// int64, naming the field.
type wholeNumber int64

func (n *wholeNumber) UnmarshalJSON(b []byte) error {
	s := string(b)
	if s == "null" {
		return nil // as for *int64: the field stays missing and is reported as required
	}
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		*n = wholeNumber(i)
		return nil
	}
	// 2^63 is exactly representable; anything at or past it does not fit.
	if f, err := strconv.ParseFloat(s, 64); err == nil && s[0] != '"' && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
		*n = wholeNumber(f)
		return nil
	}
	what := "number " + s
	if s[0] == '"' {
		what = "string"
	} else if s[0] == '{' || s[0] == '[' || s == "true" || s == "false" {
		what = map[byte]string{'{': "object", '[': "array", 't': "bool", 'f': "bool"}[s[0]]
	}
	return &json.UnmarshalTypeError{Value: what, Type: reflect.TypeFor[int64]()}
}

type createOrderRequest struct {
	CustomerEmail *string    `json:"customer_email"`
	Currency      *string    `json:"currency"`
	CardNumber    *string    `json:"card_number"`
	Items         *[]itemDTO `json:"items"`
}

// parse turns the wire request into a domain order, naming every missing or wrong field.
func (c createOrderRequest) parse() (domain.NewOrder, error) {
	var missing domain.ValidationError
	req := func(name string, present bool) {
		if !present {
			missing.Add(name, "is required")
		}
	}
	req("customer_email", c.CustomerEmail != nil)
	req("currency", c.Currency != nil)
	req("card_number", c.CardNumber != nil)
	req("items", c.Items != nil)
	in := domain.NewOrderInput{}
	if c.Items != nil {
		for i, it := range *c.Items {
			req(fmt.Sprintf("items[%d].sku", i), it.SKU != nil)
			req(fmt.Sprintf("items[%d].quantity", i), it.Quantity != nil)
			req(fmt.Sprintf("items[%d].unit_price_minor", i), it.UnitPriceMinor != nil)
			if it.SKU != nil && it.Quantity != nil && it.UnitPriceMinor != nil {
				in.Items = append(in.Items, domain.Item{SKU: *it.SKU, Quantity: int64(*it.Quantity), UnitPriceMinor: int64(*it.UnitPriceMinor)})
			}
		}
	}
	if len(missing.Fields) > 0 {
		return domain.NewOrder{}, &missing
	}
	in.CustomerEmail, in.Currency, in.CardNumber = *c.CustomerEmail, *c.Currency, *c.CardNumber
	return domain.ParseNewOrder(in)
}

func (a *API) createOrder(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	key, err := domain.ParseIdempotencyKey(r.Header.Get("Idempotency-Key"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var body createOrderRequest
	if err := decodeJSON(w, r, &body); err != nil {
		a.fail(w, r, err)
		return
	}
	order, err := body.parse()
	if err != nil {
		a.fail(w, r, err)
		return
	}
	a.log.DebugContext(ctx, "placing order", "customer_email", order.CustomerEmail, "card", order.Card)
	placed, err := a.svc.PlaceOrder(ctx, actorFrom(ctx), key, a.fingerprint(order), order, renderCreated)
	if err != nil {
		a.countIdempotency(err)
		a.fail(w, r, err)
		return
	}
	switch placed.Outcome {
	case domain.Replay:
		a.metrics.IdempotencyOutcomes.WithLabelValues("replay").Inc()
		w.Header().Set("Idempotent-Replayed", "true")
	case domain.Resumed:
		a.metrics.IdempotencyOutcomes.WithLabelValues("resumed").Inc()
	default:
		a.metrics.IdempotencyOutcomes.WithLabelValues("fresh").Inc()
	}
	w.Header().Set("Location", "/v1/orders/"+placed.OrderID.String())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(placed.Response.Status)
	_, _ = w.Write(placed.Response.Body)
}

func (a *API) countIdempotency(err error) {
	switch {
	case errorIs(err, domain.ErrIdempotencyKeyReused):
		a.metrics.IdempotencyOutcomes.WithLabelValues("reused").Inc()
	case errorIs(err, domain.ErrIdempotencyKeyInFlight):
		a.metrics.IdempotencyOutcomes.WithLabelValues("in_flight").Inc()
	}
}

// renderCreated is the response recorded for a key and replayed to its repeats.
func renderCreated(o domain.Order) (domain.RecordedResponse, error) {
	body, err := json.Marshal(toDTO(o))
	if err != nil {
		return domain.RecordedResponse{}, fmt.Errorf("encoding order: %w", err)
	}
	return domain.RecordedResponse{Status: http.StatusCreated, Body: body}, nil
}

// fingerprint identifies a request's meaning, so that re-encoded JSON of the same order is the
// same request, and any change of field is a different one.
func (a *API) fingerprint(o domain.NewOrder) []byte {
	canon, _ := json.Marshal(struct {
		Email    string        `json:"e"`
		Currency string        `json:"c"`
		Card     string        `json:"p"`
		Items    []domain.Item `json:"i"`
	}{string(o.CustomerEmail), o.Currency, string(o.Card), o.Items})
	mac := hmac.New(sha256.New, a.fpKey)
	mac.Write(canon)
	return mac.Sum(nil)
}

func (a *API) getOrder(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	o, err := a.svc.GetOrder(r.Context(), actorFrom(r.Context()), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDTO(o))
}

func (a *API) cancelOrder(w http.ResponseWriter, r *http.Request) {
	id, err := pathID(r)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	o, err := a.svc.CancelOrder(r.Context(), actorFrom(r.Context()), id)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, toDTO(o))
}

type pageDTO struct {
	Items      []orderDTO `json:"items"`
	NextCursor *string    `json:"next_cursor"`
}

func (a *API) listOrders(w http.ResponseWriter, r *http.Request) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		a.fail(w, r, domain.Invalid("query", "must be a valid URL query string"))
		return
	}
	page := domain.PageRequest{Limit: 20}
	var bad domain.ValidationError
	// Present but empty is not an integer: refused, as the contract's type says. (An empty cursor
	// is documented as none.)
	if q.Has("limit") {
		s := q.Get("limit")
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			bad.Add("limit", "must be an integer from 1 to 100")
		}
		page.Limit = n
	}
	if s := q.Get("cursor"); s != "" {
		c, err := decodeCursor(s)
		if err != nil {
			bad.Add("cursor", "must be 32 characters of A-Z, a-z, 0-9, - and _ (a next_cursor)")
		}
		page.After = c
	}
	if len(bad.Fields) > 0 {
		a.fail(w, r, &bad)
		return
	}
	res, err := a.svc.ListOrders(r.Context(), actorFrom(r.Context()), page)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := pageDTO{Items: make([]orderDTO, 0, len(res.Orders))}
	for _, o := range res.Orders {
		out.Items = append(out.Items, toDTO(o))
	}
	if res.Next != nil {
		s := encodeCursor(*res.Next)
		out.NextCursor = &s
	}
	writeJSON(w, http.StatusOK, out)
}

// A cursor is the position of a page's last order, (created_at, id), packed as 8 bytes of
// big-endian Unix microseconds (PostgreSQL's precision) then the 16 bytes of the id, in unpadded
// base64url: always 32 characters. Every 32-character base64url string decodes to a position,
// so the contract's pattern (cursorLen characters of [A-Za-z0-9_-]) is exactly what is accepted;
// a position no page ended on still lists the orders older than it.
const cursorLen = 32

// Positions are clamped to years 1 to 9999, inside PostgreSQL's timestamptz range; every order
// is created within it, so the clamp changes no page.
var (
	cursorMinMicros = time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC).UnixMicro()
	cursorMaxMicros = time.Date(9999, 12, 31, 23, 59, 59, 999999000, time.UTC).UnixMicro()
)

func encodeCursor(c domain.Cursor) string {
	var b [24]byte
	binary.BigEndian.PutUint64(b[:8], uint64(c.CreatedAt.UnixMicro())) //nolint:gosec // two's complement round-trips through int64 below.
	copy(b[8:], c.ID[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func decodeCursor(s string) (*domain.Cursor, error) {
	if len(s) != cursorLen {
		return nil, fmt.Errorf("cursor of %d characters, not %d", len(s), cursorLen)
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("cursor encoding: %w", err)
	}
	// The decoder skips CR and LF; such a cursor decodes short.
	if len(b) != 24 {
		return nil, fmt.Errorf("cursor of %d bytes, not 24", len(b))
	}
	micros := min(max(int64(binary.BigEndian.Uint64(b[:8])), cursorMinMicros), cursorMaxMicros) //nolint:gosec // any 64 bits are a position; clamped.
	var id uuid.UUID
	copy(id[:], b[8:])
	return &domain.Cursor{CreatedAt: time.UnixMicro(micros).UTC(), ID: id}, nil
}

type switchesDTO struct {
	CacheEnabled    *bool `json:"cache_enabled"`
	PaymentsEnabled *bool `json:"payments_enabled"`
}

func (a *API) getSwitches(w http.ResponseWriter, _ *http.Request) {
	c, p := a.switches.CacheEnabled(), a.switches.PaymentsEnabled()
	writeJSON(w, http.StatusOK, switchesDTO{CacheEnabled: &c, PaymentsEnabled: &p})
}

func (a *API) setSwitches(w http.ResponseWriter, r *http.Request) {
	var in switchesDTO
	if err := decodeJSON(w, r, &in); err != nil {
		a.fail(w, r, err)
		return
	}
	var bad domain.ValidationError
	if in.CacheEnabled == nil {
		bad.Add("cache_enabled", "is required")
	}
	if in.PaymentsEnabled == nil {
		bad.Add("payments_enabled", "is required")
	}
	if len(bad.Fields) > 0 {
		a.fail(w, r, &bad)
		return
	}
	a.switches.Set(*in.CacheEnabled, *in.PaymentsEnabled)
	a.log.WarnContext(r.Context(), "kill switches changed", "cache_enabled", *in.CacheEnabled,
		"payments_enabled", *in.PaymentsEnabled, "by", actorFrom(r.Context()).Subject)
	a.getSwitches(w, r)
}

func pathID(r *http.Request) (uuid.UUID, error) {
	id, err := uuid.Parse(r.PathValue("id"))
	if err != nil {
		return uuid.Nil, domain.Invalid("id", "must be a UUID")
	}
	return id, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		writeProblem(w, newProblem(kindInternal, "", nil))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
