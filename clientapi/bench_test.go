package clientapi_test

import (
	"context"
	"net/http"
	"testing"

	"parley/clientapi"
	"parley/internal/config"
	"parley/internal/testserver"
)

// BenchmarkLogin measures POST /login with m.login.password over real HTTP
// at the default bcrypt cost (10), which dominates it.
func BenchmarkLogin(b *testing.B) {
	srv := testserver.New(b, func(c *config.Config) { c.Registration.BcryptCost = 10 })
	srv.Register(b, "alice")
	anon := srv.Anon()
	body := map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "password", "device_id": "BENCH"}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := anon.Do(b, http.MethodPost, "login", body); res.Status != 200 {
			b.Fatalf("login: %d %s", res.Status, res.Body)
		}
	}
}

// BenchmarkWhoami measures an authenticated request: token lookup plus handler.
func BenchmarkWhoami(b *testing.B) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if res := alice.Do(b, http.MethodGet, "account/whoami", nil); res.Status != 200 {
			b.Fatalf("whoami: %d %s", res.Status, res.Body)
		}
	}
}

// BenchmarkWhoamiParallel is BenchmarkWhoami from several goroutines.
func BenchmarkWhoamiParallel(b *testing.B) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if res := alice.Do(b, http.MethodGet, "account/whoami", nil); res.Status != 200 {
				b.Errorf("whoami: %d", res.Status)
				return
			}
		}
	})
}

// BenchmarkAuthenticate measures the access-token check alone (one indexed
// read; no HTTP).
func BenchmarkAuthenticate(b *testing.B) {
	srv := testserver.New(b)
	alice := srv.Register(b, "alice")
	auth := clientapi.NewAuthenticator(srv.HS.Store, srv.HS.Log)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := auth.Authenticate(ctx, alice.AccessToken); err != nil {
			b.Fatal(err)
		}
	}
}
