// Command devtoken mints an HS256 bearer token the orders service accepts, for local runs, demos
// and load tests: `ORDERS_JWT_SECRET=... devtoken -tenant acme`; `-roles admin` adds the role the
// kill-switch operations (/admin/kill-switches) require. It signs with the service's own
// secret, so it belongs on developer machines and in test pipelines, never in production.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func main() {
	if err := run(context.Background(), os.Args, os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "devtoken:", err)
		os.Exit(2)
	}
}

// The same rule the service applies to the tenant claim.
var tenantRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

var roleRE = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

func run(_ context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("devtoken", flag.ContinueOnError)
	fs.SetOutput(stderr)
	tenant := fs.String("tenant", "demo", "tenant_id claim")
	subject := fs.String("sub", "verifier", "sub claim")
	ttl := fs.Duration("ttl", time.Hour, "lifetime of the token")
	roles := fs.String("roles", "", "comma-separated roles claim, e.g. admin (the kill-switch operations need it)")
	issuer := fs.String("iss", getenv("ORDERS_JWT_ISSUER"), "iss claim (ORDERS_JWT_ISSUER)")
	audience := fs.String("aud", getenv("ORDERS_JWT_AUDIENCE"), "aud claim (ORDERS_JWT_AUDIENCE)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	secret := getenv("ORDERS_JWT_SECRET")
	switch {
	case len(secret) < 32:
		return errors.New("ORDERS_JWT_SECRET must be set to the service's secret (at least 32 bytes)")
	case !tenantRE.MatchString(*tenant):
		return fmt.Errorf("-tenant %q: use lowercase letters, digits and '-', at most 63", *tenant)
	case *ttl <= 0:
		return fmt.Errorf("-ttl %v: must be positive", *ttl)
	}
	var roleList []string
	if *roles != "" {
		for _, r := range strings.Split(*roles, ",") {
			if !roleRE.MatchString(r) {
				return fmt.Errorf("-roles %q: each role is lowercase letters, digits and '-', separated by commas", *roles)
			}
			roleList = append(roleList, r)
		}
	}
	now := time.Now()
	claims := jwt.MapClaims{
		"tenant_id": *tenant,
		"sub":       *subject,
		"iat":       now.Unix(),
		"exp":       now.Add(*ttl).Unix(),
	}
	if len(roleList) > 0 {
		claims["roles"] = roleList
	}
	if *issuer != "" {
		claims["iss"] = *issuer
	}
	if *audience != "" {
		claims["aud"] = *audience
	}
	token, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
	if err != nil {
		return fmt.Errorf("signing: %w", err)
	}
	_, err = fmt.Fprintln(stdout, token)
	return err
}
