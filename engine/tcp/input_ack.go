package tcp

import (
	"github.com/tcpeng/tcpeng/engine/tcpip"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// ackSynReceived is step five for SYN_RCVD (RFC 9293 §3.10.7.4): an ACK of our
// SYN completes the handshake; any other ACK is answered with <SEQ=SEG.ACK><CTL=RST>.
func (c *Conn) ackSynReceived(s *wire.Segment) bool {
	if s.Ack.GreaterThan(c.sndUna) && s.Ack.LessEq(c.sndMax) {
		c.sndWnd = uint32(s.Window) << c.sndShift
		c.sndWl1, c.sndWl2 = s.Seq, s.Ack
		c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
		return true
	}
	c.sendReset(s.Ack, 0, wire.FlagRST)
	c.count(&c.cfg.Counters.DropBadAck)
	return false
}

// processAck is step five for the synchronized states (RFC 9293 §3.10.7.4 with
// the ACK validation of RFC 5961 §5.2). It returns false if the segment is to be
// dropped or the connection closed.
func (c *Conn) processAck(s *wire.Segment) bool {
	ack := s.Ack
	if ack.GreaterThan(c.sndMax) {
		// "If the ACK acks something not yet sent (SEG.ACK > SND.NXT), then send
		// an ACK, drop the segment, and return."
		c.oowAck()
		c.count(&c.cfg.Counters.DropBadAck)
		return false
	}
	if ack.LessThan(c.sndUna.Sub(c.maxSndWnd)) {
		// RFC 5961 §5.2: older than SND.UNA - MAX.SND.WND; send an ACK and drop.
		c.oowAck()
		c.count(&c.cfg.Counters.DropBadAck)
		return false
	}
	fresh := c.takeSACK(s)
	advanced := ack.GreaterThan(c.sndUna) // before ackNewData moves SND.UNA
	if c.state == SynReceived {
		c.ackNewData(ack, s)
		c.established()
	} else if ack.GreaterThan(c.sndUna) {
		c.ackNewData(ack, s)
	} else if ack == c.sndUna && c.sndMax != c.sndUna && c.sndWnd > 0 && c.isDupAck(s, fresh) {
		// With a zero window the answers to our window probes look like
		// duplicates; they are not a sign of loss, and nothing may be sent
		// into a closed window anyway.
		c.dupAck()
	}
	if c.flags&(fSACK|fInRecovery) == fSACK && c.sndMax != c.sndUna && c.sndWnd > 0 && c.isLost() {
		// RFC 6675 §5: IsLost(HighACK+1) starts loss recovery as DupThresh
		// duplicate ACKs would, also when ACKs carry data or a new window.
		c.enterRecovery()
	}
	c.detectLostRetransmits()
	// The send window update rule: SND.UNA =< SEG.ACK =< SND.NXT (checked above)
	// and (SND.WL1 < SEG.SEQ or (SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK)).
	// Deviation: a segment that acknowledges new data updates the window too,
	// whatever its SEG.SEQ, as Linux's tcp_may_update_window does. The peer
	// offered SEG.WND from SEG.ACK on; our edge is SND.UNA+SND.WND, so keeping
	// an older window while SND.UNA moves to SEG.ACK would slide the edge past
	// anything the peer offered. A retransmission from the peer (its SEG.SEQ
	// below SND.WL1) that carries our new ACK and a closing window did exactly
	// that: we sent past its window, it dropped the data, and then also our
	// ACKs, which carried SND.NXT beyond its edge.
	if advanced || c.sndWl1.LessThan(s.Seq) || (c.sndWl1 == s.Seq && c.sndWl2.LessEq(ack)) {
		wasZero := c.sndWnd == 0
		c.sndWnd = uint32(s.Window) << c.sndShift
		c.sndWl1, c.sndWl2 = s.Seq, ack
		c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
		if c.sndWnd > 0 && wasZero {
			// The window reopened: leave persist. A probe octet the peer did not
			// take goes again with the data after it (BSD's snd_nxt = snd_una).
			c.timers[timerPersist] = 0
			c.persistN = 0
			c.sndNxt = c.sndUna
		}
	}
	if !c.finAcked() {
		return true
	}
	switch c.state {
	case FinWait1:
		// "In addition to the processing for the ESTABLISHED state, if the FIN
		// segment is now acknowledged, then enter FIN-WAIT-2."
		c.setState(FinWait2)
		if c.flags&fReleased != 0 {
			c.arm(timerClose, c.cfg.FinWait2Timeout)
		}
	case Closing:
		c.enterTimeWait()
	case LastAck:
		c.events |= EvClosed
		c.setState(Closed)
		return false
	}
	return true
}

// finAcked reports whether our FIN has been sent and acknowledged.
func (c *Conn) finAcked() bool { return c.flags&fFinSent != 0 && c.sndUna == c.sndMax }

// sndBase returns the sequence number of the first byte in the send buffer.
func (c *Conn) sndBase() Seq {
	if c.sndUna == c.iss {
		return c.iss.Add(1) // the SYN is not yet acknowledged
	}
	return c.sndUna
}

// ackNewData advances SND.UNA to ack, which acknowledges new data (or our SYN or
// FIN): the data leaves the send buffer, an RTT is sampled, congestion control
// and the retransmission timer are updated. s is the segment that carries ack.
func (c *Conn) ackNewData(ack Seq, s *wire.Segment) {
	acked := ack.Size(c.sndUna)
	data := acked
	if c.sndUna == c.iss {
		data-- // our SYN
	}
	if c.flags&fFinSent != 0 && ack == c.sndMax {
		data-- // our FIN
	}
	n := min(int(data), c.sndLen)
	c.snd.consume(c.cfg.Pool, n)
	c.sndLen -= n
	if c.sndLen == 0 {
		c.snd.release(c.cfg.Pool)
	}
	c.sndUna = ack
	if c.sndNxt.LessThan(ack) {
		c.sndNxt = ack
	}
	if c.highRxt.LessThan(ack) {
		c.highRxt = ack
	}
	c.pruneSACK()
	// RFC 7323 §4.1: with timestamps, every ACK of new data gives a sample from
	// the echoed TSval, retransmissions included. Without them, RFC 6298 §3:
	// Karn's rule; only a segment sent once is timed. A backed-off RTO stays
	// until a sample (RFC 6298 §5, the note after (5.7); RFC 8961 §4(4)).
	if r := int32(c.tsNow() - s.Opts.TSEcr); c.flags&fTS != 0 && s.Opts.Has(wire.HasTimestamps) && s.Opts.TSEcr != 0 &&
		r >= 0 && tcpip.Duration(r)*tcpip.Millisecond <= c.cfg.MaxRTO {
		// (An echo from the future, or older than any RTO, is no sample.)
		c.flags &^= fRTTPending
		c.rttSample(tcpip.Duration(r) * tcpip.Millisecond)
	} else if c.flags&fRTTPending != 0 && ack.GreaterThan(c.rttSeq) {
		c.flags &^= fRTTPending
		c.rttSample(c.now().Sub(c.rttStart))
	}
	c.retries = 0
	if c.state.Synchronized() {
		c.ccAck(ack, acked)
	}
	// RFC 6298 §5.2 and §5.3.
	if c.sndUna == c.sndMax {
		c.timers[timerRTO] = 0
	} else {
		c.arm(timerRTO, c.rto)
	}
	if c.flags&fWantWrite != 0 && n > 0 {
		c.flags &^= fWantWrite
		c.events |= EvWritable
	}
}

// rttSample updates SRTT, RTTVAR and RTO with a measurement (RFC 6298 §2).
func (c *Conn) rttSample(r tcpip.Duration) {
	r = max(r, 1)
	if c.srtt == 0 {
		c.srtt, c.rttvar = r, r/2
	} else {
		d := c.srtt - r
		if d < 0 {
			d = -d
		}
		c.rttvar = (3*c.rttvar + d) / 4 // beta = 1/4
		c.srtt = (7*c.srtt + r) / 8     // alpha = 1/8
	}
	c.rto = c.computeRTO()
}

// clockGranularity is G of RFC 6298 §2: tcpeng's clock is the host's nanoseconds,
// but a variance term finer than a millisecond only adds spurious timeouts.
const clockGranularity = tcpip.Millisecond

func (c *Conn) computeRTO() tcpip.Duration {
	rto := c.srtt + max(clockGranularity, 4*c.rttvar)
	return min(max(rto, c.cfg.MinRTO), c.cfg.MaxRTO)
}

// ccAck is NewReno's reaction to an ACK of new data (RFC 5681 §3.1, RFC 6582 §3.2).
func (c *Conn) ccAck(ack Seq, acked uint32) {
	c.dupAcks = 0
	mss := uint32(c.mss)
	if c.flags&fInRecovery != 0 {
		if ack.GreaterEq(c.recover) {
			// Full acknowledgment (RFC 6582 §3.2 step 3, option 1; RFC 6675
			// ends recovery the same way).
			flight := c.sndMax.Size(c.sndUna)
			c.cwnd = min(c.ssthresh, max(flight, mss)+mss)
			c.flags &^= fInRecovery
			c.resetRxtLog()
			return
		}
		if c.flags&fSACK != 0 {
			return // RFC 6675: the pipe, not the window, paces recovery
		}
		// Partial acknowledgment (RFC 6582 step 4): retransmit the next hole, deflate.
		c.flags |= fRetransmitOne
		c.cwnd -= min(c.cwnd, acked)
		if acked >= mss {
			c.cwnd += mss
		}
		c.cwnd = max(c.cwnd, mss)
		return
	}
	if c.cwnd < c.ssthresh {
		// Slow start. RFC 5681 eqn. 2 grows cwnd by min(N, SMSS) per ACK; tcpeng
		// counts bytes (RFC 3465 §2.2) without the L limit, as Linux does, because
		// a batch of segments handled in one Step is acknowledged by one ACK.
		c.cwnd += acked
	} else {
		// Congestion avoidance by byte counting (RFC 3465 §2.1): one SMSS per
		// cwnd of bytes acknowledged, RFC 5681 eqn. 3's rate.
		c.cwndAcc += acked
		if c.cwndAcc >= c.cwnd {
			c.cwndAcc -= c.cwnd
			c.cwnd += mss
		}
	}
	c.cwnd = min(c.cwnd, maxCwnd)
}

const maxCwnd = 1 << 30

// isDupAck reports whether s, an ACK that does not advance SND.UNA while data
// is outstanding, is a duplicate acknowledgment. With SACK it is one when it
// SACKs octets not SACKed before (fresh), whatever else it carries (RFC 6675
// §2): the duplicate ACKs of a connection whose peer sends data too carry that
// data, and by RFC 5681's definition none of them would count, so a loss
// there would wait for the retransmission timer however many segments the
// peer SACKs after it. Without SACK it is RFC 5681 §2's: no data, no SYN or
// FIN, and the same window.
func (c *Conn) isDupAck(s *wire.Segment, fresh bool) bool {
	if c.flags&fSACK != 0 {
		return fresh
	}
	return s.Len == 0 && s.Flags&(wire.FlagSYN|wire.FlagFIN) == 0 && uint32(s.Window)<<c.sndShift == c.sndWnd
}

// dupAck counts a duplicate ACK; the third starts fast retransmit and NewReno
// fast recovery (RFC 5681 §3.2, RFC 6582 §3.2 step 2), later ones inflate the
// window.
func (c *Conn) dupAck() {
	c.count(&c.cfg.Counters.DupAcks)
	if c.dupAcks < 255 {
		c.dupAcks++
	}
	if c.flags&fInRecovery != 0 {
		if c.flags&fSACK == 0 {
			c.cwnd = min(c.cwnd+uint32(c.mss), maxCwnd) // RFC 5681 §3.2 step 4: inflate
		}
		return
	}
	if c.dupAcks == dupThresh {
		c.enterRecovery()
	}
}

// enterRecovery starts fast retransmit and fast recovery: NewReno (RFC 5681
// §3.2, RFC 6582 §3.2 step 2) or, with SACK, RFC 6675 §5 step (4). A new recovery
// starts only once SND.UNA has reached the last one's recovery point, so that
// everything outstanding when that loss was detected has been acknowledged (RFC
// 6582 §3.2 step 2: the ACK "covers more than recover", the highest octet sent
// then; RFC 6675 §5.1 after a timeout). recover holds one past that octet, as
// SND.MAX does, and starts at SND.UNA when the connection is established (RFC
// 6582 step 1: the initial send sequence number, which is acknowledged by then),
// so that the loss of the very first segment is recovered too.
func (c *Conn) enterRecovery() {
	if c.sndUna.LessThan(c.recover) {
		return
	}
	mss := uint32(c.mss)
	c.ssthresh = max(c.sndMax.Size(c.sndUna)/2, 2*mss) // RFC 5681 eqn. 4
	c.recover = c.sndMax
	c.highRxt = c.sndUna
	c.resetRxtLog()
	c.flags |= fInRecovery
	if c.flags&fSACK != 0 {
		c.cwnd = c.ssthresh // RFC 6675 §5 (4.2)
	} else {
		c.cwnd = c.ssthresh + 3*mss
	}
	// RFC 6675 §5 (4.3), RFC 5681 §3.2 step 2: retransmit the segment at
	// SND.UNA at once, whatever the pipe.
	c.flags |= fRetransmitOne
	c.count(&c.cfg.Counters.FastRetransmits)
}
