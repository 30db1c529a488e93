//go:build !goolm

package federation_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestEndToEndEncryptionAcrossServersGoolm runs the goolm-tagged cross-server
// E2EE test (e2e_goolm_test.go) in a child `go test -tags goolm`, as the key
// server's tests do: mautrix's crypto needs libolm (cgo) or the goolm tag.
func TestEndToEndEncryptionAcrossServersGoolm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package again with -tags goolm")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "test", "-count=1", "-tags", "goolm", "-run", "^TestEndToEndEncryptionAcrossServers$", ".")
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test -tags goolm -run TestEndToEndEncryptionAcrossServers: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
