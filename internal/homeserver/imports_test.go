package homeserver

import (
	"os/exec"
	"strings"
	"testing"
)

// TestImportDirection keeps the components apart: each may use only the
// packages the architecture allows (see README, "Architecture").
func TestImportDirection(t *testing.T) {
	forbidden := map[string][]string{
		"roomserver": {"clientapi", "syncapi", "federation"},
		"clientapi":  {"federation", "syncapi"},
		"syncapi":    {"clientapi", "federation"},
		"federation": {"clientapi", "syncapi"},
		"mediaapi":   {"clientapi", "syncapi", "federation", "roomserver"},
		"appservice": {"clientapi", "syncapi", "federation"},
		"storage":    {"roomserver", "clientapi", "syncapi", "federation", "internal/homeserver", "appservice"},
		"internal":   {"clientapi", "syncapi", "federation", "roomserver", "storage", "mediaapi", "appservice"},
	}
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, "parley/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	const mod = "parley/"
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(line, " ")
		rel := strings.TrimPrefix(pkg, mod)
		top := strings.SplitN(rel, "/", 2)[0]
		if rel == "internal/homeserver" || rel == "internal/testserver" || strings.HasPrefix(rel, "cmd/") {
			continue // the composition root and test server may import everything
		}
		for _, imp := range strings.Fields(imports) {
			for _, bad := range forbidden[top] {
				if strings.HasPrefix(imp, mod+bad) {
					t.Errorf("%s imports %s (%s must not depend on %s)", pkg, imp, top, bad)
				}
			}
		}
	}
}
