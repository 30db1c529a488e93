// Package httputil holds the HTTP plumbing every component shares: Matrix error
// bodies, handlers that return errors, JSON decoding with the spec's errcodes,
// routers whose 404/405 answers are Matrix errors, and CORS.
package httputil

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"time"
)

// MatrixError is returned by handlers to send {"errcode": Code, "error": Message}.
// Err is the internal cause: it is logged by Wrap and never serialised.
type MatrixError struct {
	Status  int
	Code    string
	Message string
	Extra   map[string]any
	Err     error
}

func (e *MatrixError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s %d: %s: %v", e.Code, e.Status, e.Message, e.Err)
	}
	return fmt.Sprintf("%s %d: %s", e.Code, e.Status, e.Message)
}

func (e *MatrixError) Unwrap() error { return e.Err }

// MarshalJSON writes the error body, extra fields first so that errcode and
// error can never be overwritten by them. An error with an empty Code writes
// only its Extra fields: that is the shape of a user-interactive auth
// challenge (401 with flows and no errcode).
func (e *MatrixError) MarshalJSON() ([]byte, error) {
	body := make(map[string]any, len(e.Extra)+2)
	maps.Copy(body, e.Extra)
	if e.Code != "" {
		body["errcode"], body["error"] = e.Code, e.Message
	}
	return json.Marshal(body)
}

// With returns a copy of e carrying an extra top-level field in its body.
func (e *MatrixError) With(key string, value any) *MatrixError {
	c := *e
	c.Extra = maps.Clone(e.Extra)
	if c.Extra == nil {
		c.Extra = map[string]any{}
	}
	c.Extra[key] = value
	return &c
}

// Errcodes used by Parley. Names follow the spec's M_* codes.
const (
	CodeForbidden             = "M_FORBIDDEN"
	CodeUnknownToken          = "M_UNKNOWN_TOKEN"
	CodeMissingToken          = "M_MISSING_TOKEN"
	CodeBadJSON               = "M_BAD_JSON"
	CodeNotJSON               = "M_NOT_JSON"
	CodeNotFound              = "M_NOT_FOUND"
	CodeLimitExceeded         = "M_LIMIT_EXCEEDED"
	CodeUnrecognized          = "M_UNRECOGNIZED"
	CodeUnknown               = "M_UNKNOWN"
	CodeUserInUse             = "M_USER_IN_USE"
	CodeInvalidUsername       = "M_INVALID_USERNAME"
	CodeRoomInUse             = "M_ROOM_IN_USE"
	CodeInvalidRoomState      = "M_INVALID_ROOM_STATE"
	CodeUnsupportedRoomVer    = "M_UNSUPPORTED_ROOM_VERSION"
	CodeIncompatibleRoomVer   = "M_INCOMPATIBLE_ROOM_VERSION"
	CodeBadState              = "M_BAD_STATE"
	CodeGuestAccessForbidden  = "M_GUEST_ACCESS_FORBIDDEN"
	CodeMissingParam          = "M_MISSING_PARAM"
	CodeInvalidParam          = "M_INVALID_PARAM"
	CodeTooLarge              = "M_TOO_LARGE"
	CodeExclusive             = "M_EXCLUSIVE"
	CodeUnknownDevice         = "M_UNKNOWN_DEVICE"
	CodeURLNotSet             = "M_URL_NOT_SET"
	CodeBadStatus             = "M_BAD_STATUS"
	CodeConnectionFailed      = "M_CONNECTION_FAILED"
	CodeConnectionTimeout     = "M_CONNECTION_TIMEOUT"
	CodeUserDeactivated       = "M_USER_DEACTIVATED"
	CodeThreepidInUse         = "M_THREEPID_IN_USE"
	CodeThreepidNotFound      = "M_THREEPID_NOT_FOUND"
	CodeServerNotTrusted      = "M_SERVER_NOT_TRUSTED"
	CodeBadAlias              = "M_BAD_ALIAS"
	CodeInvalidSignature      = "M_INVALID_SIGNATURE"
	CodeUnauthorized          = "M_UNAUTHORIZED"
	CodeWeakPassword          = "M_WEAK_PASSWORD"
	CodeNotYetUploaded        = "M_NOT_YET_UPLOADED"
	CodeCannotOverwriteMedia  = "M_CANNOT_OVERWRITE_MEDIA"
	CodeUnableToAuthoriseJoin = "M_UNABLE_TO_AUTHORISE_JOIN"
	CodeUnableToGrantJoin     = "M_UNABLE_TO_GRANT_JOIN"
	CodeResourceLimitExceeded = "M_RESOURCE_LIMIT_EXCEEDED"
	CodeUserLocked            = "M_USER_LOCKED"
	CodeUserSuspended         = "M_USER_SUSPENDED"
	// CodeCannotLeaveServerNoticeRoom: the user tried to reject the invite to
	// their server notices room.
	CodeCannotLeaveServerNoticeRoom = "M_CANNOT_LEAVE_SERVER_NOTICE_ROOM"
)

// Codes the spec defines for profiles.
const (
	CodeProfileTooLarge = "M_PROFILE_TOO_LARGE"
	CodeKeyTooLarge     = "M_KEY_TOO_LARGE"
)

// RateLimited is 429 M_LIMIT_EXCEEDED with retry_after_ms; Wrap also sets the
// Retry-After header (whole seconds, rounded up) from it.
func RateLimited(retryAfter time.Duration) *MatrixError {
	ms := retryAfter.Milliseconds()
	if ms < 1 {
		ms = 1
	}
	return Errorf(http.StatusTooManyRequests, CodeLimitExceeded, "Too many requests").With("retry_after_ms", ms)
}

// Errorf builds a MatrixError with a formatted message.
func Errorf(status int, code, format string, a ...any) *MatrixError {
	return &MatrixError{Status: status, Code: code, Message: fmt.Sprintf(format, a...)}
}

// Forbidden is 403 M_FORBIDDEN.
func Forbidden(format string, a ...any) *MatrixError {
	return Errorf(http.StatusForbidden, CodeForbidden, format, a...)
}

// BadJSON is 400 M_BAD_JSON.
func BadJSON(format string, a ...any) *MatrixError {
	return Errorf(http.StatusBadRequest, CodeBadJSON, format, a...)
}

// NotFound is 404 M_NOT_FOUND.
func NotFound(format string, a ...any) *MatrixError {
	return Errorf(http.StatusNotFound, CodeNotFound, format, a...)
}

// MissingParam is 400 M_MISSING_PARAM.
func MissingParam(format string, a ...any) *MatrixError {
	return Errorf(http.StatusBadRequest, CodeMissingParam, format, a...)
}

// InvalidParam is 400 M_INVALID_PARAM.
func InvalidParam(format string, a ...any) *MatrixError {
	return Errorf(http.StatusBadRequest, CodeInvalidParam, format, a...)
}

// Unrecognized is 404 M_UNRECOGNIZED, the answer for endpoints Parley does not serve.
func Unrecognized() *MatrixError {
	return Errorf(http.StatusNotFound, CodeUnrecognized, "Unrecognized request")
}

// Internal is 500 M_UNKNOWN; err is logged, never shown to the client.
func Internal(err error) *MatrixError {
	return &MatrixError{Status: http.StatusInternalServerError, Code: CodeUnknown, Message: "Internal server error", Err: err}
}
