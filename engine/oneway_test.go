package engine

import (
	"math/rand/v2"
	"net/netip"
	"testing"
)

func TestOneWayLoss(t *testing.T) {
	p := newPair(t, func(c *Config) { c.TraceStates = false })
	rng := rand.New(rand.NewPCG(7, 99))
	p.drop = func(side int, f []byte) bool { return side == 0 && rng.Float64() < 0.05 }
	lid, _ := p.b.Listen(netip.AddrPortFrom(addrB, 80), 0)
	cid, _ := p.a.Dial(p.now, netip.AddrPort{}, netip.AddrPortFrom(addrB, 80))
	data := make([]byte, 1<<20)
	sent, got := 0, 0
	var sid ConnID
	buf := make([]byte, 1<<16)
	for i := 0; got < len(data) && i < 1e6; i++ {
		if sid == 0 {
			sid, _ = p.b.Accept(lid)
		}
		n, _ := p.a.Write(cid, data[sent:])
		sent += n
		if sid != 0 {
			for {
				n, err := p.b.Read(sid, buf)
				got += n
				if err != OK || n == 0 {
					break
				}
			}
		}
		p.runOnce()
	}
	st := p.a.Stats().TCP
	if got != len(data) {
		t.Fatalf("received %d of %d bytes", got, len(data))
	}
	if st.FastRetransmits == 0 {
		t.Fatalf("no fast retransmit with 5%% loss: %+v", st)
	}
	t.Logf("got %d at %.2fs: timeouts %d fast %d retrans %d dupacks %d", got, float64(p.now)/1e9, st.Timeouts, st.FastRetransmits, st.Retransmits, st.DupAcks)
}
