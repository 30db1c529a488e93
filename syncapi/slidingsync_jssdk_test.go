package syncapi_test

import (
	"bufio"
	"context"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/internal/testserver"
)

// TestSlidingSyncMatrixJSSDK runs matrix-js-sdk's sliding sync client
// (SlidingSync + SlidingSyncSdk, testdata/jssdk/client.mjs) against a
// Parley over real HTTP: it must render a room (name, timeline, list count)
// from the first responses and then receive a live message.
//
// It needs node and the pinned matrix-js-sdk (npm ci --prefix
// syncapi/testdata/jssdk). Without them it skips, except when CI is set.
func TestSlidingSyncMatrixJSSDK(t *testing.T) {
	dir, _ := filepath.Abs("testdata/jssdk")
	node, err := exec.LookPath("node")
	_, modErr := os.Stat(filepath.Join(dir, "node_modules", "matrix-js-sdk"))
	if err != nil || modErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs node and npm ci --prefix syncapi/testdata/jssdk (node: %v, modules: %v)", err, modErr)
		}
		t.Skip("matrix-js-sdk not installed: npm ci --prefix syncapi/testdata/jssdk")
	}
	srv := testserver.New(t)
	alice := srv.Register(t, "alice")
	bob := srv.Register(t, "bob")
	room := createRoom(t, alice, map[string]any{"name": "js room", "preset": "public_chat"})
	createRoom(t, alice, map[string]any{"name": "other"})
	bob.MustDo(t, http.MethodPost, testserver.Sprintf("join/%s", room), map[string]any{})
	send(t, bob, room, "before the client started")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "client.mjs")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"PARLEY_URL="+srv.URL, "PARLEY_TOKEN="+alice.AccessToken, "PARLEY_USER="+string(alice.UserID),
		"PARLEY_DEVICE="+string(alice.DeviceID), "PARLEY_ROOM="+room, "PARLEY_ROOM_NAME=js room",
		"PARLEY_FIRST=before the client started", "PARLEY_LIVE=live message", "PARLEY_COUNT=2")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := bufio.NewScanner(out)
	sent := false
	for lines.Scan() {
		line := lines.Text()
		t.Log("js:", line)
		switch {
		case strings.HasPrefix(line, "ready") && !sent:
			sent = true
			send(t, bob, room, "live message")
		case strings.HasPrefix(line, "done"):
			if !sent || !strings.Contains(line, `"members":2`) {
				t.Fatalf("unexpected end state (live message sent: %v): %s", sent, line)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("client exited: %v: %s", err, stderr.String())
			}
			return
		case strings.HasPrefix(line, "error"):
			t.Fatalf("js client: %s\n%s", line, stderr.String())
		}
	}
	_ = cmd.Wait()
	t.Fatalf("js client ended without finishing (sent live message: %v): %s", sent, stderr.String())
}
