package wazero

import (
	"context"
	"slices"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/wasm/abi"
)

// Engine is the tcpeng engine running in one instance of the module. It
// implements engine.Engine with the native Stack's semantics. Like a Stack, it
// is driven from one goroutine at a time.
//
// Output.Frames point into the instance's memory and stay valid as the native
// Stack's do: through the next Step, until the one after it starts (or
// DebugFault, or Close).
//
// When the guest panics or traps, the Engine starts a fresh engine with the
// same Config (a new instance for a trap) and reports, in the Output of the
// Step that failed (or of the next Step): EventFault with ErrAborted, then
// EventError with ErrAborted for each connection and listener the application
// held, in increasing ID order. The commands of the failed Step get ErrAborted
// and their IDs none. The IDs reported stay reserved until the application
// Closes or Aborts them (OK); any other command on them gets ErrAborted, and
// the new engine's IDs never collide with them. (EventError, not EventReset,
// which means that the peer sent a RST: here the state was lost on this side;
// wasm/abi/README.md, "Reporting a restart".)
type Engine struct {
	m         *Module
	ownModule bool
	cfg       engine.Config
	ctx       context.Context
	inst      *instance // nil after a failed restart: the next Step retries
	stack     []uint64
	enc       []byte
	closed    bool

	held    map[engine.ConnID]bool // IDs the application holds (true: a listener)
	xl      *translator            // set at the first restart
	pending []engine.Event         // faults to report at the next Step

	// Scratch of prepare, kept between steps.
	gin   engine.Input
	slot  []int32 // per command: index into the guest's results, or -1-index into local
	local []engine.Result
	gres  []engine.Result

	restarts  int
	lastFault string
	dropped   uint64
}

// start instantiates the first instance.
func (e *Engine) start(ctx context.Context) error {
	inst, err := e.instantiate(ctx)
	if err != nil {
		return err
	}
	e.inst = inst
	e.held = map[engine.ConnID]bool{}
	return nil
}

// Restarts returns how many times the engine was restarted after a guest panic
// or trap.
func (e *Engine) Restarts() int { return e.restarts }

// LastFault returns the message of the last fault: a malformed message, a
// guest panic, a trap. Empty if none.
func (e *Engine) LastFault() string { return e.lastFault }

// DroppedFrames returns how many input frames were dropped because one Step
// carried more than the ABI's limits (abi.MaxFrames frames, or half of
// abi.MaxRequest bytes of frames), as a full NIC queue would.
func (e *Engine) DroppedFrames() uint64 { return e.dropped }

// Close releases the instance (and the module, for an Engine made by New or
// NewFromFile). Step after Close answers every command with ErrClosed.
func (e *Engine) Close() error {
	if e.closed {
		return nil
	}
	e.closed = true
	var err error
	if e.inst != nil {
		err = e.inst.mod.Close(e.ctx)
		e.inst = nil
	}
	if e.ownModule {
		if err2 := e.m.Close(e.ctx); err == nil {
			err = err2
		}
	}
	return err
}

var _ engine.Engine = (*Engine)(nil)

// Step runs one batch through the guest: see engine.Stack.Step.
func (e *Engine) Step(in *engine.Input, out *engine.Output) {
	out.Frames, out.Results, out.Events = out.Frames[:0], out.Results[:0], out.Events[:0]
	out.Deadline = engine.Never
	switch {
	case e.closed:
		e.answerAll(in, out, engine.ErrClosed)
		return
	case e.inst == nil:
		if !e.restart(true, "") {
			e.answerAll(in, out, engine.ErrAborted)
			e.flushPending(out)
			return
		}
	}
	gin, mapped := e.prepare(in)
	st, fault := e.exchange(gin, out)
	e.conclude(in, out, mapped, st, fault)
}

// conclude turns the guest's answer into the Output of the application's
// commands: a restart after a panic or a trap, ErrInvalid for a malformed
// message, else the results in the application's order and its IDs.
func (e *Engine) conclude(in *engine.Input, out *engine.Output, mapped bool, st abi.Status, fault string) {
	switch {
	case fault != "" || st == abi.StatusPanic || st == abi.StatusNoEngine || st == abi.StatusBadConfig:
		// The engine is gone or cannot be trusted: a new one, every
		// connection aborted (a trap needs a new instance).
		switch {
		case fault != "":
		case st == abi.StatusPanic:
			fault = e.lastFault // "guest panic: ..."
		default:
			fault = "guest " + st.String() + ": " + e.lastFault
		}
		out.Frames, out.Events = out.Frames[:0], out.Events[:0]
		e.restart(st == abi.StatusOK, fault)
		e.answerGuestCommands(in, out, mapped, engine.ErrAborted)
		out.Deadline = engine.Never
		e.flushPending(out)
		return
	case st == abi.StatusMalformed:
		e.answerGuestCommands(in, out, mapped, engine.ErrInvalid)
		out.Frames = out.Frames[:0]
		e.pending = append(e.pending, engine.Event{Kind: engine.EventFault, Err: engine.ErrInvalid})
		e.flushPending(out)
		return
	}
	if mapped {
		e.merge(in, out)
	}
	e.track(in, out)
	if len(e.pending) > 0 {
		e.flushPending(out)
	}
}

// exchange encodes gin into the guest's request buffer, calls step, and
// decodes the response into out. fault is non-empty when the instance failed
// (a trap, or an answer that is not a response): it must be replaced.
func (e *Engine) exchange(gin *engine.Input, out *engine.Output) (st abi.Status, fault string) {
	size := abi.RequestSize(gin)
	ptr, ok := e.inst.request(e.ctx, e.stack, size)
	if !ok {
		return abi.StatusOK, "alloc refused a request of " + itoa(size) + " bytes"
	}
	view, ok := e.inst.mem.Read(ptr, uint32(size))
	if !ok {
		return abi.StatusOK, "the request buffer lies outside the module's memory"
	}
	req := abi.AppendRequest(view[:0], gin)
	return e.callStep(ptr, len(req), gin.Commands, out)
}

// callStep calls step on the n-byte request at ptr and decodes the response.
func (e *Engine) callStep(ptr uint32, n int, cmds []engine.Command, out *engine.Output) (st abi.Status, fault string) {
	inst, stack := e.inst, e.stack
	stack[0], stack[1] = uint64(ptr), uint64(n)
	if err := inst.step.CallWithStack(e.ctx, stack); err != nil {
		return abi.StatusOK, "trap: " + err.Error()
	}
	resp, ok := inst.response(stack[0])
	if !ok {
		return abi.StatusOK, "step answered outside the module's memory"
	}
	r, err := abi.DecodeResponse(resp, out, cmds)
	if err != nil {
		return abi.StatusOK, "step answered a malformed response: " + err.Error()
	}
	if r.Status != abi.StatusOK {
		e.lastFault = string(r.Message)
	}
	return r.Status, ""
}

// answerAll gives every command the same error.
func (e *Engine) answerAll(in *engine.Input, out *engine.Output, err engine.Error) {
	out.Results = out.Results[:0]
	for range in.Commands {
		out.Results = append(out.Results, engine.Result{Err: err})
	}
}

// answerGuestCommands gives err to every command the guest was to execute,
// and their local answers to the others (mapped: see prepare).
func (e *Engine) answerGuestCommands(in *engine.Input, out *engine.Output, mapped bool, err engine.Error) {
	e.answerAll(in, out, err)
	if !mapped {
		return
	}
	for i, s := range e.slot {
		if s < 0 {
			out.Results[i] = e.local[-1-s]
		}
	}
}

func (e *Engine) flushPending(out *engine.Output) {
	if len(e.pending) == 0 {
		return
	}
	out.Events = slices.Insert(out.Events, 0, e.pending...)
	e.pending = e.pending[:0]
}

// prepare returns the Input the guest gets: in itself, or (mapped) a copy that
// translates IDs after a restart, answers what it can locally, and fits the
// ABI's limits.
func (e *Engine) prepare(in *engine.Input) (gin *engine.Input, mapped bool) {
	size := abi.RequestSize(in)
	if e.xl == nil && size <= abi.MaxRequest && len(in.Frames) <= abi.MaxFrames && len(in.Commands) <= abi.MaxCommands {
		return in, false
	}
	g := &e.gin
	g.Now = in.Now
	g.Frames, g.Commands = g.Frames[:0], g.Commands[:0]
	e.slot, e.local = e.slot[:0], e.local[:0]

	// Frames past the limits are dropped, as a full NIC queue drops them.
	budget := abi.MaxRequest/2 - abi.RequestOverhead
	for _, f := range in.Frames {
		if len(g.Frames) == abi.MaxFrames || abi.FrameOverhead+len(f) > budget {
			e.dropped++
			continue
		}
		budget -= abi.FrameOverhead + len(f)
		g.Frames = append(g.Frames, f)
	}
	// Write data past the limit is not taken: a short write.
	budget = abi.MaxRequest/2 - min(len(in.Commands), abi.MaxCommands)*abi.CommandOverhead
	for i := range in.Commands {
		c := in.Commands[i]
		if len(g.Commands) == abi.MaxCommands {
			e.answerLocal(engine.Result{Err: engine.ErrLimit})
			continue
		}
		if e.xl != nil && usesConn(c.Op) && c.Conn != 0 {
			id, r, ok := e.xl.toGuestID(c.Op, c.Conn)
			if !ok {
				e.answerLocal(r)
				continue
			}
			c.Conn = id
		}
		if c.Op != engine.OpRead && len(c.Data) > budget {
			c.Data = c.Data[:max(budget, 0)]
		}
		if c.Op != engine.OpRead {
			budget -= len(c.Data)
		}
		e.slot = append(e.slot, int32(len(g.Commands)))
		g.Commands = append(g.Commands, c)
	}
	return g, true
}

func (e *Engine) answerLocal(r engine.Result) {
	e.slot = append(e.slot, int32(-1-len(e.local)))
	e.local = append(e.local, r)
}

// usesConn reports whether op acts on Command.Conn.
func usesConn(op engine.Op) bool {
	switch op {
	case engine.OpAccept, engine.OpWrite, engine.OpRead, engine.OpShutdown,
		engine.OpClose, engine.OpAbort, engine.OpSetOption:
		return true
	}
	return false
}

// merge puts the guest's results and the local ones back in the order of the
// application's commands, and translates IDs.
func (e *Engine) merge(in *engine.Input, out *engine.Output) {
	e.gres = append(e.gres[:0], out.Results...)
	out.Results = out.Results[:0]
	for i := range in.Commands {
		s := e.slot[i]
		if s < 0 {
			out.Results = append(out.Results, e.local[-1-s])
			continue
		}
		r := e.gres[s]
		if e.xl != nil && r.Err == engine.OK && r.Conn != 0 {
			switch in.Commands[i].Op {
			case engine.OpListen, engine.OpDial, engine.OpAccept:
				r.Conn = e.xl.newID(r.Conn)
			}
		}
		out.Results = append(out.Results, r)
	}
	if e.xl != nil {
		for i := range out.Events {
			ev := &out.Events[i]
			if ev.Conn != 0 {
				id := ev.Conn
				ev.Conn = e.xl.appID(id)
				if ev.Kind == engine.EventClosed {
					e.xl.closed(id)
				}
			}
		}
	}
}

// track follows the IDs the application holds, to report them if the engine
// is lost.
func (e *Engine) track(in *engine.Input, out *engine.Output) {
	for i := range in.Commands {
		c, r := &in.Commands[i], &out.Results[i]
		if r.Err != engine.OK {
			continue
		}
		switch c.Op {
		case engine.OpListen:
			e.held[r.Conn] = true
		case engine.OpDial, engine.OpAccept:
			e.held[r.Conn] = false
		case engine.OpClose, engine.OpAbort:
			lis, ok := e.held[c.Conn]
			if !ok {
				continue
			}
			delete(e.held, c.Conn)
			if e.xl != nil {
				e.xl.release(c.Conn, lis)
			}
		}
	}
}

// restart replaces a failed engine: a new instance when reinstantiate (or when
// initializing the old one again fails), else the same instance initialized
// again. It queues the fault events and reserves the IDs the application
// held. It reports whether an engine runs now.
func (e *Engine) restart(reinstantiate bool, fault string) bool {
	if fault != "" {
		e.lastFault = fault
		e.restarts++
		e.pending = append(e.pending, engine.Event{Kind: engine.EventFault, Err: engine.ErrAborted})
		ids := make([]engine.ConnID, 0, len(e.held))
		for id := range e.held {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		if e.xl == nil {
			e.xl = newTranslator()
		}
		for _, id := range ids {
			e.pending = append(e.pending, engine.Event{Kind: engine.EventError, Conn: id, Err: engine.ErrAborted})
			e.xl.dead[id] = struct{}{}
		}
		clear(e.held)
		e.xl.reset()
	}
	if !reinstantiate && e.inst != nil && e.reinit() {
		return true
	}
	if e.inst != nil {
		e.inst.mod.Close(e.ctx)
		e.inst = nil
	}
	inst, err := e.instantiate(e.ctx)
	if err != nil {
		e.lastFault = err.Error()
		return false
	}
	e.inst = inst
	return true
}

// reinit initializes the instance's engine again with the Config.
func (e *Engine) reinit() bool {
	inst, stack := e.inst, e.stack
	req := abi.AppendConfig(e.enc[:0], &e.cfg)
	e.enc = req
	ptr, ok := inst.request(e.ctx, stack, len(req))
	if !ok || !inst.mem.Write(ptr, req) {
		return false
	}
	stack[0], stack[1] = uint64(ptr), uint64(len(req))
	if err := inst.init.CallWithStack(e.ctx, stack); err != nil {
		return false
	}
	resp, ok := inst.response(stack[0])
	if !ok {
		return false
	}
	r, err := abi.DecodeStatus(resp)
	return err == nil && r.Status == abi.StatusOK
}

// DebugFault makes the guest fail on purpose through its debug_fault export,
// to test a host's handling of failures: abi.DebugPanic (a panic the guest
// recovers) or abi.DebugTrap (a trap). The restart it causes is reported at
// the next Step.
func (e *Engine) DebugFault(kind int) {
	if e.closed {
		return
	}
	if e.inst == nil {
		e.restart(true, "")
		return
	}
	e.stack[0] = uint64(uint32(kind))
	if err := e.inst.f.CallWithStack(e.ctx, e.stack); err != nil {
		e.restart(true, "trap: "+err.Error())
		return
	}
	resp, ok := e.inst.response(e.stack[0])
	if !ok {
		e.restart(true, "debug_fault answered outside the module's memory")
		return
	}
	r, err := abi.DecodeStatus(resp)
	switch {
	case err != nil:
		e.restart(true, "debug_fault answered a malformed response: "+err.Error())
	case r.Status == abi.StatusPanic:
		e.restart(false, string(r.Message))
	case r.Status != abi.StatusOK:
		e.lastFault = string(r.Message)
	}
}
