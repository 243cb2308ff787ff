package tcp

import "github.com/tcpeng/tcpeng/engine/wire"

// Selective acknowledgment: the receiver reports what it holds out of order
// (RFC 2018), and the sender keeps a scoreboard of what was SACKed and recovers
// losses by RFC 6675's conservative algorithm.

// dupThresh is DupThresh of RFC 6675 §2 (and RFC 5681's three duplicate ACKs).
const dupThresh = 3

// maxScoreboard bounds the SACKed ranges a sender records; a block that would
// need more is ignored (the data is then retransmitted as if it were lost).
const maxScoreboard = 32

// sackOptions adds to o the SACK blocks an ACK sent now carries (RFC 2018 §4):
// the block holding the most recently received out-of-order segment first, then
// the others in sequence order, as many as fit with the other options.
func (c *Conn) sackOptions(o *wire.Options) {
	if c.flags&fSACK == 0 || c.ooo.empty() {
		return
	}
	o.Present |= wire.HasSACK
	o.NumSACK = 0
	first := -1
	for i, r := range c.ooo.r {
		if c.lastOOO.InRange(r.start, r.end) {
			first = i
			o.SACK[0] = wire.SACKBlock{Left: r.start, Right: r.end}
			o.NumSACK = 1
			break
		}
	}
	for i, r := range c.ooo.r {
		if int(o.NumSACK) == wire.MaxSACKBlocks {
			break
		}
		if i != first {
			o.SACK[o.NumSACK] = wire.SACKBlock{Left: r.start, Right: r.end}
			o.NumSACK++
		}
	}
}

// takeSACK records the SACK blocks of an arriving ACK in the scoreboard. Blocks
// outside SND.UNA..SND.MAX (stale, or D-SACK, RFC 2883) are ignored. It reports
// whether a block identified octets the scoreboard did not hold yet: part (b)
// of RFC 6675 §2's definition of a duplicate acknowledgment.
func (c *Conn) takeSACK(s *wire.Segment) (fresh bool) {
	if c.flags&fSACK == 0 || !s.Opts.Has(wire.HasSACK) {
		return false
	}
	for i := range int(s.Opts.NumSACK) {
		b := s.Opts.SACK[i]
		if !b.Left.LessThan(b.Right) || !b.Left.GreaterThan(s.Ack) || b.Right.GreaterThan(c.sndMax) {
			continue
		}
		if c.sacked == nil {
			c.sacked = &reassembly{}
		}
		if !c.sacked.covers(b.Left, b.Right) {
			fresh = true
		}
		c.sacked.add(b.Left, b.Right, maxScoreboard)
	}
	return fresh
}

// pruneSACK drops scoreboard ranges at or below SND.UNA.
func (c *Conn) pruneSACK() {
	if c.sacked.empty() {
		return
	}
	r := c.sacked.r
	i := 0
	for i < len(r) && r[i].end.LessEq(c.sndUna) {
		i++
	}
	if i > 0 {
		c.sacked.r = append(r[:0], r[i:]...)
	}
	if len(c.sacked.r) > 0 && c.sacked.r[0].start.LessThan(c.sndUna) {
		c.sacked.r[0].start = c.sndUna
	}
}

// lostAbove reports IsLost of RFC 6675 §4 for the unSACKed octets of a hole below
// scoreboard range i: DupThresh discontiguous SACKed ranges above it, or more
// than (DupThresh-1)×SMSS SACKed bytes above it.
func lostAbove(rangesAbove int, bytesAbove uint32, mss uint32) bool {
	return rangesAbove >= dupThresh || bytesAbove > (dupThresh-1)*mss
}

// holes calls f for every unSACKed hole [a, b) of SND.UNA..SND.MAX in order, with
// whether its octets are lost; f returns false to stop.
func (c *Conn) holes(f func(a, b Seq, lost bool) bool) {
	var above uint32
	var r []seqRange
	if !c.sacked.empty() {
		r = c.sacked.r
	}
	for _, x := range r {
		above += x.end.Size(x.start)
	}
	start := c.sndUna
	mss := uint32(c.mss)
	for i, x := range r {
		if x.start.GreaterThan(start) && !f(start, x.start, lostAbove(len(r)-i, above, mss)) {
			return
		}
		above -= x.end.Size(x.start)
		start = wire.SeqMax(start, x.end)
	}
	if c.sndMax.GreaterThan(start) {
		f(start, c.sndMax, false)
	}
}

// isLost is IsLost(SND.UNA): whether the first unacknowledged octet is lost.
func (c *Conn) isLost() bool {
	lost := false
	c.holes(func(a, b Seq, l bool) bool {
		lost = l && a == c.sndUna
		return false
	})
	return lost
}

// pipe is SetPipe of RFC 6675 §4: the octets believed in flight. Each unSACKed
// octet counts once unless it is lost, and once more if it was retransmitted
// (below HighRxt).
func (c *Conn) pipe() uint32 {
	var p uint32
	c.holes(func(a, b Seq, lost bool) bool {
		if !lost {
			p += b.Size(a)
		}
		if c.highRxt.GreaterThan(a) {
			p += wire.SeqMin(c.highRxt, b).Size(a)
		}
		return true
	})
	return p
}

// nextLost is NextSeg of RFC 6675 §4, rules 1 and 3: the first unSACKed octet at
// or above HighRxt that is lost (rule 1, which also takes a lost retransmission
// being made again: lostrxt.go) or, if anyOld, that lies below SACKed data (rule
// 3); with the length to retransmit there.
func (c *Conn) nextLost(anyOld bool) (Seq, int, bool) {
	var seq Seq
	n := 0
	highest := c.sndUna
	if !c.sacked.empty() {
		highest = c.sacked.r[len(c.sacked.r)-1].end
	}
	c.holes(func(a, b Seq, lost bool) bool {
		a = wire.SeqMax(a, c.highRxt)
		if !a.LessThan(b) || !(lost || c.redoing(a) || anyOld && b.LessEq(highest)) {
			return true
		}
		seq, n = a, int(min(b.Size(a), uint32(c.mss)))
		return false
	})
	return seq, n, n > 0
}
