package keyserver_test

import (
	"fmt"
	"net/http"
	"testing"

	"parley/internal/testserver"
)

// BenchmarkKeysQuery measures POST /keys/query for 200 users with one
// device each, as a client does on joining a large encrypted room.
func BenchmarkKeysQuery(b *testing.B) {
	srv := testserver.New(b)
	const users = 200
	query := map[string]any{}
	var last *testserver.Client
	for i := 0; i < users; i++ {
		c := srv.Register(b, fmt.Sprintf("u%d", i))
		c.MustDo(b, http.MethodPost, "keys/upload", map[string]any{"one_time_keys": map[string]any{"signed_curve25519:A": map[string]any{"key": "k"}}})
		uploadDeviceKeys(b, c)
		query[string(c.UserID)] = []string{}
		last = c
	}
	body := map[string]any{"device_keys": query}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res := last.MustDo(b, http.MethodPost, "keys/query", body)
		if devs, _ := res.JSON["device_keys"].(map[string]any); len(devs) != users {
			b.Fatalf("got %d users", len(devs))
		}
	}
}
