package httputil

import (
	"context"
	"errors"
	"net/http"
	"net/url"

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
		_ = WriteJSON(w, merr.Status, merr)
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
	r.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = WriteJSON(w, http.StatusNotFound, Unrecognized())
	})
	r.MethodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = WriteJSON(w, http.StatusMethodNotAllowed, Errorf(http.StatusMethodNotAllowed, CodeUnrecognized, "Unrecognized request method"))
	})
	return r
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
