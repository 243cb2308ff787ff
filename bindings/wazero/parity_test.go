package wazero

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
)

// Parity: the same scenarios on native engines, on WebAssembly engines and on
// a native and a WebAssembly engine talking to each other, with the same
// Configs and seeds, give the same transcript: every frame byte for byte, every
// result, event and deadline.

type scenario struct {
	name string
	cfg  func(*engine.Config)
	run  func(t *testing.T, w *world)
}

var scenarios = []scenario{
	{"echo", nil, scenarioEcho},
	{"bulk-1MiB-lossy", func(c *engine.Config) { c.SendBuffer, c.RecvBuffer = 64<<10, 64<<10 }, scenarioBulkLossy},
	{"listen-accept", func(c *engine.Config) { c.Backlog = 2 }, scenarioListenAccept},
	{"errors", nil, scenarioErrors},
	{"abort", nil, scenarioAbort},
}

func TestParity(t *testing.T) {
	kinds := []kind{bothNative, bothWasm, mixed, {"native", "wasm"}}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			var ref string
			for _, k := range kinds {
				w := newWorld(t, k, configs(sc.cfg))
				sc.run(t, w)
				tr := w.tr.String()
				if k == bothNative {
					ref = tr
					t.Logf("%s: %d steps, %d lines of transcript, frames sent %d/%d lost %d/%d", k, w.steps,
						strings.Count(tr, "\n"), w.stats[0].sent, w.stats[1].sent, w.stats[0].lost, w.stats[1].lost)
					continue
				}
				compareTranscripts(t, k.String(), ref, tr)
			}
		})
	}
}

func listen(t *testing.T, w *world, side int, ap netip.AddrPort) engine.ConnID {
	t.Helper()
	r := w.do(side, engine.Command{Op: engine.OpListen, Addr: ap})
	wantErr(t, "listen "+ap.String(), r, engine.OK)
	return r.Conn
}

func dial(t *testing.T, w *world, side int, ap netip.AddrPort) engine.ConnID {
	t.Helper()
	r := w.do(side, engine.Command{Op: engine.OpDial, Addr: ap})
	wantErr(t, "dial "+ap.String(), r, engine.OK)
	if r.Remote != ap || r.Local.Addr() != []netip.Addr{addrA, addrB}[side] || r.Local.Port() == 0 {
		t.Fatalf("dial %v: addresses %v -> %v", ap, r.Local, r.Remote)
	}
	return r.Conn
}

func accept(t *testing.T, w *world, side int, lis engine.ConnID) engine.ConnID {
	t.Helper()
	r := w.do(side, engine.Command{Op: engine.OpAccept, Conn: lis})
	wantErr(t, "accept", r, engine.OK)
	return r.Conn
}

func write(t *testing.T, w *world, side int, c engine.ConnID, p []byte) {
	t.Helper()
	r := w.do(side, engine.Command{Op: engine.OpWrite, Conn: c, Data: p})
	wantErr(t, "write", r, engine.OK)
	if r.N != len(p) {
		t.Fatalf("write took %d of %d bytes", r.N, len(p))
	}
}

func read(t *testing.T, w *world, side int, c engine.ConnID, want []byte) {
	t.Helper()
	buf := make([]byte, 4096)
	r := w.do(side, engine.Command{Op: engine.OpRead, Conn: c, Data: buf})
	wantErr(t, "read", r, engine.OK)
	if !bytes.Equal(buf[:r.N], want) {
		t.Fatalf("read %q, want %q", buf[:r.N], want)
	}
}

func closeID(t *testing.T, w *world, side int, c engine.ConnID) {
	t.Helper()
	wantErr(t, "close", w.do(side, engine.Command{Op: engine.OpClose, Conn: c}), engine.OK)
}

// scenarioEcho is engine/smoke_test.go's: handshake, echo, four-way close,
// every state change traced.
func scenarioEcho(t *testing.T, w *world) {
	lis := listen(t, w, 1, netip.AddrPortFrom(addrB, 7))
	c := dial(t, w, 0, netip.AddrPortFrom(addrB, 7))
	w.runFor(engine.Second, nil)
	if !w.hasEvent(0, engine.EventConnected, c) || !w.hasEvent(1, engine.EventAcceptable, lis) {
		t.Fatalf("no connection: events A %v B %v", w.events[0], w.events[1])
	}
	s := accept(t, w, 1, lis)
	msg := []byte("hello, tcpeng")
	write(t, w, 0, c, msg)
	w.runFor(engine.Second, nil)
	read(t, w, 1, s, msg)
	write(t, w, 1, s, msg)
	w.runFor(engine.Second, nil)
	read(t, w, 0, c, msg)
	closeID(t, w, 0, c)
	w.runFor(engine.Second, nil)
	wantErr(t, "read after FIN", w.do(1, engine.Command{Op: engine.OpRead, Conn: s, Data: make([]byte, 10)}), engine.ErrEOF)
	closeID(t, w, 1, s)
	w.runFor(200*engine.Second, nil)
	if !w.hasEvent(0, engine.EventClosed, c) || !w.hasEvent(1, engine.EventClosed, s) || !w.hasEvent(1, engine.EventPeerClosed, s) {
		t.Fatalf("close not reported: events A %v B %v", w.events[0], w.events[1])
	}
	states := map[string]bool{}
	for i := range 2 {
		for _, e := range w.events[i] {
			if e.Kind == engine.EventState {
				states[e.To.String()] = true
			}
		}
	}
	for _, st := range []string{"SYN_SENT", "SYN_RCVD", "ESTABLISHED", "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSED"} {
		if !states[st] {
			t.Errorf("state %s never reported", st)
		}
	}
}

// scenarioBulkLossy sends 1 MiB from A to B over a link that loses 2% of the
// frames each way, with 64 KiB buffers, and checks every byte.
func scenarioBulkLossy(t *testing.T, w *world) {
	const total = 1 << 20
	w.loss = 0.02
	data := make([]byte, total)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	lis := listen(t, w, 1, netip.AddrPortFrom(addrB, 5001))
	c := dial(t, w, 0, netip.AddrPortFrom(addrB, 5001))
	w.runFor(10*engine.Second, nil)
	s := accept(t, w, 1, lis)
	got := make([]byte, 0, total)
	buf := make([]byte, 32<<10)
	sent := 0
	shut := false
	for round := 0; ; round++ {
		if round > 100_000 || w.now > engine.Time(600*engine.Second) {
			t.Fatalf("transfer stalled: %d sent, %d received at t=%v", sent, len(got), engine.Duration(w.now))
		}
		if sent < total {
			r := w.do(0, engine.Command{Op: engine.OpWrite, Conn: c, Data: data[sent:min(sent+64<<10, total)]})
			if r.Err != engine.OK && r.Err != engine.ErrWouldBlock {
				t.Fatalf("write: %v", r.Err)
			}
			sent += r.N
		} else if !shut {
			wantErr(t, "shutdown", w.do(0, engine.Command{Op: engine.OpShutdown, Conn: c}), engine.OK)
			shut = true
		}
		w.runFor(5*engine.Millisecond, nil)
		eof := false
		for {
			r := w.do(1, engine.Command{Op: engine.OpRead, Conn: s, Data: buf})
			if r.Err == engine.ErrWouldBlock {
				break
			}
			if r.Err == engine.ErrEOF {
				eof = true
				break
			}
			wantErr(t, "read", r, engine.OK)
			got = append(got, buf[:r.N]...)
		}
		if eof {
			break
		}
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("received %d bytes that differ from the %d sent", len(got), total)
	}
	closeID(t, w, 1, s)
	closeID(t, w, 0, c)
	w.runFor(300*engine.Second, nil)
	if w.stats[0].lost == 0 || w.stats[1].lost == 0 {
		t.Fatalf("the link lost nothing: %+v", w.stats)
	}
}

// scenarioListenAccept: three connections to a listener with backlog 2 (the
// third SYN waits for room), a second listener on the unspecified address,
// one message echoed on each.
func scenarioListenAccept(t *testing.T, w *world) {
	lis := listen(t, w, 1, netip.AddrPortFrom(addrB, 80))
	any := listen(t, w, 1, netip.AddrPortFrom(netip.IPv4Unspecified(), 8080))
	var clients []engine.ConnID
	for range 3 {
		clients = append(clients, dial(t, w, 0, netip.AddrPortFrom(addrB, 80)))
	}
	c4 := dial(t, w, 0, netip.AddrPortFrom(addrB, 8080))
	w.runFor(engine.Second, nil)
	var servers []engine.ConnID
	accepted := func() {
		for {
			r := w.do(1, engine.Command{Op: engine.OpAccept, Conn: lis})
			if r.Err == engine.ErrWouldBlock {
				return
			}
			wantErr(t, "accept", r, engine.OK)
			servers = append(servers, r.Conn)
		}
	}
	accepted()
	if len(servers) != 2 {
		t.Fatalf("accepted %d connections with backlog 2, want 2", len(servers))
	}
	w.runFor(10*engine.Second, nil) // the third SYN is retransmitted
	accepted()
	if len(servers) != 3 {
		t.Fatalf("accepted %d connections, want 3", len(servers))
	}
	s4 := accept(t, w, 1, any)
	servers = append(servers, s4)
	clients = append(clients, c4)
	for i, c := range clients {
		write(t, w, 0, c, []byte{'m', byte('0' + i)})
	}
	w.runFor(engine.Second, nil)
	// Each server echoes what it got, in one Step with all the commands.
	bufs := make([][]byte, len(servers))
	var cmds []engine.Command
	for i, s := range servers {
		bufs[i] = make([]byte, 16)
		cmds = append(cmds, engine.Command{Op: engine.OpRead, Conn: s, Data: bufs[i]})
	}
	res := w.step(1, cmds...)
	cmds = cmds[:0]
	for i, s := range servers {
		wantErr(t, "read", res[i], engine.OK)
		cmds = append(cmds, engine.Command{Op: engine.OpWrite, Conn: s, Data: bufs[i][:res[i].N]}, engine.Command{Op: engine.OpClose, Conn: s})
	}
	for _, r := range w.step(1, cmds...) {
		wantErr(t, "echo and close", r, engine.OK)
	}
	w.runFor(engine.Second, nil)
	got := map[string]bool{}
	for _, c := range clients {
		buf := make([]byte, 16)
		r := w.do(0, engine.Command{Op: engine.OpRead, Conn: c, Data: buf})
		wantErr(t, "read echo", r, engine.OK)
		got[string(buf[:r.N])] = true
		closeID(t, w, 0, c)
	}
	if len(got) != 4 {
		t.Fatalf("echoes %v, want 4 different ones", got)
	}
	closeID(t, w, 1, lis)
	closeID(t, w, 1, any)
	w.runFor(300*engine.Second, nil)
}

// scenarioErrors: the error results and events, native and wasm alike.
func scenarioErrors(t *testing.T, w *world) {
	// A dial to a closed port is refused.
	c := dial(t, w, 0, netip.AddrPortFrom(addrB, 9))
	w.runFor(engine.Second, nil)
	refused := false
	for _, e := range w.events[0] {
		if e.Kind == engine.EventReset && e.Conn == c && e.Err == engine.ErrRefused {
			refused = true
		}
	}
	if !refused {
		t.Fatalf("dial to a closed port: events %v, want reset with ErrRefused", w.events[0])
	}
	closeID(t, w, 0, c)
	wantErr(t, "close twice", w.do(0, engine.Command{Op: engine.OpClose, Conn: c}), engine.ErrNoConn)

	lis := listen(t, w, 1, netip.AddrPortFrom(addrB, 7))
	res := w.step(1,
		engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(addrB, 0)},
		engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(netip.MustParseAddr("10.9.9.9"), 7)},
		engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(addrB, 7)},
		engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(netip.MustParseAddr("fd00::2"), 7)},
		engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(addrB, 8), N: -1},
		engine.Command{Op: 0},
		engine.Command{Op: 99, Conn: lis},
		engine.Command{Op: engine.OpRead, Conn: 12345, Data: make([]byte, 8)},
		engine.Command{Op: engine.OpWrite, Conn: lis, Data: []byte("x")},
		engine.Command{Op: engine.OpDial, Addr: netip.AddrPortFrom(addrA, 0)},
		engine.Command{Op: engine.OpDial, Addr: netip.AddrPortFrom(netip.IPv4Unspecified(), 80)},
		engine.Command{Op: engine.OpDial, Addr: netip.AddrPortFrom(addrA, 80), Local: netip.AddrPortFrom(netip.MustParseAddr("10.9.9.9"), 0)},
		engine.Command{Op: engine.OpAccept, Conn: lis},
	)
	want := []engine.Error{engine.ErrInvalid, engine.ErrAddrNotAvail, engine.ErrAddrInUse, engine.ErrAddrNotAvail,
		engine.ErrInvalid, engine.ErrInvalid, engine.ErrInvalid, engine.ErrNoConn, engine.ErrNotConnected,
		engine.ErrInvalid, engine.ErrInvalid, engine.ErrAddrNotAvail, engine.ErrWouldBlock}
	for i, r := range res {
		wantErr(t, "command "+string(rune('a'+i)), r, want[i])
	}

	a := dial(t, w, 0, netip.AddrPortFrom(addrB, 7))
	w.runFor(engine.Second, nil)
	s := accept(t, w, 1, lis)
	res = w.step(0,
		engine.Command{Op: engine.OpAccept, Conn: a},
		engine.Command{Op: engine.OpRead, Conn: a, Data: make([]byte, 8)},
		engine.Command{Op: engine.OpSetOption, Conn: a, Option: engine.OptNoDelay, Value: 1},
		engine.Command{Op: engine.OpSetOption, Conn: a, Option: engine.OptRecvBuffer, Value: 1 << 16},
		engine.Command{Op: engine.OpSetOption, Conn: a, Option: 77, Value: 1},
		engine.Command{Op: engine.OpWrite, Conn: a, Data: []byte("before shutdown")},
		engine.Command{Op: engine.OpShutdown, Conn: a},
		engine.Command{Op: engine.OpWrite, Conn: a, Data: []byte("after")},
		engine.Command{Op: engine.OpWrite, Conn: a, Data: nil},
	)
	wantErr(t, "accept on a connection", res[0], engine.ErrNotListening)
	wantErr(t, "read with nothing there", res[1], engine.ErrWouldBlock)
	wantErr(t, "no delay", res[2], engine.OK)
	wantErr(t, "write", res[5], engine.OK)
	wantErr(t, "shutdown", res[6], engine.OK)
	if res[7].Err == engine.OK {
		t.Fatalf("write after shutdown succeeded: %+v", res[7])
	}
	w.runFor(engine.Second, nil)
	read(t, w, 1, s, []byte("before shutdown"))
	closeID(t, w, 1, s)
	w.runFor(engine.Second, nil)
	closeID(t, w, 0, a)
	closeID(t, w, 1, lis)
	w.runFor(300*engine.Second, nil)
}

// scenarioAbort: an abort resets the peer. (It found an engine bug: PollFrame
// wrote the RST's IP header from the slot that update had just freed.)
func scenarioAbort(t *testing.T, w *world) {
	lis := listen(t, w, 1, netip.AddrPortFrom(addrB, 7))
	a := dial(t, w, 0, netip.AddrPortFrom(addrB, 7))
	w.runFor(engine.Second, nil)
	s := accept(t, w, 1, lis)
	write(t, w, 0, a, []byte("x"))
	w.runFor(engine.Second, nil)
	read(t, w, 1, s, []byte("x"))
	wantErr(t, "abort", w.do(1, engine.Command{Op: engine.OpAbort, Conn: s}), engine.OK)
	w.runFor(engine.Second, nil)
	reset := false
	for _, e := range w.events[0] {
		if e.Kind == engine.EventReset && e.Conn == a && e.Err == engine.ErrReset {
			reset = true
		}
	}
	if !reset {
		t.Fatalf("abort: events of A %v, want a reset", w.events[0])
	}
	closeID(t, w, 0, a)
	closeID(t, w, 1, lis)
	w.runFor(300*engine.Second, nil)
}
