// Package killswitch holds the switches an operator flips at runtime to take a path out of
// service without a deploy.
package killswitch

import "sync/atomic"

// Switches are safe for concurrent use. The zero value has every path disabled; use New.
type Switches struct {
	cache    atomic.Bool
	payments atomic.Bool
}

// New returns switches with the given initial state.
func New(cacheEnabled, paymentsEnabled bool) *Switches {
	s := &Switches{}
	s.cache.Store(cacheEnabled)
	s.payments.Store(paymentsEnabled)
	return s
}

// CacheEnabled reports whether reads may use the cache.
func (s *Switches) CacheEnabled() bool { return s.cache.Load() }

// PaymentsEnabled reports whether new orders call payments.
func (s *Switches) PaymentsEnabled() bool { return s.payments.Load() }

// Set changes both switches.
func (s *Switches) Set(cacheEnabled, paymentsEnabled bool) {
	s.cache.Store(cacheEnabled)
	s.payments.Store(paymentsEnabled)
}
