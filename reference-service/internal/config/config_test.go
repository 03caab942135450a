package config_test

import (
	"strings"
	"testing"
	"time"

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

// TestRedisAndCacheDefaults are the values cmd/service used before they were settings.
func TestRedisAndCacheDefaults(t *testing.T) {
	t.Parallel()
	c, err := config.Load(env(base()))
	if err != nil {
		t.Fatal(err)
	}
	got := [...]any{c.RedisDialTimeout, c.RedisReadTimeout, c.RedisWriteTimeout, c.RedisMaxRetries, c.RedisPoolSize,
		c.CacheOpTimeout, c.CacheCooldown}
	want := [...]any{200 * time.Millisecond, 100 * time.Millisecond, 100 * time.Millisecond, 0, 32,
		50 * time.Millisecond, time.Second}
	if got != want {
		t.Errorf("Redis and cache defaults: got %v, want %v", got, want)
	}
}

func TestRedisAndCacheSettings(t *testing.T) {
	t.Parallel()
	m := base()
	m["ORDERS_REDIS_DIAL_TIMEOUT"] = "1s"
	m["ORDERS_REDIS_READ_TIMEOUT"] = "250ms"
	m["ORDERS_REDIS_WRITE_TIMEOUT"] = "300ms"
	m["ORDERS_REDIS_MAX_RETRIES"] = "2"
	m["ORDERS_REDIS_POOL_SIZE"] = "8"
	m["ORDERS_CACHE_OP_TIMEOUT"] = "75ms"
	m["ORDERS_CACHE_COOLDOWN"] = "0s"
	c, err := config.Load(env(m))
	if err != nil {
		t.Fatal(err)
	}
	got := [...]any{c.RedisDialTimeout, c.RedisReadTimeout, c.RedisWriteTimeout, c.RedisMaxRetries, c.RedisPoolSize,
		c.CacheOpTimeout, c.CacheCooldown}
	want := [...]any{time.Second, 250 * time.Millisecond, 300 * time.Millisecond, 2, 8, 75 * time.Millisecond, time.Duration(0)}
	if got != want {
		t.Errorf("Redis and cache settings: got %v, want %v", got, want)
	}
	var b strings.Builder
	if err := c.Print(&b); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"ORDERS_REDIS_DIAL_TIMEOUT=1s", "ORDERS_REDIS_MAX_RETRIES=2", "ORDERS_REDIS_POOL_SIZE=8",
		"ORDERS_CACHE_OP_TIMEOUT=75ms", "ORDERS_CACHE_COOLDOWN=0s"} {
		if !strings.Contains(b.String(), "  "+line+"\n") {
			t.Errorf("Print lacks %s:\n%s", line, b.String())
		}
	}
}

func TestRedisAndCacheSettingsAreValidated(t *testing.T) {
	t.Parallel()
	m := base()
	m["ORDERS_REDIS_DIAL_TIMEOUT"] = "0s"
	m["ORDERS_REDIS_READ_TIMEOUT"] = "soon"
	m["ORDERS_REDIS_WRITE_TIMEOUT"] = "-1ms"
	m["ORDERS_REDIS_MAX_RETRIES"] = "-1"
	m["ORDERS_REDIS_POOL_SIZE"] = "0"
	m["ORDERS_CACHE_OP_TIMEOUT"] = "0"
	m["ORDERS_CACHE_COOLDOWN"] = "-1s"
	_, err := config.Load(env(m))
	if err == nil {
		t.Fatal("want errors")
	}
	for _, want := range []string{
		`ORDERS_REDIS_DIAL_TIMEOUT must be a positive duration like 250ms, not "0s"`,
		`ORDERS_REDIS_READ_TIMEOUT must be a positive duration like 250ms, not "soon"`,
		`ORDERS_REDIS_WRITE_TIMEOUT must be a positive duration like 250ms, not "-1ms"`,
		`ORDERS_REDIS_MAX_RETRIES must be an integer from 0 to 10, not "-1"`,
		`ORDERS_REDIS_POOL_SIZE must be an integer from 1 to 1000, not "0"`,
		`ORDERS_CACHE_OP_TIMEOUT must be a positive duration like 250ms, not "0"`,
		`ORDERS_CACHE_COOLDOWN must be a non-negative duration like 250ms, not "-1s"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %s: %v", want, err)
		}
	}
}
