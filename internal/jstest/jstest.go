// Package jstest finds Node and the npm packages for the tests that drive
// tcpeng.wasm from JavaScript (wasm/abi/testdata/js). Only tests import it;
// unlike internal/testkit it builds for every GOOS, wasip1 included.
package jstest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// NodeScript returns the path of node and of script in dir, or skips the
// test saying what is missing: node, or one of the npm packages pkgs, which
// scripts/deps.sh installs in wasm/abi/testdata/js with npm ci.
func NodeScript(t testing.TB, dir, script string, pkgs ...string) (node, path string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: these checks need Node 18 or later")
	}
	for _, p := range pkgs {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", p, "package.json")); err != nil {
			t.Skipf("the npm package %s is not installed: run scripts/deps.sh, or npm ci in %s", p, dir)
		}
	}
	return node, filepath.Join(dir, script)
}

// Output runs cmd, a node script, and returns what it wrote to stdout and to
// stderr; if the script fails, the test fails with its stderr.
func Output(t testing.TB, cmd *exec.Cmd) (stdout, stderr []byte) {
	t.Helper()
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v\n%s", err, errb.Bytes())
	}
	return out, errb.Bytes()
}
