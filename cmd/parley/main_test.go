package main

import (
	"bytes"
	"database/sql"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3"

	"parley/internal/config"
)

// buildParley compiles this command once per test binary run.
var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func parleyBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "parley-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "parley")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startParley runs the binary in dir and waits until it answers.
func startParley(t *testing.T, dir string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	addr := freeAddr(t)
	cmd := exec.Command(parleyBinary(t), append(args, "--listen", addr)...)
	cmd.Dir = dir
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		res, err := http.Get(base + "/_matrix/client/versions")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return cmd, base
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("parley did not start: %s", logs.String())
	return nil, ""
}

func post(base, path string, body any) (int, map[string]any, error) {
	b, _ := json.Marshal(body)
	res, err := http.Post(base+path, "application/json", bytes.NewReader(b))
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(res.Body).Decode(&out)
	return res.StatusCode, out, nil
}

func login(base, user, password string) (int, error) {
	code, _, err := post(base, "/_matrix/client/v3/login", map[string]any{
		"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": user}, "password": password,
	})
	return code, err
}

// TestNoConfigStartAndKill9 starts the server with no configuration in an
// empty directory, registers users concurrently, kills it with SIGKILL in the
// middle, and checks the database is intact and every acknowledged user can
// log in after a restart.
func TestNoConfigStartAndKill9(t *testing.T) {
	dir := t.TempDir()
	cmd, base := startParley(t, dir)

	var (
		mu   sync.Mutex
		ok   []string
		stop atomic.Bool
		n    atomic.Int64
		wg   sync.WaitGroup
	)
	for w := 0; w < 6; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				user := fmt.Sprintf("user%d", n.Add(1))
				code, _, err := post(base, "/_matrix/client/v3/register", map[string]any{
					"username": user, "password": "pw-" + user, "auth": map[string]any{"type": "m.login.dummy"},
				})
				if err == nil && code == 200 {
					mu.Lock()
					ok = append(ok, user)
					mu.Unlock()
				}
			}
		}()
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		done := len(ok) >= 20
		mu.Unlock()
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Kill while registrations are in flight.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	stop.Store(true)
	wg.Wait()
	if len(ok) == 0 {
		t.Fatal("no registration succeeded")
	}

	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, "data", "parley.db"))
	if err != nil {
		t.Fatal(err)
	}
	var integrity string
	if err := db.QueryRow("PRAGMA integrity_check").Scan(&integrity); err != nil || integrity != "ok" {
		t.Fatalf("integrity_check: %q %v", integrity, err)
	}
	db.Close()

	_, base = startParley(t, dir)
	for _, user := range ok {
		if code, err := login(base, user, "pw-"+user); err != nil || code != 200 {
			t.Fatalf("%s (registered before the kill) cannot log in: %d %v", user, code, err)
		}
	}
	t.Logf("%d registrations acknowledged before SIGKILL, all intact", len(ok))
}

// TestGenerateConfigAndRegisterUser runs generate-config, serves with the
// result, and creates users with register-user both ways.
func TestGenerateConfigAndRegisterUser(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "parley.yaml")
	out, err := exec.Command(parleyBinary(t), "generate-config", "--server-name", "example.org", "-o", cfgPath).CombinedOutput()
	if err != nil {
		t.Fatalf("generate-config: %v %s", err, out)
	}
	cfg, err := config.Load(cfgPath)
	if err != nil {
		t.Fatalf("generated config does not load: %v", err)
	}
	if cfg.Registration.Enabled || !cfg.RateLimits.Enabled || len(cfg.Registration.SharedSecret) < 32 {
		t.Fatalf("generated config: %+v", cfg.Registration)
	}
	_, base := startParley(t, dir, "--config", cfgPath)
	// Registration is closed.
	if code, _, _ := post(base, "/_matrix/client/v3/register", map[string]any{"username": "x", "password": "y", "auth": map[string]any{"type": "m.login.dummy"}}); code != 403 {
		t.Fatalf("open registration: %d", code)
	}
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(parleyBinary(t), args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("parley %s: %v %s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	if out := run("register-user", "--url", base, "--shared-secret", cfg.Registration.SharedSecret, "--user", "admin", "--password", "adminpw", "--admin"); !strings.Contains(out, "@admin:example.org") {
		t.Fatalf("register-user --url: %s", out)
	}
	if out := run("register-user", "--config", cfgPath, "--user", "direct", "--password", "directpw"); !strings.Contains(out, "@direct:example.org") {
		t.Fatalf("register-user --config: %s", out)
	}
	for user, pw := range map[string]string{"admin": "adminpw", "direct": "directpw"} {
		if code, err := login(base, user, pw); err != nil || code != 200 {
			t.Fatalf("login %s: %d %v", user, code, err)
		}
	}
	bad := exec.Command(parleyBinary(t), "register-user", "--url", base, "--shared-secret", "wrong", "--user", "eve", "--password", "pw")
	if out, err := bad.CombinedOutput(); err == nil || !strings.Contains(string(out), "403") {
		t.Fatalf("wrong secret accepted: %v %s", err, out)
	}
}
