package ratelimit

import "sync"

// overrides are per-user message limits set by admins
// (/_synapse/admin/v1/users/{userID}/override_ratelimit).
type overrides struct {
	mu sync.RWMutex // guards m
	m  map[string]*Limiter
}

// SetOverride gives key its own message rate: perSecond and burst both 0
// exempts it from message rate limiting. It is a no-op when rate limiting is disabled.
func (l *Limits) SetOverride(key string, perSecond float64, burst int) {
	if l == nil {
		return
	}
	l.ov.mu.Lock()
	defer l.ov.mu.Unlock()
	if l.ov.m == nil {
		l.ov.m = map[string]*Limiter{}
	}
	if perSecond == 0 && burst == 0 {
		l.ov.m[key] = nil
		return
	}
	l.ov.m[key] = New(perSecond, burst)
}

// ClearOverride returns key to the configured message rate.
func (l *Limits) ClearOverride(key string) {
	if l == nil {
		return
	}
	l.ov.mu.Lock()
	delete(l.ov.m, key)
	l.ov.mu.Unlock()
}

// override returns key's message limiter override: (nil, true) means unlimited.
func (l *Limits) override(key string) (*Limiter, bool) {
	l.ov.mu.RLock()
	defer l.ov.mu.RUnlock()
	lim, ok := l.ov.m[key]
	return lim, ok
}
