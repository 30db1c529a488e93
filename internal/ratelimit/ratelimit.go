// Package ratelimit holds per-client token buckets for the client-server API.
// A client is a user ID when the request is authenticated, else the remote IP;
// each endpoint class (login, register, message) has its own buckets.
package ratelimit

import (
	"net"
	"net/http"
	"sync"
	"time"

	"parley/internal/authn"
	"parley/internal/config"
	"parley/internal/httputil"
)

// maxIdleBuckets bounds memory: past it, buckets that have refilled are dropped.
const maxIdleBuckets = 10000

// Limiter is a set of token buckets with one rate and burst, keyed by client.
type Limiter struct {
	rate  float64 // tokens per second
	burst float64
	now   func() time.Time

	mu      sync.Mutex // guards buckets
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
}

// New returns a limiter allowing perSecond requests per key with bursts of burst.
func New(perSecond float64, burst int) *Limiter {
	return &Limiter{rate: perSecond, burst: float64(burst), now: time.Now, buckets: map[string]*bucket{}}
}

// Allow takes a token from key's bucket. When the bucket is empty it returns
// false and how long until a token is available.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxIdleBuckets {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+now.Sub(b.last).Seconds()*l.rate)
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return true, 0
	}
	wait := time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
	return false, wait
}

// sweep drops buckets that are full again; l.mu must be held.
func (l *Limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// Class is an endpoint class with its own limits.
type Class int

// The endpoint classes of config.RateLimits.
const (
	Login Class = iota
	Register
	Message
)

// Limits holds one limiter per class. A nil *Limits (rate limiting disabled)
// allows everything.
type Limits struct {
	byClass [3]*Limiter
	ov      overrides
}

// NewLimits builds the limiters from configuration; it returns nil when
// rate_limits.enabled is false.
func NewLimits(cfg config.RateLimits) *Limits {
	if !cfg.Enabled {
		return nil
	}
	return &Limits{byClass: [3]*Limiter{
		Login:    New(cfg.Login.PerSecond, cfg.Login.Burst),
		Register: New(cfg.Register.PerSecond, cfg.Register.Burst),
		Message:  New(cfg.Message.PerSecond, cfg.Message.Burst),
	}}
}

// Check takes a token for key in class and returns 429 M_LIMIT_EXCEEDED (with
// retry_after_ms) when there is none.
func (l *Limits) Check(class Class, key string) error {
	if l == nil {
		return nil
	}
	lim := l.byClass[class]
	if class == Message {
		if o, ok := l.override(key); ok {
			if o == nil {
				return nil
			}
			lim = o
		}
	}
	if ok, wait := lim.Allow(key); !ok {
		return httputil.RateLimited(wait)
	}
	return nil
}

// CheckRequest is Check keyed by the authenticated user of r, else its remote IP.
func (l *Limits) CheckRequest(class Class, r *http.Request) error {
	if l == nil {
		return nil
	}
	if dev := authn.FromContext(r.Context()); dev != nil && dev.NoRateLimit {
		return nil
	}
	return l.Check(class, Key(r))
}

// Wrap rate-limits h by class; use it around handlers such as /send:
//
//	a.authed(v3, path, "send", limits.WrapAuthed(ratelimit.Message, a.send), http.MethodPut)
func (l *Limits) Wrap(class Class, h httputil.HandlerFunc) httputil.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := l.CheckRequest(class, r); err != nil {
			return err
		}
		return h(w, r)
	}
}

// WrapAuthed is Wrap for authenticated handlers, keyed by the user ID.
func (l *Limits) WrapAuthed(class Class, h authn.Handler) authn.Handler {
	return func(w http.ResponseWriter, r *http.Request, dev *authn.Device) error {
		if dev.NoRateLimit {
			return h(w, r, dev)
		}
		if err := l.Check(class, string(dev.UserID)); err != nil {
			return err
		}
		return h(w, r, dev)
	}
}

// Key is the client a request counts against: its user ID when authenticated, else its IP.
func Key(r *http.Request) string {
	if dev := authn.FromContext(r.Context()); dev != nil {
		return string(dev.UserID)
	}
	return RemoteIP(r)
}

// RemoteIP is the host part of r.RemoteAddr.
func RemoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
