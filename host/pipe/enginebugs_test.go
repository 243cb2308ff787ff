package pipe

import (
	"bytes"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// Regression tests for engine bugs found through the pipe, each a minimal
// scripted run.

// TestSenderSWSOverrideTimeout: RFC 9293 §3.8.6.2.1 has the sender hold back a
// segment smaller than both the MSS and half the peer's largest window (sender
// SWS avoidance), and send it anyway "if data is pushed and the override
// timeout occurs" (RFC 1122 §4.2.3.4: 0.1 to 1 s). Here B's 4096-byte receive
// buffer fills with two segments; B acknowledges them with a window of 1176,
// which A may not use (1176 < 1460 and < 4096/2), so A holds its data with
// nothing in flight. B's application then reads and B sends a window update;
// the wire loses it. Nothing is armed on either side: no retransmission timer
// (nothing in flight), no persist timer (the window is not zero), so the
// connection hangs forever.
func TestSenderSWSOverrideTimeout(t *testing.T) {
	// Without timestamps, so that the segment sizes below are whole MSSs.
	small := func(c *engine.Config) { c.SendBuffer, c.RecvBuffer, c.NoTimestamps = 8192, 4096, true }
	data := randomBytes(20_000, 1)
	var got []byte
	a := &Endpoint{Dial: server, OnOpen: func(h *Host, s *Stream) {
		_ = s.Write(data)
		s.OnWritten = func(s *Stream, n int) {
			if s.Sent == int64(len(data)) {
				s.Shutdown()
			}
		}
		s.OnEOF = func(s *Stream) { s.Close() }
	}}
	b := &Endpoint{Listen: server, OnOpen: func(h *Host, s *Stream) {
		s.Pause() // the application does not read yet
		s.OnData = func(s *Stream, p []byte) { got = append(got, p...) }
		s.OnEOF = func(s *Stream) { s.Close() }
	}}
	resumed := false
	var lostUpdate []byte
	p, err := New(Config{
		Engines: stacks(t, small),
		Apps:    [2]App{a, b},
		Links:   [2]Impairments{{Delay: engine.Millisecond}, {Delay: engine.Millisecond}},
		Filter: func(f *Frame) bool {
			// The first segment B sends after its application resumed reading is
			// the window update: lose it.
			if f.From == B && resumed && lostUpdate == nil {
				lostUpdate = bytes.Clone(f.Data)
				return true
			}
			return false
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(engine.Time(10 * engine.Millisecond)); err != nil {
		t.Fatal(err)
	}
	// A holds its data with nothing in flight, B's window as A knows it is 1176.
	ia, _ := p.cfg.Engines[A].(*engine.Stack).Info(a.Stream.ID)
	if ia.SndUna != ia.SndNxt || ia.SndWnd != 1176 || ia.SendQueued == 0 {
		t.Fatalf("setup: A's SND.UNA %d SND.NXT %d SND.WND %d queued %d; want nothing in flight, window 1176, data queued",
			ia.SndUna, ia.SndNxt, ia.SndWnd, ia.SendQueued)
	}
	resumed = true
	b.Stream.Resume()
	if err := p.Run(engine.Time(3600 * engine.Second)); err != nil {
		t.Fatal(err)
	}
	ip, _ := wire.ParseIPv4(lostUpdate)
	seg, _ := wire.ParseTCP(ip.Payload())
	if lostUpdate == nil || seg.Flags() != wire.FlagACK || len(seg.Payload()) != 0 || seg.Window() != 4096 {
		t.Fatalf("the frame lost was not B's window update to 4096: %x", lostUpdate)
	}
	if !bytes.Equal(got, data) || !a.Stream.Closed() || !b.Stream.Closed() {
		ia, _ = p.cfg.Engines[A].(*engine.Stack).Info(a.Stream.ID)
		t.Fatalf("B received %d of %d bytes and the run stopped at %v with nothing armed (A deadline %v): "+
			"A's state %v, SND.WND %d, %d bytes queued, nothing in flight",
			len(got), len(data), engine.Duration(p.Now()), p.Deadline(A), ia.State, ia.SndWnd, ia.SendQueued)
	}
}

// TestReleasedConnectionEndsWithoutEventClosed: after Close the application
// can only learn the end of its connection from EventClosed (the Stack drops
// every other event of a released ID, and Close's comment says "EventClosed
// reports its end"). When the end is a timeout or a reset instead of a
// completed close, no event comes at all: an adapter waiting for the end of a
// closed connection (SO_LINGER-like, or just to free its state) waits forever.
// A long sweep over a 25%-loss wire hit the reset case: A's TIME_WAIT ended
// before B's backed-off FIN retransmission arrived, and A's stack answered it
// with a reset.
func TestReleasedConnectionEndsWithoutEventClosed(t *testing.T) {
	for _, tc := range []struct {
		name string
		// aClose: A closes (releases) instead of shutting down.
		aClose bool
		// drop says which frames the wire loses, given whether B sent its FIN yet.
		drop func(f *Frame, finSent bool) bool
	}{
		{"timeout in LAST_ACK", false, func(f *Frame, finSent bool) bool {
			return f.From == A && finSent // B never hears from A again: its FIN times out
		}},
		{"reset in LAST_ACK", true, func(f *Frame, finSent bool) bool {
			// B's FIN is lost until A's FIN_WAIT_2 timeout (60 s) has freed A's
			// side; A's stack then answers it with a reset.
			return f.From == B && finSent && f.Time < engine.Time(70*engine.Second)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bID engine.ConnID
			var bClosedEv, bToClosed bool
			a := &Endpoint{Dial: server}
			a.OnEvent = func(h *Host, ev engine.Event) {
				if ev.Kind != engine.EventConnected {
					return
				}
				if tc.aClose {
					a.Stream.Close()
				} else {
					a.Stream.Shutdown()
				}
			}
			b := &Endpoint{Listen: server, OnOpen: func(h *Host, s *Stream) {
				bID = s.ID
				s.OnEOF = func(s *Stream) { s.Close() }
			}}
			b.OnEvent = func(h *Host, ev engine.Event) {
				if ev.Conn != bID || bID == 0 {
					return
				}
				bClosedEv = bClosedEv || ev.Kind == engine.EventClosed
				if ev.Kind == engine.EventState && ev.To == engine.StateClosed {
					bToClosed = true
				}
			}
			finSent := false
			p, err := New(Config{
				Engines: stacks(t, func(c *engine.Config) { c.MaxRetries = 12 }),
				Apps:    [2]App{a, b},
				Links:   [2]Impairments{{Delay: engine.Millisecond}, {Delay: engine.Millisecond}},
				Filter: func(f *Frame) bool {
					ip, _ := wire.ParseIPv4(f.Data)
					seg, _ := wire.ParseTCP(ip.Payload())
					if f.From == B && seg.Flags().Has(wire.FlagFIN) {
						finSent = true
					}
					return tc.drop(f, finSent)
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Run(engine.Time(3600 * engine.Second)); err != nil {
				t.Fatal(err)
			}
			sa, sb := p.cfg.Engines[A].(*engine.Stack).Stats(), p.cfg.Engines[B].(*engine.Stack).Stats()
			if !bToClosed || (tc.aClose && sa.ResetsSent != 1) || (!tc.aClose && sb.TCP.Timeouts != 12) {
				t.Fatalf("setup: B reached CLOSED %v; A sent %d resets; B's retransmission timer expired %d times",
					bToClosed, sa.ResetsSent, sb.TCP.Timeouts)
			}
			if !bClosedEv {
				t.Fatalf("B's connection, released by Close, reached CLOSED at %v without EventClosed", engine.Duration(p.Now()))
			}
		})
	}
}

// TestReleasedConnectionLastSegmentPanics is the regression test of a bug
// found here and since fixed in the engine: Stack.PollFrame sent the last
// segment of a released connection (the reset of an Abort, or of a Close with
// unread data, RFC 9293 §3.10.4 and RFC 2525 §2.17), let update free the slot,
// and then read the zeroed sl.tuple for the IP header: netip.Addr.As4 panicked
// inside Step.
func TestReleasedConnectionLastSegmentPanics(t *testing.T) {
	for _, op := range []engine.Op{engine.OpAbort, engine.OpClose} {
		t.Run(op.String(), func(t *testing.T) {
			a := &Endpoint{Dial: server, OnOpen: func(h *Host, s *Stream) { _ = s.Write([]byte("unread")) }}
			b := &Endpoint{Listen: server, OnOpen: func(h *Host, s *Stream) { s.Pause() }}
			b.OnEvent = func(h *Host, ev engine.Event) {
				if ev.Kind == engine.EventReadable && b.Stream != nil && ev.Conn == b.Stream.ID {
					_ = h.Do(engine.Command{Op: op, Conn: ev.Conn}) // data is unread
				}
			}
			p, err := New(Config{Engines: stacks(t, nil), Apps: [2]App{a, b}})
			if err != nil {
				t.Fatal(err)
			}
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("Step panicked after %v with unread data: %v", op, r)
				}
			}()
			if err := p.Run(engine.Time(3600 * engine.Second)); err != nil {
				t.Fatal(err)
			}
		})
	}
}
