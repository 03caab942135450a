package config_test

import (
	"strings"
	"testing"

	"example.com/deliverykit/reference-service/internal/config"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func base() map[string]string {
	return map[string]string{
		"ORDERS_DATABASE_URL":   "postgres://kit:hunter2@db:5432/kit",
		"ORDERS_PAYMENTS_URL":   "http://payments:8090",
		"ORDERS_JWT_SECRET":     "0123456789abcdef0123456789abcdef",
		"ORDERS_REDIS_PASSWORD": "redispw",
	}
}

func TestPrintMasksSecrets(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(base()))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := c.Print(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, secret := range []string{"hunter2", "0123456789abcdef", "redispw"} {
		if strings.Contains(out, secret) {
			t.Fatalf("secret %q printed:\n%s", secret, out)
		}
	}
	for _, want := range []string{"ORDERS_DATABASE_URL=postgres://kit:*****@db:5432/kit", "ORDERS_JWT_SECRET=*****", "ORDERS_REQUEST_BUDGET=3s"} {
		if !strings.Contains(out, want) {
			t.Fatalf("missing %q:\n%s", want, out)
		}
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	t.Parallel()
	m := base()
	m["ORDERS_IDEMPOTENCY_RETAIN"] = "1h"
	m["ORDERS_RATE_LIMIT_BURST"] = "0"
	m["ORDERS_CACHE_ENABLED"] = "maybe"
	m["ORDERS_REQUEST_BUDGET"] = "40s"
	m["ORDERS_DATABASE_MAX_CONNS"] = "4"
	m["ORDERS_DATABASE_MIN_IDLE_CONNS"] = "5"
	_, err := config.Load(env(m))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{"ORDERS_IDEMPOTENCY_RETAIN", "ORDERS_RATE_LIMIT_BURST", "ORDERS_CACHE_ENABLED", "ORDERS_IDEMPOTENCY_LEASE", "ORDERS_HTTP_WRITE_TIMEOUT", "ORDERS_DATABASE_MIN_IDLE_CONNS (5) must not exceed ORDERS_DATABASE_MAX_CONNS (4)"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}
