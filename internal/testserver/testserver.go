// Package testserver starts complete in-process Parley homeservers for tests,
// served over real HTTP on 127.0.0.1, and gives tests a small client.
package testserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
	"maunium.net/go/mautrix/id"

	"github.com/gorilla/mux"

	"parley/internal/config"
	"parley/internal/homeserver"
	"parley/internal/httputil"
)

// Server is a running test homeserver.
type Server struct {
	t   testing.TB
	URL string
	HS  *homeserver.Homeserver
	Cfg config.Config
	ts  *httptest.Server
	// FedAddr is the TLS address serving federation (servers from NewFederation).
	FedAddr string
	// CA is the test CA of servers from NewFederation.
	CA  *TestCA
	fed *httptest.Server
}

// Option changes the configuration before the server starts.
type Option func(*config.Config)

// New starts a homeserver named hs1.test on SQLite in t.TempDir(), or on a fresh
// PostgreSQL database when PARLEY_TEST_DB=postgres. It stops at test cleanup.
func New(t testing.TB, opts ...Option) *Server {
	t.Helper()
	cfg := config.Defaults()
	cfg.ServerName = "hs1.test"
	dir := t.TempDir()
	cfg.SigningKeyPath = filepath.Join(dir, "signing.key")
	cfg.Media.Path = filepath.Join(dir, "media")
	cfg.Database.URL = "sqlite://" + filepath.Join(dir, "hs.db")
	cfg.Registration.BcryptCost = 4 // bcrypt.MinCost: keep tests fast
	if os.Getenv("PARLEY_TEST_DB") == "postgres" {
		cfg.Database.URL = PostgresDatabase(t)
	}
	for _, o := range opts {
		o(&cfg)
	}
	return Start(t, cfg)
}

// Start starts a homeserver with exactly cfg.
func Start(t testing.TB, cfg config.Config) *Server {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	if os.Getenv("PARLEY_TEST_LOG") != "" {
		log = zaptest.NewLogger(t)
	}
	hs, err := homeserver.New(context.Background(), cfg, log)
	if err != nil {
		t.Fatalf("start homeserver: %v", err)
	}
	ts := httptest.NewServer(hs.Handler())
	s := &Server{t: t, URL: ts.URL, HS: hs, Cfg: cfg, ts: ts}
	t.Cleanup(s.Close)
	return s
}

// Close stops the server; it is safe to call twice.
func (s *Server) Close() {
	s.StopFederation()
	if s.ts == nil {
		return
	}
	s.ts.CloseClientConnections()
	s.ts.Close()
	if s.HS != nil {
		s.HS.Close()
	}
	s.ts = nil
}

// Serve serves routes alone (for example a clientapi.API built with special
// Deps over another server's store) over real HTTP. The returned Server has
// no HS; clients of it work as with New.
func Serve(t testing.TB, routes interface{ Register(*mux.Router) }) *Server {
	t.Helper()
	r := httputil.NewRouter()
	routes.Register(r)
	ts := httptest.NewServer(r)
	s := &Server{t: t, URL: ts.URL, ts: ts}
	t.Cleanup(s.Close)
	return s
}

// PostgresURL is the server the PostgreSQL tests use: PARLEY_TEST_POSTGRES, or
// the local trust-auth server with database test.
func PostgresURL() string {
	if v := os.Getenv("PARLEY_TEST_POSTGRES"); v != "" {
		return v
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

// PostgresDatabase creates a fresh database for one test and returns its URL.
// It skips the test when no PostgreSQL server answers, except in CI (CI=true)
// or when PARLEY_TEST_POSTGRES is set, where it fails.
func PostgresDatabase(t testing.TB) string {
	t.Helper()
	base := PostgresURL()
	db, err := sql.Open("pgx", base)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = db.PingContext(ctx)
		cancel()
	}
	if err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("PARLEY_TEST_POSTGRES") != "" {
			t.Fatalf("postgres at %s: %v", base, err)
		}
		t.Skipf("no postgres at %s: %v", base, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "parley_test_" + hex.EncodeToString(b)
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		_, _ = db.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		db.Close()
	})
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}

// Response is a decoded HTTP response.
type Response struct {
	Status  int
	Body    []byte
	JSON    map[string]any
	ErrCode string
	Header  http.Header
}

// Client is a Matrix client of a test server, optionally logged in.
type Client struct {
	S           *Server
	UserID      id.UserID
	DeviceID    id.DeviceID
	AccessToken string
	Password    string
}

// Anon returns a client with no access token.
func (s *Server) Anon() *Client { return &Client{S: s} }

// Register registers localpart with password "password" via m.login.dummy and returns the logged-in client.
func (s *Server) Register(t testing.TB, localpart string) *Client {
	t.Helper()
	c := s.Anon()
	body := map[string]any{"username": localpart, "password": "password", "auth": map[string]any{"type": "m.login.dummy"}}
	res := c.Do(t, http.MethodPost, "/_matrix/client/v3/register", body)
	if res.Status != http.StatusOK {
		t.Fatalf("register %s: %d %s", localpart, res.Status, res.Body)
	}
	c.UserID = id.UserID(res.JSON["user_id"].(string))
	c.DeviceID = id.DeviceID(res.JSON["device_id"].(string))
	c.AccessToken = res.JSON["access_token"].(string)
	c.Password = "password"
	return c
}

// Do sends a request. body may be nil, a string or []byte (sent as is), or any
// value (sent as JSON). A path without a leading / is taken as relative to /_matrix/client/v3/.
func (c *Client) Do(t testing.TB, method, path string, body any) *Response {
	t.Helper()
	if !strings.HasPrefix(path, "/") {
		path = "/_matrix/client/v3/" + path
	}
	var rdr io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rdr = strings.NewReader(b)
	case []byte:
		rdr = bytes.NewReader(b)
	default:
		enc, err := json.Marshal(b)
		if err != nil {
			t.Fatalf("encode body: %v", err)
		}
		rdr = bytes.NewReader(enc)
	}
	req, err := http.NewRequest(method, c.S.URL+path, rdr)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.AccessToken != "" {
		req.Header.Set("Authorization", "Bearer "+c.AccessToken)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	res := &Response{Status: resp.StatusCode, Body: raw, Header: resp.Header}
	if len(raw) > 0 && raw[0] == '{' {
		if err := json.Unmarshal(raw, &res.JSON); err != nil {
			t.Fatalf("%s %s: response is not JSON: %v: %s", method, path, err, raw)
		}
		res.ErrCode, _ = res.JSON["errcode"].(string)
	}
	return res
}

// MustDo is Do that fails the test unless the status is 200.
func (c *Client) MustDo(t testing.TB, method, path string, body any) *Response {
	t.Helper()
	res := c.Do(t, method, path, body)
	if res.Status != http.StatusOK {
		t.Fatalf("%s %s: want 200, got %d: %s", method, path, res.Status, res.Body)
	}
	return res
}

// PathEscape escapes one path segment (room and event IDs contain reserved characters).
func PathEscape(s string) string { return url.PathEscape(s) }

// Sprintf is fmt.Sprintf with every argument path-escaped, for building paths.
func Sprintf(format string, a ...any) string {
	esc := make([]any, len(a))
	for i, v := range a {
		esc[i] = url.PathEscape(fmt.Sprint(v))
	}
	return fmt.Sprintf(format, esc...)
}
