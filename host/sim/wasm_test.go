//go:build simwasm

package sim

import (
	"context"
	"flag"
	"sync"
	"testing"

	"github.com/tcpeng/tcpeng/bindings/wazero"
	"github.com/tcpeng/tcpeng/engine"
)

// With the simwasm build tag, -sim.wasm runs every test of the package on the
// WebAssembly engine (bindings/wazero) instead of the native stack: the
// simulator drives engines only through Step, so nothing else changes. The
// checks that read the native stack's counters (engine.Stack.Stats, Info) are
// skipped for it.
//
//	go generate ./wasm/guest
//	go test -tags simwasm ./host/sim -sim.wasm ../../wasm/guest/tcpeng.wasm
var flagWasm = flag.String("sim.wasm", "", "run the engines as this WebAssembly module (bindings/wazero) instead of the native stack")

var wasmModule struct {
	once sync.Once
	m    *wazero.Module
	err  error
}

func init() {
	native := newEngine
	newEngine = func(cfg engine.Config) (engine.Engine, error) {
		if *flagWasm == "" {
			return native(cfg)
		}
		wasmModule.once.Do(func() {
			wasmModule.m, wasmModule.err = wazero.CompileFile(context.Background(), *flagWasm, nil)
		})
		if wasmModule.err != nil {
			return nil, wasmModule.err
		}
		return wasmModule.m.New(context.Background(), cfg)
	}
}

// TestWasmMatchesNative: with every impairment on, the WebAssembly engine and
// the native stack produce the same frames at the same times, byte for byte
// (DESIGN.md: "For the same inputs they produce byte-identical outputs").
func TestWasmMatchesNative(t *testing.T) {
	if *flagWasm == "" {
		t.Skip("give -sim.wasm path/to/tcpeng.wasm")
	}
	nat := everything
	nat.newEngine = func(cfg engine.Config) (engine.Engine, error) { return engine.New(cfg) }
	// Also behind host/offload.Engine, with segmentation offload: the
	// engines' super-packets cross the ABI, and the frames joined for them
	// (without jitter and the rate limit, so that bursts arrive together).
	for _, off := range []bool{false, true} {
		wasm := everything
		if off {
			wasm.links = sym(Impairments{Loss: 0.03, Duplicate: 0.02, Reorder: 0.05, Corrupt: 0.01, Delay: 10 * ms})
		}
		wasm.offload = off
		nat.links, nat.offload = wasm.links, off
		hn, _, nn := frameHash(t, nat)
		hw, _, nw := frameHash(t, wasm)
		if hn != hw || nn != nw {
			t.Fatalf("offload %v: native: %d frame events, sha256 %x; WebAssembly: %d, %x", off, nn, hn[:8], nw, hw[:8])
		}
		t.Logf("offload %v: %d frame events, sha256 %x, on both engines", off, nn, hn[:8])
	}
}
