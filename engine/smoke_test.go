package engine

import (
	"bytes"
	"net/netip"
	"testing"
)

// pair is two stacks wired back to back on a virtual clock.
type pair struct {
	t      testing.TB
	a, b   *Stack
	now    Time
	frames [2][][]byte // queued for a and b
	events [2][]Event
	drop   func(from int, f []byte) bool
}

var (
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
)

func newPair(t testing.TB, mod func(*Config)) *pair {
	ca := Config{Addrs: []netip.Addr{addrA}, Seed: 1, TraceStates: true}
	cb := Config{Addrs: []netip.Addr{addrB}, Seed: 2, TraceStates: true}
	if mod != nil {
		mod(&ca)
		mod(&cb)
	}
	a, err := New(ca)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cb)
	if err != nil {
		t.Fatal(err)
	}
	return &pair{t: t, a: a, b: b}
}

// run exchanges frames until both stacks are quiet, advancing time to deadlines
// up to limit.
func (p *pair) run(limit Time) {
	for i := 0; i < 1_000_000; i++ {
		if p.exchange() {
			continue
		}
		d := min(p.a.PollDeadline(), p.b.PollDeadline())
		if d == Never || d > limit {
			return
		}
		if d > p.now {
			p.now = d
		}
	}
	p.t.Fatal("run did not settle")
}

// exchange gives each stack the frames queued for it, runs its timers, and
// queues what it sends for the other (unless drop says the wire loses it);
// events are kept in p.events. It reports whether anything moved.
func (p *pair) exchange() bool {
	buf := make([]byte, 65536)
	moved := false
	for side, s := range []*Stack{p.a, p.b} {
		for _, f := range p.frames[side] {
			s.HandleFrame(p.now, f)
		}
		p.frames[side] = nil
		s.HandleTimeout(p.now)
		for {
			n := s.PollFrame(buf)
			if n == 0 {
				break
			}
			f := append([]byte(nil), buf[:n]...)
			if p.drop == nil || !p.drop(side, f) {
				p.frames[1-side] = append(p.frames[1-side], f)
			}
			moved = true
		}
		for {
			ev, ok := s.PollEvent()
			if !ok {
				break
			}
			p.events[side] = append(p.events[side], ev)
		}
	}
	return moved || len(p.frames[0]) > 0 || len(p.frames[1]) > 0
}

func TestSmokeEcho(t *testing.T) {
	p := newPair(t, nil)
	lid, err := p.b.Listen(netip.AddrPortFrom(addrB, 7), 0)
	if err != OK {
		t.Fatal(err)
	}
	cid, err := p.a.Dial(p.now, netip.AddrPort{}, netip.AddrPortFrom(addrB, 7))
	if err != OK {
		t.Fatal(err)
	}
	p.run(p.now.Add(Second))
	sid, err := p.b.Accept(lid)
	if err != OK {
		t.Fatalf("accept: %v; events b %v", err, p.events[1])
	}
	msg := []byte("hello, tcpeng")
	if n, err := p.a.Write(cid, msg); n != len(msg) || err != OK {
		t.Fatal(n, err)
	}
	p.run(p.now.Add(Second))
	got := make([]byte, 100)
	n, err := p.b.Read(sid, got)
	if err != OK || !bytes.Equal(got[:n], msg) {
		t.Fatalf("read %q %v", got[:n], err)
	}
	p.b.Write(sid, got[:n])
	p.run(p.now.Add(Second))
	n, err = p.a.Read(cid, got)
	if err != OK || !bytes.Equal(got[:n], msg) {
		t.Fatalf("echo read %q %v", got[:n], err)
	}
	p.a.Close(cid)
	p.run(p.now.Add(Second))
	if _, err := p.b.Read(sid, got); err != ErrEOF {
		t.Fatalf("want EOF, got %v", err)
	}
	p.b.Close(sid)
	p.run(p.now.Add(200 * Second))
	for side := range 2 {
		for _, ev := range p.events[side] {
			if ev.Kind == EventState {
				t.Logf("%c %v %v -> %v", 'A'+side, ev.Conn, ev.From, ev.To)
			} else {
				t.Logf("%c %v %v %v", 'A'+side, ev.Conn, ev.Kind, ev.Err)
			}
		}
	}
	if p.a.Stats().Conns != 0 || p.b.Stats().Conns != 1 {
		t.Fatalf("conns left: a %d b %d", p.a.Stats().Conns, p.b.Stats().Conns)
	}
}
