package pipe

import (
	"crypto/sha256"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
)

var (
	addrA  = netip.MustParseAddr("10.0.0.1")
	addrB  = netip.MustParseAddr("10.0.0.2")
	server = netip.AddrPortFrom(addrB, 7)
)

// stacks returns the native engines of sides A and B, tracing states.
func stacks(t testing.TB, mod func(*engine.Config)) [2]engine.Engine {
	t.Helper()
	var es [2]engine.Engine
	for i, a := range []netip.Addr{addrA, addrB} {
		cfg := engine.Config{Addrs: []netip.Addr{a}, Seed: uint64(i + 1), TraceStates: true}
		cfg.Key[0] = byte(i + 1)
		if mod != nil {
			mod(&cfg)
		}
		s, err := engine.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		es[i] = s
	}
	return es
}

// randomBytes returns n bytes drawn from seed.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// peer is one side of a bidirectional transfer: it sends its data, shuts down,
// reads the peer's data to EOF (hashing it), and closes once both are done.
type peer struct {
	Endpoint
	send     []byte
	got      []byte
	hash     [32]byte
	closedEv bool           // EventClosed of the connection
	toClosed bool           // EventState to CLOSED of the connection
	states   []engine.State // every To state of the connection, in order
}

func newPeer(send []byte, dial, listen netip.AddrPort) *peer {
	p := &peer{send: send}
	p.Dial, p.Listen = dial, listen
	p.OnOpen = func(h *Host, s *Stream) {
		s.OnData = func(s *Stream, b []byte) { p.got = append(p.got, b...) }
		s.OnError = func(s *Stream, err engine.Error) {
			h.Fail(fmt.Errorf("side %v: connection failed at t=%v after sending %d and receiving %d bytes: %w",
				h.Side(), engine.Duration(h.Now()), s.Sent, s.Received, err))
		}
		done := func(s *Stream) {
			if s.EOF() && s.Sent == int64(len(p.send)) {
				s.Close()
			}
		}
		s.OnEOF = func(s *Stream) {
			p.hash = sha256.Sum256(p.got)
			done(s)
		}
		s.OnWritten = func(s *Stream, n int) {
			if s.Sent == int64(len(p.send)) {
				s.Shutdown()
				done(s)
			}
		}
		// Write in 64 KiB pieces so that short writes and EventWritable happen.
		for off := 0; off < len(p.send); off += 64 << 10 {
			_ = s.Write(p.send[off:min(len(p.send), off+64<<10)])
		}
		if len(p.send) == 0 {
			s.Shutdown()
		}
	}
	p.OnEvent = func(h *Host, ev engine.Event) {
		if p.Stream == nil || ev.Conn != p.Stream.ID {
			return
		}
		switch ev.Kind {
		case engine.EventClosed:
			p.closedEv = true
		case engine.EventState:
			p.states = append(p.states, ev.To)
			if ev.To == engine.StateClosed {
				p.toClosed = true
			}
		}
	}
	return p
}

// transfer sends sizeA bytes from A to B and sizeB from B to A over a pipe with
// the given links, and checks both by SHA-256 and that both ends reach CLOSED.
func transfer(t *testing.T, links [2]Impairments, seed uint64, sizeA, sizeB int) (*Pipe, [2]*peer) {
	t.Helper()
	return transferWith(t, nil, links, seed, sizeA, sizeB)
}

// transferWith is transfer with engines configured by mod.
func transferWith(t *testing.T, mod func(*engine.Config), links [2]Impairments, seed uint64, sizeA, sizeB int) (*Pipe, [2]*peer) {
	t.Helper()
	dataA, dataB := randomBytes(sizeA, seed*2+1), randomBytes(sizeB, seed*2+2)
	a := newPeer(dataA, server, netip.AddrPort{})
	b := newPeer(dataB, netip.AddrPort{}, server)
	p, err := New(Config{Engines: stacks(t, mod), Apps: [2]App{a, b}, Links: links, Seed: seed})
	if err != nil {
		t.Fatal(err)
	}
	limit := engine.Time(3600 * engine.Second)
	if err := p.Run(limit); err != nil {
		t.Fatalf("run: %v", err)
	}
	st := p.Stats()
	t.Logf("t=%v steps %v; A>B %+v; B>A %+v", engine.Duration(p.Now()), st.Steps, st.Links[A], st.Links[B])
	for i, pr := range []*peer{a, b} {
		want := dataA
		if i == 0 {
			want = dataB
		}
		if len(pr.got) != len(want) || pr.hash != sha256.Sum256(want) {
			t.Errorf("side %v received %d bytes (sha256 %x), want %d (sha256 %x); states %v",
				Side(i), len(pr.got), pr.hash[:8], len(want), sha256.Sum256(want), pr.states)
		}
		if !pr.closedEv || !pr.toClosed {
			t.Errorf("side %v: EventClosed %v, EventState to CLOSED %v (want both); states %v",
				Side(i), pr.closedEv, pr.toClosed, pr.states)
		}
	}
	return p, [2]*peer{a, b}
}
