package engine

import (
	"net/netip"
	"testing"
)

// TestForwardAnyDestination checks the transparent mode: a stack with
// Config.Forward and a wildcard listener accepts a connection to an address and
// port it does not own, and reports that destination as the local address.
func TestForwardAnyDestination(t *testing.T) {
	p := newPair(t, func(c *Config) { c.TraceStates = false })
	b, err := New(Config{Addrs: []netip.Addr{addrB}, Forward: true})
	if err != nil {
		t.Fatal(err)
	}
	p.b = b
	if _, err := p.a.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 0), 0); err != ErrInvalid {
		t.Fatalf("wildcard listen without Forward: %v, want ErrInvalid", err)
	}
	lid, err := b.Listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 0), 0)
	if err != OK {
		t.Fatal(err)
	}
	// A sends to 203.0.113.9:443 through B, as a namespace's default route would.
	far := netip.MustParseAddrPort("203.0.113.9:443")
	cid, err := p.a.Dial(p.now, netip.AddrPort{}, far)
	if err != OK {
		t.Fatal(err)
	}
	p.run(p.now.Add(Second))
	sid, err := b.Accept(lid)
	if err != OK {
		t.Fatalf("accept: %v", err)
	}
	local, remote, _ := b.Addrs(sid)
	alocal, _, _ := p.a.Addrs(cid)
	if local != far || remote != alocal {
		t.Fatalf("accepted %v <- %v, want %v <- %v", local, remote, far, alocal)
	}
	if n, err := b.Write(sid, []byte("hi")); n != 2 || err != OK {
		t.Fatal(n, err)
	}
	p.run(p.now.Add(Second))
	buf := make([]byte, 8)
	if n, err := p.a.Read(cid, buf); string(buf[:n]) != "hi" || err != OK {
		t.Fatalf("read %q %v", buf[:n], err)
	}
}
