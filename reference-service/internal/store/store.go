// Package store keeps orders in PostgreSQL. Queries are written in queries.sql and compiled by
// sqlc into package db; this package adds the transactions that keep an order, its idempotency
// key, its outbox event and its audit row together.
package store

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
	pgxuuid "github.com/vgarvardt/pgx-google-uuid/v5"

	"example.com/deliverykit/reference-service/internal/domain"
	"example.com/deliverykit/reference-service/internal/store/db"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrate brings the schema up to date. A session lock lets several replicas start at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error {
	sqlDB := stdlib.OpenDBFromPool(pool)
	defer func() { _ = sqlDB.Close() }()
	fsys, err := fsSub()
	if err != nil {
		return err
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, sqlDB, fsys, goose.WithSessionLocker(locker))
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	if _, err := p.Up(ctx); err != nil {
		return fmt.Errorf("applying migrations: %w", err)
	}
	return nil
}

// Configure prepares a pool's connections for this package: google/uuid values are encoded and
// scanned as binary uuids. Without it pgx takes uuid.UUID's driver.Valuer path for every id
// parameter — format it as text, fail to encode that as binary, build an error, parse the text
// back — and scans every id through text too. Call it before pgxpool.NewWithConfig.
func Configure(pc *pgxpool.Config) {
	next := pc.AfterConnect
	pc.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		registerTypes(c.TypeMap())
		if next != nil {
			return next(ctx, c)
		}
		return nil
	}
}

func registerTypes(m *pgtype.Map) { pgxuuid.Register(m) }

// Store implements domain.Store on a pgx pool.
type Store struct {
	pool *pgxpool.Pool
	q    *db.Queries
}

// New returns a Store on pool.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, q: db.New(pool)}
}

var _ domain.Store = (*Store)(nil)

// inTx runs fn in one transaction and commits only if fn succeeds.
func (s *Store) inTx(ctx context.Context, fn func(q *db.Queries) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return classify(err)
	}
	// Rollback after a commit is a no-op; on any early return it ends the transaction.
	defer func() { _ = tx.Rollback(context.WithoutCancel(ctx)) }()
	if err := fn(s.q.WithTx(tx)); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return classify(err)
	}
	return nil
}

// BeginPlacement implements domain.Store.
func (s *Store) BeginPlacement(ctx context.Context, p domain.Placement) (domain.Begun, error) {
	// PostgreSQL keeps microseconds; the order handed back must equal the one read later.
	p.Now = p.Now.Truncate(time.Microsecond)
	p.Order.CreatedAt = p.Order.CreatedAt.Truncate(time.Microsecond)
	p.Order.UpdatedAt = p.Order.UpdatedAt.Truncate(time.Microsecond)
	fresh, err := s.placeFast(ctx, p)
	if err != nil {
		return domain.Begun{}, err
	}
	if fresh {
		return domain.Begun{Outcome: domain.Fresh, Order: p.Order}, nil
	}
	// The key exists: decide between replay, conflict and resume under a transaction.
	var out domain.Begun
	err = s.inTx(ctx, func(q *db.Queries) error {
		tenant := string(p.Actor.Tenant)
		lease := p.LeaseUntil
		n, err := q.InsertIdempotencyKey(ctx, db.InsertIdempotencyKeyParams{
			TenantID: tenant, Key: p.Key, RequestHash: p.Fingerprint, OrderID: p.Order.ID,
			LockedUntil: &lease, CreatedAt: p.Now,
		})
		if err != nil {
			return classify(err)
		}
		if n == 1 {
			if err := insertOrder(ctx, q, p.Order); err != nil {
				return err
			}
			if err := insertEvent(ctx, q, p.Event); err != nil {
				return err
			}
			if err := audit(ctx, q, p.Actor, p.Order.ID, "order.create", "", p.Order.Status, p.Now); err != nil {
				return err
			}
			out = domain.Begun{Outcome: domain.Fresh, Order: p.Order}
			return nil
		}

		k, err := q.GetIdempotencyKey(ctx, db.GetIdempotencyKeyParams{TenantID: tenant, Key: p.Key})
		if err != nil {
			return classify(err)
		}
		if string(k.RequestHash) != string(p.Fingerprint) {
			return domain.ErrIdempotencyKeyReused
		}
		if k.RecoveryPoint == "finished" {
			out = domain.Begun{Outcome: domain.Replay, Order: domain.Order{ID: k.OrderID}, Replay: domain.RecordedResponse{Status: int(k.ResponseStatus.Int32), Body: k.ResponseBody}}
			return nil
		}
		if k.LockedUntil != nil && k.LockedUntil.After(p.Now) {
			return domain.ErrIdempotencyKeyInFlight
		}
		n, err = q.AcquireIdempotencyLease(ctx, db.AcquireIdempotencyLeaseParams{
			NewLease: &lease, TenantID: tenant, Key: p.Key, OldLease: k.LockedUntil,
		})
		if err != nil {
			return classify(err)
		}
		if n == 0 {
			return domain.ErrIdempotencyKeyInFlight
		}
		row, err := q.GetOrder(ctx, db.GetOrderParams{TenantID: tenant, ID: k.OrderID})
		if err != nil {
			return classify(err)
		}
		o, err := toOrder(row)
		if err != nil {
			return err
		}
		out = domain.Begun{Outcome: domain.Resumed, Order: o}
		return nil
	})
	return out, err
}

// placeFast writes a new key with its order, event and audit row in one statement. It reports
// false, having written nothing, when the key already exists.
func (s *Store) placeFast(ctx context.Context, p domain.Placement) (bool, error) {
	items, err := json.Marshal(p.Order.Items)
	if err != nil {
		return false, fmt.Errorf("encoding items: %w", err)
	}
	payload, err := json.Marshal(p.Event)
	if err != nil {
		return false, fmt.Errorf("encoding event: %w", err)
	}
	o := p.Order
	n, err := s.q.PlaceOrderFast(ctx, db.PlaceOrderFastParams{
		TenantID: string(p.Actor.Tenant), Key: p.Key, RequestHash: p.Fingerprint, OrderID: o.ID,
		LockedUntil: p.LeaseUntil, Now: p.Now, CustomerEmail: string(o.CustomerEmail), Currency: o.Currency,
		AmountMinor: o.AmountMinor, Items: items, Status: string(o.Status), CardLast4: o.CardLast4,
		EventID: p.Event.ID, Subject: p.Event.Subject(), Payload: payload,
		Actor: p.Actor.Subject, RequestID: p.Actor.RequestID,
	})
	if err != nil {
		return false, classify(err)
	}
	return n == 1, nil
}

// settleFast settles a still-pending order in one statement. It reports false, having written
// nothing, when the order changed since st.Order was read.
func (s *Store) settleFast(ctx context.Context, st domain.Settlement) (domain.Order, domain.RecordedResponse, bool, error) {
	if st.Order.ID != st.OrderID || st.Order.Status != domain.StatusPendingPayment {
		return domain.Order{}, domain.RecordedResponse{}, false, nil
	}
	if st.Status == domain.StatusPendingPayment {
		return s.finishUnchanged(ctx, st)
	}
	if st.Event == nil {
		return domain.Order{}, domain.RecordedResponse{}, false, nil
	}
	st.Now = st.Now.Truncate(time.Microsecond)
	settled := st.Order
	settled.Status, settled.PaymentID, settled.Version, settled.UpdatedAt = st.Status, st.PaymentID, st.Order.Version+1, st.Now
	resp, err := st.Render(settled)
	if err != nil {
		return domain.Order{}, domain.RecordedResponse{}, false, fmt.Errorf("rendering response: %w", err)
	}
	payload, err := json.Marshal(*st.Event)
	if err != nil {
		return domain.Order{}, domain.RecordedResponse{}, false, fmt.Errorf("encoding event: %w", err)
	}
	n, err := s.q.SettleOrderFast(ctx, db.SettleOrderFastParams{
		Status: string(st.Status), PaymentID: pgtype.Text{String: st.PaymentID, Valid: st.PaymentID != ""},
		Now: st.Now, TenantID: string(st.Actor.Tenant), OrderID: st.OrderID, Version: st.Order.Version,
		EventID: st.Event.ID, Subject: st.Event.Subject(), Payload: payload,
		Actor: st.Actor.Subject, RequestID: st.Actor.RequestID,
		ResponseStatus: int32(resp.Status), //nolint:gosec // HTTP status codes fit in int32.
		ResponseBody:   resp.Body, Key: st.Key,
	})
	if err != nil {
		return domain.Order{}, domain.RecordedResponse{}, false, classify(err)
	}
	return settled, resp, n == 1, nil
}

// finishUnchanged records the response for an order that stays pending, in one statement, if
// nothing changed it since st.Order was read.
func (s *Store) finishUnchanged(ctx context.Context, st domain.Settlement) (domain.Order, domain.RecordedResponse, bool, error) {
	resp, err := st.Render(st.Order)
	if err != nil {
		return domain.Order{}, domain.RecordedResponse{}, false, fmt.Errorf("rendering response: %w", err)
	}
	n, err := s.q.FinishKeyFast(ctx, db.FinishKeyFastParams{
		ResponseStatus: int32(resp.Status), //nolint:gosec // HTTP status codes fit in int32.
		ResponseBody:   resp.Body, TenantID: string(st.Actor.Tenant), Key: st.Key, OrderID: st.OrderID, Version: st.Order.Version,
	})
	if err != nil {
		return domain.Order{}, domain.RecordedResponse{}, false, classify(err)
	}
	return st.Order, resp, n == 1, nil
}

// AbandonPlacement implements domain.Store.
func (s *Store) AbandonPlacement(ctx context.Context, tenant domain.TenantID, key string) error {
	return classify(s.q.ReleaseIdempotencyLease(ctx, db.ReleaseIdempotencyLeaseParams{TenantID: string(tenant), Key: key}))
}

// FinishPlacement implements domain.Store.
func (s *Store) FinishPlacement(ctx context.Context, st domain.Settlement) (domain.Order, domain.RecordedResponse, error) {
	order, resp, done, err := s.settleFast(ctx, st)
	if err != nil || done {
		return order, resp, err
	}
	err = s.inTx(ctx, func(q *db.Queries) error {
		tenant := string(st.Actor.Tenant)
		row, err := q.GetOrderForUpdate(ctx, db.GetOrderForUpdateParams{TenantID: tenant, ID: st.OrderID})
		if err != nil {
			return classify(err)
		}
		// A cancel may have won the race while payment was in flight; the order keeps the state
		// it reached first and the response shows it.
		if st.Status != domain.StatusPendingPayment && row.Status == string(domain.StatusPendingPayment) {
			row, err = q.UpdateOrderStatus(ctx, db.UpdateOrderStatusParams{
				TenantID: tenant, ID: st.OrderID, Status: string(st.Status), UpdatedAt: st.Now,
				PaymentID: pgtype.Text{String: st.PaymentID, Valid: st.PaymentID != ""},
			})
			if err != nil {
				return classify(err)
			}
			if st.Event != nil {
				if err := insertEvent(ctx, q, *st.Event); err != nil {
					return err
				}
			}
			if err := audit(ctx, q, st.Actor, st.OrderID, "order.settle_payment", domain.StatusPendingPayment, st.Status, st.Now); err != nil {
				return err
			}
		}
		if order, err = toOrder(row); err != nil {
			return err
		}
		if resp, err = st.Render(order); err != nil {
			return fmt.Errorf("rendering response: %w", err)
		}
		return classify(q.FinishIdempotencyKey(ctx, db.FinishIdempotencyKeyParams{
			TenantID: tenant, Key: st.Key,
			ResponseStatus: pgtype.Int4{Int32: int32(resp.Status), Valid: true}, //nolint:gosec // HTTP status codes fit in int32.
			ResponseBody:   resp.Body,
		}))
	})
	return order, resp, err
}

// GetOrder implements domain.Store.
func (s *Store) GetOrder(ctx context.Context, tenant domain.TenantID, id uuid.UUID) (domain.Order, error) {
	row, err := s.q.GetOrder(ctx, db.GetOrderParams{TenantID: string(tenant), ID: id})
	if err != nil {
		return domain.Order{}, classify(err)
	}
	return toOrder(row)
}

// ListOrders implements domain.Store.
func (s *Store) ListOrders(ctx context.Context, tenant domain.TenantID, page domain.PageRequest) (domain.Page, error) {
	// One row more than asked tells whether another page exists without a count.
	limit := int32(page.Limit) + 1 //nolint:gosec // the edge caps Limit at 100.
	var (
		rows []db.Order
		err  error
	)
	if page.After == nil {
		rows, err = s.q.ListOrdersFirstPage(ctx, db.ListOrdersFirstPageParams{TenantID: string(tenant), Limit: limit})
	} else {
		rows, err = s.q.ListOrdersAfter(ctx, db.ListOrdersAfterParams{
			TenantID: string(tenant), AfterCreatedAt: page.After.CreatedAt, AfterID: page.After.ID, PageSize: limit,
		})
	}
	if err != nil {
		return domain.Page{}, classify(err)
	}
	out := domain.Page{Orders: make([]domain.Order, 0, len(rows))}
	for i, r := range rows {
		if i == page.Limit {
			last := out.Orders[len(out.Orders)-1]
			out.Next = &domain.Cursor{CreatedAt: last.CreatedAt, ID: last.ID}
			break
		}
		o, err := toOrder(r)
		if err != nil {
			return domain.Page{}, err
		}
		out.Orders = append(out.Orders, o)
	}
	return out, nil
}

// CancelOrder implements domain.Store.
func (s *Store) CancelOrder(ctx context.Context, c domain.Cancellation) (domain.Order, error) {
	var order domain.Order
	err := s.inTx(ctx, func(q *db.Queries) error {
		tenant := string(c.Actor.Tenant)
		row, err := q.GetOrderForUpdate(ctx, db.GetOrderForUpdateParams{TenantID: tenant, ID: c.OrderID})
		if err != nil {
			return classify(err)
		}
		from := domain.Status(row.Status)
		if from == domain.StatusCancelled {
			order, err = toOrder(row)
			return err
		}
		if !domain.CanCancel(from) {
			return domain.ErrNotCancellable
		}
		// Cancelling while a payment is being taken would leave a charge on a cancelled order.
		// The row lock taken above orders this check before the settlement's update.
		busy, err := q.PaymentInFlight(ctx, db.PaymentInFlightParams{TenantID: tenant, OrderID: c.OrderID, Now: c.Now})
		if err != nil {
			return classify(err)
		}
		if busy {
			return domain.ErrNotCancellable
		}
		row, err = q.UpdateOrderStatus(ctx, db.UpdateOrderStatusParams{
			TenantID: tenant, ID: c.OrderID, Status: string(domain.StatusCancelled), UpdatedAt: c.Now,
		})
		if err != nil {
			return classify(err)
		}
		if order, err = toOrder(row); err != nil {
			return err
		}
		if err := insertEvent(ctx, q, domain.NewEvent(c.EventID, domain.EventOrderCancelled, order, c.Now)); err != nil {
			return err
		}
		return audit(ctx, q, c.Actor, c.OrderID, "order.cancel", from, domain.StatusCancelled, c.Now)
	})
	return order, err
}

// AuditEntry is one audit row, for read-back by operators and tests.
type AuditEntry struct {
	Actor, Action, From, To, RequestID string
	At                                 time.Time
}

// Audit returns an order's audit trail, oldest first.
func (s *Store) Audit(ctx context.Context, tenant domain.TenantID, id uuid.UUID) ([]AuditEntry, error) {
	rows, err := s.q.ListAudit(ctx, db.ListAuditParams{TenantID: string(tenant), OrderID: id})
	if err != nil {
		return nil, classify(err)
	}
	out := make([]AuditEntry, 0, len(rows))
	for _, r := range rows {
		out = append(out, AuditEntry{Actor: r.Actor, Action: r.Action, From: r.FromStatus.String, To: r.ToStatus, RequestID: r.RequestID, At: r.At})
	}
	return out, nil
}

// DeleteExpiredKeys removes finished idempotency keys created before cutoff.
func (s *Store) DeleteExpiredKeys(ctx context.Context, cutoff time.Time) (int64, error) {
	n, err := s.q.DeleteExpiredIdempotencyKeys(ctx, cutoff)
	return n, classify(err)
}

// DeletePublishedEvents removes published outbox rows created before cutoff.
func (s *Store) DeletePublishedEvents(ctx context.Context, cutoff time.Time) (int64, error) {
	n, err := s.q.DeletePublishedOutbox(ctx, cutoff)
	return n, classify(err)
}

func insertOrder(ctx context.Context, q *db.Queries, o domain.Order) error {
	items, err := json.Marshal(o.Items)
	if err != nil {
		return fmt.Errorf("encoding items: %w", err)
	}
	return classify(q.InsertOrder(ctx, db.InsertOrderParams{
		TenantID: string(o.Tenant), ID: o.ID, CustomerEmail: string(o.CustomerEmail), Currency: o.Currency,
		AmountMinor: o.AmountMinor, Items: items, Status: string(o.Status), CardLast4: o.CardLast4, CreatedAt: o.CreatedAt,
	}))
}

func insertEvent(ctx context.Context, q *db.Queries, e domain.Event) error {
	payload, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encoding event: %w", err)
	}
	return classify(q.InsertOutbox(ctx, db.InsertOutboxParams{
		EventID: e.ID, TenantID: string(e.Tenant), Subject: e.Subject(), Payload: payload, CreatedAt: e.OccurredAt,
	}))
}

func audit(ctx context.Context, q *db.Queries, a domain.Actor, id uuid.UUID, action string, from, to domain.Status, at time.Time) error {
	return classify(q.InsertAudit(ctx, db.InsertAuditParams{
		TenantID: string(a.Tenant), OrderID: id, Actor: a.Subject, Action: action,
		FromStatus: pgtype.Text{String: string(from), Valid: from != ""}, ToStatus: string(to),
		RequestID: a.RequestID, At: at,
	}))
}

func toOrder(r db.Order) (domain.Order, error) {
	var items []domain.Item
	if err := json.Unmarshal(r.Items, &items); err != nil {
		return domain.Order{}, fmt.Errorf("decoding items of order %s: %w", r.ID, err)
	}
	return domain.Order{
		ID: r.ID, Tenant: domain.TenantID(r.TenantID), CustomerEmail: domain.Email(r.CustomerEmail),
		Currency: r.Currency, AmountMinor: r.AmountMinor, Items: items, Status: domain.Status(r.Status),
		CardLast4: r.CardLast4, PaymentID: r.PaymentID.String, Version: r.Version,
		CreatedAt: r.CreatedAt.UTC(), UpdatedAt: r.UpdatedAt.UTC(),
	}, nil
}

// classify maps driver errors onto the domain's: no row is ErrNotFound; a database that cannot
// be reached or answer in time is ErrStoreUnavailable; anything else stays as it is (a bug).
func classify(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, pgx.ErrNoRows) {
		return domain.ErrNotFound
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		// Class 08 is connection exceptions, 53 insufficient resources, 57 operator intervention
		// (shutdown, cancelled statements).
		if class := pgErr.Code[:min(2, len(pgErr.Code))]; class == "08" || class == "53" || class == "57" {
			return fmt.Errorf("%w: %w", domain.ErrStoreUnavailable, err)
		}
		return err
	}
	var (
		netErr  net.Error
		connErr *pgconn.ConnectError
	)
	if errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) || errors.As(err, &connErr) ||
		pgconn.SafeToRetry(err) || pgconn.Timeout(err) ||
		// A connection cut mid-reply surfaces as a bare EOF; pgx names closed pools and
		// connections only in text.
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		strings.Contains(err.Error(), "closed pool") || strings.Contains(err.Error(), "conn closed") {
		return fmt.Errorf("%w: %w", domain.ErrStoreUnavailable, err)
	}
	return err
}
