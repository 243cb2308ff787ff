package tcp

import (
	"github.com/tcpeng/tcpeng/engine/tcpip"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// inputSynSent handles a segment in SYN_SENT (RFC 9293 §3.10.7.3).
func (c *Conn) inputSynSent(seg *wire.Segment, payload []byte) Verdict {
	f := seg.Flags
	// First: check the ACK bit. SND.NXT here is sndMax: the SYN may be queued for
	// retransmission with SND.NXT pulled back to ISS.
	if f&wire.FlagACK != 0 && (seg.Ack.LessEq(c.iss) || seg.Ack.GreaterThan(c.sndMax)) {
		if f&wire.FlagRST == 0 {
			c.sendReset(seg.Ack, 0, wire.FlagRST)
		}
		c.count(&c.cfg.Counters.DropBadAck)
		return Dropped
	}
	// Second: check the RST bit. With an acceptable ACK the peer refused us;
	// without one the reset cannot be told from a forgery (RFC 5961 §3.2).
	if f&wire.FlagRST != 0 {
		if f&wire.FlagACK != 0 {
			c.count(&c.cfg.Counters.RSTsIn)
			c.fail(tcpip.ErrRefused)
			return Accepted
		}
		return Dropped
	}
	// Fourth: check the SYN bit.
	if f&wire.FlagSYN == 0 {
		return Dropped
	}
	c.irs = seg.Seq
	c.rcvNxt = seg.Seq.Add(1)
	c.takeSynOptions(seg, c.cfg.WindowScale)
	// RFC 7323 §2.2: the window of a SYN is never scaled.
	c.sndWnd, c.sndWl1, c.sndWl2 = uint32(seg.Window), seg.Seq, seg.Ack
	c.maxSndWnd = c.sndWnd
	if f&wire.FlagACK == 0 {
		// Simultaneous open (RFC 9293 Figure 7): answer with SYN,ACK from ISS.
		// Text on the SYN is dropped; the peer retransmits it.
		c.sndNxt = c.iss
		c.setState(SynReceived)
		return Accepted
	}
	c.ackNewData(seg.Ack, seg)
	c.established()
	c.flags |= fAckNow
	// "If there are other controls or text in the segment, then continue
	// processing at the sixth step": data and FIN on the SYN-ACK.
	s := *seg
	s.Seq, s.Flags = s.Seq.Add(1), s.Flags&^wire.FlagSYN
	payload = c.trim(&s, payload, c.rcvWnd())
	c.processText(&s, payload)
	return Accepted
}

// takeSynOptions applies the options of the peer's SYN: its MSS (RFC 9293
// §3.7.1, 536 when absent), SACK-permitted (RFC 2018 §2) and window scale
// (RFC 7323 §2.2); the last two are in use only if both SYNs carry them.
// offered says whether our SYN carries window scale.
func (c *Conn) takeSynOptions(seg *wire.Segment, offered bool) {
	peer := uint16(DefaultMSS)
	if seg.Opts.Has(wire.HasMSS) {
		peer = seg.Opts.MSS
	}
	// A tiny MSS would make every byte a segment; Linux floors it at 48 bytes of
	// data, tcpeng at 64.
	c.mss = max(min(peer, c.ourMSS), minMSS)
	c.setFlag(fSACK, c.cfg.SACK && seg.Opts.Has(wire.HasSACKPermitted))
	// RFC 7323 §3.2: timestamps are used only if both SYNs carry them.
	c.setFlag(fTS, c.cfg.Timestamps && seg.Opts.Has(wire.HasTimestamps))
	if c.flags&fTS != 0 {
		c.tsRecent = seg.Opts.TSVal
	}
	if offered && seg.Opts.Has(wire.HasWindowScale) {
		c.flags |= fWindowScale
		c.sndShift = seg.Opts.Shift()
	} else {
		c.flags &^= fWindowScale
		c.sndShift, c.rcvShift = 0, 0
	}
	// The window of our SYN, unscaled, is the first right edge we advertised.
	c.rcvAdv = c.rcvNxt.Add(uint32(min(c.rcv.cap, 0xffff)))
}

const minMSS = 64

// synLostRTO is the RTO when data transmission begins after a lost SYN or
// SYN-ACK (RFC 6298 §5.7).
const synLostRTO = 3 * tcpip.Second

// established moves a connection whose SYN was acknowledged into ESTABLISHED, and
// on into FIN_WAIT_1 if the application already shut down the send side.
func (c *Conn) established() {
	// RFC 6928 §2: an initial window of ten segments. RFC 5681 §3.1: one
	// segment if the SYN or SYN-ACK was lost; and RFC 6298 §5.7: the RTO, which
	// has no sample from the handshake (Karn), starts again from 3 s.
	if c.flags&fSynLost != 0 {
		c.cwnd = uint32(c.mss)
		if c.srtt == 0 {
			c.rto = min(synLostRTO, c.cfg.MaxRTO)
		}
	} else {
		c.cwnd = min(10*uint32(c.mss), max(2*uint32(c.mss), 14600))
	}
	c.retries = 0
	c.recover = c.sndUna
	if c.flags&fPassive == 0 {
		c.events |= EvConnected
	}
	c.setState(Established)
	if c.flags&fShutWr != 0 && c.state == Established {
		c.setState(FinWait1)
	}
}
