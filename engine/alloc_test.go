package engine

import (
	"net/netip"
	"testing"
)

// stepPair drives two stacks through Step only, handing each one's frames to the
// other without copying, the way a host with an in-memory link does.
type stepPair struct {
	s        [2]*Stack
	in       [2]Input
	out      [2]Output
	now      Time
	fwd      [2][][]byte // frames in flight to side i
	fwdBuf   [2][]byte
	cmdBuf   [2][]Command
	conn     [2]ConnID
	readBuf  []byte
	received int
}

func newStepPair(tb testing.TB, mod func(*Config)) *stepPair {
	p := &stepPair{readBuf: make([]byte, 256<<10)}
	for i, a := range []netip.Addr{addrA, addrB} {
		c := Config{Addrs: []netip.Addr{a}, Seed: uint64(i + 1)}
		if mod != nil {
			mod(&c)
		}
		s, err := New(c)
		if err != nil {
			tb.Fatal(err)
		}
		p.s[i] = s
		p.fwdBuf[i] = make([]byte, 0, 4<<20)
	}
	return p
}

// step runs one Step on each side, carrying frames across.
func (p *stepPair) step(cmds [2][]Command) {
	for i := range 2 {
		in := &p.in[i]
		in.Now = p.now
		in.Frames = p.fwd[i]
		in.Commands = cmds[i]
		p.s[i].Step(in, &p.out[i])
		// The other side's frames for next round: copy into a reusable buffer
		// (a real link copies too; frames are only valid until the next Step).
		o := 1 - i
		p.fwd[o] = p.fwd[o][:0]
		p.fwdBuf[o] = p.fwdBuf[o][:0]
		for _, f := range p.out[i].Frames {
			start := len(p.fwdBuf[o])
			p.fwdBuf[o] = append(p.fwdBuf[o], f...)
			p.fwd[o] = append(p.fwd[o], p.fwdBuf[o][start:])
		}
	}
	p.now = p.now.Add(10 * Microsecond)
}

// connect establishes a connection a -> b:80.
func (p *stepPair) connect(tb testing.TB) {
	p.step([2][]Command{nil, {{Op: OpListen, Addr: netip.AddrPortFrom(addrB, 80)}}})
	lid := p.out[1].Results[0].Conn
	p.step([2][]Command{{{Op: OpDial, Addr: netip.AddrPortFrom(addrB, 80)}}, nil})
	p.conn[0] = p.out[0].Results[0].Conn
	for range 10 {
		p.step([2][]Command{nil, {{Op: OpAccept, Conn: lid}}})
		if r := p.out[1].Results[0]; r.Err == OK {
			p.conn[1] = r.Conn
			return
		}
	}
	tb.Fatal("no connection")
}

// pump writes chunk bytes from a and reads everything on b, once.
func (p *stepPair) pump(chunk []byte) {
	p.cmdBuf[0] = append(p.cmdBuf[0][:0], Command{Op: OpWrite, Conn: p.conn[0], Data: chunk})
	p.cmdBuf[1] = append(p.cmdBuf[1][:0], Command{Op: OpRead, Conn: p.conn[1], Data: p.readBuf})
	p.step([2][]Command{p.cmdBuf[0], p.cmdBuf[1]})
	p.received += p.out[1].Results[0].N
}

// TestSteadyStateAllocs proves the data path allocates nothing per segment once
// warm: a bulk transfer through Step, measured over 64 MiB.
func TestSteadyStateAllocs(t *testing.T) {
	for _, mtu := range []int{1500, 65535} {
		p := newStepPair(t, func(c *Config) { c.MTU = mtu })
		p.connect(t)
		chunk := make([]byte, 64<<10)
		for p.received < 32<<20 { // warm up: buffers, pools, slices reach their size
			p.pump(chunk)
		}
		start := p.received
		allocs := testing.AllocsPerRun(2000, func() { p.pump(chunk) })
		mib := float64(p.received-start) / (1 << 20)
		if allocs != 0 {
			t.Errorf("MTU %d: %.3f allocations per Step pair (%.1f MiB moved)", mtu, allocs, mib)
		}
	}
}

func BenchmarkBulkStep(b *testing.B) {
	for _, mtu := range []int{1500, 65535} {
		for _, ts := range []bool{true, false} {
			name := "mtu" + itoa(mtu)
			if !ts {
				name += "-nots"
			}
			b.Run(name, func(b *testing.B) {
				p := newStepPair(b, func(c *Config) { c.MTU, c.NoTimestamps = mtu, !ts })
				p.connect(b)
				chunk := make([]byte, 64<<10)
				for p.received < 8<<20 {
					p.pump(chunk)
				}
				b.ReportAllocs()
				start := p.received
				b.ResetTimer()
				for b.Loop() {
					p.pump(chunk)
				}
				b.SetBytes(int64(p.received-start) / int64(b.N))
			})
		}
	}
}
