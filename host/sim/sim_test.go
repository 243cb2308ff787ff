package sim

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
	"github.com/tcpeng/tcpeng/host/pcap/pcaptest"
)

// scriptEngine is an engine that is not the native stack, for testing the
// simulator itself: it answers every command with OK, keeps a copy of every
// frame it gets, and lets fn add frames, events and a deadline.
type scriptEngine struct {
	steps int
	got   [][]byte
	gotAt []engine.Time
	fn    func(e *scriptEngine, in *engine.Input, out *engine.Output)
}

func (e *scriptEngine) Step(in *engine.Input, out *engine.Output) {
	out.Frames, out.Results, out.Events = out.Frames[:0], out.Results[:0], out.Events[:0]
	out.Deadline = engine.Never
	for range in.Commands {
		out.Results = append(out.Results, engine.Result{})
	}
	for _, f := range in.Frames {
		e.got = append(e.got, bytes.Clone(f))
		e.gotAt = append(e.gotAt, in.Now)
	}
	e.steps++
	if e.fn != nil {
		e.fn(e, in, out)
	}
}

// ipFrame returns an IPv4 packet of size bytes (protocol 253, RFC 3692's
// experimental number) from src to dst whose payload starts with id.
func ipFrame(size int, src, dst netip.Addr, id uint32) []byte {
	b := make([]byte, size)
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:], uint16(size))
	b[8], b[9] = 64, 253
	s, d := src.As4(), dst.As4()
	copy(b[12:], s[:])
	copy(b[16:], d[:])
	binary.BigEndian.PutUint16(b[10:], ^wire.Checksum(b[:20], 0))
	binary.BigEndian.PutUint32(b[20:], id)
	return b
}

// twoScripted returns a network of two script engines on one link.
func twoScripted(t *testing.T, cfg Config, ab, ba Impairments, a, b *scriptEngine) (*Network, *Link) {
	t.Helper()
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ha, err := n.AddHost(HostConfig{Name: "A", Engine: a, Addrs: []netip.Addr{hostAddr(0)}})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := n.AddHost(HostConfig{Name: "B", Engine: b, Addrs: []netip.Addr{hostAddr(1)}})
	if err != nil {
		t.Fatal(err)
	}
	l, err := n.Connect(ha, hb, ab, ba)
	if err != nil {
		t.Fatal(err)
	}
	return n, l
}

// TestBottleneck: a rate-limited link serializes frames back to back at its
// rate and drops what finds its queue full (tail drop).
func TestBottleneck(t *testing.T) {
	const size = 1000 // bytes: 1 ms at 8 Mbit/s
	burst := func(out *engine.Output, n int, first uint32) {
		for i := range n {
			out.Frames = append(out.Frames, ipFrame(size, hostAddr(0), hostAddr(1), first+uint32(i)))
		}
	}
	a := &scriptEngine{fn: func(e *scriptEngine, in *engine.Input, out *engine.Output) {
		switch in.Now {
		case 0:
			burst(out, 25, 0) // 10 fit, 15 are dropped
			out.Deadline = engine.Time(4500 * engine.Microsecond)
		case engine.Time(4500 * engine.Microsecond):
			burst(out, 10, 100) // 4 have left: 4 fit behind the 6 still queued
		}
	}}
	b := &scriptEngine{}
	n, l := twoScripted(t, Config{}, Impairments{Rate: 8_000_000, QueueLimit: 10, Delay: ms}, Impairments{}, a, b)
	if err := n.Run(engine.Time(second)); err != nil {
		t.Fatal(err)
	}
	st := l.Stats(n.Hosts()[0])
	if st.Frames != 35 || st.QueueDrops != 21 || st.Delivered != 14 || st.MaxQueue != 10 {
		t.Fatalf("frames %d, queue drops %d, delivered %d, max queue %d; want 35, 21, 14, 10", st.Frames, st.QueueDrops, st.Delivered, st.MaxQueue)
	}
	// Frame k of the queue leaves k ms after the transmitter starts on it, and
	// arrives 1 ms later.
	wantIDs := []uint32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 100, 101, 102, 103}
	for i, f := range b.got {
		id := binary.BigEndian.Uint32(f[20:])
		want := engine.Time(engine.Duration(i+2) * ms)
		if id != wantIDs[i] || b.gotAt[i] != want {
			t.Errorf("frame %d: id %d at %v, want id %d at %v", i, id, engine.Duration(b.gotAt[i]), wantIDs[i], engine.Duration(want))
		}
	}
}

// TestMTU: frames longer than a link's MTU are dropped and counted; the rest
// arrive whole.
func TestMTU(t *testing.T) {
	sizes := []int{576, 1200, 1201, 1500, 24}
	a := &scriptEngine{fn: func(e *scriptEngine, in *engine.Input, out *engine.Output) {
		if e.steps == 1 {
			for i, s := range sizes {
				out.Frames = append(out.Frames, ipFrame(s, hostAddr(0), hostAddr(1), uint32(i)))
			}
		}
	}}
	b := &scriptEngine{}
	n, l := twoScripted(t, Config{}, Impairments{MTU: 1200}, Impairments{}, a, b)
	if err := n.Run(engine.Time(second)); err != nil {
		t.Fatal(err)
	}
	st := l.Stats(n.Hosts()[0])
	if st.MTUDrops != 2 || st.Delivered != 3 || len(b.got) != 3 {
		t.Fatalf("MTU drops %d, delivered %d; want 2 and 3", st.MTUDrops, st.Delivered)
	}
	for i, want := range []int{576, 1200, 24} {
		if len(b.got[i]) != want {
			t.Errorf("frame %d is %d bytes, want %d", i, len(b.got[i]), want)
		}
	}
}

// TestCorruptionOneByte: a corrupted copy differs from what was sent in exactly
// one byte, and that breaks its IPv4 header checksum or its TCP checksum: the
// premise of the integrity suite's corruption profiles.
func TestCorruptionOneByte(t *testing.T) {
	const frames = 4000
	var sent [][]byte
	a := &scriptEngine{fn: func(e *scriptEngine, in *engine.Input, out *engine.Output) {
		if e.steps == 1 {
			for i := range frames {
				f := ipFrame(40+i%1400, hostAddr(0), hostAddr(1), uint32(i))
				sent = append(sent, f)
				out.Frames = append(out.Frames, f)
			}
		}
	}}
	b := &scriptEngine{}
	n, l := twoScripted(t, Config{Seed: 3}, Impairments{Corrupt: 0.5}, Impairments{}, a, b)
	if err := n.Run(engine.Time(second)); err != nil {
		t.Fatal(err)
	}
	differ := 0
	for i, f := range b.got {
		d := 0
		for j := range f {
			if f[j] != sent[i][j] {
				d++
			}
		}
		if d > 1 {
			t.Fatalf("frame %d differs in %d bytes: corruption damages one", i, d)
		}
		differ += d
	}
	st := l.Stats(n.Hosts()[0])
	if len(b.got) != frames || uint64(differ) != st.Corrupted || differ < frames/3 || differ > 2*frames/3 {
		t.Fatalf("%d frames arrived, %d damaged, Corrupted counts %d; want %d, about half, equal", len(b.got), differ, st.Corrupted, frames)
	}

	// The same through TCP: every corrupted copy the native stacks get fails a
	// checksum or a validation gate.
	sc := &scenario{seed: 11, hosts: 2, links: sym(Impairments{Corrupt: 0.05, Delay: ms}), size: 256 << 10, bound: boundLossy}
	var bad, undetected int
	sc.onFrame = func(f *Frame) {
		if f.Kind != FrameDelivered || !f.Corrupted {
			return
		}
		bad++
		ip, err := wire.ParseIPv4(f.Data)
		if err != nil || !ip.ChecksumValid() {
			return
		}
		seg, err := wire.ParseTCP(ip.Payload())
		if err == nil && seg.ChecksumValid(ip.Src(), ip.Dst()) {
			undetected++
		}
	}
	o := sc.runClean(t)
	if bad < 20 || undetected != 0 {
		t.Fatalf("%d corrupted copies delivered, %d of them with valid checksums; want at least 20 and none", bad, undetected)
	}
	for _, h := range o.hosts {
		if s, ok := h.Engine().(statser); ok && s.Stats().DropChecksum == 0 {
			t.Errorf("%s's engine counted no DropChecksum", h.Name())
		}
	}
}

// TestCorruptedFrameNeverDelivered: with 5% of the copies damaged both ways,
// the native stacks drop every one of them (the Drop counters equal the
// corrupted copies delivered, and DropChecksum grows) and 1 MiB each way still
// arrives intact, as its SHA-256 proves.
func TestCorruptedFrameNeverDelivered(t *testing.T) {
	sc := &scenario{seed: 5, hosts: 2, links: sym(Impairments{Corrupt: 0.05, Delay: 2 * ms}), size: mib, bound: boundLossy}
	o := sc.runClean(t)
	for _, h := range o.hosts {
		var corrupted uint64
		for _, d := range h.rx {
			corrupted += d.stats.Corrupted
		}
		s, ok := h.Engine().(statser)
		if !ok {
			t.Skip("the engine has no Stats: the checksum counters cannot be checked")
		}
		if st := s.Stats(); corrupted < 20 || st.DropChecksum == 0 || st.DropChecksum > corrupted {
			t.Errorf("%s: %d corrupted copies delivered, DropChecksum %d; want at least 20, and a count in 1..%d",
				h.Name(), corrupted, st.DropChecksum, corrupted)
		}
	}
}

// TestRateLimitTransfer: a 10 Mbit/s link moves 1 MiB in no less than the
// 0.839 s its bits take (8×2^20 / 10^7), and, with a queue large enough not to
// drop, not much more.
func TestRateLimitTransfer(t *testing.T) {
	sc := &scenario{seed: 1, hosts: 2, links: sym(Impairments{Rate: 10_000_000, Delay: ms}), size: mib, bound: boundClean}
	o := sc.runClean(t)
	floor := engine.Duration(int64(8*mib) * int64(second) / 10_000_000)
	for _, tr := range []*Transfer{o.pairs[0].dialer, o.pairs[0].listener} {
		got := engine.Duration(tr.EOFAt)
		if got < floor || got > 2*floor {
			t.Errorf("1 MiB crossed the 10 Mbit/s link in %v; want at least %v and at most %v", got, floor, 2*floor)
		}
	}
	t.Logf("EOF at %v and %v (floor %v)", engine.Duration(o.pairs[0].dialer.EOFAt), engine.Duration(o.pairs[0].listener.EOFAt), floor)
}

// frameHash runs sc and hashes every frame event (sent and delivered: time,
// ends, fate, bytes) and the capture of every frame sent.
func frameHash(t *testing.T, sc scenario) ([32]byte, []byte, uint64) {
	t.Helper()
	h := sha256.New()
	var events uint64
	sc.onFrame = func(f *Frame) {
		var b [64]byte
		binary.BigEndian.PutUint64(b[0:], uint64(f.Time))
		b[8], b[9], b[10] = byte(f.Kind), byte(f.From.index), byte(f.Drop)
		if f.To != nil {
			b[11] = byte(f.To.index)
		}
		b[12] = byte(f.Copies)
		if f.Corrupted {
			b[13] = 1
		}
		binary.BigEndian.PutUint64(b[16:], uint64(f.Arrive[0]))
		binary.BigEndian.PutUint64(b[24:], uint64(f.Arrive[1]))
		binary.BigEndian.PutUint64(b[32:], uint64(f.Departs))
		binary.BigEndian.PutUint64(b[40:], uint64(len(f.Data)))
		h.Write(b[:48])
		h.Write(f.Data)
		events++
	}
	var capture bytes.Buffer
	sc.capture, sc.captureAt = &capture, CaptureSent
	sc.runClean(t)
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, capture.Bytes(), events
}

// TestDeterminism: the same seed gives byte-identical frames at identical
// times with identical fates, every impairment on; another seed does not.
// everything is a scenario with every impairment on, for the determinism tests.
var everything = scenario{seed: 42, hosts: 2, size: mib, bound: boundLossy, links: [2]Impairments{
	{Loss: 0.03, Duplicate: 0.02, Reorder: 0.05, Corrupt: 0.01, Delay: 10 * ms, Jitter: 3 * ms, Rate: 20_000_000, QueueLimit: 50},
	{Loss: 0.02, Duplicate: 0.02, Reorder: 0.05, Corrupt: 0.01, Delay: 10 * ms, Jitter: 3 * ms},
}}

func TestDeterminism(t *testing.T) {
	sc := everything
	h1, c1, n1 := frameHash(t, sc)
	h2, c2, n2 := frameHash(t, sc)
	if h1 != h2 || n1 != n2 || !bytes.Equal(c1, c2) {
		t.Fatalf("seed 42 twice: %d frame events hashing to %x, then %d to %x; captures equal %v",
			n1, h1[:8], n2, h2[:8], bytes.Equal(c1, c2))
	}
	sc.seed = 43
	h3, _, n3 := frameHash(t, sc)
	if h3 == h1 {
		t.Fatalf("seeds 42 and 43 gave the same %d frame events", n3)
	}
	t.Logf("seed 42: %d frame events, sha256 %x; seed 43: %d, %x", n1, h1[:8], n3, h3[:8])
}

// TestCapture: the capture of a run holds every frame delivered, and tshark
// reads each with good checksums.
func TestCapture(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.pcap")
	var capture bytes.Buffer
	sc := &scenario{seed: 2, hosts: 2, links: sym(Impairments{Delay: ms, Loss: 0.02}), size: 64 << 10, bound: boundLossy, capture: &capture}
	o := sc.runClean(t)
	if err := os.WriteFile(path, capture.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	lines := pcaptest.Check(t, path, int(linkTotals(o.net).Delivered))
	if len(lines) == 0 || !strings.Contains(lines[0], "SYN") {
		t.Errorf("the first packet is not the SYN: %q", lines[:min(1, len(lines))])
	}
}

// TestMesh: three hosts, each pair on its own link, every pair transferring
// both ways at once; every frame goes over the link to its destination.
func TestMesh(t *testing.T) {
	sc := &scenario{seed: 9, hosts: 3, links: sym(Impairments{Delay: 3 * ms, Loss: 0.01}), size: 128 << 10, bound: boundLossy}
	o := sc.runClean(t)
	if len(o.net.Links()) != 3 || len(o.pairs) != 3 {
		t.Fatalf("%d links, %d pairs; want 3 and 3", len(o.net.Links()), len(o.pairs))
	}
	for _, l := range o.net.Links() {
		for _, d := range l.dirs {
			if d.stats.Frames < 80 {
				t.Errorf("%s>%s carried %d frames; want the frames of a 128 KiB transfer", d.from.Name(), d.to.Name(), d.stats.Frames)
			}
		}
	}
}

// TestNoRoute: a host with two links drops, and counts, a frame to an address
// neither leads to, and a frame that is not IP.
func TestNoRoute(t *testing.T) {
	n, _ := New(Config{})
	a := &scriptEngine{fn: func(e *scriptEngine, in *engine.Input, out *engine.Output) {
		if e.steps == 1 {
			out.Frames = append(out.Frames,
				ipFrame(100, hostAddr(0), hostAddr(2), 1),
				ipFrame(100, hostAddr(0), netip.MustParseAddr("192.0.2.1"), 2),
				[]byte{0x00, 1, 2, 3},
				ipFrame(100, hostAddr(0), hostAddr(1), 3))
		}
	}}
	b, c := &scriptEngine{}, &scriptEngine{}
	var hs []*Host
	for i, e := range []*scriptEngine{a, b, c} {
		h, err := n.AddHost(HostConfig{Engine: e, Addrs: []netip.Addr{hostAddr(i)}})
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
	}
	if _, err := n.Mesh(hs, Impairments{}); err != nil {
		t.Fatal(err)
	}
	if err := n.Run(engine.Time(second)); err != nil {
		t.Fatal(err)
	}
	if n.Stats().NoRoute != 2 || len(b.got) != 1 || len(c.got) != 1 || binary.BigEndian.Uint32(c.got[0][20:]) != 1 {
		t.Fatalf("no route %d, B got %d frames, C got %d; want 2, 1, 1 (the first)", n.Stats().NoRoute, len(b.got), len(c.got))
	}
}

// TestStuck: engines that keep asking to be called without doing anything stop
// the run with ErrStuck, whether the clock stands still or creeps.
func TestStuck(t *testing.T) {
	for _, tc := range []struct {
		name string
		fn   func(e *scriptEngine, in *engine.Input, out *engine.Output)
		want string
	}{
		{"called now forever", func(e *scriptEngine, in *engine.Input, out *engine.Output) {
			out.Deadline = in.Now
			out.Events = append(out.Events, engine.Event{Kind: engine.EventReadable, Conn: 1}) // not idle: only the clock stands still
		}, "with the clock not moving"},
		{"idle timer", func(e *scriptEngine, in *engine.Input, out *engine.Output) {
			out.Deadline = in.Now.Add(ms)
		}, "took and gave nothing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, _ := twoScripted(t, Config{MaxSpin: 1000, MaxIdle: 1000}, Impairments{}, Impairments{}, &scriptEngine{fn: tc.fn}, &scriptEngine{})
			err := n.Run(engine.Time(3600 * second))
			if !errors.Is(err, ErrStuck) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run returned %v; want ErrStuck saying %q", err, tc.want)
			}
		})
	}
	n, _ := twoScripted(t, Config{MaxSteps: 50}, Impairments{}, Impairments{}, &scriptEngine{fn: func(e *scriptEngine, in *engine.Input, out *engine.Output) {
		out.Deadline = in.Now.Add(ms)
		out.Frames = append(out.Frames, ipFrame(40, hostAddr(0), hostAddr(1), 0))
	}}, &scriptEngine{})
	if err := n.Run(engine.Time(3600 * second)); !errors.Is(err, ErrStuck) || n.Stats().Steps != 50 {
		t.Fatalf("Run returned %v after %d Steps; want ErrStuck after MaxSteps 50", err, n.Stats().Steps)
	}
}

// TestPanic: a panic inside an engine's Step becomes ErrPanic naming the host
// and carrying the stack; the network then stays stopped.
func TestPanic(t *testing.T) {
	b := &scriptEngine{fn: func(e *scriptEngine, in *engine.Input, out *engine.Output) {
		if len(in.Frames) > 0 {
			panic("boom")
		}
	}}
	a := &scriptEngine{fn: func(e *scriptEngine, in *engine.Input, out *engine.Output) {
		if e.steps == 1 {
			out.Frames = append(out.Frames, ipFrame(60, hostAddr(0), hostAddr(1), 0))
		}
	}}
	n, _ := twoScripted(t, Config{}, Impairments{Delay: 7 * ms}, Impairments{}, a, b)
	err := n.Run(engine.Time(second))
	if !errors.Is(err, ErrPanic) || !strings.Contains(err.Error(), "host B at t=7ms: boom") || !strings.Contains(err.Error(), "scriptEngine") {
		t.Fatalf("Run returned %v; want ErrPanic in host B at 7ms with the stack", err)
	}
	if err2 := n.Run(engine.Time(second)); err2 != err {
		t.Fatalf("the second Run returned %v; want the first error again", err2)
	}
}

// TestContract: an engine that does not answer every command stops the run.
func TestContract(t *testing.T) {
	a := &scriptEngine{fn: func(e *scriptEngine, in *engine.Input, out *engine.Output) {
		out.Results = out.Results[:0]
	}}
	n, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	app := Funcs{OnStart: func(h *Host) { _ = h.Do(engine.Command{Op: engine.OpListen}) }}
	ha, _ := n.AddHost(HostConfig{Engine: a, Addrs: []netip.Addr{hostAddr(0)}, App: app})
	hb, _ := n.AddHost(HostConfig{Engine: &scriptEngine{}, Addrs: []netip.Addr{hostAddr(1)}})
	if _, err := n.Connect(ha, hb, Impairments{}, Impairments{}); err != nil {
		t.Fatal(err)
	}
	if err := n.Run(engine.Time(second)); !errors.Is(err, ErrContract) {
		t.Fatalf("Run returned %v; want ErrContract", err)
	}
}

// TestConfigErrors: bad impairments, limits and topologies are refused with a
// reason.
func TestConfigErrors(t *testing.T) {
	for _, im := range []Impairments{
		{Loss: 1.5}, {Duplicate: -0.1}, {Corrupt: 2}, {Rate: -1}, {QueueLimit: -1}, {MTU: -5},
		{Delay: -ms}, {Jitter: 2 * 3600 * second}, {QueueLimit: maxQueueLimit + 1},
	} {
		if err := im.Validate(); err == nil {
			t.Errorf("%+v: Validate accepted it", im)
		}
	}
	if _, err := New(Config{MaxBatch: -1}); err == nil || !strings.Contains(err.Error(), "MaxBatch") {
		t.Errorf("New with MaxBatch -1: %v", err)
	}
	n, _ := New(Config{})
	if _, err := n.AddHost(HostConfig{}); err == nil {
		t.Error("AddHost without an engine succeeded")
	}
	if _, err := n.AddHost(HostConfig{Engine: &scriptEngine{}}); err == nil {
		t.Error("AddHost of a generic engine without Addrs succeeded")
	}
	ha, _ := n.AddHost(HostConfig{Engine: &scriptEngine{}, Addrs: []netip.Addr{hostAddr(0)}})
	if _, err := n.AddHost(HostConfig{Engine: &scriptEngine{}, Addrs: []netip.Addr{hostAddr(0)}}); err == nil {
		t.Error("AddHost with another host's address succeeded")
	}
	s, err := engine.New(engine.Config{Addrs: []netip.Addr{hostAddr(1)}})
	if err != nil {
		t.Fatal(err)
	}
	hb, err := n.AddHost(HostConfig{Engine: s}) // the native stack's own addresses
	if err != nil || len(hb.Addrs()) != 1 || hb.Addrs()[0] != hostAddr(1) {
		t.Fatalf("AddHost of a native stack: %v, addresses %v", err, hb.Addrs())
	}
	if _, err := n.Connect(ha, ha, Impairments{}, Impairments{}); err == nil {
		t.Error("Connect of a host to itself succeeded")
	}
	if _, err := n.Connect(ha, hb, Impairments{Loss: 3}, Impairments{}); err == nil || !strings.Contains(err.Error(), "Loss") {
		t.Errorf("Connect with Loss 3: %v", err)
	}
	if err := n.Run(0); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Connect(ha, hb, Impairments{}, Impairments{}); err == nil {
		t.Error("Connect after Run succeeded")
	}
}

// TestReplayCommand: the command a failing run prints names its profile and
// seed, and the seeds of the default matrix are disjoint.
func TestReplayCommand(t *testing.T) {
	p := &profiles[0]
	want := "go test ./host/sim -run 'TestIntegrity/^clean$' -sim.seed=1000007 -sim.pcap=/tmp/sim-clean-1000007.pcap -v"
	if got := replay(p, 1000007); got != want {
		t.Fatalf("replay: %s\nwant:   %s", got, want)
	}
	seen := map[uint64]string{}
	names := map[string]bool{}
	for i := range profiles {
		p := &profiles[i]
		if names[p.name] || p.seeds < 1 || p.bound <= 0 {
			t.Errorf("profile %s: duplicate name, no seeds or no bound", p.name)
		}
		names[p.name] = true
		for _, s := range seedsOf(p) {
			if o, dup := seen[s]; dup {
				t.Errorf("seed %d is both %s's and %s's", s, o, p.name)
			}
			seen[s] = p.name
		}
	}
}
