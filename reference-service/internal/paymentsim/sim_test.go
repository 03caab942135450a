package paymentsim_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"example.com/deliverykit/reference-service/internal/paymentsim"
)

const body = `{"order_id":"o1","tenant_id":"t","amount_minor":100,"currency":"EUR","card_number":"4242424242424242"}`

func post(t *testing.T, ctx context.Context, url string) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/charges", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Idempotency-Key", "k1")
	return http.DefaultClient.Do(req)
}

// The log keeps both ends of each call: started_at on arrival, at once the delay is over.
func TestCallLogHasStartAndDecisionTimes(t *testing.T) {
	t.Parallel()
	sim := paymentsim.New(paymentsim.Behaviour{Latency: 40 * time.Millisecond})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	resp, err := post(t, context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()

	got, err := http.Get(srv.URL + "/v1/calls")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = got.Body.Close() }()
	var log struct {
		Calls []map[string]any `json:"calls"`
	}
	if err := json.NewDecoder(got.Body).Decode(&log); err != nil || len(log.Calls) != 1 {
		t.Fatalf("log %+v err %v", log, err)
	}
	started, err1 := time.Parse(time.RFC3339Nano, log.Calls[0]["started_at"].(string))
	at, err2 := time.Parse(time.RFC3339Nano, log.Calls[0]["at"].(string))
	if err1 != nil || err2 != nil {
		t.Fatalf("times not RFC 3339: %v %v", err1, err2)
	}
	if d := at.Sub(started); d < 40*time.Millisecond || d > 2*time.Second {
		t.Fatalf("at - started_at = %v, want the 40ms delay", d)
	}
}

// A caller that gives up ends the call: at is when it went away, not when the delay would end.
func TestAtIsWhenTheCallerGaveUp(t *testing.T) {
	t.Parallel()
	sim := paymentsim.New(paymentsim.Behaviour{Latency: 2 * time.Second})
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if resp, err := post(t, ctx, srv.URL); err == nil {
		_ = resp.Body.Close()
		t.Fatal("the call outlived its caller's timeout")
	}
	deadline := time.Now().Add(3 * time.Second)
	var calls []paymentsim.Call
	for time.Now().Before(deadline) {
		if _, calls = sim.Calls(); len(calls) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(calls) != 1 {
		t.Fatalf("%d calls logged, want 1", len(calls))
	}
	if d := calls[0].At.Sub(calls[0].StartedAt); d < 90*time.Millisecond || d > time.Second {
		t.Fatalf("at - started_at = %v, want about the caller's 100ms timeout", d)
	}
}
