package httputil

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"

	"github.com/gorilla/mux"
	"go.uber.org/zap"

	"parley/internal/logging"
)

// HandlerFunc may return an error instead of writing one.
type HandlerFunc func(w http.ResponseWriter, r *http.Request) error

// Wrap maps a returned error to a Matrix JSON body and logs it exactly once.
// A panic in the handler becomes a 500 M_UNKNOWN, never a dropped connection.
func Wrap(base *zap.Logger, name string, h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := func() (err error) {
			defer func() {
				if p := recover(); p != nil {
					if p == http.ErrAbortHandler {
						panic(p)
					}
					logging.From(r.Context(), base).Error("handler panicked", zap.String("handler", name), zap.Any("panic", p), zap.Stack("stack"))
					err = Internal(errors.New("panic"))
				}
			}()
			return h(w, r)
		}()
		if err == nil {
			return
		}
		var merr *MatrixError
		if !errors.As(err, &merr) {
			merr = Internal(err)
		}
		log := logging.From(r.Context(), base).With(zap.String("handler", name),
			zap.Int("status", merr.Status), zap.String("errcode", merr.Code))
		switch {
		case errors.Is(r.Context().Err(), context.Canceled):
			log.Debug("client went away", zap.Error(err))
			return
		case merr.Status >= 500:
			log.Error("request failed", zap.Error(err))
		default:
			log.Debug("request rejected", zap.Error(err))
		}
		if ms, ok := merr.Extra["retry_after_ms"].(int64); ok && merr.Status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
		}
		_ = WriteJSON(w, merr.Status, merr)
	})
}

// LimitBody caps request bodies at max bytes: a declared Content-Length above
// it is answered 413 M_TOO_LARGE at once, and reading past it makes ReadBody
// (and so DecodeJSONObject) return 413 M_TOO_LARGE. Requests for which exempt
// returns true (media uploads) are not limited.
func LimitBody(max int64, exempt func(*http.Request) bool, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if exempt != nil && exempt(r) {
			next.ServeHTTP(w, r)
			return
		}
		if r.ContentLength > max {
			_ = WriteJSON(w, http.StatusRequestEntityTooLarge, Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body too large"))
			return
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, max)
		}
		next.ServeHTTP(w, r)
	})
}

// PathVar returns a decoded mux variable. Routers use UseEncodedPath, because
// room v3 event IDs are standard base64 and may contain '/' and '+'.
func PathVar(r *http.Request, name string) string {
	v, err := url.PathUnescape(mux.Vars(r)[name])
	if err != nil {
		return ""
	}
	return v
}

// NewRouter returns a gorilla router that keeps encoded paths and answers unknown
// paths with 404 M_UNRECOGNIZED and wrong methods with 405 M_UNRECOGNIZED.
func NewRouter() *mux.Router {
	r := mux.NewRouter().SkipClean(true).UseEncodedPath()
	methodNotAllowed := func(w http.ResponseWriter) {
		_ = WriteJSON(w, http.StatusMethodNotAllowed, Errorf(http.StatusMethodNotAllowed, CodeUnrecognized, "Unrecognized request method"))
	}
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// Several components add subrouters under the same prefix, and a
		// later one's miss hides an earlier one's method mismatch from mux:
		// ask whether the path is known under another method.
		if knownPath(r, req) {
			methodNotAllowed(w)
			return
		}
		_ = WriteJSON(w, http.StatusNotFound, Unrecognized())
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { methodNotAllowed(w) })
	return r
}

// knownPath reports whether some route of r serves req's path with another
// method.
func knownPath(r *mux.Router, req *http.Request) bool {
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
		if m == req.Method {
			continue
		}
		other := req.Clone(req.Context())
		other.Method = m
		var match mux.RouteMatch
		if r.Match(other, &match) && match.MatchErr == nil {
			return true
		}
	}
	return false
}

// CORS answers preflight requests and adds the headers the client-server API
// requires on every response, so browser clients such as Element Web work.
func CORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization")
		if r.Method == http.MethodOptions {
			w.WriteHeader(http.StatusOK)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RealIP makes r.RemoteAddr the client's address when the request comes
// through a trusted reverse proxy: the rightmost X-Forwarded-For entry that
// is not itself a trusted proxy. Without trusted proxies it changes nothing.
func RealIP(trusted []netip.Prefix, next http.Handler) http.Handler {
	if len(trusted) == 0 {
		return next
	}
	isTrusted := func(a netip.Addr) bool {
		for _, p := range trusted {
			if p.Contains(a.Unmap()) {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !isTrusted(peer.Addr()) {
			next.ServeHTTP(w, r)
			return
		}
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			if !isTrusted(a) || i == 0 {
				r2 := r.Clone(r.Context())
				r2.RemoteAddr = netip.AddrPortFrom(a.Unmap(), 0).String()
				next.ServeHTTP(w, r2)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
