package domain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
)

// Actor is who asks for a change: the authenticated subject of a tenant, and the request that
// carried it. Every state change is audited under an Actor.
type Actor struct {
	Tenant    TenantID
	Subject   string
	RequestID string
}

// RecordedResponse is the response first given for an idempotency key, replayed byte for byte.
// The domain keeps it opaque: the transport renders it and the store keeps it.
type RecordedResponse struct {
	Status int
	Body   []byte
}

// Renderer turns a settled order into the response to record for its idempotency key.
type Renderer func(Order) (RecordedResponse, error)

// BeginOutcome says what BeginPlacement found for a key.
type BeginOutcome int

// Outcomes of BeginPlacement.
const (
	// Fresh: the key was new; the order and its created event are committed with it.
	Fresh BeginOutcome = iota + 1
	// Resumed: an earlier attempt with this key committed the order but never settled payment
	// (it failed or crashed); this request holds the key's lease and finishes the job.
	Resumed
	// Replay: the key is finished; Replay holds the response to send again.
	Replay
)

// Placement is everything the store needs to start placing an order under a key, in one
// transaction: the key row, the order, its event and its audit row.
type Placement struct {
	Actor       Actor
	Key         string
	Fingerprint []byte
	Order       Order
	Event       Event
	LeaseUntil  time.Time
	Now         time.Time
}

// Begun is the result of BeginPlacement. On Replay, only Order.ID is set.
type Begun struct {
	Outcome BeginOutcome
	Order   Order
	Replay  RecordedResponse
}

// Placed is the result of PlaceOrder.
type Placed struct {
	Outcome  BeginOutcome
	OrderID  uuid.UUID
	Response RecordedResponse
}

// Settlement is the result of the payment step, written together with the key's response.
type Settlement struct {
	Actor   Actor
	Key     string
	OrderID uuid.UUID
	// Order is the order as BeginPlacement returned it, before settlement; stores use it to
	// settle without reading the order again when nothing changed it meanwhile.
	Order     Order
	Status    Status // StatusPendingPayment leaves the order as it is.
	PaymentID string
	Event     *Event
	Render    Renderer
	Now       time.Time
}

// Cancellation asks to cancel one order.
type Cancellation struct {
	Actor   Actor
	OrderID uuid.UUID
	EventID uuid.UUID
	Now     time.Time
}

// Cursor marks the last order of a page, in the list's order (newest first).
type Cursor struct {
	CreatedAt time.Time
	ID        uuid.UUID
}

// PageRequest asks for up to Limit orders after the cursor (nil: from the newest).
type PageRequest struct {
	Limit int
	After *Cursor
}

// Page is one page of orders; Next is nil on the last page.
type Page struct {
	Orders []Order
	Next   *Cursor
}

// Store keeps orders. Every method is scoped to one tenant; implementations must never return
// or change another tenant's rows. Writes happen in one transaction each, together with their
// outbox event and audit row.
type Store interface {
	BeginPlacement(ctx context.Context, p Placement) (Begun, error)
	// AbandonPlacement releases the key's lease so a retry with the same key may resume at once.
	AbandonPlacement(ctx context.Context, tenant TenantID, key string) error
	FinishPlacement(ctx context.Context, s Settlement) (Order, RecordedResponse, error)
	GetOrder(ctx context.Context, tenant TenantID, id uuid.UUID) (Order, error)
	ListOrders(ctx context.Context, tenant TenantID, page PageRequest) (Page, error)
	CancelOrder(ctx context.Context, c Cancellation) (Order, error)
}

// ChargeRequest asks the payments service to charge a card once per IdempotencyKey.
type ChargeRequest struct {
	IdempotencyKey string
	Tenant         TenantID
	OrderID        uuid.UUID
	AmountMinor    int64
	Currency       string
	Card           CardNumber
}

// ChargeResult is the payments service's answer. A decline is an answer, not an error.
type ChargeResult struct {
	PaymentID string
	Declined  bool
}

// Payments charges cards. Errors wrap ErrPaymentsUnavailable when no answer could be had.
type Payments interface {
	Charge(ctx context.Context, req ChargeRequest) (ChargeResult, error)
}

// Service applies the order rules over a Store and a Payments client.
type Service struct {
	Store    Store
	Payments Payments
	// PaymentsEnabled is a kill switch: when it reports false, orders are accepted as
	// pending_payment without calling payments, to be collected later.
	PaymentsEnabled func() bool
	// Lease bounds how long a key stays "in flight" if its request dies; it must exceed the
	// longest request budget so a live request never loses its key.
	Lease  time.Duration
	Now    func() time.Time
	NewID  func() uuid.UUID
	Logger *slog.Logger
}

// PlaceOrder places an order exactly once per (tenant, key): a repeated request with the same
// fingerprint replays the first response, a different fingerprint is refused, and a request
// racing an unfinished one is told to retry.
func (s *Service) PlaceOrder(ctx context.Context, actor Actor, key string, fingerprint []byte, in NewOrder, render Renderer) (Placed, error) {
	now := s.Now()
	order := Order{
		ID:            s.NewID(),
		Tenant:        actor.Tenant,
		CustomerEmail: in.CustomerEmail,
		Currency:      in.Currency,
		AmountMinor:   in.Amount(),
		Items:         in.Items,
		Status:        StatusPendingPayment,
		CardLast4:     in.Card.Last4(),
		Version:       1,
		CreatedAt:     now,
		UpdatedAt:     now,
	}
	begun, err := s.Store.BeginPlacement(ctx, Placement{
		Actor:       actor,
		Key:         key,
		Fingerprint: fingerprint,
		Order:       order,
		Event:       NewEvent(s.NewID(), EventOrderCreated, order, now),
		LeaseUntil:  now.Add(s.Lease),
		Now:         now,
	})
	if err != nil {
		return Placed{}, err
	}
	if begun.Outcome == Replay {
		return Placed{Outcome: Replay, OrderID: begun.Order.ID, Response: begun.Replay}, nil
	}
	order = begun.Order

	settle := Settlement{Actor: actor, Key: key, OrderID: order.ID, Order: order, Status: StatusPendingPayment, Render: render}
	// A resumed order may have been cancelled while its key was abandoned; it is not charged.
	charge := order.Status == StatusPendingPayment && (s.PaymentsEnabled == nil || s.PaymentsEnabled())
	if charge {
		res, err := s.Payments.Charge(ctx, ChargeRequest{
			// The order id is stable across every retry and resume of this key, so the payments
			// service sees one key per order however often we ask.
			IdempotencyKey: order.ID.String(),
			Tenant:         actor.Tenant,
			OrderID:        order.ID,
			AmountMinor:    order.AmountMinor,
			Currency:       order.Currency,
			Card:           in.Card,
		})
		if err != nil {
			s.release(ctx, actor.Tenant, key)
			return Placed{}, fmt.Errorf("charging order %s: %w", order.ID, err)
		}
		settle.PaymentID = res.PaymentID
		settle.Status = StatusPaid
		kind := EventOrderPaid
		if res.Declined {
			settle.Status = StatusPaymentDeclined
			kind = EventOrderPaymentDeclined
		}
		ev := NewEvent(s.NewID(), kind, order, s.Now())
		settle.Event = &ev
	}
	settle.Now = s.Now()
	_, resp, err := s.Store.FinishPlacement(ctx, settle)
	if err != nil {
		s.release(ctx, actor.Tenant, key)
		return Placed{}, err
	}
	return Placed{Outcome: begun.Outcome, OrderID: order.ID, Response: resp}, nil
}

// release gives up the key's lease after a failure: the order stays committed and pending, and
// the client's retry with the same key resumes it at once instead of waiting for the lease to run
// out. It uses a fresh context, since the request's own may be what ran out.
func (s *Service) release(ctx context.Context, tenant TenantID, key string) {
	relCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if err := s.Store.AbandonPlacement(relCtx, tenant, key); err != nil {
		s.Logger.WarnContext(ctx, "releasing idempotency lease", "err", err)
	}
}

// GetOrder returns one order of the actor's tenant.
func (s *Service) GetOrder(ctx context.Context, actor Actor, id uuid.UUID) (Order, error) {
	return s.Store.GetOrder(ctx, actor.Tenant, id)
}

// ListOrders returns one page of the actor's tenant's orders, newest first.
func (s *Service) ListOrders(ctx context.Context, actor Actor, page PageRequest) (Page, error) {
	return s.Store.ListOrders(ctx, actor.Tenant, page)
}

// CancelOrder cancels an order; cancelling a cancelled order succeeds and changes nothing.
func (s *Service) CancelOrder(ctx context.Context, actor Actor, id uuid.UUID) (Order, error) {
	o, err := s.Store.CancelOrder(ctx, Cancellation{Actor: actor, OrderID: id, EventID: s.NewID(), Now: s.Now()})
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrNotCancellable) {
		return Order{}, fmt.Errorf("cancelling order %s: %w", id, err)
	}
	return o, err
}

// CanCancel reports whether an order in status from may move to cancelled. Refunds are out of
// scope, so a paid order stays paid.
func CanCancel(from Status) bool {
	return from == StatusPendingPayment || from == StatusPaymentDeclined
}
