package engine

import (
	"net/netip"
	"testing"
)

// TestEphemeralPortsCycle checks RFC 6056 Algorithm 3: dials to one destination
// take consecutive ports from a keyed start, so none is reused before the
// whole range has been, and the start differs between destinations.
func TestEphemeralPortsCycle(t *testing.T) {
	s, err := New(Config{Addrs: []netip.Addr{addrA}, EphemeralLow: 40000, EphemeralHigh: 40999, Key: [16]byte{9}})
	if err != nil {
		t.Fatal(err)
	}
	dst := netip.MustParseAddrPort("10.0.0.2:80")
	seen := map[uint16]bool{}
	var first, prev uint16
	for i := range 1000 {
		id, err := s.Dial(0, netip.AddrPort{}, dst)
		if err != OK {
			t.Fatalf("dial %d: %v", i, err)
		}
		local, _, _ := s.Addrs(id)
		p := local.Port()
		if seen[p] {
			t.Fatalf("dial %d reused port %d before the range was used up", i, p)
		}
		seen[p] = true
		if i == 0 {
			first = p
		} else if want := 40000 + (prev-40000+1)%1000; p != want {
			t.Fatalf("dial %d took port %d, want the next one %d", i, p, want)
		}
		prev = p
		s.Abort(id)
	}
	other, _ := s.Dial(0, netip.AddrPort{}, netip.MustParseAddrPort("10.0.0.3:80"))
	if local, _, _ := s.Addrs(other); local.Port() == first || local.Port() == 40000+(prev-40000+1)%1000 {
		t.Errorf("another destination starts at %d, the same place as the first", local.Port())
	}
	if _, err := s.Dial(0, netip.AddrPort{}, netip.MustParseAddrPort("10.0.0.2:81")); err != OK {
		t.Fatal(err)
	}
}
