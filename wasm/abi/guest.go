package abi

import (
	"runtime"

	"github.com/tcpeng/tcpeng/engine"
)

// Guest is the module's side of the ABI: it owns the engine and the buffers,
// decodes requests, runs the engine and encodes responses. wasm/guest wraps it
// in the exports; tests drive it natively.
//
// Memory: the request buffer is the Guest's, handed out by Alloc and reused
// until a larger one is asked for; the response is the Guest's too. A Step's
// response stays valid through the next Step (two buffers are used in turn, as
// the engine does with its frames, so a host may send one step's frames while
// the next runs); the other responses until the next call. Every buffer is
// bounded (MaxRequest, the engine's OutputBuffer, MaxReadTotal).
type Guest struct {
	stack *engine.Stack
	req   []byte
	resp  []byte    // Init, Fault, and refused Steps
	steps [2][]byte // Step responses, in turn
	turn  int
	reads []byte // the buffers of one step's OpRead commands
	in    engine.Input
	out   engine.Output
}

// minRequest is the smallest request buffer Alloc hands out.
const minRequest = 64 << 10

// Alloc returns the request buffer, grown to at least n bytes, or nil when n
// is negative or over MaxRequest. The buffer stays the same until a call asks
// for more than its length.
func (g *Guest) Alloc(n int) []byte {
	if n < 0 || n > MaxRequest {
		return nil
	}
	if n > len(g.req) || g.req == nil {
		size := max(minRequest, 2*len(g.req))
		for size < n {
			size *= 2
		}
		g.req = make([]byte, min(size, MaxRequest))
	}
	return g.req
}

// Request returns the current request buffer (nil before the first Alloc).
func (g *Guest) Request() []byte { return g.req }

// Init decodes an init message, replaces the engine by a new one with that
// Config, and answers [status, message]. After a failed Init there is no
// engine.
func (g *Guest) Init(req []byte) (resp []byte) {
	g.stack = nil
	defer func() {
		if r := recover(); r != nil {
			resp = g.panicked(r)
		}
	}()
	cfg, err := DecodeConfig(req)
	if err != nil {
		return g.status(StatusMalformed, err.Error())
	}
	s, err := engine.New(cfg)
	if err != nil {
		return g.status(StatusBadConfig, err.Error())
	}
	g.stack = s
	return g.status(StatusOK, "")
}

// Step decodes a step message, runs the engine's Step on it and answers with
// its output.
func (g *Guest) Step(req []byte) (resp []byte) {
	if g.stack == nil {
		return g.status(StatusNoEngine, "step before a successful init: call init with a Config first")
	}
	defer func() {
		if r := recover(); r != nil {
			resp = g.panicked(r)
		}
	}()
	if err := DecodeRequest(req, &g.in); err != nil {
		g.out.Frames, g.out.Results, g.out.Events = g.out.Frames[:0], g.out.Results[:0], g.out.Events[:0]
		g.out.Deadline = g.stack.PollDeadline()
		g.resp = AppendResponse(g.resp[:0], StatusMalformed, err.Error(), &g.out, nil)
		return g.resp
	}
	g.giveReadBuffers()
	g.stack.Step(&g.in, &g.out)
	g.turn ^= 1
	g.steps[g.turn] = AppendResponse(g.steps[g.turn][:0], StatusOK, "", &g.out, g.in.Commands)
	return g.steps[g.turn]
}

// giveReadBuffers hands each OpRead a buffer of its N bytes from one arena, N
// clipped so that the step's reads stay within MaxReadTotal.
func (g *Guest) giveReadBuffers() {
	total := 0
	for i := range g.in.Commands {
		c := &g.in.Commands[i]
		if c.Op == engine.OpRead {
			c.N = min(max(c.N, 0), MaxReadTotal-total)
			total += c.N
		}
	}
	if total > len(g.reads) {
		g.reads = make([]byte, min(max(total, 2*len(g.reads)), MaxReadTotal))
	}
	off := 0
	for i := range g.in.Commands {
		c := &g.in.Commands[i]
		if c.Op == engine.OpRead {
			c.Data = g.reads[off : off+c.N : off+c.N]
			off += c.N
			c.N = 0
		}
	}
}

// Fault answers the debug_fault export for the kinds a Go program can carry
// out portably: DebugPanic panics inside the call, and the panic is recovered
// like any other (StatusPanic, the engine discarded). DebugTrap is the guest
// program's to carry out; any other kind is malformed.
func (g *Guest) Fault(kind int) (resp []byte) {
	defer func() {
		if r := recover(); r != nil {
			resp = g.panicked(r)
		}
	}()
	if kind == DebugPanic {
		panic("debug_fault asked for a panic")
	}
	return g.status(StatusMalformed, "debug_fault kind "+itoa(kind)+" is unknown: use 1 (panic) or 2 (trap)")
}

// Discard drops the engine (a host that saw a trap instantiates a new module
// instead; this is for tests).
func (g *Guest) Discard() { g.stack = nil }

func (g *Guest) status(s Status, msg string) []byte {
	g.resp = AppendStatus(g.resp[:0], s, msg)
	return g.resp
}

// panicked turns a recovered panic into a StatusPanic response. The engine may
// be half-way through a change, so it is discarded: the host initializes a new
// one and reports every connection aborted (README.md, "Errors"). Each export
// recovers in a closure of its own: a deferred call that takes the result's
// address costs a microsecond in Go's WebAssembly, an open-coded defer little.
func (g *Guest) panicked(r any) []byte {
	g.stack = nil
	g.in.Frames, g.in.Commands = g.in.Frames[:0], g.in.Commands[:0]
	return g.status(StatusPanic, "guest panic: "+panicText(r))
}

// panicText formats a recovered value without fmt.
func panicText(r any) string {
	switch v := r.(type) {
	case string:
		return v
	case runtime.Error:
		return v.Error()
	case error:
		return v.Error()
	}
	return "a value that is not a string or an error"
}
