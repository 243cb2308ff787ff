package forward

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
	"github.com/tcpeng/tcpeng/host/memlink"
)

// Regression tests for two limits host.Driver had in the engine's forward mode,
// found by this package: no way to ask for the wildcard listener, and local
// addresses lost past 255 distinct destinations.

// forwardPair is a guest driver and a driver whose engine runs in forward mode.
func forwardPair(t *testing.T) (guest, fwd *host.Driver) {
	la, lb := memlink.NewPair(1500, 1024)
	var err error
	if guest, err = host.NewDriver(newEngine(t, engine.Config{Addrs: []netip.Addr{guestIP}}), la, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { guest.Close() })
	fe := newEngine(t, engine.Config{Addrs: []netip.Addr{gatewayIP}, Forward: true, Backlog: 1024})
	if fwd, err = host.NewDriver(fe, lb, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fwd.Close() })
	return guest, fwd
}

// Driver.ListenTCP takes port 0 as "a free port of 49152-65535"; ListenForward
// asks the engine for the wildcard listener of Config.Forward (0.0.0.0, port 0),
// which takes a connection to any address.
func TestDriverListenForward(t *testing.T) {
	guest, fwd := forwardPair(t)
	ln, err := fwd.ListenForward()
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if ln.AddrPort().Port() != 0 {
		t.Errorf("ListenForward listens on %v, want the wildcard 0.0.0.0:0", ln.AddrPort())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := guest.DialTCP(ctx, netip.MustParseAddrPort("203.0.113.9:443"))
	if err != nil {
		t.Fatalf("dial through the forward-mode engine: %v", err)
	}
	c.Close()
}

// In forward mode every destination is a local address of an accepted
// connection; past the few the driver interns, each connection keeps its own,
// so LocalAddrPort is right for every one of 300 distinct destinations.
func TestDriverManyLocalAddrs(t *testing.T) {
	guest, fwd := forwardPair(t)
	// A listener on the unspecified address and port 443 takes every
	// destination of that port; it stands in for the wildcard (see above).
	fe, err := fwd.ListenTCP(netip.AddrPortFrom(netip.IPv4Unspecified(), 443))
	if err != nil {
		t.Fatal(err)
	}
	defer fe.Close()
	for i := range 300 {
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i / 200), byte(1 + i%200)}), 443)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := guest.DialTCP(ctx, dst)
		cancel()
		if err != nil {
			t.Fatalf("dial %v: %v", dst, err)
		}
		s, err := fe.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		if got := s.LocalAddrPort(); got != dst {
			t.Fatalf("connection %d: LocalAddrPort %v, want the destination %v", i+1, got, dst)
		}
		c.Close()
		s.Close()
	}
}
