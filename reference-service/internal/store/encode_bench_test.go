package store

import (
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgtype"
)

// BenchmarkEncodeUUID prices one uuid.UUID query parameter, as pgx encodes it by default and with
// the types Configure registers:
//
//	go test -run '^$' -bench EncodeUUID ./internal/store/
func BenchmarkEncodeUUID(b *testing.B) {
	for _, side := range []struct {
		name     string
		register bool
	}{{"pgx-default", false}, {"configured", true}} {
		b.Run(side.name, func(b *testing.B) {
			m := pgtype.NewMap()
			if side.register {
				registerTypes(m)
			}
			id := uuid.New()
			buf := make([]byte, 0, 64)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.Encode(pgtype.UUIDOID, pgtype.BinaryFormatCode, id, buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
