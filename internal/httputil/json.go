package httputil

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"unicode/utf8"
)

// MaxBodyBytes is a safety cap on request bodies decoded as JSON; the
// configured limit (listen.max_request_bytes) is applied by LimitBody.
const MaxBodyBytes = 64 << 20

// ReadBody reads at most limit bytes of the request body; a longer body is 413 M_TOO_LARGE.
func ReadBody(r *http.Request, limit int64) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body too large")
	}
	if err != nil {
		return nil, Errorf(http.StatusBadRequest, CodeUnknown, "failed to read request body")
	}
	if int64(len(b)) > limit {
		return nil, Errorf(http.StatusRequestEntityTooLarge, CodeTooLarge, "request body too large")
	}
	return b, nil
}

// DecodeJSONObject reads the body, which must be a JSON object, into v.
// An unparseable body is 400 M_NOT_JSON; a valid JSON value of the wrong shape
// (an array, or a field of the wrong type) is 400 M_BAD_JSON.
func DecodeJSONObject(r *http.Request, v any) error {
	b, err := ReadBody(r, MaxBodyBytes)
	if err != nil {
		return err
	}
	return UnmarshalObject(b, v)
}

// UnmarshalObject decodes b, which must be a JSON object, into v with the errcodes of DecodeJSONObject.
func UnmarshalObject(b []byte, v any) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		return Errorf(http.StatusBadRequest, CodeNotJSON, "request body is empty, expected a JSON object")
	}
	// encoding/json accepts invalid UTF-8 (replacing it), but JSON text must be UTF-8.
	if !utf8.Valid(b) || !json.Valid(b) {
		return Errorf(http.StatusBadRequest, CodeNotJSON, "request body is not valid JSON")
	}
	if b[0] != '{' {
		return BadJSON("request body must be a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return BadJSON("field %q has the wrong type", te.Field)
		}
		return BadJSON("invalid request body: %v", err)
	}
	return nil
}

// WriteJSON writes v as the JSON response body with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return WriteRawJSON(w, status, b)
}

// WriteRawJSON writes an already encoded JSON body.
func WriteRawJSON(w http.ResponseWriter, status int, b []byte) error {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, err := w.Write(b)
	return err
}

// Empty is the {} body that many endpoints answer with.
var Empty = struct{}{}
