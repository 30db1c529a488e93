package sqlstore

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestPlaceholderOrder guards against a SQLite pitfall: "$N" is a named
// parameter there, numbered by order of first appearance, not by N. A query
// such as `UPDATE t SET a = $2 WHERE b = $1` therefore binds its arguments
// swapped on SQLite while working on PostgreSQL. Every SQL literal in this
// package must introduce $1, $2, ... in increasing order.
func TestPlaceholderOrder(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`\$(\d+)`)
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			var order []int
			for _, m := range re.FindAllStringSubmatch(lit.Value, -1) {
				n, _ := strconv.Atoi(m[1])
				if !slices.Contains(order, n) {
					order = append(order, n)
				}
			}
			if !slices.IsSorted(order) {
				t.Errorf("%s: placeholders first appear in the order %v; renumber them in order of appearance", fset.Position(lit.Pos()), order)
			}
			return true
		})
	}
}
