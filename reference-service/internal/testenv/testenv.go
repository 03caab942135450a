// Package testenv gives integration tests a fresh, migrated database per test inside one shared
// PostgreSQL container, and signed tokens. It is imported only by tests.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"example.com/deliverykit/reference-service/internal/store"
)

// JWTSecret signs every test token.
const JWTSecret = "test-secret-test-secret-test-secret-0123"

// Database creates a database named after a random suffix in the server at adminDSN, applies the
// migrations, and drops it when the test ends. It returns the pool and the database's DSN.
func Database(t testing.TB, adminDSN string) (*pgxpool.Pool, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "t_" + hex.EncodeToString(b)
	admin, err := pgx.Connect(ctx, adminDSN)
	if err != nil {
		t.Fatalf("connecting to postgres: %v", err)
	}
	defer func() { _ = admin.Close(context.Background()) }()
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("creating database: %v", err)
	}
	// Registered before the pool's, so it runs after the pool is closed.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, adminDSN)
		if err != nil {
			t.Logf("dropping %s: %v", name, err)
			return
		}
		defer func() { _ = conn.Close(context.Background()) }()
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("dropping %s: %v", name, err)
		}
	})
	u, err := url.Parse(adminDSN)
	if err != nil {
		t.Fatalf("parsing DSN: %v", err)
	}
	u.Path = "/" + name
	dsn := u.String()
	pool := Pool(t, dsn, nil)
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	return pool, dsn
}

// Pool opens a pool on dsn as the service does (store.Configure applied), after tune, when not
// nil, has adjusted its configuration; it is closed when the test ends.
func Pool(t testing.TB, dsn string, tune func(*pgxpool.Config)) *pgxpool.Pool {
	t.Helper()
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	if tune != nil {
		tune(pc)
	}
	store.Configure(pc)
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		t.Fatalf("pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// Token signs an HS256 token for subject in tenant, valid for an hour.
func Token(t testing.TB, tenant, subject string, roles ...string) string {
	t.Helper()
	claims := jwt.MapClaims{
		"sub": subject, "tenant_id": tenant, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(),
	}
	if len(roles) > 0 {
		claims["roles"] = roles
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(JWTSecret))
	if err != nil {
		t.Fatalf("signing token: %v", err)
	}
	return s
}

// Count returns the result of a count(*) query.
func Count(t testing.TB, pool *pgxpool.Pool, query string, args ...any) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var n int
	if err := pool.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

// Unique returns a short random string for keys and names.
func Unique(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%s-%s", prefix, hex.EncodeToString(b))
}
