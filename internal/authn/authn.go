// Package authn authenticates client-server API requests by access token and
// carries the authenticated device in the request context.
package authn

import (
	"context"
	"net"
	"net/http"
	"strings"

	"maunium.net/go/mautrix/id"

	"parley/internal/httputil"
)

// Device is the authenticated requester.
type Device struct {
	UserID   id.UserID
	DeviceID id.DeviceID
	IsGuest  bool
	IsAdmin  bool
	// SessionID identifies the access token used, for logout.
	SessionID int64
	// AppService is the ID of the application service whose as_token
	// authenticated the request (acting as its sender or as a user it
	// asserted with ?user_id=), else "". DeviceID is then empty unless the
	// service asserted a device too.
	AppService string
	// NoRateLimit exempts the requester from rate limits: an application
	// service's sender, and its users when it is not rate_limited.
	NoRateLimit bool
}

// Authenticator resolves an access token to its device. It returns a
// *httputil.MatrixError (M_UNKNOWN_TOKEN, with soft_logout where it applies)
// for unknown, revoked or expired tokens.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (*Device, error)
}

type ctxKey struct{}

// WithDevice returns a context carrying dev.
func WithDevice(ctx context.Context, dev *Device) context.Context {
	return context.WithValue(ctx, ctxKey{}, dev)
}

// FromContext returns the device of an authenticated request, or nil.
func FromContext(ctx context.Context) *Device {
	dev, _ := ctx.Value(ctxKey{}).(*Device)
	return dev
}

// Token extracts the access token from the Authorization header or, for older
// clients, the access_token query parameter.
func Token(r *http.Request) (string, bool) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if ok && strings.EqualFold(scheme, "Bearer") && tok != "" {
			return strings.TrimSpace(tok), true
		}
		return "", false
	}
	if tok := r.URL.Query().Get("access_token"); tok != "" {
		return tok, true
	}
	return "", false
}

// Handler is a handler for an authenticated endpoint.
type Handler func(w http.ResponseWriter, r *http.Request, dev *Device) error

// Required wraps h so that it runs only for requests with a valid access token.
func Required(a Authenticator, h Handler) httputil.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		tok, ok := Token(r)
		if !ok {
			return httputil.Errorf(http.StatusUnauthorized, httputil.CodeMissingToken, "Missing access token")
		}
		ctx := RequestContext(r)
		dev, err := a.Authenticate(ctx, tok)
		if err != nil {
			return err
		}
		return h(w, r.WithContext(WithDevice(ctx, dev)), dev)
	}
}

// NoGuests wraps h so that guest accounts get 403 M_GUEST_ACCESS_FORBIDDEN.
func NoGuests(h Handler) Handler {
	return func(w http.ResponseWriter, r *http.Request, dev *Device) error {
		if dev.IsGuest {
			return httputil.Errorf(http.StatusForbidden, httputil.CodeGuestAccessForbidden, "Guest access is not allowed")
		}
		return h(w, r, dev)
	}
}

// RequestContext is r's context carrying what Authenticate may need besides
// the token: the client's IP, and the user (and device) an application
// service asserts it acts for (the user_id and device_id query parameters).
func RequestContext(r *http.Request) context.Context {
	ctx := WithClientIP(r.Context(), remoteIP(r))
	if !strings.Contains(r.URL.RawQuery, "user_id=") && !strings.Contains(r.URL.RawQuery, "device_id=") {
		return ctx // the common case: no assertion, no query to parse
	}
	q := r.URL.Query()
	as := Assertion{UserID: id.UserID(q.Get("user_id")), DeviceID: id.DeviceID(q.Get("device_id"))}
	if as.DeviceID == "" {
		as.DeviceID = id.DeviceID(q.Get("org.matrix.msc3202.device_id"))
	}
	if as != (Assertion{}) {
		ctx = context.WithValue(ctx, assertionKey{}, as)
	}
	return ctx
}

// Assertion is the identity an application service asserts for a request
// (application service API, "Identity assertion").
type Assertion struct {
	UserID   id.UserID
	DeviceID id.DeviceID
}

type assertionKey struct{}

// AssertionFrom returns the assertion RequestContext put in ctx, if any.
func AssertionFrom(ctx context.Context) Assertion {
	as, _ := ctx.Value(assertionKey{}).(Assertion)
	return as
}

type ipKey struct{}

// WithClientIP returns a context carrying the client's IP address.
func WithClientIP(ctx context.Context, ip string) context.Context {
	return context.WithValue(ctx, ipKey{}, ip)
}

// ClientIP returns the IP carried by ctx (set by Required), or "".
func ClientIP(ctx context.Context) string {
	ip, _ := ctx.Value(ipKey{}).(string)
	return ip
}

// remoteIP is the host part of r.RemoteAddr.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
