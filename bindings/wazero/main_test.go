package wazero

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tcpeng/tcpeng/wasm/wasmbuild"
)

var wasmFlag = flag.String("wasm", "", "use this tcpeng.wasm instead of building one for the test run")

// wasmPath is the module the tests use: built fresh by TestMain from the
// working tree (once per test run), or the one -wasm names.
var wasmPath string

func TestMain(m *testing.M) {
	flag.Parse()
	if *wasmFlag != "" {
		wasmPath = *wasmFlag
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "tcpeng-wasm-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	wasmPath = filepath.Join(dir, "tcpeng.wasm")
	if err := wasmbuild.Build(context.Background(), "", wasmPath); err != nil {
		fmt.Fprintln(os.Stderr, "build the module for the tests:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	moduleOnce  sync.Once
	moduleBytes []byte
	sharedMod   *Module
	moduleErr   error
)

// testModule returns the module compiled once for the test binary.
func testModule(t testing.TB) *Module {
	t.Helper()
	moduleOnce.Do(func() {
		moduleBytes, moduleErr = os.ReadFile(wasmPath)
		if moduleErr == nil {
			sharedMod, moduleErr = Compile(context.Background(), moduleBytes, nil)
		}
	})
	if moduleErr != nil {
		t.Fatal(moduleErr)
	}
	return sharedMod
}
