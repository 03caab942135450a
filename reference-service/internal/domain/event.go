package domain

import (
	"time"

	"github.com/google/uuid"
)

// Event kinds; each is published on subject "orders.<kind>".
const (
	EventOrderCreated         = "created"
	EventOrderPaid            = "paid"
	EventOrderPaymentDeclined = "payment_declined"
	EventOrderCancelled       = "cancelled"
)

// Event is one fact about an order, written to the outbox with the change it describes and
// published with ID as its deduplication id.
type Event struct {
	ID         uuid.UUID `json:"id"`
	Kind       string    `json:"kind"`
	Tenant     TenantID  `json:"tenant_id"`
	OrderID    uuid.UUID `json:"order_id"`
	Status     Status    `json:"status"`
	Amount     int64     `json:"amount_minor"`
	Currency   string    `json:"currency"`
	OccurredAt time.Time `json:"occurred_at"`
}

// Subject is the stream subject the event is published on.
func (e Event) Subject() string { return "orders." + e.Kind }

// NewEvent describes order o after a change of kind. The customer's email and card never enter
// an event: consumers that need them ask the API.
func NewEvent(id uuid.UUID, kind string, o Order, at time.Time) Event {
	status := o.Status
	switch kind {
	case EventOrderPaid:
		status = StatusPaid
	case EventOrderPaymentDeclined:
		status = StatusPaymentDeclined
	case EventOrderCancelled:
		status = StatusCancelled
	}
	return Event{ID: id, Kind: kind, Tenant: o.Tenant, OrderID: o.ID, Status: status, Amount: o.AmountMinor, Currency: o.Currency, OccurredAt: at}
}
