package domain_test

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"example.com/deliverykit/reference-service/internal/domain"
)

func valid() domain.NewOrderInput {
	return domain.NewOrderInput{
		CustomerEmail: "alice@example.com", Currency: "EUR", CardNumber: "4242424242424242",
		Items: []domain.Item{{SKU: "BOOK-1", Quantity: 2, UnitPriceMinor: 1250}, {SKU: "PEN", Quantity: 1, UnitPriceMinor: 99}},
	}
}

func TestParseNewOrderAcceptsAValidOrder(t *testing.T) {
	t.Parallel()
	o, err := domain.ParseNewOrder(valid())
	if err != nil {
		t.Fatal(err)
	}
	if o.Amount() != 2599 || o.Card.Last4() != "4242" {
		t.Fatalf("amount %d last4 %s", o.Amount(), o.Card.Last4())
	}
}

func TestParseNewOrderNamesEveryBadField(t *testing.T) {
	t.Parallel()
	in := domain.NewOrderInput{
		CustomerEmail: "not an email", Currency: "euro", CardNumber: "4242424242424241",
		Items: []domain.Item{{SKU: "", Quantity: 0, UnitPriceMinor: 0}},
	}
	_, err := domain.ParseNewOrder(in)
	var ve *domain.ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("err %v is not a ValidationError", err)
	}
	got := map[string]bool{}
	for _, f := range ve.Fields {
		got[f.Field] = true
	}
	for _, want := range []string{"customer_email", "currency", "card_number", "items[0].sku", "items[0].quantity", "items[0].unit_price_minor"} {
		if !got[want] {
			t.Errorf("%s not named in %v", want, ve.Fields)
		}
	}
}

func TestParseNewOrderLimits(t *testing.T) {
	t.Parallel()
	tooMany := valid()
	for range domain.MaxItems {
		tooMany.Items = append(tooMany.Items, domain.Item{SKU: "A", Quantity: 1, UnitPriceMinor: 1})
	}
	longEmail := valid()
	longEmail.CustomerEmail = strings.Repeat("a", 250) + "@example.com"
	bigQty := valid()
	bigQty.Items[0].Quantity = domain.MaxQuantity + 1
	for name, in := range map[string]domain.NewOrderInput{"items": tooMany, "customer_email": longEmail, "items[0].quantity": bigQty} {
		if _, err := domain.ParseNewOrder(in); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err %v", name, err)
		}
	}
}

func TestParseIdempotencyKey(t *testing.T) {
	t.Parallel()
	if _, err := domain.ParseIdempotencyKey(""); !errors.Is(err, domain.ErrIdempotencyKeyMissing) {
		t.Fatalf("empty: %v", err)
	}
	for _, bad := range []string{strings.Repeat("k", 256), "has space", "tab\tkey", "ünï"} {
		if _, err := domain.ParseIdempotencyKey(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if k, err := domain.ParseIdempotencyKey(strings.Repeat("k", 255)); err != nil || len(k) != 255 {
		t.Fatalf("255 chars refused: %v", err)
	}
}

func TestPIILogsMasked(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	log := slog.New(slog.NewJSONHandler(&b, nil))
	log.Info("x", "email", domain.Email("alice@example.com"), "card", domain.CardNumber("4242424242424242"))
	out := b.String()
	if strings.Contains(out, "alice@") || strings.Contains(out, "424242424242") {
		t.Fatalf("PII leaked: %s", out)
	}
	if !strings.Contains(out, "a***@example.com") || !strings.Contains(out, "****4242") {
		t.Fatalf("masked forms missing: %s", out)
	}
	if got := fmt.Sprint(domain.MaskEmail("nobody")); got != "***" {
		t.Fatalf("MaskEmail without @: %q", got)
	}
}

func TestCanCancel(t *testing.T) {
	t.Parallel()
	for s, want := range map[domain.Status]bool{
		domain.StatusPendingPayment: true, domain.StatusPaymentDeclined: true, domain.StatusPaid: false, domain.StatusCancelled: false,
	} {
		if domain.CanCancel(s) != want {
			t.Errorf("CanCancel(%s) != %v", s, want)
		}
	}
}
