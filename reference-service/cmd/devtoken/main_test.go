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

func TestRolesClaim(t *testing.T) {
	var out, errOut bytes.Buffer
	err := run(context.Background(), []string{"devtoken", "-tenant", "ops", "-roles", "admin,auditor"},
		env(map[string]string{"ORDERS_JWT_SECRET": secret}), &out, &errOut)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Roles []string `json:"roles"`
		jwt.RegisteredClaims
	}
	if _, err := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"})).ParseWithClaims(strings.TrimSpace(out.String()), &claims,
		func(*jwt.Token) (any, error) { return []byte(secret), nil }); err != nil {
		t.Fatalf("the token does not verify: %v", err)
	}
	if len(claims.Roles) != 2 || claims.Roles[0] != "admin" || claims.Roles[1] != "auditor" {
		t.Fatalf("roles claim: %v", claims.Roles)
	}
	out.Reset()
	if err := run(context.Background(), []string{"devtoken"}, env(map[string]string{"ORDERS_JWT_SECRET": secret}), &out, &errOut); err != nil {
		t.Fatal(err)
	}
	if tok, _, _ := jwt.NewParser().ParseUnverified(strings.TrimSpace(out.String()), jwt.MapClaims{}); tok.Claims.(jwt.MapClaims)["roles"] != nil {
		t.Fatalf("a token without -roles carries a roles claim: %v", tok.Claims)
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
		"empty role":   {[]string{"devtoken", "-roles", "admin,"}, map[string]string{"ORDERS_JWT_SECRET": secret}, "-roles"},
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
