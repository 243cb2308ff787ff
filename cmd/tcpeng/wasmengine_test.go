package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tcpeng/tcpeng/wasm/wasmbuild"
)

var testWasm struct {
	once sync.Once
	dir  string
	err  error
}

// useWasm points --engine wasm at a module built from the working tree, once
// per test binary (TCPENG_WASM, for the rest of the test).
func useWasm(t *testing.T) {
	t.Helper()
	testWasm.once.Do(func() {
		testWasm.dir, testWasm.err = os.MkdirTemp("", "tcpeng-cli-wasm-")
		if testWasm.err == nil {
			testWasm.err = wasmbuild.Build(context.Background(), "", filepath.Join(testWasm.dir, "tcpeng.wasm"))
		}
	})
	if testWasm.err != nil {
		t.Fatalf("build the WebAssembly module: %v", testWasm.err)
	}
	t.Setenv(wasmEnv, filepath.Join(testWasm.dir, "tcpeng.wasm"))
}

// The demo on the WebAssembly engine prints, segment by segment, what it
// prints on the native one (same seeds, same options), with loss and 256 KiB
// each way: only the first line, which names the engine, differs.
func TestDemoWasm(t *testing.T) {
	useWasm(t)
	for _, args := range [][]string{
		{"demo"},
		{"demo", "--bytes", "262144", "--loss", "0.05", "--seed", "3"},
	} {
		codeN, outN, errN := tcpeng(args...)
		codeW, outW, errW := tcpeng(append(args, "--engine", "wasm")...)
		if codeN != 0 || codeW != 0 || errN != "" || errW != "" {
			t.Fatalf("%q: native exit %d %q, wasm exit %d %q", args, codeN, errN, codeW, errW)
		}
		if n, w := strings.SplitN(outN, "\n", 2), strings.SplitN(outW, "\n", 2); len(n) != 2 || len(w) != 2 || n[1] != w[1] {
			t.Fatalf("%q: the wasm engine's trace differs from the native one's\nnative:\n%s\nwasm:\n%s", args, outN, outW)
		}
		if !strings.Contains(outW, "between two wasm engines") || !strings.Contains(outW, "  OK ") {
			t.Fatalf("%q: %s", args, outW)
		}
	}
}

// Without its module, --engine wasm says where it looked and how to build it,
// in one line, and exits 1.
func TestDemoWasmMissing(t *testing.T) {
	t.Setenv(wasmEnv, "/nonexistent/tcpeng.wasm")
	code, out, errs := tcpeng("demo", "--engine", "wasm")
	want := "tcpeng demo: starting the wasm engine of A: no WebAssembly module at /nonexistent/tcpeng.wasm: build it with `make wasm` in the tcpeng repository, or set TCPENG_WASM to the path of a tcpeng.wasm\n"
	if code != exitFail || out != "" || errs != want {
		t.Fatalf("exit %d, stdout %q, stderr %q; want exit %d, stderr %q", code, out, errs, exitFail, want)
	}
}
