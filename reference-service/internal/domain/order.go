// Package domain holds the orders model and its rules. It imports no transport and no driver:
// HTTP lives in httpapi, PostgreSQL in store, and both depend on this package, never the reverse.
package domain

import (
	"fmt"
	"log/slog"
	"net/mail"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
)

// TenantID names the tenant that owns a resource. It comes only from a verified token.
type TenantID string

// Status is an order's state.
type Status string

// The order states. An order is created pending_payment and settles once.
const (
	StatusPendingPayment  Status = "pending_payment"
	StatusPaid            Status = "paid"
	StatusPaymentDeclined Status = "payment_declined"
	StatusCancelled       Status = "cancelled"
)

// Limits a request must respect; the OpenAPI contract states the same numbers.
const (
	MaxItems          = 50
	MaxQuantity       = 1000
	MaxUnitPriceMinor = 100_000_000
	MaxSKULength      = 64
	MaxEmailLength    = 254
	MaxIdempotentKey  = 255
)

// Email is a customer's address. It logs masked.
type Email string

// LogValue keeps the address out of logs: the first letter and the domain survive.
func (e Email) LogValue() slog.Value { return slog.StringValue(MaskEmail(string(e))) }

// MaskEmail turns "alice@example.com" into "a***@example.com".
func MaskEmail(s string) string {
	at := strings.LastIndexByte(s, '@')
	if at <= 0 {
		return "***"
	}
	return s[:1] + "***" + s[at:]
}

// CardNumber is a primary account number. It is never stored or logged in full.
type CardNumber string

// LogValue shows only the last four digits.
func (c CardNumber) LogValue() slog.Value { return slog.StringValue("****" + c.Last4()) }

// Last4 returns the last four digits.
func (c CardNumber) Last4() string {
	if len(c) < 4 {
		return ""
	}
	return string(c[len(c)-4:])
}

// Item is one order line.
type Item struct {
	SKU            string `json:"sku"`
	Quantity       int64  `json:"quantity"`
	UnitPriceMinor int64  `json:"unit_price_minor"`
}

// Order is an order as stored.
type Order struct {
	ID            uuid.UUID
	Tenant        TenantID
	CustomerEmail Email
	Currency      string
	AmountMinor   int64
	Items         []Item
	Status        Status
	CardLast4     string
	PaymentID     string
	Version       int32
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// NewOrder is a validated request to place an order. Build it with ParseNewOrder; the zero value
// is not a valid order.
type NewOrder struct {
	CustomerEmail Email
	Currency      string
	Items         []Item
	Card          CardNumber
}

// Amount is the order total in minor units.
func (n NewOrder) Amount() int64 {
	var total int64
	for _, it := range n.Items {
		total += it.Quantity * it.UnitPriceMinor
	}
	return total
}

// NewOrderInput is the untrusted shape of a new order, as decoded at the edge.
type NewOrderInput struct {
	CustomerEmail string
	Currency      string
	Items         []Item
	CardNumber    string
}

var (
	currencyRE = regexp.MustCompile(`^[A-Z]{3}$`)
	skuRE      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)
	cardRE     = regexp.MustCompile(`^[0-9]{12,19}$`)
)

// ParseNewOrder validates in and names every field that is wrong.
func ParseNewOrder(in NewOrderInput) (NewOrder, error) {
	var v ValidationError
	email := strings.TrimSpace(in.CustomerEmail)
	switch {
	case email == "":
		v.Add("customer_email", "is required")
	case len(email) > MaxEmailLength:
		v.Add("customer_email", fmt.Sprintf("must be at most %d characters", MaxEmailLength))
	default:
		if a, err := mail.ParseAddress(email); err != nil || a.Address != email {
			v.Add("customer_email", "must be a plain email address")
		}
	}
	if !currencyRE.MatchString(in.Currency) {
		v.Add("currency", "must be an ISO 4217 code of three capital letters")
	}
	if !cardRE.MatchString(in.CardNumber) || !luhn(in.CardNumber) {
		v.Add("card_number", "must be 12 to 19 digits with a valid check digit")
	}
	switch {
	case len(in.Items) == 0:
		v.Add("items", "must hold at least one item")
	case len(in.Items) > MaxItems:
		v.Add("items", fmt.Sprintf("must hold at most %d items", MaxItems))
	}
	for i, it := range in.Items {
		if len(it.SKU) == 0 || len(it.SKU) > MaxSKULength || !skuRE.MatchString(it.SKU) {
			v.Add(fmt.Sprintf("items[%d].sku", i), fmt.Sprintf("must be 1 to %d letters, digits, '.', '_' or '-'", MaxSKULength))
		}
		if it.Quantity < 1 || it.Quantity > MaxQuantity {
			v.Add(fmt.Sprintf("items[%d].quantity", i), fmt.Sprintf("must be between 1 and %d", MaxQuantity))
		}
		if it.UnitPriceMinor < 1 || it.UnitPriceMinor > MaxUnitPriceMinor {
			v.Add(fmt.Sprintf("items[%d].unit_price_minor", i), fmt.Sprintf("must be between 1 and %d", MaxUnitPriceMinor))
		}
	}
	if len(v.Fields) > 0 {
		return NewOrder{}, &v
	}
	return NewOrder{
		CustomerEmail: Email(email),
		Currency:      in.Currency,
		Items:         in.Items,
		Card:          CardNumber(in.CardNumber),
	}, nil
}

func luhn(digits string) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// ParseIdempotencyKey checks a client's key: 1 to 255 visible ASCII characters.
func ParseIdempotencyKey(s string) (string, error) {
	if s == "" {
		return "", ErrIdempotencyKeyMissing
	}
	if len(s) > MaxIdempotentKey {
		return "", &ValidationError{Fields: []FieldError{{Field: "Idempotency-Key", Reason: fmt.Sprintf("must be at most %d characters", MaxIdempotentKey)}}}
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x21 || s[i] > 0x7e {
			return "", &ValidationError{Fields: []FieldError{{Field: "Idempotency-Key", Reason: "must be visible ASCII characters"}}}
		}
	}
	return s, nil
}
