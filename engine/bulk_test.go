package engine

import (
	"crypto/sha256"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// transfer runs a client and a server that each send size bytes to the other,
// half-close, read to EOF, and close; it checks both directions by hash.
func transfer(t *testing.T, p *pair, size int) {
	t.Helper()
	lid, _ := p.b.Listen(netip.AddrPortFrom(addrB, 80), 0)
	cid, err := p.a.Dial(p.now, netip.AddrPort{}, netip.AddrPortFrom(addrB, 80))
	if err != OK {
		t.Fatal(err)
	}
	src := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	want := sha256.Sum256(src)
	type end struct {
		s      *Stack
		id     ConnID
		sent   int
		shut   bool
		got    []byte
		eof    bool
		closed bool
	}
	ends := []*end{{s: p.a, id: cid}, {s: p.b}}
	buf := make([]byte, 65536)
	deadline := p.now.Add(3600 * Second)
	for step := 0; ; step++ {
		if ends[1].id == 0 {
			if id, err := p.b.Accept(lid); err == OK {
				ends[1].id = id
			}
		}
		for _, e := range ends {
			if e.id == 0 || e.closed {
				continue
			}
			for e.sent < size {
				n, err := e.s.Write(e.id, src[e.sent:min(size, e.sent+100000)])
				e.sent += n
				if err != OK || n == 0 {
					break
				}
			}
			if e.sent == size && !e.shut {
				e.s.Shutdown(e.id)
				e.shut = true
			}
			for !e.eof {
				n, err := e.s.Read(e.id, buf)
				e.got = append(e.got, buf[:n]...)
				if err == ErrEOF {
					e.eof = true
				} else if err != OK {
					if err != ErrWouldBlock {
						t.Fatalf("read: %v", err)
					}
					break
				}
			}
			if e.eof && e.shut {
				e.s.Close(e.id)
				e.closed = true
			}
		}
		if ends[0].closed && ends[1].closed && p.a.Stats().Conns == 0 && p.b.Stats().Conns == 1 {
			break
		}
		if p.now > deadline {
			ia, _ := p.a.Info(cid)
			ib, _ := p.b.Info(ends[1].id)
			t.Fatalf("stuck at %v: a sent %d got %d %+v; b sent %d got %d %+v", p.now, ends[0].sent, len(ends[0].got), ia, ends[1].sent, len(ends[1].got), ib)
		}
		p.runOnce()
	}
	for i, e := range ends {
		if sha256.Sum256(e.got) != want {
			t.Fatalf("side %d: got %d bytes, hash differs", i, len(e.got))
		}
	}
}

// runOnce exchanges frames once; it advances the clock by 100 µs if anything
// moved, or else to the next deadline.
func (p *pair) runOnce() {
	if p.exchange() {
		p.now = p.now.Add(100 * Microsecond)
		return
	}
	d := min(p.a.PollDeadline(), p.b.PollDeadline())
	if d != Never && d > p.now {
		p.now = d
	}
}

func TestBulkClean(t *testing.T) {
	p := newPair(t, func(c *Config) { c.TraceStates = false })
	transfer(t, p, 1<<20)
	t.Logf("done at %v; a %+v", p.now, p.a.Stats().TCP)
}

func TestBulkLoss(t *testing.T) {
	for seed := uint64(1); seed <= 20; seed++ {
		p := newPair(t, func(c *Config) { c.TraceStates = false })
		rng := rand.New(rand.NewPCG(seed, 99))
		p.drop = func(int, []byte) bool { return rng.Float64() < 0.05 }
		transfer(t, p, 1<<20)
		t.Logf("seed %d done at %.1fs; timeouts a=%d b=%d fast=%d/%d", seed, float64(p.now)/1e9,
			p.a.Stats().TCP.Timeouts, p.b.Stats().TCP.Timeouts, p.a.Stats().TCP.FastRetransmits, p.b.Stats().TCP.FastRetransmits)
	}
}

// TestDeterminism runs the same lossy transfer twice with the same seeds and
// requires every frame on the wire to be byte-identical.
func TestDeterminism(t *testing.T) {
	run := func() ([32]byte, int) {
		p := newPair(t, func(c *Config) { c.TraceStates = false; c.Key = [16]byte{1, 2, 3} })
		rng := rand.New(rand.NewPCG(42, 7))
		h := sha256.New()
		frames := 0
		p.drop = func(side int, f []byte) bool {
			h.Write([]byte{byte(side)})
			h.Write(f)
			frames++
			return rng.Float64() < 0.03
		}
		transfer(t, p, 256<<10)
		return [32]byte(h.Sum(nil)), frames
	}
	h1, n1 := run()
	h2, n2 := run()
	if h1 != h2 || n1 != n2 {
		t.Fatalf("runs differ: %d frames %x vs %d frames %x", n1, h1, n2, h2)
	}
	t.Logf("%d frames, sha256 %x", n1, h1[:8])
}
