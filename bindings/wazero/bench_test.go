package wazero

import (
	"bytes"
	"compress/gzip"
	"context"
	"flag"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"

	"github.com/tcpeng/tcpeng/engine"
)

// W5 of ../../../shared/BENCH.md, in process and with no goroutines: W1 (bulk)
// and W4 (ping-pong) with the engines native, in wazero, or one of each, in the
// same run. The engines talk through the sans-I/O API over an in-memory link
// that copies each frame (as a wire would) into a reused buffer.

// link carries frames to one side: copies in a buffer reused once they are
// consumed.
type link struct {
	buf    []byte
	frames [][]byte
}

func (l *link) push(fs [][]byte) {
	for _, f := range fs {
		off := len(l.buf)
		l.buf = append(l.buf, f...) // a growth keeps the older frames valid in the old array
		l.frames = append(l.frames, l.buf[off:len(l.buf):len(l.buf)])
	}
}

func (l *link) reset() { l.buf, l.frames = l.buf[:0], l.frames[:0] }

// pair is two engines on a link, driven step by step on a virtual clock.
type pair struct {
	eng  [2]engine.Engine
	in   [2]engine.Input
	out  [2]engine.Output
	wire [2]link
	now  engine.Time
	cmd  [2][1]engine.Command
}

func newPair(tb testing.TB, k kind) *pair {
	cfg := configs(func(c *engine.Config) { c.TraceStates = false })
	p := &pair{}
	for i := range 2 {
		p.eng[i] = newEngine(tb, k[i], cfg[i])
		p.wire[i].buf = make([]byte, 0, 4<<20)
	}
	return p
}

// step runs side i with the frames that reached it and at most one command;
// it returns the command's result and whether frames went out.
func (p *pair) step(i int, c *engine.Command) (engine.Result, bool) {
	in, out := &p.in[i], &p.out[i]
	in.Now, in.Frames, in.Commands = p.now, p.wire[i].frames, in.Commands[:0]
	if c != nil {
		p.cmd[i][0] = *c
		in.Commands = p.cmd[i][:]
	}
	p.eng[i].Step(in, out)
	p.wire[i].reset()
	p.wire[1-i].push(out.Frames)
	var r engine.Result
	if c != nil {
		r = out.Results[0]
	}
	return r, len(out.Frames) > 0
}

// idle advances the clock: a little, or to the next deadline when nothing moves.
func (p *pair) idle(moved bool) {
	if moved || len(p.wire[0].frames) > 0 || len(p.wire[1].frames) > 0 {
		p.now += engine.Time(engine.Microsecond)
		return
	}
	d := min(p.out[0].Deadline, p.out[1].Deadline)
	if d == engine.Never {
		d = p.now.Add(engine.Millisecond)
	}
	p.now = max(d, p.now+1)
}

// connect makes side 0 listen and side 1 dial; it returns side 0's and side
// 1's connections.
func (p *pair) connect(tb testing.TB) (server, client engine.ConnID) {
	lr, _ := p.step(0, &engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(addrA, 5001)})
	cr, _ := p.step(1, &engine.Command{Op: engine.OpDial, Addr: netip.AddrPortFrom(addrA, 5001)})
	for range 1000 {
		m0, _ := p.step(0, &engine.Command{Op: engine.OpAccept, Conn: lr.Conn})
		_, m1 := p.step(1, nil)
		if m0.Err == engine.OK {
			return m0.Conn, cr.Conn
		}
		p.idle(m1)
	}
	tb.Fatal("no connection")
	return 0, 0
}

// bulk moves n bytes from side 0 to side 1 in 64 KiB writes and reads.
func (p *pair) bulk(tb testing.TB, s, c engine.ConnID, data, buf []byte, n int) {
	sent, got := 0, 0
	blocked := false
	for rounds := 0; got < n; rounds++ {
		if rounds > 10_000_000 {
			tb.Fatalf("bulk stalled at %d of %d bytes", got, n)
		}
		var m0, m1 bool
		if !blocked && sent < n {
			var r engine.Result
			r, m0 = p.step(0, &engine.Command{Op: engine.OpWrite, Conn: s, Data: data[:min(len(data), n-sent)]})
			sent += r.N
			blocked = r.N < min(len(data), n-sent+r.N)
		} else {
			_, m0 = p.step(0, nil)
			if blocked && hasKind(p.out[0].Events, engine.EventWritable) {
				blocked = false
			}
		}
		r, m1 := p.step(1, &engine.Command{Op: engine.OpRead, Conn: c, Data: buf})
		got += r.N
		if blocked && hasKind(p.out[0].Events, engine.EventWritable) {
			blocked = false
		}
		p.idle(m0 || m1 || r.N > 0)
	}
}

func hasKind(evs []engine.Event, k engine.EventKind) bool {
	for _, e := range evs {
		if e.Kind == k {
			return true
		}
	}
	return false
}

// pingPong sends msg from side 1 to side 0 and back.
func (p *pair) pingPong(tb testing.TB, s, c engine.ConnID, msg, buf []byte) {
	p.step(1, &engine.Command{Op: engine.OpWrite, Conn: c, Data: msg})
	for got := 0; got < len(msg); {
		r, m := p.step(0, &engine.Command{Op: engine.OpRead, Conn: s, Data: buf[got:len(msg)]})
		got += r.N
		if got < len(msg) {
			_, m1 := p.step(1, nil)
			p.idle(m || m1)
		}
	}
	p.step(0, &engine.Command{Op: engine.OpWrite, Conn: s, Data: buf[:len(msg)]})
	for got := 0; got < len(msg); {
		r, m := p.step(1, &engine.Command{Op: engine.OpRead, Conn: c, Data: buf[got:len(msg)]})
		got += r.N
		if got < len(msg) {
			_, m0 := p.step(0, nil)
			p.idle(m || m0)
		}
	}
}

// lifecycle is one W2 connection: side 1 dials side 0's listener lis and
// writes one byte, side 0 accepts, reads it and closes (TIME_WAIT on side 0),
// side 1 reads the end of the stream and closes.
func (p *pair) lifecycle(tb testing.TB, lis engine.ConnID, buf []byte) {
	cr, _ := p.step(1, &engine.Command{Op: engine.OpDial, Addr: netip.AddrPortFrom(addrA, 5002)})
	if cr.Err != engine.OK {
		tb.Fatalf("dial: %v", cr.Err)
	}
	c := cr.Conn
	var s engine.ConnID
	for rounds := 0; s == 0; rounds++ {
		if rounds > 1000 {
			tb.Fatal("W2: no connection")
		}
		r, m0 := p.step(0, &engine.Command{Op: engine.OpAccept, Conn: lis})
		if r.Err == engine.OK {
			s = r.Conn
			break
		}
		_, m1 := p.step(1, nil)
		p.idle(m0 || m1)
	}
	p.step(1, &engine.Command{Op: engine.OpWrite, Conn: c, Data: buf[:1]})
	for rounds := 0; ; rounds++ {
		r, m0 := p.step(0, &engine.Command{Op: engine.OpRead, Conn: s, Data: buf})
		if r.N == 1 {
			break
		}
		if rounds > 1000 {
			tb.Fatal("W2: the byte did not arrive")
		}
		_, m1 := p.step(1, nil)
		p.idle(m0 || m1)
	}
	p.step(0, &engine.Command{Op: engine.OpClose, Conn: s})
	for rounds := 0; ; rounds++ {
		r, m1 := p.step(1, &engine.Command{Op: engine.OpRead, Conn: c, Data: buf})
		if r.Err == engine.ErrEOF {
			break
		}
		if rounds > 1000 {
			tb.Fatalf("W2: no end of stream (%v)", r.Err)
		}
		_, m0 := p.step(0, nil)
		p.idle(m0 || m1)
	}
	p.step(1, &engine.Command{Op: engine.OpClose, Conn: c})
	p.step(0, nil) // the last ACK
	p.step(1, nil)
}

var benchKinds = []kind{bothNative, bothWasm, {"wasm", "native"}, {"native", "wasm"}}

const mib = 1 << 20

// BenchmarkW1Bulk: side 0 writes in 64 KiB writes, side 1 reads 64 KiB at a
// time; one op is 1 MiB. "wasm-native" is a wasm sender.
func BenchmarkW1Bulk(b *testing.B) {
	for _, k := range benchKinds {
		b.Run("engines="+k.String(), func(b *testing.B) { benchBulk(b, k) })
	}
}

func benchBulk(b *testing.B, k kind) {
	p := newPair(b, k)
	s, c := p.connect(b)
	data, buf := bytes.Repeat([]byte("tcpeng!!"), 8<<10), make([]byte, 64<<10)
	p.bulk(b, s, c, data, buf, 4*mib) // warm up: buffers at their working size
	b.SetBytes(mib)
	b.ReportAllocs()
	b.ResetTimer()
	p.bulk(b, s, c, data, buf, b.N*mib)
}

// BenchmarkW4PingPong: a 64-byte message there and back; one op is a round trip.
func BenchmarkW4PingPong(b *testing.B) {
	for _, k := range benchKinds {
		b.Run("engines="+k.String(), func(b *testing.B) { benchPingPong(b, k) })
	}
}

func benchPingPong(b *testing.B, k kind) {
	p := newPair(b, k)
	s, c := p.connect(b)
	p.step(0, &engine.Command{Op: engine.OpSetOption, Conn: s, Option: engine.OptNoDelay, Value: 1})
	p.step(1, &engine.Command{Op: engine.OpSetOption, Conn: c, Option: engine.OptNoDelay, Value: 1})
	msg, buf := bytes.Repeat([]byte("p"), 64), make([]byte, 64)
	for range 1000 {
		p.pingPong(b, s, c, msg, buf)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		p.pingPong(b, s, c, msg, buf)
	}
}

// BenchmarkCompile: compiling the module, without and with the compilation cache.
func BenchmarkCompile(b *testing.B) {
	wasm := moduleBytesFor(b)
	ctx := context.Background()
	b.Run("cache=none", func(b *testing.B) {
		for b.Loop() {
			m, err := Compile(ctx, wasm, &Options{Cache: wazero.NewCompilationCache()})
			if err != nil {
				b.Fatal(err)
			}
			m.Close(ctx)
		}
	})
	b.Run("cache=shared", func(b *testing.B) {
		for b.Loop() {
			m, err := Compile(ctx, wasm, nil)
			if err != nil {
				b.Fatal(err)
			}
			m.Close(ctx)
		}
	})
}

// BenchmarkInstantiate: a new Engine from a compiled module (instance,
// _initialize, version check, init).
func BenchmarkInstantiate(b *testing.B) {
	m := testModule(b)
	cfg := configs(nil)[0]
	ctx := context.Background()
	for b.Loop() {
		e, err := m.New(ctx, cfg)
		if err != nil {
			b.Fatal(err)
		}
		e.Close()
	}
}

// BenchmarkStepEmpty: the floor of one Step: an empty batch.
func BenchmarkStepEmpty(b *testing.B) {
	for _, k := range []string{"native", "wasm"} {
		b.Run("engine="+k, func(b *testing.B) {
			e := newEngine(b, k, configs(nil)[0])
			var in engine.Input
			var out engine.Output
			b.ReportAllocs()
			for b.Loop() {
				e.Step(&in, &out)
			}
		})
	}
}

// TestModuleSize checks the size budget of BENCH.md: 2.5 MB raw, 800 KB gzipped.
func TestModuleSize(t *testing.T) {
	raw, gz := moduleSizes(t)
	t.Logf("tcpeng.wasm: %d bytes raw, %d bytes gzip -9", raw, gz)
	if raw > 2_500_000 || gz > 800_000 {
		t.Fatalf("tcpeng.wasm is %d bytes raw, %d gzipped: over the budget of 2500000 and 800000", raw, gz)
	}
}

func moduleSizes(t testing.TB) (raw, gz int) {
	wasm := moduleBytesFor(t)
	var buf bytes.Buffer
	w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	w.Write(wasm)
	w.Close()
	return len(wasm), buf.Len()
}

var w5 = flag.Int("w5", 0, "TestW5: run W1 and W4 this many rounds, engines interleaved, and print the wasm/native ratios")

// TestW5 prints BENCH.md's W5 figures: each round runs every pair of engines
// once, interleaved, on a fixed amount of work; the ratios to native-native are
// taken round by round, from process CPU time (getrusage: user+sys), which
// other load on a shared machine disturbs less than the wall clock.
func TestW5(t *testing.T) {
	if *w5 == 0 {
		t.Skip("run with -w5 N (for example -w5 5)")
	}
	type work struct {
		name string
		unit string
		run  func(p *pair, s, c engine.ConnID) float64 // returns the units of work done
	}
	data, buf := bytes.Repeat([]byte("tcpeng!!"), 8<<10), make([]byte, 64<<10)
	msg := bytes.Repeat([]byte("p"), 64)
	works := []work{
		{"W1 bulk", "MB/s", func(p *pair, s, c engine.ConnID) float64 {
			p.bulk(t, s, c, data, buf, 64*mib)
			return 64 * mib / 1e6
		}},
		{"W2 connrate", "k connections/s", func(p *pair, s, c engine.ConnID) float64 {
			lr, _ := p.step(0, &engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(addrA, 5002)})
			if lr.Err != engine.OK {
				t.Fatalf("W2 listen: %v", lr.Err)
			}
			for range 2000 {
				p.lifecycle(t, lr.Conn, buf)
			}
			p.step(0, &engine.Command{Op: engine.OpClose, Conn: lr.Conn})
			return 2
		}},
		{"W4 ping-pong", "k round trips/s", func(p *pair, s, c engine.ConnID) float64 {
			for range 10000 {
				p.pingPong(t, s, c, msg, buf)
			}
			return 10
		}},
	}
	for _, w := range works {
		cpu, wall := map[kind][]float64{}, map[kind][]float64{}
		for range *w5 {
			for _, k := range benchKinds {
				p := newPair(t, k)
				s, c := p.connect(t)
				if w.name == "W4 ping-pong" {
					p.step(0, &engine.Command{Op: engine.OpSetOption, Conn: s, Option: engine.OptNoDelay, Value: 1})
					p.step(1, &engine.Command{Op: engine.OpSetOption, Conn: c, Option: engine.OptNoDelay, Value: 1})
				}
				w.run(p, s, c) // warm up
				c0, t0 := cpuTime(), time.Now()
				units := w.run(p, s, c)
				wall[k] = append(wall[k], units/time.Since(t0).Seconds())
				if d := cpuTime() - c0; d > 0 {
					cpu[k] = append(cpu[k], units/d.Seconds())
				} else { // no CPU clock here
					cpu[k] = append(cpu[k], wall[k][len(wall[k])-1])
				}
			}
		}
		for _, k := range benchKinds {
			ratio := make([]float64, len(cpu[k]))
			for i := range ratio {
				ratio[i] = cpu[k][i] / cpu[bothNative][i]
			}
			t.Logf("%-12s %-14s %8.1f %s per CPU second (wall: %8.1f)   vs native-native: %.2f (%.2f-%.2f)",
				w.name, k, median(cpu[k]), w.unit, median(wall[k]), median(ratio), slices.Min(ratio), slices.Max(ratio))
		}
	}
	raw, gz := moduleSizes(t)
	ctx := context.Background()
	t0 := time.Now()
	m, err := Compile(ctx, moduleBytesFor(t), &Options{Cache: wazero.NewCompilationCache()})
	if err != nil {
		t.Fatal(err)
	}
	compile := time.Since(t0)
	t0 = time.Now()
	e, err := m.New(ctx, configs(nil)[0])
	if err != nil {
		t.Fatal(err)
	}
	inst := time.Since(t0)
	e.Close()
	m.Close(ctx)
	t.Logf("module %d bytes raw, %d gzip -9; compile %v (empty cache), instantiate %v", raw, gz, compile, inst)
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestSteadyStateAllocs: once its buffers have grown, the binding allocates
// nothing per Step on the Go side (the guest's memory is its own).
func TestSteadyStateAllocs(t *testing.T) {
	for _, k := range []kind{bothWasm, {"wasm", "native"}} {
		p := newPair(t, k)
		s, c := p.connect(t)
		data, buf := bytes.Repeat([]byte("tcpeng!!"), 8<<10), make([]byte, 64<<10)
		p.bulk(t, s, c, data, buf, 4*mib)
		if a := testing.AllocsPerRun(20, func() { p.bulk(t, s, c, data, buf, mib) }); a != 0 {
			t.Errorf("%s: %.1f allocations per MiB of bulk transfer", k, a)
		}
		msg := bytes.Repeat([]byte("p"), 64)
		for range 100 {
			p.pingPong(t, s, c, msg, buf)
		}
		if a := testing.AllocsPerRun(200, func() { p.pingPong(t, s, c, msg, buf) }); a != 0 {
			t.Errorf("%s: %.2f allocations per ping-pong round trip", k, a)
		}
	}
}
