package tcp

import (
	"github.com/tcpeng/tcpeng/engine/tcpip"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// Verdict says what became of a segment given to Input.
type Verdict uint8

// Verdicts.
const (
	Accepted     Verdict = iota // processed
	Dropped                     // discarded (and counted); an ACK or RST may have been queued
	NoConnection                // the connection is CLOSED: answer as for a closed port (RFC 9293 §3.10.7.1)
	Reopen                      // a new SYN for a connection in TIME_WAIT: close it and give the segment to the listener
)

// Input processes one arriving segment (RFC 9293 §3.10.7). payload is the
// segment's data; Input copies what it keeps and does not retain payload.
// Call Output afterwards: the segment may call for an ACK, a reset or data.
func (c *Conn) Input(seg *wire.Segment, payload []byte) Verdict {
	c.cfg.Counters.SegsIn++
	c.lastRecv = c.now()
	c.probes = 0
	if c.timers[timerKeepalive] != 0 {
		c.arm(timerKeepalive, c.cfg.KeepaliveIdle)
	}
	var v Verdict
	switch c.state {
	case Closed:
		return NoConnection
	case Listen:
		return Dropped // listeners are the stack's; see ListenInput
	case SynSent:
		v = c.inputSynSent(seg, payload)
	default:
		v = c.inputSynchronized(seg, payload)
	}
	c.updateTimers()
	return v
}

// acceptable is the acceptability test of RFC 9293 §3.10.7.4 (first), its four
// cases by segment length and receive window.
//
// Deviation: a segment without data is also acceptable at the window's right
// edge, SEG.SEQ = RCV.NXT+RCV.WND, where the RFC's test
// (RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND) ends one short, as Linux
// (tcp_sequence) and BSD (tcp_input's todrop) accept it. A peer that has
// filled our window sends its ACKs from there; when a segment before that edge
// is lost, the strict test throws away every ACK the peer sends until the hole
// is repaired, and our own data waits for retransmission timeouts meanwhile
// (an echo over a lossy 100 µs link stalled for minutes on it).
func acceptable(seq Seq, seqLen uint32, rcvNxt Seq, wnd uint32) bool {
	switch {
	case seqLen == 0:
		return seq.InWindow(rcvNxt, wnd+1) // wnd 0: SEG.SEQ = RCV.NXT
	case wnd == 0:
		return false
	default:
		return seq.InWindow(rcvNxt, wnd) || seq.Add(seqLen-1).InWindow(rcvNxt, wnd)
	}
}

// rcvWnd returns RCV.WND for the acceptability test: what was last advertised.
func (c *Conn) rcvWnd() uint32 {
	if c.rcvAdv.LessEq(c.rcvNxt) {
		return 0
	}
	return c.rcvAdv.Size(c.rcvNxt)
}

// inputSynchronized handles SYN_RCVD and the synchronized states: the eight
// steps of RFC 9293 §3.10.7.4.
func (c *Conn) inputSynchronized(seg *wire.Segment, payload []byte) Verdict {
	f := seg.Flags
	if c.state == TimeWait && f&(wire.FlagSYN|wire.FlagRST|wire.FlagACK) == wire.FlagSYN &&
		(seg.Seq.GreaterThan(c.rcvNxt) || c.newerTimestamp(seg)) {
		// RFC 9293 §3.10.7.4 fourth and RFC 1122 §4.2.2.13: a SYN above RCV.NXT may
		// reopen a connection in TIME_WAIT; RFC 6191: so may one whose timestamp
		// is newer than TS.Recent.
		return Reopen
	}
	if c.state == SynReceived && f&(wire.FlagSYN|wire.FlagRST|wire.FlagACK) == wire.FlagSYN && seg.Seq == c.irs {
		// The peer retransmitted its SYN: our SYN-ACK was lost. The RFC's answer
		// (first: an ACK, since the SYN is below RCV.NXT) would not complete the
		// handshake; like Linux, tcpeng sends the SYN-ACK again.
		c.flags |= fSynAckResend
		return Dropped
	}

	s := *seg
	if c.state == SynReceived && c.flags&fPassive == 0 && f&(wire.FlagSYN|wire.FlagACK) == wire.FlagSYN|wire.FlagACK && seg.Seq == c.irs {
		// Simultaneous open, RFC 9293 Figure 7 line 6: the peer's SYN-ACK repeats
		// the SYN we hold. Its SYN is old, but its ACK completes our handshake:
		// take it as the ACK it is, and acknowledge the duplicate SYN (§3.10.7.4
		// first: an old segment gets an ACK; Linux's tcp_data_queue forces one).
		s.Seq, s.Flags = s.Seq.Add(1), s.Flags&^wire.FlagSYN
		f = s.Flags
		c.flags |= fAckNow
	}

	// RFC 7323 §5.3 R1 (PAWS): a segment whose timestamp is older than
	// TS.Recent is an old duplicate: not acceptable. (A segment without the
	// option is accepted, as Linux does; RFC 7323 §3.2 says it SHOULD be dropped.)
	if c.flags&fTS != 0 && f&wire.FlagRST == 0 && seg.Opts.Has(wire.HasTimestamps) && int32(seg.Opts.TSVal-c.tsRecent) < 0 {
		c.count(&c.cfg.Counters.DropPAWS)
		c.oowAckFor(&s)
		return Dropped
	}

	// First: check the sequence number.
	wnd := c.rcvWnd()
	if !acceptable(s.Seq, s.SeqLen(), c.rcvNxt, wnd) {
		if wnd == 0 && s.Seq == c.rcvNxt && f&(wire.FlagACK|wire.FlagRST|wire.FlagSYN) == wire.FlagACK {
			// "If the RCV.WND is zero, no segments will be acceptable, but special
			// allowance should be made to accept valid ACKs": keep the ACK and
			// window, drop the text (a zero-window probe), and answer with our window.
			s.Len, s.Flags = 0, s.Flags&^wire.FlagFIN
			payload = nil
			c.flags |= fAckNow
		} else {
			if c.state == TimeWait && f&wire.FlagFIN != 0 && f&wire.FlagRST == 0 {
				// TIME-WAIT: a retransmitted FIN; acknowledge it and restart the 2 MSL timeout.
				c.arm(timerClose, 2*c.cfg.MSL)
				c.flags |= fAckNow
			} else if f&wire.FlagRST == 0 {
				c.oowAckFor(&s)
			}
			c.count(&c.cfg.Counters.DropUnacceptable)
			return Dropped
		}
	}
	payload = c.trim(&s, payload, wnd)
	if c.flags&fTS != 0 && seg.Opts.Has(wire.HasTimestamps) && seg.Seq.LessEq(c.lastAckSent) && int32(seg.Opts.TSVal-c.tsRecent) >= 0 {
		c.tsRecent = seg.Opts.TSVal // RFC 7323 §4.3 (2)
	}

	// Second: check the RST bit (RFC 5961 §3.2 as RFC 9293 adopts it).
	if f&wire.FlagRST != 0 {
		if seg.Seq != c.rcvNxt {
			c.challengeAck()
			return Dropped
		}
		c.count(&c.cfg.Counters.RSTsIn)
		switch c.state {
		case SynReceived:
			if c.flags&fPassive != 0 {
				// Return to LISTEN: the listener never handed this one out.
				c.err = tcpip.ErrReset
				c.setState(Closed)
			} else {
				c.fail(tcpip.ErrRefused)
			}
		case TimeWait:
			c.events |= EvClosed
			c.setState(Closed)
		default:
			c.fail(tcpip.ErrReset)
		}
		return Accepted
	}

	// Fourth: check the SYN bit (RFC 5961 §4.2 as RFC 9293 adopts it).
	if f&wire.FlagSYN != 0 {
		if c.state == SynReceived && c.flags&fPassive != 0 {
			c.err = tcpip.ErrReset
			c.setState(Closed)
			return Dropped
		}
		c.challengeAck()
		return Dropped
	}

	// Fifth: check the ACK field.
	if f&wire.FlagACK == 0 {
		c.count(&c.cfg.Counters.DropNoAck)
		return Dropped
	}
	if c.state == SynReceived && !c.ackSynReceived(&s) {
		return Dropped
	}
	if !c.processAck(&s) {
		return Dropped
	}
	if c.state == Closed {
		return Accepted
	}

	// Sixth: the URG bit. tcpeng delivers urgent data inline and ignores the
	// pointer, as RFC 6093 advises new applications.

	// Seventh and eighth: the segment text and the FIN bit.
	c.processText(&s, payload)
	return Accepted
}

// trim cuts from s and payload what lies before RCV.NXT or past the window
// (RFC 9293 §3.10.7.4: "only the new parts are processed"; "segments with higher
// beginning sequence numbers ... should be trimmed to the window").
func (c *Conn) trim(s *wire.Segment, payload []byte, wnd uint32) []byte {
	if s.Seq.LessThan(c.rcvNxt) {
		d := c.rcvNxt.Size(s.Seq)
		if s.Flags&wire.FlagSYN != 0 {
			s.Flags &^= wire.FlagSYN
			d--
			s.Seq = s.Seq.Add(1)
		}
		k := min(d, uint32(len(payload)))
		payload = payload[k:]
		s.Seq = s.Seq.Add(k)
		if d > k {
			s.Flags &^= wire.FlagFIN // the FIN is old too
		}
	}
	if end := s.Seq.Add(uint32(len(payload))); end.GreaterThan(c.rcvNxt.Add(wnd)) {
		payload = payload[:c.rcvNxt.Add(wnd).Size(s.Seq)]
		s.Flags &^= wire.FlagFIN
	}
	s.Len = len(payload)
	return payload
}

// newerTimestamp reports whether seg carries a timestamp newer than TS.Recent.
func (c *Conn) newerTimestamp(seg *wire.Segment) bool {
	return c.flags&fTS != 0 && seg.Opts.Has(wire.HasTimestamps) && int32(seg.Opts.TSVal-c.tsRecent) > 0
}

// challengeAck answers a suspicious RST or SYN with an ACK (RFC 5961 §3.2, §4.2).
func (c *Conn) challengeAck() {
	if c.oowAck() {
		c.count(&c.cfg.Counters.ChallengeACKs)
	}
}

// oowAckFor answers a segment dropped by the acceptability test or PAWS. One
// that occupies sequence space (data or a FIN) and carries no SYN is answered
// at once: it is a retransmission of what we hold (or of what does not fit),
// and the ACK tells its sender where we are; an ACK loop is made of bare ACKs,
// so, as Linux's tcp_oow_rate_limited, the rate limit is for those. Limiting
// every answer held a sender that resent data after a timeout to one ACK per
// 500 ms.
func (c *Conn) oowAckFor(s *wire.Segment) {
	if s.SeqLen() > 0 && s.Flags&wire.FlagSYN == 0 {
		c.flags |= fAckNow
		return
	}
	c.oowAck()
}

// oowAck answers a segment the connection does not accept (out of the window,
// an ACK of data never sent, a challenge) with an ACK, at most one per
// Config.InvalidAckInterval (RFC 5961 §7; Linux's tcp_invalid_ratelimit, 500 ms).
// Without the limit, two ends that have fallen out of step answer each other's
// ACKs forever. It reports whether the ACK will be sent.
func (c *Conn) oowAck() bool {
	now := c.now()
	if now < c.oowAckAt {
		c.count(&c.cfg.Counters.AcksRateLimited)
		return false
	}
	c.oowAckAt = now.Add(c.cfg.InvalidAckInterval)
	c.flags |= fAckNow
	return true
}

// count increments one of the stack's counters.
func (c *Conn) count(p *uint64) { *p++ }
