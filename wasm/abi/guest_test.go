package abi

import (
	"bytes"
	"crypto/sha256"
	"net/netip"
	"reflect"
	"strconv"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
)

var (
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
)

func initGuest(t testing.TB, cfg engine.Config) *Guest {
	t.Helper()
	g := &Guest{}
	req := AppendConfig(g.Alloc(0)[:0], &cfg)
	r, err := DecodeStatus(g.Init(req))
	if err != nil || r.Status != StatusOK {
		t.Fatalf("init: %+v %v", r, err)
	}
	return g
}

func TestGuestAlloc(t *testing.T) {
	var g Guest
	if g.Request() != nil || g.Alloc(-1) != nil || g.Alloc(MaxRequest+1) != nil {
		t.Fatal("alloc accepted a size out of range")
	}
	if b := g.Alloc(0); len(b) != minRequest {
		t.Fatalf("alloc(0) on a new guest: %d bytes, want %d", len(b), minRequest)
	}
	b := g.Alloc(10)
	if len(b) != minRequest {
		t.Fatalf("alloc(10): %d bytes, want %d", len(b), minRequest)
	}
	if c := g.Alloc(minRequest); &c[0] != &b[0] {
		t.Fatal("alloc moved a buffer that was big enough")
	}
	if c := g.Alloc(minRequest + 1); len(c) != 2*minRequest || &c[0] == &b[0] {
		t.Fatalf("alloc(%d): %d bytes", minRequest+1, len(c))
	}
	if c := g.Alloc(MaxRequest); len(c) != MaxRequest {
		t.Fatalf("alloc(MaxRequest): %d bytes", len(c))
	}
}

func TestGuestStatuses(t *testing.T) {
	var g Guest
	status := func(b []byte) Response {
		t.Helper()
		r, err := DecodeStatus(b)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := status(g.Step(AppendRequest(nil, &engine.Input{}))); r.Status != StatusNoEngine {
		t.Fatalf("step before init: %v", r.Status)
	}
	if r := status(g.Init([]byte{0x91})); r.Status != StatusMalformed || !bytes.Contains(r.Message, []byte("want a map")) {
		t.Fatalf("init with an array: %v %s", r.Status, r.Message)
	}
	_, nerr := engine.New(engine.Config{MTU: 10})
	if r := status(g.Init(AppendConfig(nil, &engine.Config{MTU: 10}))); r.Status != StatusBadConfig || string(r.Message) != nerr.Error() {
		t.Fatalf("init with a bad config: %v %q, want %q", r.Status, r.Message, nerr)
	}
	if r := status(g.Step(AppendRequest(nil, &engine.Input{}))); r.Status != StatusNoEngine {
		t.Fatalf("step after a failed init: %v", r.Status)
	}
	g = *initGuest(t, engine.Config{Addrs: []netip.Addr{addrA}})
	if r := status(g.Step(AppendRequest(nil, &engine.Input{}))); r.Status != StatusOK {
		t.Fatalf("step: %v", r.Status)
	}
	if r := status(g.Fault(7)); r.Status != StatusMalformed {
		t.Fatalf("fault 7: %v", r.Status)
	}
	if r := status(g.Fault(DebugPanic)); r.Status != StatusPanic || string(r.Message) != "guest panic: debug_fault asked for a panic" {
		t.Fatalf("panic: %v %q", r.Status, r.Message)
	}
	if r := status(g.Step(AppendRequest(nil, &engine.Input{}))); r.Status != StatusNoEngine {
		t.Fatalf("step after a panic: %v", r.Status)
	}
	// A malformed step keeps the engine and answers its deadline.
	g = *initGuest(t, engine.Config{Addrs: []netip.Addr{addrA}})
	var out engine.Output
	g.Step(AppendRequest(nil, &engine.Input{Commands: []engine.Command{{Op: engine.OpDial, Addr: netip.AddrPortFrom(addrB, 1)}}}))
	r, err := DecodeResponse(g.Step([]byte{0x93, 0xc1}), &out, nil)
	if err != nil || r.Status != StatusMalformed || out.Deadline != engine.Time(engine.Second) {
		t.Fatalf("malformed step: %+v %v deadline %d", r, err, out.Deadline)
	}
}

func TestGuestReadBudget(t *testing.T) {
	g := initGuest(t, engine.Config{Addrs: []netip.Addr{addrA}})
	g.in.Commands = []engine.Command{{Op: engine.OpRead, N: MaxReadTotal - 10}, {Op: engine.OpWrite, N: 5}, {Op: engine.OpRead, N: 100}, {Op: engine.OpRead, N: -1}}
	g.giveReadBuffers()
	for i, want := range []int{MaxReadTotal - 10, -1, 10, 0} {
		c := g.in.Commands[i]
		if want >= 0 && (len(c.Data) != want || c.N != 0) {
			t.Fatalf("command %d: %d bytes (N %d), want %d", i, len(c.Data), c.N, want)
		}
	}
	if g.in.Commands[1].N != 5 || g.in.Commands[1].Data != nil {
		t.Fatal("a write was changed")
	}
}

// guestEngine drives a Guest through the codec, natively: the wasm engine
// without wasm.
type guestEngine struct{ g *Guest }

func (e *guestEngine) Step(in *engine.Input, out *engine.Output) {
	req := AppendRequest(e.g.Alloc(RequestSize(in))[:0], in)
	r, err := DecodeResponse(e.g.Step(req), out, in.Commands)
	if err != nil || r.Status != StatusOK {
		panic("guest engine: " + r.Status.String() + " " + string(r.Message))
	}
}

// TestGuestLoopbackParity runs a transfer between two native stacks and between
// two Guests driven through the codec, and compares every output.
func TestGuestLoopbackParity(t *testing.T) {
	run := func(mk func(engine.Config) engine.Engine) string {
		cfgs := [2]engine.Config{
			{Addrs: []netip.Addr{addrA}, Seed: 1, TraceStates: true, SendBuffer: 32 << 10, RecvBuffer: 32 << 10},
			{Addrs: []netip.Addr{addrB}, Seed: 2, TraceStates: true, SendBuffer: 32 << 10, RecvBuffer: 32 << 10},
		}
		eng := [2]engine.Engine{mk(cfgs[0]), mk(cfgs[1])}
		h := sha256.New()
		var wire [2][][]byte
		var now engine.Time
		var out engine.Output
		step := func(i int, cmds ...engine.Command) []engine.Result {
			eng[i].Step(&engine.Input{Now: now, Frames: wire[i], Commands: cmds}, &out)
			wire[i] = nil
			h.Write([]byte(strconv.Itoa(i) + " " + strconv.FormatInt(int64(out.Deadline), 10)))
			for j, r := range out.Results {
				h.Write([]byte(strconv.Itoa(int(r.Conn)) + " " + strconv.Itoa(r.N) + " " + r.Err.Error() + r.Local.String() + r.Remote.String()))
				if cmds[j].Op == engine.OpRead {
					h.Write(cmds[j].Data[:r.N])
				}
			}
			for _, e := range out.Events {
				h.Write([]byte(e.Kind.String() + strconv.Itoa(int(e.Conn)) + e.From.String() + e.To.String()))
			}
			for _, f := range out.Frames {
				h.Write(f)
				wire[1-i] = append(wire[1-i], bytes.Clone(f))
			}
			return append([]engine.Result(nil), out.Results...)
		}
		settle := func() {
			for range 50 {
				now += engine.Time(10 * engine.Millisecond)
				step(0)
				step(1)
			}
		}
		lis := step(1, engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(addrB, 9)})[0].Conn
		c := step(0, engine.Command{Op: engine.OpDial, Addr: netip.AddrPortFrom(addrB, 9)})[0].Conn
		settle()
		s := step(1, engine.Command{Op: engine.OpAccept, Conn: lis})[0].Conn
		data := bytes.Repeat([]byte("0123456789abcdef"), 1<<14) // 256 KiB
		var got []byte
		buf := make([]byte, 20000)
		for sent := 0; len(got) < len(data); {
			if sent < len(data) {
				sent += step(0, engine.Command{Op: engine.OpWrite, Conn: c, Data: data[sent:]})[0].N
			}
			settle()
			for {
				r := step(1, engine.Command{Op: engine.OpRead, Conn: s, Data: buf})[0]
				if r.Err != engine.OK {
					break
				}
				got = append(got, buf[:r.N]...)
			}
		}
		if !bytes.Equal(got, data) {
			t.Fatal("the transfer corrupted the data")
		}
		step(0, engine.Command{Op: engine.OpClose, Conn: c})
		step(1, engine.Command{Op: engine.OpClose, Conn: s}, engine.Command{Op: engine.OpClose, Conn: lis})
		settle()
		return string(h.Sum(nil))
	}
	native := run(func(c engine.Config) engine.Engine {
		s, err := engine.New(c)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
	guest := run(func(c engine.Config) engine.Engine { return &guestEngine{g: initGuest(t, c)} })
	if native != guest {
		t.Fatal("the guest through the codec and the native engine differ")
	}
}

func TestVersion(t *testing.T) {
	if Version != 1<<16|2 || VersionString(Version) != "1.2" || !Compatible(Version) || Compatible(2<<16) || Compatible(1<<16) || !Compatible(1<<16|5) {
		t.Fatal("version arithmetic")
	}
	if p, n := Unpack(Pack(0xdeadbeef, 12345)); p != 0xdeadbeef || n != 12345 {
		t.Fatal("pack")
	}
	if !reflect.DeepEqual([]string{StatusOK.String(), StatusPanic.String(), Status(9).String()}, []string{"ok", "panic", "status-9"}) {
		t.Fatal("status names")
	}
}
