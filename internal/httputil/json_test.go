package httputil

import (
	"errors"
	"net/http"
	"testing"
)

func TestUnmarshalObjectErrcodes(t *testing.T) {
	cases := []struct {
		name string
		body string
		code string
	}{
		{"empty", "", CodeNotJSON},
		{"garbage", "{not json", CodeNotJSON},
		{"invalid utf-8 in a string", "{\"username\": \"a\x81\"}", CodeNotJSON},
		{"array", "[1]", CodeBadJSON},
		{"wrong type", `{"n": "x"}`, CodeBadJSON},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var v struct {
				N int `json:"n"`
			}
			err := UnmarshalObject([]byte(c.body), &v)
			var me *MatrixError
			if !errors.As(err, &me) {
				t.Fatalf("got %v, want a MatrixError", err)
			}
			if me.Code != c.code || me.Status != http.StatusBadRequest {
				t.Fatalf("got %d %s, want 400 %s", me.Status, me.Code, c.code)
			}
		})
	}
	var v map[string]any
	if err := UnmarshalObject([]byte(`{"username": "é"}`), &v); err != nil {
		t.Fatalf("valid UTF-8 rejected: %v", err)
	}
}
