package testserver

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix/id"

	"parley/internal/config"
)

// AppService is a fake application service on a loopback HTTP server: it
// records every request the homeserver makes to it and answers 200 {}
// unless Handle says otherwise.
type AppService struct {
	ID, ASToken, HSToken, SenderLocalpart string
	URL                                   string
	// Registration is the path of its registration file.
	Registration string

	srv *httptest.Server
	mu  sync.Mutex // guards requests, handle
	// requests are those received, in order.
	requests []ASRequest
	handle   func(w http.ResponseWriter, req ASRequest) bool
}

// ASRequest is a request the homeserver made to an AppService.
type ASRequest struct {
	Method string
	// Path is the unescaped path, e.g. /_matrix/app/v1/users/@bot_a:hs1.test.
	Path          string
	Query         url.Values
	Authorization string
	Body          []byte
	// Status is the answer the service gave.
	Status int
}

// ASTxn is a transaction the homeserver sent.
type ASTxn struct {
	ID        string
	Events    []map[string]any
	Ephemeral []map[string]any
	// Authorization is the request's Authorization header.
	Authorization string
	// Status is the service's answer: 200 for a delivered transaction.
	Status int
}

// NewAppService starts a fake application service id whose registration
// has the given users, aliases and rooms namespaces (YAML flow lists, e.g.
// `[{exclusive: true, regex: "@bot_.*"}]`) and extra registration lines.
// Pass it to a server with the AppServices option.
func NewAppService(t testing.TB, id, users, aliases, rooms string, extra ...string) *AppService {
	t.Helper()
	as := &AppService{ID: id, ASToken: "as_token_" + id, HSToken: "hs_token_" + id, SenderLocalpart: id + "bot"}
	as.srv = httptest.NewServer(http.HandlerFunc(as.serve))
	t.Cleanup(as.srv.Close)
	as.URL = as.srv.URL
	reg := fmt.Sprintf("id: %s\nurl: %s\nas_token: %s\nhs_token: %s\nsender_localpart: %s\nnamespaces:\n  users: %s\n  aliases: %s\n  rooms: %s\n",
		id, as.URL, as.ASToken, as.HSToken, as.SenderLocalpart, users, aliases, rooms)
	reg += strings.Join(extra, "\n") + "\n"
	as.Registration = filepath.Join(t.TempDir(), id+".yaml")
	if err := os.WriteFile(as.Registration, []byte(reg), 0o600); err != nil {
		t.Fatal(err)
	}
	return as
}

// AppServices configures the server with the services' registrations.
func AppServices(services ...*AppService) Option {
	return func(c *config.Config) {
		for _, as := range services {
			c.AppServiceConfigFiles = append(c.AppServiceConfigFiles, as.Registration)
		}
	}
}

// Close stops the service's HTTP server: the homeserver can no longer reach it.
func (as *AppService) Close() { as.srv.Close() }

// Handle sets what answers the homeserver's requests: h returns false to
// leave a request to the default answer (200 {}). nil restores the default.
func (as *AppService) Handle(h func(w http.ResponseWriter, req ASRequest) bool) {
	as.mu.Lock()
	as.handle = h
	as.mu.Unlock()
}

// statusWriter records the status of an answer.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (as *AppService) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	req := ASRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Authorization: r.Header.Get("Authorization"), Body: body}
	as.mu.Lock()
	h := as.handle
	as.mu.Unlock()
	sw := &statusWriter{ResponseWriter: w}
	if h == nil || !h(sw, req) {
		sw.Header().Set("Content-Type", "application/json")
		_, _ = sw.Write([]byte(`{}`))
	}
	req.Status = sw.status
	if req.Status == 0 {
		req.Status = http.StatusOK
	}
	as.mu.Lock()
	as.requests = append(as.requests, req)
	as.mu.Unlock()
}

// Requests returns the requests received so far whose path starts with prefix.
func (as *AppService) Requests(prefix string) []ASRequest {
	as.mu.Lock()
	defer as.mu.Unlock()
	var out []ASRequest
	for _, r := range as.requests {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// Transactions returns every transaction attempt received so far, in order
// (a retried transaction appears once per attempt).
func (as *AppService) Transactions(t testing.TB) []ASTxn {
	t.Helper()
	var out []ASTxn
	for _, r := range as.Requests("/_matrix/app/v1/transactions/") {
		var body struct {
			Events    []map[string]any `json:"events"`
			Ephemeral []map[string]any `json:"ephemeral"`
		}
		if r.Method != http.MethodPut || json.Unmarshal(r.Body, &body) != nil || body.Events == nil {
			t.Fatalf("bad transaction %s %s: %s", r.Method, r.Path, r.Body)
		}
		out = append(out, ASTxn{ID: strings.TrimPrefix(r.Path, "/_matrix/app/v1/transactions/"), Events: body.Events,
			Ephemeral: body.Ephemeral, Authorization: r.Authorization, Status: r.Status})
	}
	return out
}

// Delivered returns the transactions the service accepted, in order.
func (as *AppService) Delivered(t testing.TB) []ASTxn {
	t.Helper()
	var out []ASTxn
	for _, txn := range as.Transactions(t) {
		if txn.Status == http.StatusOK {
			out = append(out, txn)
		}
	}
	return out
}

// AwaitEvent waits up to 10 s for a delivered transaction carrying an event
// (room or ephemeral) for which match is true, and returns the event and its
// transaction.
func (as *AppService) AwaitEvent(t testing.TB, what string, match func(ev map[string]any) bool) (map[string]any, ASTxn) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, txn := range as.Delivered(t) {
			for _, ev := range append(txn.Events, txn.Ephemeral...) {
				if match(ev) {
					return ev, txn
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("application service %s: no transaction with %s in 10s; got %d transactions", as.ID, what, len(as.Transactions(t)))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Client returns a client of s using the service's as_token, acting as its
// sender.
func (as *AppService) Client(s *Server) *Client {
	return &Client{S: s, UserID: id.NewUserID(as.SenderLocalpart, s.Cfg.ServerName), AccessToken: as.ASToken}
}
