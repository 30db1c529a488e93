package httputil

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestRealIP(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}
	var got string
	h := RealIP(trusted, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.RemoteAddr }))
	cases := []struct {
		peer, xff, want string
	}{
		{"127.0.0.1:5000", "203.0.113.7", "203.0.113.7:0"},
		{"127.0.0.1:5000", "198.51.100.1, 203.0.113.7, 10.1.2.3", "203.0.113.7:0"}, // rightmost untrusted hop
		{"127.0.0.1:5000", "", "127.0.0.1:5000"},
		{"127.0.0.1:5000", "garbage", "127.0.0.1:5000"},
		{"127.0.0.1:5000", "10.0.0.5", "10.0.0.5:0"},        // only proxies: the leftmost
		{"192.0.2.9:5000", "203.0.113.7", "192.0.2.9:5000"}, // untrusted peer: header ignored
		{"[::1]:5000", "203.0.113.7", "[::1]:5000"},         // ::1 not listed
		{"127.0.0.1:5000", "2001:db8::1", "[2001:db8::1]:0"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.peer
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		h.ServeHTTP(httptest.NewRecorder(), r)
		if got != c.want {
			t.Errorf("peer %s, X-Forwarded-For %q: got %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
	// Without trusted proxies the header is never read.
	plain := RealIP(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.RemoteAddr }))
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "127.0.0.1:1"
	r.Header.Set("X-Forwarded-For", "203.0.113.7")
	plain.ServeHTTP(httptest.NewRecorder(), r)
	if got != "127.0.0.1:1" {
		t.Fatalf("untrusted: %s", got)
	}
}
