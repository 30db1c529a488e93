package federation

import (
	"net/http"
	"strings"
	"testing"
)

type recordingTransport struct{ got http.Header }

func (r *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	r.got = req.Header.Clone()
	return &http.Response{StatusCode: http.StatusOK, Body: http.NoBody, Request: req}, nil
}

func TestJSONContentType(t *testing.T) {
	rec := &recordingTransport{}
	tr := jsonContentType{next: rec}
	req, _ := http.NewRequest(http.MethodPut, "https://hs2.test/_matrix/federation/v1/send/1", strings.NewReader(`{}`))
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if ct := rec.got.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("body sent with Content-Type %q", ct)
	}
	req, _ = http.NewRequest(http.MethodGet, "https://hs2.test/_matrix/federation/v1/version", nil)
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if ct := rec.got.Get("Content-Type"); ct != "" {
		t.Fatalf("bodiless request labelled %q", ct)
	}
}
