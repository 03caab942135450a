package httpapi

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"example.com/deliverykit/reference-service/internal/domain"
)

func TestCursorRoundTrips(t *testing.T) {
	for _, at := range []time.Time{
		time.Date(2026, 11, 24, 5, 0, 0, 123456000, time.UTC),
		time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		c := domain.Cursor{CreatedAt: at, ID: uuid.New()}
		s := encodeCursor(c)
		if len(s) != cursorLen {
			t.Fatalf("%q: %d characters, want %d", s, len(s), cursorLen)
		}
		got, err := decodeCursor(s)
		if err != nil {
			t.Fatal(err)
		}
		if !got.CreatedAt.Equal(c.CreatedAt) || got.ID != c.ID {
			t.Fatalf("round trip: %+v, want %+v", *got, c)
		}
	}
}

// The contract declares the cursor as ^[A-Za-z0-9_-]{32}$; every such value must decode, and
// nothing else.
func TestCursorAcceptsExactlyItsPattern(t *testing.T) {
	alphabet := "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range alphabet {
		s := strings.Repeat(alphabet[i:i+1], cursorLen)
		c, err := decodeCursor(s)
		if err != nil {
			t.Fatalf("%q: %v", s, err)
		}
		if y := c.CreatedAt.Year(); y < 1 || y > 9999 {
			t.Fatalf("%q: year %d escapes the clamp", s, y)
		}
	}
	for _, s := range []string{
		"",
		strings.Repeat("A", cursorLen-1),
		strings.Repeat("A", cursorLen+1),
		strings.Repeat("A", cursorLen-1) + "=",
		strings.Repeat("A", cursorLen-1) + "+",
		strings.Repeat("A", cursorLen-1) + "\n",
		strings.Repeat("A", cursorLen-4) + "\r\n\r\n",
		"eyJ0IjoiMjAyNi0xMS0yNFQwNTowMDowMFoiLCJpZCI6IjAxOTNhOWMyIn0",
	} {
		if _, err := decodeCursor(s); err == nil {
			t.Errorf("%q decoded", s)
		}
	}
}
