// Package paymentsim is a stand-in for the payments API: it charges nothing, answers with
// configurable latency and error rate, honours Idempotency-Key, and keeps a call log that tests
// and the verifier read back over HTTP.
package paymentsim

import (
	crand "crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Behaviour is what the simulator does to each charge. It can change at runtime.
type Behaviour struct {
	// Latency is added to every charge; Jitter adds up to that much more, uniformly.
	Latency time.Duration `json:"latency"`
	Jitter  time.Duration `json:"jitter"`
	// ErrorRate is the probability (0..1) of answering 503 instead of charging.
	ErrorRate float64 `json:"error_rate"`
}

// Call is one entry of the call log. Card numbers are kept as their last four digits only.
//
// Two times bound the attempt as the stand-in saw it: StartedAt when the request arrived, At
// when its outcome was decided: after the simulated delay, or earlier when the caller gave up
// (its timeout cut the attempt), just before the answer is written. A caller's idle time between
// two attempts is therefore the next call's StartedAt minus the previous call's At.
type Call struct {
	// StartedAt is when the charge request arrived, before its body was read.
	StartedAt time.Time `json:"started_at"`
	// At is when the outcome was decided (the delay over or the caller gone); its meaning is
	// unchanged since the log had only this one time.
	At             time.Time `json:"at"`
	IdempotencyKey string    `json:"idempotency_key"`
	OrderID        string    `json:"order_id"`
	AmountMinor    int64     `json:"amount_minor"`
	CardLast4      string    `json:"card_last4"`
	Status         int       `json:"status"`
	ChargeID       string    `json:"charge_id,omitempty"`
	Replayed       bool      `json:"replayed"`
	Traceparent    string    `json:"traceparent,omitempty"`
}

// Summary counts the log.
type Summary struct {
	Calls          int `json:"calls"`
	Charges        int `json:"charges"`
	Replays        int `json:"replays"`
	InjectedErrors int `json:"injected_errors"`
	Declines       int `json:"declines"`
}

// maxLog bounds the call log; the oldest calls are dropped first.
const maxLog = 100_000

// Sim is the simulator. Use New.
type Sim struct {
	mu      sync.Mutex
	b       Behaviour
	charges map[string]charge // by idempotency key
	log     []Call
	sum     Summary
	rand    func() float64
}

type charge struct {
	id       string
	status   int
	declined bool
}

// New returns a simulator with behaviour b.
func New(b Behaviour) *Sim {
	return &Sim{b: b, charges: map[string]charge{}, rand: rand.Float64}
}

// Handler serves the simulator's API.
func (s *Sim) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/charges", s.charge)
	mux.HandleFunc("GET /v1/calls", s.calls)
	mux.HandleFunc("DELETE /v1/calls", s.reset)
	mux.HandleFunc("GET /v1/behaviour", s.getBehaviour)
	mux.HandleFunc("PUT /v1/behaviour", s.setBehaviour)
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	return mux
}

type chargeRequest struct {
	OrderID     string `json:"order_id"`
	TenantID    string `json:"tenant_id"`
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
	CardNumber  string `json:"card_number"`
}

func (s *Sim) charge(w http.ResponseWriter, r *http.Request) {
	started := time.Now().UTC()
	var req chargeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<16))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || req.AmountMinor <= 0 || len(req.CardNumber) < 4 {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid charge request"})
		return
	}
	s.mu.Lock()
	b := s.b
	jitter := time.Duration(0)
	if b.Jitter > 0 {
		jitter = time.Duration(s.rand() * float64(b.Jitter))
	}
	fail := b.ErrorRate > 0 && s.rand() < b.ErrorRate
	s.mu.Unlock()

	// The delay comes before the decision, as a slow dependency's would; a caller that gives
	// up meanwhile leaves a charge that its retry (same key) will find.
	select {
	case <-time.After(b.Latency + jitter):
	case <-r.Context().Done():
	}

	key := r.Header.Get("Idempotency-Key")
	call := Call{
		StartedAt: started, At: time.Now().UTC(), IdempotencyKey: key, OrderID: req.OrderID, AmountMinor: req.AmountMinor,
		CardLast4: req.CardNumber[len(req.CardNumber)-4:], Traceparent: r.Header.Get("Traceparent"),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sum.Calls++
	if fail {
		s.sum.InjectedErrors++
		call.Status = http.StatusServiceUnavailable
		s.record(call)
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "injected failure"})
		return
	}
	ch, seen := s.charges[key]
	if !seen || key == "" {
		ch = charge{id: "ch_" + strings.ToLower(crand.Text()[:16]), status: http.StatusCreated}
		// Like the well-known test cards: numbers ending in 0002 are declined.
		if strings.HasSuffix(req.CardNumber, "0002") {
			ch.status, ch.declined = http.StatusPaymentRequired, true
		}
		if key != "" {
			s.charges[key] = ch
		}
		if ch.declined {
			s.sum.Declines++
		} else {
			s.sum.Charges++
		}
	} else {
		s.sum.Replays++
		call.Replayed = true
	}
	call.Status, call.ChargeID = ch.status, ch.id
	s.record(call)
	status := "succeeded"
	if ch.declined {
		status = "declined"
	}
	writeJSON(w, ch.status, map[string]string{"id": ch.id, "status": status})
}

func (s *Sim) record(c Call) {
	if len(s.log) >= maxLog {
		s.log = s.log[1:]
	}
	s.log = append(s.log, c)
}

func (s *Sim) calls(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	out := struct {
		Summary Summary `json:"summary"`
		Calls   []Call  `json:"calls"`
	}{s.sum, append([]Call(nil), s.log...)}
	s.mu.Unlock()
	if out.Calls == nil {
		out.Calls = []Call{}
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Sim) reset(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	s.log, s.sum, s.charges = nil, Summary{}, map[string]charge{}
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *Sim) getBehaviour(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	b := s.b
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, behaviourJSON(b))
}

// behaviourWire spells durations as Go duration strings ("150ms").
type behaviourWire struct {
	Latency   string  `json:"latency"`
	Jitter    string  `json:"jitter"`
	ErrorRate float64 `json:"error_rate"`
}

func behaviourJSON(b Behaviour) behaviourWire {
	return behaviourWire{Latency: b.Latency.String(), Jitter: b.Jitter.String(), ErrorRate: b.ErrorRate}
}

func (s *Sim) setBehaviour(w http.ResponseWriter, r *http.Request) {
	var in behaviourWire
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<12))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	b, err := ParseBehaviour(in.Latency, in.Jitter, in.ErrorRate)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.mu.Lock()
	s.b = b
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, behaviourJSON(b))
}

// ParseBehaviour validates a behaviour given as duration strings and a rate.
func ParseBehaviour(latency, jitter string, errorRate float64) (Behaviour, error) {
	var b Behaviour
	var err error
	if latency != "" {
		if b.Latency, err = time.ParseDuration(latency); err != nil || b.Latency < 0 {
			return b, fmt.Errorf("latency %q: want a non-negative duration like 50ms", latency)
		}
	}
	if jitter != "" {
		if b.Jitter, err = time.ParseDuration(jitter); err != nil || b.Jitter < 0 {
			return b, fmt.Errorf("jitter %q: want a non-negative duration like 10ms", jitter)
		}
	}
	if errorRate < 0 || errorRate > 1 {
		return b, fmt.Errorf("error_rate %v: want 0..1", errorRate)
	}
	b.ErrorRate = errorRate
	return b, nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// SetBehaviour changes the behaviour for the calls that follow.
func (s *Sim) SetBehaviour(b Behaviour) {
	s.mu.Lock()
	s.b = b
	s.mu.Unlock()
}

// Calls returns the summary and a copy of the call log.
func (s *Sim) Calls() (Summary, []Call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sum, append([]Call(nil), s.log...)
}
