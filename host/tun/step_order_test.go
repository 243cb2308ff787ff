package tun

import (
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
)

// A host that wakes up late (descheduled for longer than the retransmission
// timeout) hands Step the ACK that arrived in time together with a Now past
// the deadline. Step runs the timers before the frames, so the timer fires
// first: the connection takes a retransmission timeout (RFC 6298 §5.4-5.6:
// RTO backed off; RFC 5681 §3.1: cwnd to one segment, ssthresh halved) for
// data the waiting ACK covers. Over a TUN device under load, with ACKs still
// queued behind the batch, this showed as a go-back-N burst of acknowledged
// segments each answered by a D-SACK. Frames first, then timers, would avoid
// the spurious timeout when the ACK is in the batch.
// lateACK sets up the case: a has sent one segment whose ACK from b is in
// hand, and its retransmission deadline has passed by the time a sees it.
func lateACK(t *testing.T) (a *engine.Stack, ack [][]byte, late engine.Time) {
	a, _ = engine.New(engine.Config{Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Seed: 1})
	b, _ := engine.New(engine.Config{Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}, Seed: 2})
	var now engine.Time
	var ina, inb engine.Input
	var outa, outb engine.Output
	copyFrames := func(f [][]byte) [][]byte {
		var c [][]byte
		for _, x := range f {
			c = append(c, append([]byte(nil), x...))
		}
		return c
	}
	lis := netip.MustParseAddrPort("10.0.0.2:7")
	inb.Commands = []engine.Command{{Op: engine.OpListen, Addr: lis}}
	b.Step(&inb, &outb)
	ina.Commands = []engine.Command{{Op: engine.OpDial, Addr: lis}}
	a.Step(&ina, &outa)
	conn := outa.Results[0].Conn
	for range 4 { // the handshake
		inb = engine.Input{Now: now, Frames: copyFrames(outa.Frames)}
		b.Step(&inb, &outb)
		ina = engine.Input{Now: now, Frames: copyFrames(outb.Frames)}
		a.Step(&ina, &outa)
	}
	ina = engine.Input{Now: now, Commands: []engine.Command{{Op: engine.OpWrite, Conn: conn, Data: []byte("hello")}}}
	a.Step(&ina, &outa)
	if outa.Results[0].N != 5 || len(outa.Frames) != 1 {
		t.Fatalf("write: %+v, %d frames", outa.Results[0], len(outa.Frames))
	}
	deadline := outa.Deadline
	inb = engine.Input{Now: now, Frames: copyFrames(outa.Frames)}
	b.Step(&inb, &outb)
	now = now.Add(50 * engine.Millisecond) // b's delayed ACK
	inb = engine.Input{Now: now}
	b.Step(&inb, &outb)
	if len(outb.Frames) != 1 {
		t.Fatalf("b sent %d frames, want its ACK", len(outb.Frames))
	}
	return a, copyFrames(outb.Frames), deadline.Add(engine.Millisecond)
}

func checkNoTimeout(t *testing.T, a *engine.Stack, before tcpStats) {
	t.Helper()
	after := a.Stats().TCP
	if got := after.Retransmits - before.Retransmits; got != 0 {
		t.Errorf("%d retransmissions of acknowledged data", got)
	}
	if got := after.Timeouts - before.Timeouts; got != 0 {
		t.Errorf("%d retransmission timeouts with the ACK in hand", got)
	}
}

type tcpStats = struct {
	Retransmits, Timeouts uint64
}

func TestStepLateACKIsNotATimeout(t *testing.T) {
	a, ack, late := lateACK(t)
	st := a.Stats().TCP
	var out engine.Output
	a.Step(&engine.Input{Now: late, Frames: ack}, &out)
	checkNoTimeout(t, a, tcpStats{st.Retransmits, st.Timeouts})
}

// The proposed order, with the fine-grained calls: no timeout.
func TestFramesBeforeTimersLateACK(t *testing.T) {
	a, ack, late := lateACK(t)
	st := a.Stats().TCP
	for _, f := range ack {
		a.HandleFrame(late, f)
	}
	a.HandleTimeout(late)
	checkNoTimeout(t, a, tcpStats{st.Retransmits, st.Timeouts})
}
