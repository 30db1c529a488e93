package asapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix/id"
)

// Time limits of calls to application services. A transaction's limit stays
// well under the sender's lease (appservice component), so that a slow
// service never has the same transaction sent by two processes.
const (
	QueryTimeout       = 10 * time.Second
	TransactionTimeout = 30 * time.Second
)

// maxResponseBytes bounds what is read of a service's answer.
const maxResponseBytes = 1 << 20

// ErrNoURL is returned for calls to a service whose url is null.
var ErrNoURL = errors.New("application service has no url")

// StatusError is a service's answer other than 2xx.
type StatusError struct {
	Status int
	Body   []byte
}

// Error implements error.
func (e *StatusError) Error() string {
	return fmt.Sprintf("application service answered %d: %.200s", e.Status, e.Body)
}

// IsTimeout says whether err is a call that ran out of time.
func IsTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

// Client calls application services (the application service API's
// /_matrix/app/v1 endpoints), authenticated with their hs_token.
type Client struct {
	http *http.Client
	// queryTimeout bounds the calls other than transactions.
	queryTimeout atomic.Int64
}

// NewClient returns a Client sending requests with hc (http.DefaultClient if nil).
func NewClient(hc *http.Client) *Client {
	if hc == nil {
		hc = http.DefaultClient
	}
	c := &Client{http: hc}
	c.queryTimeout.Store(int64(QueryTimeout))
	return c
}

// SetQueryTimeout changes the time limit of the calls other than
// transactions (QueryTimeout); tests shorten it.
func (c *Client) SetQueryTimeout(d time.Duration) { c.queryTimeout.Store(int64(d)) }

func (c *Client) query() time.Duration { return time.Duration(c.queryTimeout.Load()) }

// endpoint is the URL of path (already escaped) under the service's /_matrix/app/v1.
func endpoint(s *Service, path string, query url.Values) string {
	u := strings.TrimRight(s.URL, "/") + "/_matrix/app/v1" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	return u
}

// do sends one request and returns the body of a 2xx answer; any other
// status is a *StatusError.
func (c *Client) do(ctx context.Context, s *Service, method, path string, query url.Values, body []byte, timeout time.Duration) ([]byte, error) {
	if !s.HasURL() {
		return nil, ErrNoURL
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var rdr io.Reader
	if body != nil {
		rdr = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, endpoint(s, path, query), rdr)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.HSToken)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, &StatusError{Status: resp.StatusCode, Body: out}
	}
	return out, nil
}

// SendTransaction sends a transaction (PUT /transactions/{txnId}); body is
// its JSON ({"events": [...], ...}).
func (c *Client) SendTransaction(ctx context.Context, s *Service, txnID int64, body []byte) error {
	_, err := c.do(ctx, s, http.MethodPut, "/transactions/"+strconv.FormatInt(txnID, 10), nil, body, TransactionTimeout)
	return err
}

// Ping calls POST /ping with the transaction ID (empty: none) and returns
// how long it took.
func (c *Client) Ping(ctx context.Context, s *Service, txnID string) (time.Duration, error) {
	body := []byte(`{}`)
	if txnID != "" {
		body, _ = json.Marshal(map[string]string{"transaction_id": txnID})
	}
	start := time.Now()
	_, err := c.do(ctx, s, http.MethodPost, "/ping", nil, body, c.query())
	return time.Since(start), err
}

// QueryUser asks the service whether user exists (GET /users/{userId}): true
// on 200, false on 404 or any failure.
func (c *Client) QueryUser(ctx context.Context, s *Service, user id.UserID) bool {
	_, err := c.do(ctx, s, http.MethodGet, "/users/"+url.PathEscape(string(user)), nil, nil, c.query())
	return err == nil
}

// QueryAlias asks the service whether alias exists (GET /rooms/{roomAlias}):
// true on 200 (the service created the room and alias), false otherwise.
func (c *Client) QueryAlias(ctx context.Context, s *Service, alias id.RoomAlias) bool {
	_, err := c.do(ctx, s, http.MethodGet, "/rooms/"+url.PathEscape(string(alias)), nil, nil, c.query())
	return err == nil
}

// ThirdParty calls GET /thirdparty/{kind}[/{protocol}] with the query and
// returns the JSON answer.
func (c *Client) ThirdParty(ctx context.Context, s *Service, kind, protocol string, query url.Values) (json.RawMessage, error) {
	path := "/thirdparty/" + kind
	if protocol != "" {
		path += "/" + url.PathEscape(protocol)
	}
	b, err := c.do(ctx, s, http.MethodGet, path, query, nil, c.query())
	if err != nil {
		return nil, err
	}
	if !json.Valid(b) {
		return nil, fmt.Errorf("application service %s: %s answered with invalid JSON", s.ID, path)
	}
	return b, nil
}
