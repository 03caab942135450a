package httpapi_test

import (
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

func signRaw(t *testing.T, claims map[string]any, secret string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims(claims)).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
