//go:build !goolm

package keyserver_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// TestEndToEndEncryptionGoolm runs TestEndToEndEncryption (e2e_goolm_test.go)
// when the suite is built without the goolm tag: mautrix's crypto package
// needs either libolm (cgo, not installed) or the goolm build tag, so a plain
// `go test ./...` runs it in a child `go test -tags goolm`. With -tags goolm
// this file is left out and the test runs directly.
func TestEndToEndEncryptionGoolm(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the package again with -tags goolm")
	}
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "test", "-count=1", "-tags", "goolm", "-run", "^TestEndToEndEncryption$", ".")
	cmd.Env = os.Environ()
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go test -tags goolm -run TestEndToEndEncryption: %v\n%s", err, out)
	}
	t.Logf("%s", out)
}
