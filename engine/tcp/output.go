package tcp

import "github.com/tcpeng/tcpeng/engine/wire"

// Output writes the next segment the connection wants to send into b: the TCP
// header with a zero checksum, then the payload. The stack adds the IP header and
// the checksum. It returns the segment's length, or 0 when there is nothing to
// send now. Call it until it returns 0. b must hold at least the TCP header (60
// bytes) plus the MSS.
func (c *Conn) Output(b []byte) int {
	if c.rstFlags != 0 {
		n := c.put(b, wire.TCPHeader{Seq: c.rstSeq, Ack: c.rstAck, Flags: c.rstFlags}, nil, 0, 0)
		c.rstFlags = 0
		return n
	}
	var n int
	switch c.state {
	case Closed, Listen:
		return 0
	case SynSent:
		if c.sndNxt == c.iss {
			n = c.outputSyn(b, wire.FlagSYN)
		}
	case SynReceived:
		if c.sndNxt == c.iss || c.flags&fSynAckResend != 0 {
			n = c.outputSyn(b, wire.FlagSYN|wire.FlagACK)
		} else if c.flags&fAckNow != 0 {
			n = c.outputAck(b, c.sndMax)
		}
	default:
		n = c.outputData(b)
	}
	c.updateTimers()
	return n
}

// OutputSum returns the one's-complement sum (wire.Checksum) of the segment the
// last Output wrote, checksum field zero, without the pseudo-header: the stack
// finishes the checksum from it without reading the payload again. 0 with
// Config.NoSum.
func (c *Conn) OutputSum() uint16 { return c.outSum }

// HasOutput reports whether Output may have something to send without any new
// input: a queued reset, ACK or window update, or data within the windows. It
// can report true when Output then finds nothing (Nagle, SWS avoidance), never
// false when it would send.
func (c *Conn) HasOutput() bool {
	if c.rstFlags != 0 || c.flags&(fAckNow|fRetransmitOne|fProbe|fKeepaliveProbe|fSynAckResend|fWindowUpdate) != 0 {
		return true
	}
	switch c.state {
	case Closed, Listen, TimeWait:
		return false
	case SynSent, SynReceived:
		return c.sndNxt == c.iss
	}
	return c.sndNxt.LessThan(c.sndMax) || c.unsent() > 0 || c.flags&(fShutWr|fFinSent) == fShutWr
}

// unsent returns the bytes of the send buffer at or after SND.NXT.
func (c *Conn) unsent() int {
	off := int(c.sndNxt.Size(c.sndBase()))
	if off >= c.sndLen || c.sndNxt.LessThan(c.sndBase()) {
		return 0
	}
	return c.sndLen - off
}

// outputSyn sends our SYN or SYN-ACK from ISS with the MSS and window scale
// options (RFC 9293 §3.7.1, RFC 7323 §2.2).
func (c *Conn) outputSyn(b []byte, flags wire.Flags) int {
	var o wire.Options
	o.Present = wire.HasMSS
	o.MSS = c.ourMSS
	if c.cfg.WindowScale && (c.state == SynSent || c.flags&fWindowScale != 0) {
		o.Present |= wire.HasWindowScale
		o.WindowScale = c.rcvShift
	}
	if c.cfg.SACK && (c.state == SynSent || c.flags&fSACK != 0) {
		o.Present |= wire.HasSACKPermitted
	}
	if c.cfg.Timestamps && (c.state == SynSent || c.flags&fTS != 0) {
		// RFC 7323 §3.2: TSecr of a SYN is zero; of a SYN-ACK, the peer's TSval.
		o.Present |= wire.HasTimestamps
		o.TSVal, o.TSEcr = c.tsNow(), c.tsRecent
	}
	var ack Seq
	if flags&wire.FlagACK != 0 {
		ack = c.rcvNxt
	}
	// RFC 7323 §2.2: the window field of a SYN is not scaled.
	n := c.put(b, wire.TCPHeader{Seq: c.iss, Ack: ack, Flags: flags, Window: uint16(min(c.rcv.cap, 0xffff))}, &o, 0, 0)
	if c.sndMax == c.iss {
		c.flags |= fRTTPending
		c.rttSeq, c.rttStart = c.iss, c.now()
	} else {
		c.count(&c.cfg.Counters.Retransmits)
	}
	c.sndNxt = c.iss.Add(1)
	c.sndMax = wire.SeqMax(c.sndMax, c.sndNxt)
	c.flags &^= fSynAckResend | fAckNow
	if c.timers[timerRTO] == 0 {
		c.arm(timerRTO, c.rto)
	}
	return n
}

// outputAck sends a bare ACK with sequence number seq.
func (c *Conn) outputAck(b []byte, seq Seq) int {
	var o wire.Options
	c.ackOptions(&o)
	return c.put(b, wire.TCPHeader{Seq: seq, Ack: c.rcvNxt, Flags: wire.FlagACK, Window: c.advertise()}, &o, 0, 0)
}

// outputData decides what to send in a synchronized state and sends at most one
// segment: a retransmission, new data (within the send and congestion windows,
// by Nagle's algorithm and sender SWS avoidance), our FIN, a window probe, a
// keepalive probe, or an ACK.
func (c *Conn) outputData(b []byte) int {
	base := c.sndBase()
	var seq Seq
	off, n := 0, 0
	fin, probe := false, false
	shut := c.flags&fShutWr != 0 && c.state != Established && c.state != CloseWait

	switch {
	case c.flags&fRetransmitOne != 0:
		// Fast retransmit and NewReno partial ACKs: resend one segment at SND.UNA.
		c.flags &^= fRetransmitOne
		seq = c.sndUna
		off = int(seq.Size(base))
		if seq.LessThan(base) {
			off = 0
		}
		var o wire.Options
		c.ackOptions(&o)
		n = max(0, min(c.sndLen-off, int(c.mss)-o.Len()))
		fin = shut && c.flags&fFinSent != 0 && off+n == c.sndLen
		if n == 0 && !fin {
			break
		}
		return c.retransmit(b, seq, n, &o)

	case c.flags&fKeepaliveProbe != 0:
		// RFC 9293 §3.8.4: SEG.SEQ = SND.NXT-1, no data; the peer answers with an ACK.
		c.flags &^= fKeepaliveProbe
		c.count(&c.cfg.Counters.KeepaliveProbes)
		return c.outputAck(b, c.sndUna.Sub(1))
	}

	var o wire.Options
	c.ackOptions(&o)
	room := int(c.mss) - o.Len() // RFC 9293 §3.7.1: options come out of the MSS

	if c.flags&(fInRecovery|fSACK) == fInRecovery|fSACK && c.pipe() < c.cwnd {
		// RFC 6675 §5 step (C): while cwnd allows, retransmit what NextSeg
		// rule 1 finds lost; new data (rule 2) follows below, rule 3 after it.
		if rs, rn, ok := c.nextLost(false); ok {
			return c.retransmit(b, rs, min(rn, room), &o)
		}
	}
	for c.sndNxt.LessThan(c.sndMax) {
		// Retransmitting after a timeout: skip what the peer SACKed (RFC 6675 §5.1).
		end, ok := c.sacked.endOf(c.sndNxt)
		if !ok {
			break
		}
		c.sndNxt = end
	}
	seq = c.sndNxt
	off = int(seq.Size(base))
	if seq.LessThan(base) || off > c.sndLen {
		off = c.sndLen
	}
	avail := c.sndLen - off
	inflight := seq.Size(c.sndUna)
	usable := 0
	if inflight < c.sndWnd {
		usable = int(c.sndWnd - inflight)
	}
	if c.flags&(fInRecovery|fSACK) == fInRecovery|fSACK {
		if p := c.pipe(); p < c.cwnd {
			usable = min(usable, int(c.cwnd-p))
		} else {
			usable = 0
		}
	} else if limit := c.cwnd + c.limitedTransmit(seq); inflight < limit {
		usable = min(usable, int(limit-inflight))
	} else {
		usable = 0
	}
	n = min(avail, usable, c.sendLimit(b, seq, room, &o))
	if c.flags&fProbe != 0 {
		// The persist timer fired: one octet past a zero window (RFC 9293 §3.8.6.1).
		c.flags &^= fProbe
		if n == 0 && avail > 0 {
			n, probe = 1, true
			c.count(&c.cfg.Counters.WindowProbes)
		} else if n > 0 {
			// The window is open but too small for sender SWS avoidance: the
			// override timeout sends what it allows (RFC 9293 §3.8.6.2.1 (4)).
			probe = true
		}
	}
	n = wholeRooms(n, room)
	if n > 0 && !probe && !c.sendNow(n, avail, inflight, room) {
		n = 0
	}
	if n == 0 && c.flags&(fInRecovery|fSACK) == fInRecovery|fSACK && usable > 0 {
		// NextSeg rule 3: nothing new to send; retransmit a hole below SACKed data.
		if rs, rn, ok := c.nextLost(true); ok {
			return c.retransmit(b, rs, min(rn, room), &o)
		}
	}
	// Our FIN follows the last byte of data; it takes no window.
	fin = shut && off+n == c.sndLen && (c.flags&fFinSent == 0 || seq.Add(uint32(n)).LessThan(c.sndMax))
	if n == 0 && !fin {
		if c.flags&fAckNow != 0 || c.windowUpdateDue() {
			return c.put(b, wire.TCPHeader{Seq: c.ackSeq(), Ack: c.rcvNxt, Flags: wire.FlagACK, Window: c.advertise()}, &o, 0, 0)
		}
		return 0
	}
	return c.sendSegment(b, seq, off, n, fin, false, &o)
}

// sendLimit is the most new bytes one frame at seq may carry: room (the MSS
// less the options), or with Config.TSO as many whole rooms as b holds, for
// the link to cut at the MTU (engine.Config.SegmentOffload). Only new data at
// SND.MAX goes so, and only while the MSS is the one the MTU gives, so that
// the cut at the MTU is the cut at the MSS: retransmissions after a timeout
// stay one segment each, since SACKed ranges above them must be skipped.
func (c *Conn) sendLimit(b []byte, seq Seq, room int, o *wire.Options) int {
	if !c.cfg.TSO || seq != c.sndMax || c.mss != c.ourMSS {
		return room
	}
	return max(room, (len(b)-wire.TCPMinHeaderLen-o.Len())/room*room)
}

// wholeRooms cuts n bytes of more than one room to whole rooms: the rest goes
// in a later frame, decided then by Nagle's algorithm and SWS avoidance as a
// segment of its own would have been.
func wholeRooms(n, room int) int {
	if n > room {
		return n - n%room
	}
	return n
}

// ackSeq is SEG.SEQ of a segment without data in a synchronized state:
// SND.NXT (tcpeng's SND.MAX, as BSD sends: never behind what went out), but
// not past the right edge of the peer's window, as Linux's tcp_acceptable_seq
// does. The peer's acceptability test (RFC 9293 §3.10.7.4 first) drops a
// segment past its window, and the ACK in it with it: after a window probe
// into a zero window, SND.MAX is one past the edge, and every ACK we sent
// would be lost on the peer until its window opened.
func (c *Conn) ackSeq() Seq {
	if edge := c.sndUna.Add(c.sndWnd); edge.LessThan(c.sndMax) {
		return edge
	}
	return c.sndMax
}

// retransmit resends n bytes at seq during SACK recovery and advances HighRxt.
func (c *Conn) retransmit(b []byte, seq Seq, n int, o *wire.Options) int {
	off := int(seq.Size(c.sndBase()))
	n = max(0, min(n, c.sndLen-off, int(c.sndMax.Size(seq)))) // only what was sent before
	fin := c.flags&fFinSent != 0 && off+n == c.sndLen && seq.Add(uint32(n)).LessThan(c.sndMax)
	c.highRxt = seq.Add(uint32(n))
	if fin {
		c.highRxt = c.highRxt.Add(1)
	}
	c.count(&c.cfg.Counters.Retransmits)
	if c.flags&fRTTPending != 0 && c.rttSeq.InRange(seq, c.highRxt) {
		c.flags &^= fRTTPending // Karn's rule
	}
	c.noteRetransmit(seq, seq.Add(uint32(n)))
	c.endRedo()
	return c.sendSegment(b, seq, off, n, fin, true, o)
}

// sendNow decides whether n bytes (less than or equal to the MSS, of avail unsent)
// go now: a full segment always; a retransmission after a timeout; the rest of
// the queued data if nothing is in flight or Nagle is off (RFC 9293 §3.7.4) or the
// send side is shut; or at least half the largest window the peer offered (sender
// SWS avoidance, RFC 9293 §3.8.6.2.1).
func (c *Conn) sendNow(n, avail int, inflight uint32, room int) bool {
	switch {
	case n >= room:
		return true
	case c.sndNxt.LessThan(c.sndMax):
		return true
	case n == avail && (inflight == 0 || c.flags&fNoDelay != 0 || c.flags&fShutWr != 0):
		return true
	case c.maxSndWnd > 0 && uint32(n) >= c.maxSndWnd/2:
		return true
	}
	return false
}

// sendSegment writes a segment of n bytes from buffer offset off at seq, with our
// FIN if fin, and advances SND.NXT unless it is a one-off retransmission.
func (c *Conn) sendSegment(b []byte, seq Seq, off, n int, fin, oneOff bool, o *wire.Options) int {
	flags := wire.FlagACK
	if n > 0 && off+n == c.sndLen {
		flags |= wire.FlagPSH
	}
	if fin {
		flags |= wire.FlagFIN
	}
	hl := c.put(b, wire.TCPHeader{Seq: seq, Ack: c.rcvNxt, Flags: flags, Window: c.advertise()}, o, off, n)
	if room := int(c.mss) - o.Len(); n > room {
		c.cfg.Counters.SegsOut += uint64(n/room - 1) // the link cuts it into n/room (sendLimit)
	}
	end := seq.Add(uint32(n))
	if fin {
		end = end.Add(1)
		c.flags |= fFinSent
	}
	if !oneOff {
		if seq == c.sndMax {
			if c.flags&fRTTPending == 0 {
				c.flags |= fRTTPending
				c.rttSeq, c.rttStart = seq, c.now()
			}
		} else {
			c.count(&c.cfg.Counters.Retransmits)
			if c.flags&fRTTPending != 0 && c.rttSeq.InRange(seq, end) {
				c.flags &^= fRTTPending // Karn's rule
			}
		}
		c.sndNxt = end
		c.sndMax = wire.SeqMax(c.sndMax, end)
	}
	// RFC 6298 §5.1: start the timer when data goes out and it is not running.
	// While the window is zero the persist timer covers the probe instead.
	if c.timers[timerRTO] == 0 && c.sndWnd > 0 {
		c.arm(timerRTO, c.rto)
	}
	return hl
}

// put writes a header and n payload bytes from send buffer offset off into b,
// marks the ACK as sent, and returns the segment length.
func (c *Conn) put(b []byte, h wire.TCPHeader, o *wire.Options, off, n int) int {
	h.SrcPort, h.DstPort = c.localPort, c.remotePort
	hl := wire.PutTCP(b, h, o)
	switch {
	case c.cfg.NoSum || n > int(c.mss):
		// The link finishes the checksum (engine.Config.PartialChecksums), or
		// cuts the frame and sums each piece (sendLimit; a frame of several
		// rooms is longer than the MSS, as a room is more than half of it).
		c.outSum = 0
		if n > 0 {
			c.snd.read(off, b[hl:hl+n])
		}
	case n > 0:
		// One pass copies the payload and sums it for the checksum.
		c.outSum = wire.ChecksumCombine(wire.Checksum(b[:hl], 0), c.snd.readSum(off, b[hl:hl+n]))
	default:
		c.outSum = wire.Checksum(b[:hl], 0)
	}
	if h.Flags&wire.FlagACK != 0 {
		c.lastAckSent = h.Ack
		c.flags &^= fAckNow | fWindowUpdate
		c.timers[timerDelAck] = 0
		c.unackedSegs = 0
		if c.dupAcksOwed > 1 {
			// One duplicate ACK per out-of-order segment (RFC 5681 §4.2), even
			// when a batch of them was processed before this Output.
			c.dupAcksOwed--
			c.flags |= fAckNow
		} else {
			c.dupAcksOwed = 0
		}
	}
	c.cfg.Counters.SegsOut++
	return hl + n
}

// advertise returns the window field to send and records the right edge it
// promises. RFC 9293 §3.8.6.2.2: the right edge moves only by at least
// min(RCV.BUFF/2, Eff.snd.MSS) at a time, and never moves left.
func (c *Conn) advertise() uint16 {
	edge := c.windowEdge()
	wnd := edge.Size(c.rcvNxt) >> c.rcvShift
	if e := c.rcvNxt.Add(wnd << c.rcvShift); e.GreaterThan(c.rcvAdv) {
		c.rcvAdv = e
	}
	return uint16(wnd)
}

// windowEdge returns the right edge the next advertisement offers.
func (c *Conn) windowEdge() Seq {
	free := uint32(c.rcv.cap - c.rcvLen)
	free = min(free, uint32(0xffff)<<c.rcvShift)
	edge := c.rcvNxt.Add(free)
	if edge.LessEq(c.rcvAdv) {
		return c.rcvAdv
	}
	if edge.Size(c.rcvAdv) < min(uint32(c.rcv.cap/2), uint32(c.mss)) {
		return c.rcvAdv // too small a step, a closed window included: SWS avoidance
	}
	return edge
}

// windowUpdateDue reports whether a Read opened the window enough to tell the
// peer now: the edge would move by at least min(RCV.BUFF/2, 2×MSS) while the
// window the peer knows is below half the buffer. Or whether a Read should
// send the ACK the delayed-ACK timer holds: when more than a full-sized
// segment's worth of data is unacknowledged, as Linux's tcp_cleanup_rbuf
// does (RFC 5681 §4.2 lets a receiver acknowledge sooner than the timer). The
// every-second-full-sized-segment rule of receive counts whole segments, and
// a sender whose writes do not divide into them (at MTU 65535 a 64 KiB write
// is a full segment and a 53-byte one) is left waiting for the timer with
// the initial window of two segments (RFC 6928): 40 ms at the start of every
// bulk transfer, until the application's reads send it.
func (c *Conn) windowUpdateDue() bool {
	if c.flags&fWindowUpdate == 0 {
		return false
	}
	c.flags &^= fWindowUpdate
	if c.flags&fFinRcvd != 0 {
		// No data can follow the peer's FIN (RFC 9293 §3.10.7.4, eighth): a new
		// window tells it nothing, and a peer that has closed and forgotten the
		// connection would answer it with a reset.
		return false
	}
	if c.timers[timerDelAck] != 0 && c.rcvNxt.Size(c.lastAckSent) > uint32(c.fullSegment()) {
		return true
	}
	known := c.rcvWnd()
	step := c.windowEdge().Size(c.rcvAdv)
	return known < uint32(c.rcv.cap/2) && step >= min(uint32(c.rcv.cap/2), 2*uint32(c.mss))
}

// limitedTransmit is the extra window RFC 3042 gives new data on the first and
// second duplicate ACKs (RFC 5681 §3.2: FlightSize at most cwnd + 2×SMSS).
func (c *Conn) limitedTransmit(seq Seq) uint32 {
	if c.flags&fInRecovery != 0 || c.dupAcks == 0 || c.dupAcks >= dupThresh || seq != c.sndMax {
		return 0
	}
	return uint32(c.dupAcks) * uint32(c.mss)
}

// ackOptions sets the options of a segment with ACK: the timestamps (RFC 7323
// §3.2: on every segment once negotiated; TSecr is TS.Recent) and the SACK
// blocks (RFC 2018).
func (c *Conn) ackOptions(o *wire.Options) {
	if c.flags&fTS != 0 {
		o.Present |= wire.HasTimestamps
		o.TSVal, o.TSEcr = c.tsNow(), c.tsRecent
	}
	c.sackOptions(o)
}
