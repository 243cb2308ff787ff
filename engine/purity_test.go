package engine_test

import (
	"go/ast"
	"go/build"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const modulePath = "github.com/tcpeng/tcpeng"

// forbidden imports for engine/ and everything under it: the core must not reach a
// clock, the network, the operating system or hidden randomness (DESIGN.md).
var forbidden = []string{"os", "net", "syscall", "time", "math/rand", "math/rand/v2", "crypto/rand", "unsafe"}

func isForbidden(path string) bool {
	for _, f := range forbidden {
		if path == f || (strings.HasPrefix(path, f+"/") && path != "net/netip") {
			return true
		}
	}
	return false
}

// enginePackages returns the directories under engine/ that hold non-test Go files,
// with those files parsed.
func enginePackages(t *testing.T, fset *token.FileSet) map[string][]*ast.File {
	t.Helper()
	pkgs := map[string][]*ast.File{}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		// Files for other platforms (checksum_wasm.go) are checked where they build.
		if ok, err := build.Default.MatchFile(filepath.Dir(path), d.Name()); err != nil || !ok {
			return err
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		pkgs[filepath.Dir(path)] = append(pkgs[filepath.Dir(path)], f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return pkgs
}

// TestPurity fails if any package under engine/ imports a forbidden package or one
// from outside the standard library and engine/, or starts a goroutine.
func TestPurity(t *testing.T) {
	fset := token.NewFileSet()
	for _, files := range enginePackages(t, fset) {
		for _, f := range files {
			for _, imp := range f.Imports {
				path, _ := strconv.Unquote(imp.Path.Value)
				first, _, _ := strings.Cut(path, "/")
				switch {
				case isForbidden(path):
					t.Errorf("%s imports %q: engine/ must stay pure (no clock, OS, network or hidden randomness)", fset.Position(imp.Pos()), path)
				case strings.Contains(first, ".") && !strings.HasPrefix(path, modulePath+"/engine"):
					t.Errorf("%s imports %q: engine/ may import only the standard library and engine/", fset.Position(imp.Pos()), path)
				}
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if g, ok := n.(*ast.GoStmt); ok {
					t.Errorf("%s: go statement: engine/ must not start goroutines", fset.Position(g.Pos()))
				}
				return true
			})
		}
	}
}

// TestPurityCatchesViolations checks the guard against a package that breaks every rule.
func TestPurityCatchesViolations(t *testing.T) {
	for _, p := range []string{"os", "net", "net/http", "syscall", "time", "math/rand", "math/rand/v2", "crypto/rand", "unsafe", "os/exec"} {
		if !isForbidden(p) {
			t.Errorf("isForbidden(%q) = false", p)
		}
	}
	for _, p := range []string{"net/netip", "encoding/binary", "math/bits", "errors", "timezone"} {
		if isForbidden(p) {
			t.Errorf("isForbidden(%q) = true", p)
		}
	}
}

// TestNoSeqOrderedComparison type-checks every package under engine/ and fails on
// any <, <=, > or >= whose operands are wire.Seq: sequence numbers wrap, and only
// the methods of wire.Seq compare them correctly (RFC 9293 §3.4).
func TestNoSeqOrderedComparison(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks engine/ from source")
	}
	fset := token.NewFileSet()
	pkgs := enginePackages(t, fset)
	dirs := make([]string, 0, len(pkgs))
	for d := range pkgs {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	// Type-check in dependency order through an importer that resolves engine/
	// packages to the ones checked here and the standard library from source.
	checked := map[string]*types.Package{}
	std := importer.ForCompiler(fset, "source", nil)
	var imp importerFunc
	var check func(dir string) *types.Package
	imp = func(path string) (*types.Package, error) {
		if rel, ok := strings.CutPrefix(path, modulePath+"/"); ok {
			return check(filepath.FromSlash(strings.TrimPrefix(rel, "engine/"))), nil
		}
		return std.Import(path)
	}
	check = func(dir string) *types.Package {
		if p, ok := checked[dir]; ok {
			return p
		}
		info := &types.Info{Types: map[ast.Expr]types.TypeAndValue{}}
		conf := types.Config{Importer: imp, Error: func(err error) { t.Error(err) }}
		p, _ := conf.Check(dir, fset, pkgs[dir], info)
		checked[dir] = p
		for _, f := range pkgs[dir] {
			ast.Inspect(f, func(n ast.Node) bool {
				b, ok := n.(*ast.BinaryExpr)
				if !ok {
					return true
				}
				switch b.Op {
				case token.LSS, token.LEQ, token.GTR, token.GEQ:
				default:
					return true
				}
				for _, x := range []ast.Expr{b.X, b.Y} {
					if tv, ok := info.Types[x]; ok && isSeq(tv.Type) {
						t.Errorf("%s: ordered comparison of wire.Seq with %s; use LessThan, GreaterEq, InWindow...", fset.Position(b.Pos()), b.Op)
					}
				}
				return true
			})
		}
		return p
	}
	for _, d := range dirs {
		check(d)
	}
	if _, ok := checked["wire"]; !ok {
		t.Fatal("engine/wire was not type-checked")
	}
	if _, err := os.Stat("wire/seq.go"); err != nil {
		t.Fatal(err)
	}
}

func isSeq(t types.Type) bool {
	n, ok := t.(*types.Named)
	return ok && n.Obj().Name() == "Seq" && n.Obj().Pkg() != nil && n.Obj().Pkg().Path() == "wire"
}

type importerFunc func(path string) (*types.Package, error)

func (f importerFunc) Import(path string) (*types.Package, error) { return f(path) }
