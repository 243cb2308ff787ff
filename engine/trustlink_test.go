package engine

import (
	"net/netip"
	"testing"
)

// TestTrustLink: a SYN with a bad TCP checksum is dropped and counted, unless
// the link is trusted, when it opens a connection as any SYN does.
func TestTrustLink(t *testing.T) {
	for _, trust := range []bool{false, true} {
		p := newPair(t, func(c *Config) { c.TrustLink = trust })
		p.b.Listen(netip.AddrPortFrom(addrB, 80), 0)
		p.a.Dial(p.now, netip.AddrPort{}, netip.AddrPortFrom(addrB, 80))
		buf := make([]byte, 1500)
		n := p.a.PollFrame(buf)
		buf[20+16] ^= 0x5a // the TCP checksum
		p.b.HandleFrame(p.now, buf[:n])
		st := p.b.Stats()
		if trust && (st.DropChecksum != 0 || st.Conns != 2) || !trust && (st.DropChecksum != 1 || st.Conns != 1) {
			t.Errorf("TrustLink %v: DropChecksum %d, slots %d", trust, st.DropChecksum, st.Conns)
		}
	}
}
