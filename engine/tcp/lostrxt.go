package tcp

import "github.com/tcpeng/tcpeng/engine/wire"

// Lost retransmissions. RFC 6675 retransmits each hole once per recovery
// (HighRxt only moves forward), so a retransmission that is lost again waits
// for the retransmission timer, the slowest repair there is. The sender notes,
// for each retransmission made in SACK recovery, how far it had sent when the
// retransmission went (SND.MAX then, its mark). Octets at or above the mark
// went after the retransmission; once the peer SACKs any of them while the
// retransmission's octets are still neither acknowledged nor SACKed, the
// retransmission was lost: it is made again, in the same recovery.
//
// Only the retransmission at SND.UNA is judged so. Its delivery would move the
// cumulative acknowledgment, which every ACK carries; a retransmission that
// fills a hole further up is known delivered only from a SACK block, and the
// peer reports three or four blocks: with more holes than that, and the ACK
// that reported it first dropped, it would look lost when it was not. Such a
// hole is judged once the holes below it are filled.
//
// This is what Linux did before RACK (tcp_mark_lost_retrans), and RACK's rule
// (RFC 8985 §6.2: a segment is lost when one sent after it is delivered) for
// the order of sending alone. Deviation: RFC 6675 has no such rule; RACK also
// waits a reordering window, which this rule does not, so a retransmission
// that a path reorders behind later data is sent once more, spuriously.

// rxtLogLen bounds the retransmissions a connection remembers in one recovery.
// Past it the oldest is forgotten; if that one is lost, the retransmission
// timer repairs it, as before.
const rxtLogLen = 16

// rxtLog is the record of one recovery's retransmissions, in the order they
// were sent. Marks never decrease along it (SND.MAX only grows).
type rxtLog struct {
	r [rxtLogLen]rxtRec
	n int
	// While redo is set, the retransmissions below redoEnd are being made again:
	// HighRxt went back to the first of them, and returns to resume when it
	// reaches redoEnd.
	redoEnd, resume Seq
	redo            bool
}

type rxtRec struct{ start, end, mark Seq }

// noteRetransmit records a retransmission of [seq, end) made in SACK recovery.
func (c *Conn) noteRetransmit(seq, end Seq) {
	if c.flags&(fSACK|fInRecovery) != fSACK|fInRecovery || !seq.LessThan(end) {
		return
	}
	if c.rxt == nil {
		c.rxt = &rxtLog{}
	}
	l := c.rxt
	if l.n > 0 {
		if last := &l.r[l.n-1]; last.end == seq && last.mark == c.sndMax {
			last.end = end // the next piece of the same hole, sent in the same turn
			return
		}
	}
	if l.n == rxtLogLen {
		copy(l.r[:], l.r[1:])
		l.n--
	}
	l.r[l.n] = rxtRec{seq, end, c.sndMax}
	l.n++
}

// resetRxtLog forgets the retransmissions of a recovery that ended (a full
// acknowledgment, a new recovery, or a timeout, which retransmits everything).
func (c *Conn) resetRxtLog() {
	if c.rxt != nil {
		*c.rxt = rxtLog{}
	}
}

// detectLostRetransmits runs after an ACK's SACK blocks and acknowledgment were
// taken: retransmissions whose octets are still missing while octets sent
// after them were SACKed are lost, and HighRxt goes back to make them again.
func (c *Conn) detectLostRetransmits() {
	c.endRedo() // an acknowledgment may have taken HighRxt past the redo
	l := c.rxt
	if l == nil || l.n == 0 || c.flags&(fSACK|fInRecovery) != fSACK|fInRecovery || c.sacked.empty() {
		return
	}
	highSACKed := c.sacked.r[len(c.sacked.r)-1].end
	keep, lost := 0, false
	var lostEnd Seq // the end of the lost retransmission, which starts at SND.UNA
	for i := range l.n {
		r := l.r[i]
		start := wire.SeqMax(r.start, c.sndUna)
		switch {
		case !start.LessThan(r.end) || c.sacked.covers(start, r.end):
			// Delivered: acknowledged or SACKed.
		case start == c.sndUna && r.mark.LessThan(highSACKed):
			if !lost || lostEnd.LessThan(r.end) {
				lostEnd = r.end
			}
			lost = true
		default:
			l.r[keep] = r
			keep++
		}
	}
	l.n = keep
	if !lost {
		return
	}
	c.count(&c.cfg.Counters.LostRetransmits)
	if !l.redo {
		l.resume = c.highRxt
	} else {
		l.resume = wire.SeqMax(l.resume, c.highRxt)
	}
	l.redo = true
	l.redoEnd = lostEnd
	c.highRxt = c.sndUna
}

// redoing reports whether a hole at a (below b) is to be retransmitted again
// because an earlier retransmission of it was lost.
func (c *Conn) redoing(a Seq) bool {
	return c.rxt != nil && c.rxt.redo && a.LessThan(c.rxt.redoEnd)
}

// endRedo moves HighRxt past what is being made again, once it has been
// (retransmitted, or acknowledged meanwhile): back to where retransmission had
// reached before.
func (c *Conn) endRedo() {
	if l := c.rxt; l != nil && l.redo && !c.highRxt.LessThan(l.redoEnd) {
		l.redo = false
		c.highRxt = wire.SeqMax(c.highRxt, l.resume)
	}
}
