package main

import (
	"context"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"example.com/deliverykit/reference-service/internal/testenv"
)

// TestRunChargesIdempotentlyAndReportsCalls drives the binary's run: a charge, its repeat with
// the same key, a decline, and the call log over HTTP.
func TestRunChargesIdempotentlyAndReportsCalls(t *testing.T) {
	t.Parallel()
	out := &testenv.SyncBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"paymentsim", "-addr", "127.0.0.1:0", "-latency", "5ms", "-jitter", "0s"},
			func(string) string { return "" }, out, out)
	}()
	re := regexp.MustCompile(`"addr":"([^"]+)"`)
	var base string
	for deadline := time.Now().Add(10 * time.Second); base == ""; time.Sleep(10 * time.Millisecond) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			base = "http://" + m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("never listened: %s", out)
		}
	}
	charge := func(key, card string) (int, map[string]string) {
		body := `{"order_id":"o","tenant_id":"t","amount_minor":100,"currency":"EUR","card_number":"` + card + `"}`
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/charges", strings.NewReader(body))
		req.Header.Set("Idempotency-Key", key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer func() { _ = resp.Body.Close() }()
		var v map[string]string
		_ = json.NewDecoder(resp.Body).Decode(&v)
		return resp.StatusCode, v
	}
	s1, c1 := charge("k1", "4242424242424242")
	s2, c2 := charge("k1", "4242424242424242")
	s3, _ := charge("k2", "4000000000000002")
	if s1 != 201 || s2 != 201 || c1["id"] != c2["id"] || s3 != 402 {
		t.Fatalf("statuses %d %d %d, ids %q %q", s1, s2, s3, c1["id"], c2["id"])
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v1/calls", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	var log struct {
		Summary struct{ Calls, Charges, Replays, Declines int } `json:"summary"`
		Calls   []struct {
			CardLast4 string `json:"card_last4"`
		} `json:"calls"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&log); err != nil {
		t.Fatal(err)
	}
	if log.Summary.Calls != 3 || log.Summary.Charges != 1 || log.Summary.Replays != 1 || log.Summary.Declines != 1 || log.Calls[0].CardLast4 != "4242" {
		t.Fatalf("call log: %+v", log)
	}
	put, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/behaviour", strings.NewReader(`{"latency":"1ms","jitter":"0s","error_rate":1}`))
	presp, err := http.DefaultClient.Do(put)
	if err != nil {
		t.Fatal(err)
	}
	_ = presp.Body.Close()
	if presp.StatusCode != http.StatusOK {
		t.Fatalf("PUT /v1/behaviour: %d", presp.StatusCode)
	}
	if s, _ := charge("k3", "4242424242424242"); s != http.StatusServiceUnavailable {
		t.Fatalf("error_rate 1 answered %d", s)
	}
	bad, _ := http.NewRequestWithContext(ctx, http.MethodPut, base+"/v1/behaviour", strings.NewReader(`{"error_rate":2}`))
	bresp, err := http.DefaultClient.Do(bad)
	if err != nil {
		t.Fatal(err)
	}
	_ = bresp.Body.Close()
	if bresp.StatusCode != http.StatusBadRequest {
		t.Fatalf("error_rate 2 accepted: %d", bresp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
}
