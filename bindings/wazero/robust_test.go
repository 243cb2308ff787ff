package wazero

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/wasm/abi"
)

// established returns a world of two wasm engines where B listens on port 7
// and holds one accepted connection from A, after one echo.
func established(t *testing.T) (w *world, lis, a, s engine.ConnID) {
	w = newWorld(t, bothWasm, configs(nil))
	lis = listen(t, w, 1, netip.AddrPortFrom(addrB, 7))
	a = dial(t, w, 0, netip.AddrPortFrom(addrB, 7))
	w.runFor(engine.Second, nil)
	s = accept(t, w, 1, lis)
	echo(t, w, a, s, "before")
	w.takeEvents(0)
	w.takeEvents(1)
	return
}

// echo sends msg from A's a to B's s and back.
func echo(t *testing.T, w *world, a, s engine.ConnID, msg string) {
	t.Helper()
	write(t, w, 0, a, []byte(msg))
	w.runFor(engine.Second, nil)
	read(t, w, 1, s, []byte(msg))
	write(t, w, 1, s, []byte(msg))
	w.runFor(engine.Second, nil)
	read(t, w, 0, a, []byte(msg))
}

// stepRaw hands the guest req as a step message, exactly as the bytes are, and
// concludes like Step.
func (e *Engine) stepRaw(t *testing.T, req []byte, in *engine.Input, out *engine.Output) {
	t.Helper()
	ptr, ok := e.inst.request(e.ctx, e.stack, len(req))
	if !ok || !e.inst.mem.Write(ptr, req) {
		t.Fatalf("no request buffer for %d bytes", len(req))
	}
	out.Frames, out.Results, out.Events = out.Frames[:0], out.Results[:0], out.Events[:0]
	st, fault := e.callStep(ptr, len(req), in.Commands, out)
	e.conclude(in, out, false, st, fault)
}

func TestMalformedMessageKeepsEngine(t *testing.T) {
	w, _, a, s := established(t)
	eb := w.eng[1].(*Engine)
	bad := [][]byte{
		{},           // empty
		{0xc1},       // the unused byte
		{0x93, 0x01}, // truncated
		{0x93, 0x01, 0xdd, 0xff, 0xff, 0xff, 0xff}, // 4G frames claimed
		{0x93, 0xc3, 0x90, 0x90},                   // now is a boolean
		{0x93, 0x00, 0x90, 0x91, 0x98, 0x04, 0x01, 0xc0, 0xc0, 0xc6, 0x7f, 0xff, 0xff, 0xff}, // data longer than the message
		append(abi.AppendRequest(nil, &engine.Input{}), 0x00),                                // trailing byte
	}
	cmds := []engine.Command{{Op: engine.OpWrite, Conn: s, Data: []byte("x")}}
	for i, req := range bad {
		var out engine.Output
		eb.stepRaw(t, req, &engine.Input{Commands: cmds}, &out)
		if len(out.Results) != 1 || out.Results[0].Err != engine.ErrInvalid {
			t.Fatalf("message %d: results %+v, want one ErrInvalid", i, out.Results)
		}
		if len(out.Events) != 1 || out.Events[0] != (engine.Event{Kind: engine.EventFault, Err: engine.ErrInvalid}) {
			t.Fatalf("message %d: events %+v, want one EventFault with ErrInvalid", i, out.Events)
		}
		if len(out.Frames) != 0 || !strings.Contains(eb.LastFault(), "malformed message at byte") {
			t.Fatalf("message %d: %d frames, fault %q", i, len(out.Frames), eb.LastFault())
		}
	}
	if eb.Restarts() != 0 {
		t.Fatalf("%d restarts after malformed messages, want 0", eb.Restarts())
	}
	// The connection lives on.
	echo(t, w, a, s, "after")
}

// TestPanicRestarts: a panic in the guest is recovered at the export; the
// engine is replaced and every ID the application held reported aborted.
func TestPanicRestarts(t *testing.T) {
	testRestart(t, abi.DebugPanic, false)
}

// TestTrapReinstantiates: a trap (the unreachable instruction) makes the
// binding instantiate the module again.
func TestTrapReinstantiates(t *testing.T) {
	testRestart(t, abi.DebugTrap, true)
}

func testRestart(t *testing.T, kind int, newInstance bool) {
	w, lis, a, s := established(t)
	eb := w.eng[1].(*Engine)
	inst := eb.inst
	eb.DebugFault(kind)
	if eb.Restarts() != 1 {
		t.Fatalf("restarts %d, want 1 (fault %q)", eb.Restarts(), eb.LastFault())
	}
	if (eb.inst != inst) != newInstance {
		t.Fatalf("new instance: %v, want %v", eb.inst != inst, newInstance)
	}
	wantFault := map[int]string{abi.DebugPanic: "guest panic: debug_fault asked for a panic", abi.DebugTrap: "trap: "}[kind]
	if !strings.HasPrefix(eb.LastFault(), wantFault) {
		t.Fatalf("fault %q, want it to begin with %q", eb.LastFault(), wantFault)
	}
	// The next Step reports the restart: commands on the old IDs get ErrAborted,
	// closing them OK, then ErrNoConn.
	res := w.step(1,
		engine.Command{Op: engine.OpRead, Conn: s, Data: make([]byte, 8)},
		engine.Command{Op: engine.OpAccept, Conn: lis},
		engine.Command{Op: engine.OpClose, Conn: s},
		engine.Command{Op: engine.OpClose, Conn: s},
		engine.Command{Op: engine.OpRead, Conn: 999, Data: make([]byte, 8)},
	)
	want := []engine.Error{engine.ErrAborted, engine.ErrAborted, engine.OK, engine.ErrNoConn, engine.ErrNoConn}
	for i, r := range res {
		wantErr(t, "command "+string(rune('a'+i)), r, want[i])
	}
	ids := []engine.ConnID{lis, s}
	slices.Sort(ids)
	wantEv := []engine.Event{
		{Kind: engine.EventFault, Err: engine.ErrAborted},
		{Kind: engine.EventError, Conn: ids[0], Err: engine.ErrAborted},
		{Kind: engine.EventError, Conn: ids[1], Err: engine.ErrAborted},
	}
	if ev := w.takeEvents(1); !slices.Equal(ev, wantEv) {
		t.Fatalf("events after the restart %v, want %v", ev, wantEv)
	}
	// The new engine listens again; its IDs never name the old ones.
	lis2 := listen(t, w, 1, netip.AddrPortFrom(addrB, 7))
	a2 := dial(t, w, 0, netip.AddrPortFrom(addrB, 7))
	w.runFor(engine.Second, nil)
	s2 := accept(t, w, 1, lis2)
	if lis2 == lis || s2 == lis || s2 == s || lis2 == s {
		t.Fatalf("new IDs %v %v collide with the lost ones %v %v", lis2, s2, lis, s)
	}
	if !w.hasEvent(1, engine.EventAcceptable, lis2) {
		t.Fatalf("events of B %v: want acceptable on %v", w.events[1], lis2)
	}
	echo(t, w, a2, s2, "after the restart")
	wantErr(t, "the old listener", w.do(1, engine.Command{Op: engine.OpClose, Conn: lis}), engine.OK)
	wantErr(t, "the old listener again", w.do(1, engine.Command{Op: engine.OpClose, Conn: lis}), engine.ErrNoConn)
	// A's old connection gets reset by the new engine when it sends.
	write(t, w, 0, a, []byte("lost"))
	w.runFor(engine.Second, nil)
	if !w.hasEvent(0, engine.EventReset, a) {
		t.Fatalf("A's old connection not reset: %v", w.events[0])
	}
	// Close everything: the IDs are released and the tables empty.
	closeID(t, w, 1, s2)
	closeID(t, w, 0, a2)
	closeID(t, w, 0, a)
	w.runFor(200*engine.Second, nil)
	closeID(t, w, 1, lis2)
	if len(eb.held) != 0 || len(eb.xl.dead) != 0 || len(eb.xl.toGuest) != 0 || len(eb.xl.toApp) != 0 {
		t.Fatalf("tables left: held %v dead %v toGuest %v toApp %v", eb.held, eb.xl.dead, eb.xl.toGuest, eb.xl.toApp)
	}
}

// TestOutOfMemoryTrapInStep: a step that makes the guest outgrow its memory
// limit traps inside Step; the Step's own Output reports the restart.
func TestOutOfMemoryTrapInStep(t *testing.T) {
	ctx := context.Background()
	m, err := Compile(ctx, moduleBytesFor(t), &Options{MemoryLimitPages: 1024}) // 64 MiB
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	cfg := configs(func(c *engine.Config) { c.SendBuffer = 1 << 30 })[0]
	e, err := m.New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var out engine.Output
	e.Step(&engine.Input{Commands: []engine.Command{
		{Op: engine.OpListen, Addr: netip.AddrPortFrom(addrA, 1)},
		{Op: engine.OpDial, Addr: netip.AddrPortFrom(addrB, 7)},
	}}, &out)
	lis, c := out.Results[0].Conn, out.Results[1].Conn
	big := make([]byte, 16<<20)
	for i := 0; e.Restarts() == 0; i++ {
		if i == 10 {
			t.Fatalf("no trap after %d MiB written into a 64 MiB module", i*16)
		}
		// The connection is not established: Write queues into the send buffer.
		e.Step(&engine.Input{Commands: []engine.Command{{Op: engine.OpWrite, Conn: c, Data: big}}}, &out)
	}
	if out.Results[0].Err != engine.ErrAborted {
		t.Fatalf("the write that trapped: %+v, want ErrAborted", out.Results[0])
	}
	ids := []engine.ConnID{lis, c}
	slices.Sort(ids)
	wantEv := []engine.Event{
		{Kind: engine.EventFault, Err: engine.ErrAborted},
		{Kind: engine.EventError, Conn: ids[0], Err: engine.ErrAborted},
		{Kind: engine.EventError, Conn: ids[1], Err: engine.ErrAborted},
	}
	if !slices.Equal(out.Events, wantEv) || len(out.Frames) != 0 || out.Deadline != engine.Never {
		t.Fatalf("output of the trapping step: events %v frames %d deadline %d; want events %v", out.Events, len(out.Frames), out.Deadline, wantEv)
	}
	t.Logf("fault: %s", e.LastFault())
	// The fresh engine works.
	e.Step(&engine.Input{Commands: []engine.Command{{Op: engine.OpDial, Addr: netip.AddrPortFrom(addrB, 7)}}}, &out)
	if out.Results[0].Err != engine.OK || len(out.Frames) != 1 {
		t.Fatalf("dial after the restart: %+v, %d frames", out.Results[0], len(out.Frames))
	}
}

func moduleBytesFor(t testing.TB) []byte {
	testModule(t)
	return moduleBytes
}

// TestCloseThenStep: a closed Engine answers ErrClosed and does not panic.
func TestCloseThenStep(t *testing.T) {
	e, err := testModule(t).New(context.Background(), configs(nil)[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	var out engine.Output
	e.Step(&engine.Input{Commands: []engine.Command{{Op: engine.OpListen, Addr: netip.AddrPortFrom(addrA, 1)}}}, &out)
	if len(out.Results) != 1 || out.Results[0].Err != engine.ErrClosed || out.Deadline != engine.Never {
		t.Fatalf("step after close: %+v", out)
	}
	e.DebugFault(abi.DebugTrap) // nothing to do
}

// TestBadConfig: the Config's errors are the native engine's.
func TestBadConfig(t *testing.T) {
	for _, cfg := range []engine.Config{
		{},
		{Addrs: []netip.Addr{addrA}, MTU: 100},
		{Addrs: []netip.Addr{addrA}, MaxConns: -1},
		{Addrs: []netip.Addr{addrA}, EphemeralLow: 5, EphemeralHigh: 4},
	} {
		_, nerr := engine.New(cfg)
		_, werr := testModule(t).New(context.Background(), cfg)
		if nerr == nil || werr == nil || nerr.Error() != werr.Error() {
			t.Fatalf("config %+v: native %v, wasm %v", cfg, nerr, werr)
		}
	}
}

// TestBadModule: what is not a tcpeng module is refused with a reason.
func TestBadModule(t *testing.T) {
	ctx := context.Background()
	if _, err := Compile(ctx, []byte("not wasm"), nil); err == nil || !strings.Contains(err.Error(), "go generate ./wasm/guest") {
		t.Fatalf("compile garbage: %v", err)
	}
	// A valid module with no exports.
	empty := []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}
	if _, err := Compile(ctx, empty, nil); err == nil || !strings.Contains(err.Error(), "not a tcpeng module") {
		t.Fatalf("compile an empty module: %v", err)
	}
	if _, err := CompileFile(ctx, "/nonexistent/tcpeng.wasm", nil); err == nil || !strings.Contains(err.Error(), "go generate ./wasm/guest") {
		t.Fatalf("compile a missing file: %v", err)
	}
	if err := errVersion(2 << 16); !strings.Contains(err.Error(), "speaks ABI 2.0, this binding 1.2") {
		t.Fatalf("version error: %v", err)
	}
	if _, err := NewFromFile(ctx, "/nonexistent/tcpeng.wasm", configs(nil)[0]); err == nil || !strings.Contains(err.Error(), "go generate ./wasm/guest") {
		t.Fatalf("a missing file: %v", err)
	}
	e, err := NewFromFile(ctx, wasmPath, configs(nil)[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestRestartTwice: a second restart reports the IDs of the second engine
// only; the first engine's, still unclosed, stay reserved.
func TestRestartTwice(t *testing.T) {
	w, lis, a, s := established(t)
	eb := w.eng[1].(*Engine)
	eb.DebugFault(abi.DebugPanic)
	w.step(1)
	lis2 := listen(t, w, 1, netip.AddrPortFrom(addrB, 8))
	a2 := dial(t, w, 0, netip.AddrPortFrom(addrB, 8))
	w.runFor(engine.Second, nil)
	s2 := accept(t, w, 1, lis2)
	echo(t, w, a2, s2, "second engine")
	w.takeEvents(1)
	eb.DebugFault(abi.DebugTrap)
	w.step(1)
	ids := []engine.ConnID{lis2, s2}
	slices.Sort(ids)
	want := []engine.Event{
		{Kind: engine.EventFault, Err: engine.ErrAborted},
		{Kind: engine.EventError, Conn: ids[0], Err: engine.ErrAborted},
		{Kind: engine.EventError, Conn: ids[1], Err: engine.ErrAborted},
	}
	if ev := w.takeEvents(1); !slices.Equal(ev, want) {
		t.Fatalf("events after the second restart %v, want %v", ev, want)
	}
	if eb.Restarts() != 2 {
		t.Fatalf("restarts %d, want 2", eb.Restarts())
	}
	for _, id := range []engine.ConnID{lis, s, lis2, s2} {
		wantErr(t, "write on a lost ID", w.do(1, engine.Command{Op: engine.OpWrite, Conn: id, Data: []byte("x")}), engine.ErrAborted)
		wantErr(t, "close a lost ID", w.do(1, engine.Command{Op: engine.OpClose, Conn: id}), engine.OK)
	}
	// The third engine works, with IDs of its own.
	lis3 := listen(t, w, 1, netip.AddrPortFrom(addrB, 9))
	a3 := dial(t, w, 0, netip.AddrPortFrom(addrB, 9))
	w.runFor(engine.Second, nil)
	s3 := accept(t, w, 1, lis3)
	if slices.Contains([]engine.ConnID{lis, s, lis2, s2}, s3) || slices.Contains([]engine.ConnID{lis, s, lis2, s2}, lis3) {
		t.Fatalf("IDs reused: %v %v", lis3, s3)
	}
	echo(t, w, a3, s3, "third engine")
	for _, c := range []engine.ConnID{a, a2, a3} {
		w.do(0, engine.Command{Op: engine.OpAbort, Conn: c})
	}
	closeID(t, w, 1, s3)
	closeID(t, w, 1, lis3)
	w.runFor(300*engine.Second, nil)
	if len(eb.held) != 0 || len(eb.xl.dead) != 0 || len(eb.xl.toGuest) != 0 || len(eb.xl.toApp) != 0 {
		t.Fatalf("tables left: held %v dead %v toGuest %v toApp %v", eb.held, eb.xl.dead, eb.xl.toGuest, eb.xl.toApp)
	}
}

// TestNoEngineInStep: when the guest answers a step with no engine (its engine
// was lost behind the binding's back: here a panic through the raw export),
// the Step's own output reports the restart and the commands get ErrAborted.
func TestNoEngineInStep(t *testing.T) {
	w, lis, _, s := established(t)
	eb := w.eng[1].(*Engine)
	eb.stack[0] = abi.DebugPanic
	if err := eb.inst.f.CallWithStack(eb.ctx, eb.stack); err != nil {
		t.Fatal(err)
	}
	res := w.step(1, engine.Command{Op: engine.OpWrite, Conn: s, Data: []byte("x")}, engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(addrB, 99)})
	for i, r := range res {
		wantErr(t, "command "+string(rune('a'+i)), r, engine.ErrAborted)
	}
	ids := []engine.ConnID{lis, s}
	slices.Sort(ids)
	want := []engine.Event{
		{Kind: engine.EventFault, Err: engine.ErrAborted},
		{Kind: engine.EventError, Conn: ids[0], Err: engine.ErrAborted},
		{Kind: engine.EventError, Conn: ids[1], Err: engine.ErrAborted},
	}
	if ev := w.takeEvents(1); !slices.Equal(ev, want) {
		t.Fatalf("events %v, want %v", ev, want)
	}
	if eb.Restarts() != 1 || !strings.HasPrefix(eb.LastFault(), "guest no-engine: step before a successful init") {
		t.Fatalf("restarts %d, fault %q", eb.Restarts(), eb.LastFault())
	}
	listen(t, w, 1, netip.AddrPortFrom(addrB, 7))
}

// TestLimits: a Step past the ABI's limits is cut to fit, as the ABI
// document says: frames dropped and counted, a write shortened when the
// request would pass MaxRequest, commands past the limit answered ErrLimit.
func TestLimits(t *testing.T) {
	e, err := testModule(t).New(context.Background(), configs(func(c *engine.Config) { c.SendBuffer = 64 << 20 })[0])
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var out engine.Output
	in := engine.Input{Frames: make([][]byte, abi.MaxFrames+3)}
	for i := range in.Frames {
		in.Frames[i] = []byte{0x45}
	}
	e.Step(&in, &out)
	if e.DroppedFrames() != 3 || len(out.Results) != 0 {
		t.Fatalf("dropped %d frames, want 3", e.DroppedFrames())
	}
	e.Step(&engine.Input{Commands: []engine.Command{{Op: engine.OpDial, Addr: netip.AddrPortFrom(addrB, 7)}}}, &out)
	c := out.Results[0].Conn
	big := make([]byte, 40<<20) // over MaxRequest (32 MiB) with the rest of the request
	e.Step(&engine.Input{Commands: []engine.Command{{Op: engine.OpWrite, Conn: c, Data: big}}}, &out)
	if r := out.Results[0]; r.Err != engine.OK || r.N <= 15<<20 || r.N >= 16<<20 {
		t.Fatalf("a 40 MiB write: %+v, want a short write of about 16 MiB", r)
	}
	cmds := make([]engine.Command, abi.MaxCommands+2)
	cmds[0] = engine.Command{Op: engine.OpWrite, Conn: c, Data: []byte("x")}
	e.Step(&engine.Input{Commands: cmds}, &out)
	if len(out.Results) != len(cmds) || out.Results[0].Err != engine.OK || out.Results[1].Err != engine.ErrInvalid ||
		out.Results[abi.MaxCommands].Err != engine.ErrLimit || out.Results[abi.MaxCommands+1].Err != engine.ErrLimit {
		t.Fatalf("%d results: %+v %+v %+v", len(out.Results), out.Results[0], out.Results[1], out.Results[abi.MaxCommands])
	}
	if e.Restarts() != 0 {
		t.Fatalf("restarted: %s", e.LastFault())
	}
}
