//go:build wasip1

package main

import (
	"runtime"
	"unsafe"

	"github.com/tcpeng/tcpeng/wasm/abi"
)

// g is the module's one engine and its buffers.
var g abi.Guest

// Each export recovers a panic of its own (abi.Guest recovers the engine's):
// no panic becomes a trap.

//go:wasmexport abi_version
func abiVersion() uint32 { return abi.Version }

// alloc returns the address of the request buffer, grown to at least n bytes,
// or 0 when n is over abi.MaxRequest.
//
//go:wasmexport alloc
func alloc(n uint32) (ptr uint32) {
	defer func() {
		if r := recover(); r != nil {
			ptr = 0
		}
	}()
	b := g.Alloc(int(n))
	if b == nil {
		return 0
	}
	return addr(b)
}

//go:wasmexport init
func initExport(ptr, n uint32) uint64 {
	return serve(ptr, n, func(req []byte) []byte { return g.Init(req) })
}

//go:wasmexport step
func step(ptr, n uint32) uint64 {
	// A function literal that captures nothing is static: no allocation per
	// call (a method value g.Step would be one).
	return serve(ptr, n, func(req []byte) []byte { return g.Step(req) })
}

// serve answers the request at ptr (n bytes) with f, recovering a panic into
// the panicked status.
func serve(ptr, n uint32, f func(req []byte) []byte) (resp uint64) {
	defer func() {
		if r := recover(); r != nil {
			resp = panicked()
		}
	}()
	req, ok := request(ptr, n)
	if !ok {
		return respond(abi.AppendStatus(nil, abi.StatusMalformed, badRequest))
	}
	return respond(f(req))
}

// debugFault makes the module fail on purpose, for hosts' tests: kind 1
// panics (recovered: StatusPanic), kind 2 traps (the unreachable instruction).
//
//go:wasmexport debug_fault
func debugFault(kind uint32) (resp uint64) {
	if kind == abi.DebugTrap {
		runtime.Breakpoint() // UNDEF: the wasm unreachable instruction
	}
	defer func() {
		if r := recover(); r != nil {
			resp = panicked()
		}
	}()
	return respond(g.Fault(int(kind)))
}

const badRequest = "the request must lie within the buffer alloc returned: call alloc, write the request there, pass its address and length"

// request returns the request the host placed at ptr: it must be the buffer
// alloc returned. The guest reads no other address the host names.
func request(ptr, n uint32) ([]byte, bool) {
	b := g.Request()
	if len(b) == 0 || ptr != addr(b) || int(n) > len(b) {
		return nil, false
	}
	return b[:n], true
}

func addr(b []byte) uint32 { return uint32(uintptr(unsafe.Pointer(unsafe.SliceData(b)))) }

// respond packs a response's address and length; it stays where it is until
// the next call.
func respond(b []byte) uint64 { return abi.Pack(addr(b), uint32(len(b))) }

// panicResp is the answer of an export whose own code panicked.
var panicResp []byte

// panicked answers a panic of an export's own code (abi.Guest recovers the
// engine's). The recovering closures are open-coded defers: a deferred call
// that takes the result's address costs a microsecond in Go's WebAssembly.
func panicked() uint64 {
	panicResp = abi.AppendStatus(panicResp[:0], abi.StatusPanic, "guest panic in an export")
	g.Discard()
	return respond(panicResp)
}
