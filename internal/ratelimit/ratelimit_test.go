package ratelimit

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"parley/internal/authn"
	"parley/internal/config"
	"parley/internal/httputil"
)

func TestBucket(t *testing.T) {
	l := New(2, 3) // 2 per second, bursts of 3
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow("a")
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("over burst: %v %v", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("keys share a bucket")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("bucket did not refill")
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("refilled more than the rate")
	}
	now = now.Add(time.Hour)
	for i := 0; i < 3; i++ {
		if ok, _ := l.Allow("a"); !ok {
			t.Fatal("refill beyond burst is capped at burst, but burst must be available")
		}
	}
	if ok, _ := l.Allow("a"); ok {
		t.Fatal("bucket exceeded its burst")
	}
}

func TestSweep(t *testing.T) {
	l := New(1000, 1)
	now := time.Unix(0, 0)
	l.now = func() time.Time { return now }
	for i := 0; i < maxIdleBuckets; i++ {
		l.Allow(string(rune(i)))
	}
	now = now.Add(time.Second)
	l.Allow("new")
	if len(l.buckets) != 1 {
		t.Fatalf("%d buckets after sweep", len(l.buckets))
	}
}

func TestLimits(t *testing.T) {
	if NewLimits(config.RateLimits{Enabled: false}) != nil {
		t.Fatal("disabled limits must be nil")
	}
	var off *Limits
	if off.Check(Login, "x") != nil {
		t.Fatal("nil Limits refused")
	}
	on := NewLimits(config.RateLimits{Enabled: true, Login: config.Bucket{PerSecond: 1, Burst: 1},
		Register: config.Bucket{PerSecond: 1, Burst: 1}, Message: config.Bucket{PerSecond: 1, Burst: 1}})
	if on.Check(Login, "x") != nil || on.Check(Register, "x") != nil {
		t.Fatal("first requests refused")
	}
	err := on.Check(Login, "x")
	var merr *httputil.MatrixError
	if !errors.As(err, &merr) || merr.Status != http.StatusTooManyRequests || merr.Code != "M_LIMIT_EXCEEDED" || merr.Extra["retry_after_ms"].(int64) <= 0 {
		t.Fatalf("limited: %v", err)
	}
}

func TestWrap(t *testing.T) {
	l := NewLimits(config.RateLimits{Enabled: true, Login: config.Bucket{PerSecond: 0.001, Burst: 1},
		Register: config.Bucket{PerSecond: 0.001, Burst: 1}, Message: config.Bucket{PerSecond: 0.001, Burst: 1}})
	calls := 0
	h := l.Wrap(Login, func(w http.ResponseWriter, r *http.Request) error { calls++; return nil })
	req := func(addr string) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "/", nil)
		r.RemoteAddr = addr
		return r
	}
	if err := h(nil, req("10.0.0.1:1234")); err != nil {
		t.Fatal(err)
	}
	if err := h(nil, req("10.0.0.1:999")); err == nil {
		t.Fatal("same IP, other port, not limited")
	}
	if err := h(nil, req("10.0.0.2:1234")); err != nil {
		t.Fatal("other IP limited")
	}
	send := l.WrapAuthed(Message, func(w http.ResponseWriter, r *http.Request, dev *authn.Device) error { calls++; return nil })
	alice := &authn.Device{UserID: "@alice:test"}
	if err := send(nil, req("10.0.0.3:1"), alice); err != nil {
		t.Fatal(err)
	}
	if err := send(nil, req("10.0.0.4:1"), alice); err == nil {
		t.Fatal("user limit keyed by IP")
	}
	if calls != 3 {
		t.Fatalf("%d calls", calls)
	}
}
