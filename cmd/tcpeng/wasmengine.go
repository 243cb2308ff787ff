package main

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/tcpeng/tcpeng/bindings/wazero"
	"github.com/tcpeng/tcpeng/engine"
)

// The WebAssembly engine: the module wasm/guest builds (`make wasm`), run in
// wazero by bindings/wazero. The module is not built into this program (it is
// a build product of the repository, not committed): --engine wasm loads it
// from $TCPENG_WASM, or from wasm/guest/tcpeng.wasm under the current
// directory, and compiles it once per process.
const (
	wasmEnv     = "TCPENG_WASM"
	wasmDefault = "wasm/guest/tcpeng.wasm"
)

// wasmModules are the modules compiled so far, by path: each is compiled once
// per process.
var wasmModules struct {
	mu sync.Mutex
	m  map[string]*wazero.Module
}

func init() {
	engineKinds["wasm"] = engineKind{
		about: "the same engine as WebAssembly in wazero, loaded from $" + wasmEnv + " or else " + wasmDefault + ", which make wasm builds",
		new:   newWasmEngine,
	}
}

// wasmPath is the module --engine wasm loads.
func wasmPath() string {
	if p := os.Getenv(wasmEnv); p != "" {
		return p
	}
	return wasmDefault
}

func newWasmEngine(cfg engine.Config) (engine.Engine, error) {
	m, err := loadWasm(wasmPath())
	if err != nil {
		return nil, err
	}
	e, err := m.New(context.Background(), cfg)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// loadWasm returns the module at path, compiled.
func loadWasm(path string) (*wazero.Module, error) {
	wasmModules.mu.Lock()
	defer wasmModules.mu.Unlock()
	if m := wasmModules.m[path]; m != nil {
		return m, nil
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("no WebAssembly module at %s: build it with `make wasm` in the tcpeng repository, or set %s to the path of a tcpeng.wasm", path, wasmEnv)
	}
	m, err := wazero.CompileFile(context.Background(), path, nil)
	if err != nil {
		return nil, err
	}
	if wasmModules.m == nil {
		wasmModules.m = map[string]*wazero.Module{}
	}
	wasmModules.m[path] = m
	return m, nil
}
