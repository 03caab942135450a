package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

const secret = "a-secret-of-at-least-thirty-two-bytes!!"

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestMintsATokenTheServiceRulesAccept(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"devtoken", "-tenant", "acme", "-sub", "load"},
		env(map[string]string{"ORDERS_JWT_SECRET": secret, "ORDERS_JWT_ISSUER": "kit"}), &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	var claims jwt.MapClaims
	_, err = jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(),
		jwt.WithIssuer("kit")).ParseWithClaims(strings.TrimSpace(out.String()), &claims,
		func(*jwt.Token) (any, error) { return []byte(secret), nil })
	if err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	if claims["tenant_id"] != "acme" || claims["sub"] != "load" {
		t.Fatalf("claims: %v", claims)
	}
}

func TestRefusesWhatTheServiceWouldRefuse(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		env  map[string]string
		want string
	}{
		"no secret":    {[]string{"devtoken"}, nil, "ORDERS_JWT_SECRET"},
		"short secret": {[]string{"devtoken"}, map[string]string{"ORDERS_JWT_SECRET": "short"}, "at least 32 bytes"},
		"bad tenant":   {[]string{"devtoken", "-tenant", "Acme Corp"}, map[string]string{"ORDERS_JWT_SECRET": secret}, "-tenant"},
		"no lifetime":  {[]string{"devtoken", "-ttl", "0s"}, map[string]string{"ORDERS_JWT_SECRET": secret}, "-ttl"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tc.args, env(tc.env), &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
			if out.Len() != 0 {
				t.Fatalf("printed a token anyway: %q", out.String())
			}
		})
	}
}
