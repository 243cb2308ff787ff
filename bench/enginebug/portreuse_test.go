package enginebug

import (
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/bench/raw"
	"github.com/tcpeng/tcpeng/engine"
)

// TestEphemeralReuseAfterTimeWait runs W2's lifecycle (dial, write a byte, the
// server reads it and closes first, so it holds TIME_WAIT; the client reads
// EOF and closes) 20000 times on a virtual clock that moves 700 ns per Step.
// Dial picks ephemeral ports at random (RFC 6056 §3.3.1, Algorithm 1), so now
// and then it picks the port of a connection that closed a few microseconds
// earlier. The server's TIME_WAIT for that 4-tuple accepts a new SYN only if
// its sequence number is above RCV.NXT (RFC 9293 §3.10.7.4), but the RFC 6528
// ISN clock ticks every 4 µs and the old connection consumed 3 sequence
// numbers (SYN, the byte, FIN): the SYN gets a challenge ACK, the client
// resets, and the connection waits a full InitialRTO (1 s) for its SYN
// retransmission. Worse, when the new ISN is exactly RCV.NXT-1 the server's
// ACK (RCV.NXT) acknowledges the client's SYN, so the client drops it without
// a reset (RFC 9293 §3.10.7.3, fifth), and every retransmitted SYN meets the
// same ACK until the TIME_WAIT ends: the dial takes 1+2+4+8+16+32 = 63 s.
// Seen in bench's raw W2 (5 runs of 20000: one lifecycle of 1.0 s or 63 s in
// each run). No Dial should wait for a retransmission on a lossless link.
func TestEphemeralReuseAfterTimeWait(t *testing.T) {
	var st [2]*engine.Stack
	for i, a := range []netip.Addr{raw.ClientAddr, raw.ServerAddr} {
		s, err := engine.New(raw.Config(a, 1500, uint64(i+1)))
		if err != nil {
			t.Fatal(err)
		}
		st[i] = s
	}
	var (
		in  [2]engine.Input
		out [2]engine.Output
		now engine.Time
	)
	// step runs side i with the peer's last frames and cmds.
	step := func(i int, cmds ...engine.Command) *engine.Output {
		now += 700 // ns: one Step every 700 ns, about the pace of the raw benchmark loop
		in[i] = engine.Input{Now: now, Frames: out[1-i].Frames, Commands: cmds}
		st[i].Step(&in[i], &out[i])
		out[1-i].Frames = out[1-i].Frames[:0]
		return &out[i]
	}
	server := netip.AddrPortFrom(raw.ServerAddr, 80)
	lis := step(1, engine.Command{Op: engine.OpListen, Addr: server}).Results[0].Conn
	buf := make([]byte, 16)
	one := []byte{'x'}
	const lifecycles = 20000
	// The two sides alternate strictly: each Step takes the frames of the peer's
	// previous Step. Per lifecycle: client c (wrote, eof), server s (read).
	var (
		c, s              engine.ConnID
		wrote, eof, sRead bool
		done              int
		start             engine.Time
		lastUse           = map[uint16]int{} // port → lifecycle that last used it
		port              uint16
		quiet             int
	)
	for done < lifecycles {
		if len(out[0].Frames)+len(out[1].Frames) == 0 {
			quiet++
		} else {
			quiet = 0
		}
		if c != 0 && quiet > 20 {
			// Nothing has moved for 20 rounds: only a timer can help. Jump to it.
			next := min(out[0].Deadline, out[1].Deadline)
			if next == engine.Never || next-now > engine.Time(1000*engine.Second) {
				t.Fatalf("lifecycle %d is stuck with no timer armed", done)
			}
			if next > now+engine.Time(engine.Microsecond) {
				now = next - engine.Time(engine.Microsecond)
			}
			quiet = 0
		}
		var cc []engine.Command
		switch {
		case c == 0:
			start = now
			cc = []engine.Command{{Op: engine.OpDial, Addr: server}}
		case !wrote:
			cc = []engine.Command{{Op: engine.OpWrite, Conn: c, Data: one}}
		case !eof:
			cc = []engine.Command{{Op: engine.OpRead, Conn: c, Data: buf}}
		default: // EOF read: close, and the lifecycle is over
			cc = []engine.Command{{Op: engine.OpClose, Conn: c}}
		}
		o := step(0, cc...)
		r := o.Results[0]
		switch cc[0].Op {
		case engine.OpDial:
			c = r.Conn
			local, _, _ := st[0].Addrs(c)
			port = local.Port()
		case engine.OpWrite:
			wrote = r.N == 1
		case engine.OpRead:
			eof = r.Err == engine.ErrEOF
		case engine.OpClose:
			if now-start > engine.Time(100*engine.Millisecond) {
				prev, used := lastUse[port]
				t.Errorf("lifecycle %d took %v of engine time (client: %d retransmission timeouts so far; server: %d challenge ACKs, %d unacceptable segments); "+
					"its port %d was used before: %v, by lifecycle %d",
					done, engine.Duration(now-start), st[0].Stats().TCP.Timeouts, st[1].Stats().TCP.ChallengeACKs,
					st[1].Stats().TCP.DropUnacceptable, port, used, prev)
			}
			lastUse[port] = done
			c, s, wrote, eof, sRead = 0, 0, false, false, false
			done++
		}
		var sc []engine.Command
		switch {
		case s == 0:
			sc = []engine.Command{{Op: engine.OpAccept, Conn: lis}}
		case !sRead:
			sc = []engine.Command{{Op: engine.OpRead, Conn: s, Data: buf}}
		}
		o = step(1, sc...)
		switch {
		case len(sc) == 0:
		case sc[0].Op == engine.OpAccept && o.Results[0].Err == engine.OK:
			s = o.Results[0].Conn
		case sc[0].Op == engine.OpRead && o.Results[0].N == 1:
			sRead = true
			// The server closes at once (its FIN follows in the next Step).
			step(0)
			step(1, engine.Command{Op: engine.OpClose, Conn: s})
		}
	}
}
