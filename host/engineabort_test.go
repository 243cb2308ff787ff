package host_test

// A regression test for an engine bug found while building the driver (fixed
// in ea9b960): (*engine.Stack).PollFrame panicked ("As4 called on IP zero
// value") sending the last segment of a connection the application had
// released, because update freed the slot before the IP header was written
// from its tuple. Every reset the driver sends goes through that path (Close
// with unread data, SetLinger(0), Driver.Close with connections open), so the
// driver's tests depend on it; this test says so plainly if it comes back.

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// reproAbortAfterAccept connects two stacks, aborts the accepted connection
// and polls the RST that must follow. It returns the panic, if any, or what
// else went wrong.
func reproAbortAfterAccept() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("engine: PollFrame panicked sending the RST of an aborted connection: %v", r)
		}
	}()
	a, _ := engine.New(engine.Config{Addrs: []netip.Addr{ipA}, Seed: 1})
	b, _ := engine.New(engine.Config{Addrs: []netip.Addr{ipB}, Seed: 2})
	lid, _ := b.Listen(netip.AddrPortFrom(ipB, 80), 0)
	if _, e := a.Dial(0, netip.AddrPort{}, netip.AddrPortFrom(ipB, 80)); e != engine.OK {
		return e
	}
	buf := make([]byte, 1500)
	// exchange moves frames both ways until both are quiet; it returns the
	// flags of the TCP segments b sent.
	exchange := func() (sent []wire.Flags) {
		for moved := true; moved; {
			moved = false
			for _, p := range [][2]*engine.Stack{{a, b}, {b, a}} {
				for {
					n := p[0].PollFrame(buf)
					if n == 0 {
						break
					}
					if p[0] == b {
						ip, _ := wire.ParseIPv4(buf[:n])
						tcp, _ := wire.ParseTCP(ip.Payload())
						sent = append(sent, tcp.Flags())
					}
					p[1].HandleFrame(0, buf[:n])
					moved = true
				}
			}
		}
		return sent
	}
	exchange()
	id, e := b.Accept(lid)
	if e != engine.OK {
		return fmt.Errorf("accept: %v", e)
	}
	b.Abort(id)
	sent := exchange()
	if len(sent) != 1 || sent[0]&wire.FlagRST == 0 {
		return fmt.Errorf("engine: Abort sent %v, want one RST", sent)
	}
	return nil
}

func TestEngineAbortSendsReset(t *testing.T) {
	if err := reproAbortAfterAccept(); err != nil {
		t.Fatal(err)
	}
}
