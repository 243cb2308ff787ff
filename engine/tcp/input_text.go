package tcp

import (
	"github.com/tcpeng/tcpeng/engine/tcpip"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// processText is steps seven and eight of RFC 9293 §3.10.7.4: the segment text
// and the FIN bit. s and payload have been trimmed to the window.
func (c *Conn) processText(s *wire.Segment, payload []byte) {
	if len(payload) > 0 {
		switch c.state {
		case Established, FinWait1, FinWait2:
		default:
			// CLOSE-WAIT, CLOSING, LAST-ACK, TIME-WAIT: "This should not occur
			// since a FIN has been received from the remote side. Ignore the
			// segment text."
			payload = nil
		}
	}
	if len(payload) > 0 && c.flags&fReleased != 0 {
		// RFC 1122 §4.2.2.13: data arriving after CLOSE cannot be delivered;
		// reset to show that it was lost.
		c.sendReset(c.sndMax, 0, wire.FlagRST)
		c.err = tcpip.ErrAborted
		c.setState(Closed)
		return
	}
	if len(payload) > 0 {
		c.receive(s.Seq, payload)
	}
	if s.Flags&wire.FlagFIN != 0 {
		c.receiveFin(s.Seq.Add(uint32(len(payload))))
	}
}

// receive places payload, which starts at seq within the window, in the receive
// buffer: in order, it advances RCV.NXT (and past any out-of-order data it joins);
// out of order, it is held and acknowledged at once (RFC 5681 §4.2).
func (c *Conn) receive(seq Seq, payload []byte) {
	n := len(payload)
	off := int(seq.Size(c.rcvNxt))
	if off > 0 {
		if c.ooo == nil {
			c.ooo = &reassembly{}
		}
		if c.ooo.add(seq, seq.Add(uint32(n)), c.cfg.MaxOutOfOrder) {
			c.rcv.write(c.cfg.Pool, c.rcvLen+off, payload)
			c.lastOOO = seq
		} else {
			c.count(&c.cfg.Counters.DropOutOfOrder)
		}
		c.flags |= fAckNow
		c.dupAcksOwed = min(c.dupAcksOwed+1, maxDupAcksOwed)
		return
	}
	c.rcv.write(c.cfg.Pool, c.rcvLen, payload)
	c.rcvLen += n
	c.rcvNxt = c.rcvNxt.Add(uint32(n))
	for {
		end, ok := c.ooo.popFront(c.rcvNxt)
		if !ok {
			break
		}
		if end.GreaterThan(c.rcvNxt) {
			c.rcvLen += int(end.Size(c.rcvNxt))
			c.rcvNxt = end
		}
		c.flags |= fAckNow // the segment filled a gap (RFC 5681 §4.2)
	}
	c.events |= EvReadable
	if c.flags&fFinPending != 0 && c.rcvNxt == c.rcvFin {
		c.receiveFin(c.rcvFin)
	}
	// RFC 9293 §3.8.6.3 and RFC 5681 §4.2: acknowledge at least every second
	// full-sized segment, and any other data within the delayed-ACK time. A
	// segment larger than the MSS (a TSO super-packet a TUN device handed over
	// whole, as GRO does) counts as the full-sized segments it carries, so one
	// of two or more is acknowledged at once, as Linux does by bytes.
	if f := c.fullSegment(); n >= f {
		c.unackedSegs = uint8(min(int(c.unackedSegs)+n/max(f, 1), 2))
	}
	if c.unackedSegs >= 2 || c.cfg.DelayedAck <= 0 {
		c.flags |= fAckNow
	} else if c.timers[timerDelAck] == 0 {
		c.arm(timerDelAck, c.cfg.DelayedAck)
	}
}

// fullSegment is the payload of a full-sized segment from the peer: the MSS
// less the options every segment of the connection carries, the timestamps
// option (10 bytes, padded to 12) once negotiated (RFC 9293 §3.7.1: options
// come out of the MSS; RFC 7323 §3.2). Counting only segments of the whole MSS
// as full would leave every ACK of a timestamped bulk transfer to the
// delayed-ACK timer.
func (c *Conn) fullSegment() int {
	if c.flags&fTS != 0 {
		return int(c.mss) - tsOptionSpace
	}
	return int(c.mss)
}

// tsOptionSpace is the room the timestamps option takes in a segment.
const tsOptionSpace = 12

// maxDupAcksOwed bounds the duplicate ACKs one batch of input can make us send.
const maxDupAcksOwed = 16

// receiveFin processes the peer's FIN at sequence number fin (RFC 9293
// §3.10.7.4, eighth). A FIN beyond RCV.NXT is remembered until the data before
// it arrives.
func (c *Conn) receiveFin(fin Seq) {
	if c.flags&fFinRcvd != 0 {
		return
	}
	c.flags |= fAckNow
	if fin != c.rcvNxt {
		c.flags |= fFinPending
		c.rcvFin = fin
		return
	}
	c.flags = (c.flags | fFinRcvd) &^ fFinPending
	c.rcvNxt = c.rcvNxt.Add(1)
	c.events |= EvPeerFin | EvReadable
	switch c.state {
	case SynReceived, Established:
		c.setState(CloseWait)
	case FinWait1:
		if c.finAcked() {
			c.enterTimeWait()
		} else {
			c.setState(Closing)
		}
	case FinWait2:
		c.enterTimeWait()
	}
}

// enterTimeWait enters TIME_WAIT for 2×MSL (RFC 9293 §3.10.7.4); every other timer stops.
func (c *Conn) enterTimeWait() {
	c.timers = [numTimers]tcpip.Time{}
	c.setState(TimeWait)
	c.arm(timerClose, 2*c.cfg.MSL)
}
