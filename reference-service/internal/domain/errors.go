package domain

import (
	"errors"
	"strings"
)

// Errors a caller branches on. httpapi maps each to one status and problem type, in one table.
var (
	ErrNotFound                = errors.New("order not found")
	ErrNotCancellable          = errors.New("order cannot be cancelled in its current state")
	ErrIdempotencyKeyMissing   = errors.New("the Idempotency-Key header is required")
	ErrIdempotencyKeyReused    = errors.New("the Idempotency-Key was already used with a different request")
	ErrIdempotencyKeyInFlight  = errors.New("a request with this Idempotency-Key is still in progress")
	ErrPaymentsUnavailable     = errors.New("the payments service is unavailable")
	ErrPaymentDeclined         = errors.New("the payment was declined")
	ErrStoreUnavailable        = errors.New("the order store is unavailable")
	errValidationWithoutFields = errors.New("invalid request")
)

// FieldError names one invalid field and why.
type FieldError struct {
	Field  string
	Reason string
}

// ValidationError lists every invalid field of a request.
type ValidationError struct {
	Fields []FieldError
}

// Add records one invalid field.
func (v *ValidationError) Add(field, reason string) {
	v.Fields = append(v.Fields, FieldError{Field: field, Reason: reason})
}

func (v *ValidationError) Error() string {
	if len(v.Fields) == 0 {
		return errValidationWithoutFields.Error()
	}
	parts := make([]string, 0, len(v.Fields))
	for _, f := range v.Fields {
		parts = append(parts, f.Field+" "+f.Reason)
	}
	return "invalid request: " + strings.Join(parts, "; ")
}

// Invalid builds a ValidationError for a single field.
func Invalid(field, reason string) error {
	return &ValidationError{Fields: []FieldError{{Field: field, Reason: reason}}}
}
