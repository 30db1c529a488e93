package urlpreview_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"parley/internal/config"
	"parley/mediaapi/urlpreview"
)

func defaultGuard(t *testing.T, allow ...string) *urlpreview.Guard {
	t.Helper()
	g, err := urlpreview.NewGuard(config.DefaultIPRangeDenylist, allow)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestGuardRanges(t *testing.T) {
	g := defaultGuard(t)
	for _, s := range []string{
		"127.0.0.1", "127.1.2.3", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
		"169.254.169.254", "100.64.0.1", "100.100.100.200", "0.0.0.0", "224.0.0.1", "255.255.255.255",
		"::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "ff02::1",
	} {
		if g.Allowed(netip.MustParseAddr(s)) {
			t.Errorf("%s allowed, want denied", s)
		}
	}
	for _, s := range []string{"1.1.1.1", "8.8.8.8", "172.32.0.1", "2606:4700:4700::1111"} {
		if !g.Allowed(netip.MustParseAddr(s)) {
			t.Errorf("%s denied, want allowed", s)
		}
	}
	g = defaultGuard(t, "127.0.0.1")
	if !g.Allowed(netip.MustParseAddr("127.0.0.1")) || g.Allowed(netip.MustParseAddr("127.0.0.2")) {
		t.Error("allowlist of one address does not exempt exactly that address")
	}
	if _, err := urlpreview.NewGuard([]string{"not-a-range"}, nil); err == nil {
		t.Error("invalid range accepted")
	}
}

func newFetcher(g *urlpreview.Guard, timeout time.Duration, maxBytes int64) *urlpreview.Fetcher {
	return urlpreview.NewFetcher(urlpreview.Options{Guard: g, Timeout: timeout, MaxBytes: maxBytes, UserAgent: "test"})
}

// countingServer answers 200 and counts requests.
func countingServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, "<title>secret</title>")
	}))
	t.Cleanup(ts.Close)
	return ts, &hits
}

func TestFetchRefusesLoopbackAndMetadata(t *testing.T) {
	ts, hits := countingServer(t)
	f := newFetcher(defaultGuard(t), 5*time.Second, 1<<20)
	port := mustPort(t, ts.URL)
	for _, raw := range []string{
		ts.URL,                                     // 127.0.0.1 literal
		"http://localhost:" + port + "/",           // a name resolving to loopback: checked after DNS
		"http://[::ffff:127.0.0.1]:" + port,        // IPv4-mapped IPv6
		"http://169.254.169.254/latest/meta-data/", // cloud metadata
		"http://[fd00:ec2::254]/latest/meta-data/",
	} {
		u, _ := url.Parse(raw)
		start := time.Now()
		_, err := f.Fetch(context.Background(), u)
		if !errors.Is(err, urlpreview.ErrBlocked) {
			t.Errorf("%s: got %v, want ErrBlocked", raw, err)
		}
		// Refused before connect(2): no connection attempt to time out.
		if d := time.Since(start); d > time.Second {
			t.Errorf("%s: refusal took %v", raw, d)
		}
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the loopback server was reached %d times", n)
	}
}

// TestDialerNeverConnectsToMetadata proves the guard runs before connect(2):
// the Control hook sees the resolved 169.254.169.254 and the dial fails with
// ErrBlocked at once, where a real connection attempt would hang until the
// timeout or be refused.
func TestDialerNeverConnectsToMetadata(t *testing.T) {
	g := defaultGuard(t)
	var seen []string
	d := net.Dialer{Timeout: 3 * time.Second, Control: func(network, address string, c syscall.RawConn) error {
		seen = append(seen, address)
		return g.Control(network, address, c)
	}}
	start := time.Now()
	_, err := d.Dial("tcp4", "169.254.169.254:80")
	if !errors.Is(err, urlpreview.ErrBlocked) {
		t.Fatalf("got %v, want ErrBlocked", err)
	}
	if len(seen) != 1 || seen[0] != "169.254.169.254:80" || time.Since(start) > 500*time.Millisecond {
		t.Fatalf("control saw %v, took %v", seen, time.Since(start))
	}
}

func TestFetchRedirectChecked(t *testing.T) {
	var hits atomic.Int32
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/meta":
			http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/", http.StatusFound)
		case "/file":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		default:
			fmt.Fprint(w, "ok")
		}
	}))
	t.Cleanup(ts.Close)
	f := newFetcher(defaultGuard(t, "127.0.0.1"), 5*time.Second, 1<<20)
	u, _ := url.Parse(ts.URL + "/meta")
	if _, err := f.Fetch(context.Background(), u); !errors.Is(err, urlpreview.ErrBlocked) {
		t.Fatalf("redirect to metadata: got %v, want ErrBlocked", err)
	}
	u, _ = url.Parse(ts.URL + "/file")
	if _, err := f.Fetch(context.Background(), u); !errors.Is(err, urlpreview.ErrBadURL) {
		t.Fatalf("redirect to file: got %v, want ErrBadURL", err)
	}
	hits.Store(0)
	u, _ = url.Parse(ts.URL + "/loop")
	if _, err := f.Fetch(context.Background(), u); err == nil || hits.Load() != 5 {
		t.Fatalf("redirect loop: got %v after %d requests, want an error after 5", err, hits.Load())
	}
}

func TestFetchCaps(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/big":
			w.Header().Set("Content-Type", "text/html")
			for i := 0; i < 100; i++ {
				fmt.Fprint(w, "0123456789")
			}
		case "/slow":
			select {
			case <-time.After(2 * time.Second):
			case <-r.Context().Done():
			}
		}
	}))
	t.Cleanup(ts.Close)
	f := newFetcher(defaultGuard(t, "127.0.0.1"), 300*time.Millisecond, 999)
	u, _ := url.Parse(ts.URL + "/big")
	if _, err := f.Fetch(context.Background(), u); !errors.Is(err, urlpreview.ErrTooLarge) {
		t.Fatalf("1000-byte body with a 999 cap: got %v, want ErrTooLarge", err)
	}
	u, _ = url.Parse(ts.URL + "/slow")
	start := time.Now()
	if _, err := f.Fetch(context.Background(), u); err == nil || time.Since(start) > 1500*time.Millisecond {
		t.Fatalf("slow server: got %v after %v, want a timeout near 300ms", err, time.Since(start))
	}
}

func TestParseHTML(t *testing.T) {
	base, _ := url.Parse("https://example.org/blog/post")
	og := urlpreview.ParseHTML([]byte(`<html><head><title>Fallback</title>
		<meta property="og:title" content=" Real title ">
		<meta name="og:description" content="A description">
		<meta property="og:image" content="/img/a.png">
		<meta property="og:title" content="second title is ignored">
		</head><body><img src="b.png"></body></html>`), "text/html", base)
	want := map[string]string{"og:title": "Real title", "og:description": "A description", "og:image": "https://example.org/img/a.png"}
	for k, v := range want {
		if og[k] != v {
			t.Errorf("%s = %v, want %q", k, og[k], v)
		}
	}
	og = urlpreview.ParseHTML([]byte(`<title>Only a title</title><meta name="description" content="desc"><body><img src="x.jpg">`), "text/html", base)
	if og["og:title"] != "Only a title" || og["og:description"] != "desc" || og["og:image"] != "https://example.org/blog/x.jpg" {
		t.Errorf("fallbacks: %v", og)
	}
	og = urlpreview.ParseHTML([]byte(`<meta property="og:image" content="javascript:alert(1)">`), "text/html", base)
	if _, ok := og["og:image"]; ok {
		t.Errorf("javascript: image kept: %v", og)
	}
	og = urlpreview.ParseHTML([]byte("<title>caf\xe9</title>"), "text/html; charset=iso-8859-1", base)
	if og["og:title"] != "café" {
		t.Errorf("latin-1 title decoded as %q", og["og:title"])
	}
}

func mustPort(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Port()
}
