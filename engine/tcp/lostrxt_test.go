package tcp

import "testing"

// TestRxtLog checks the record of a recovery's retransmissions: pieces of one
// hole sent in one turn join, the record keeps the newest rxtLogLen, and only a
// retransmission at SND.UNA with SACKed data sent after it is found lost.
func TestRxtLog(t *testing.T) {
	var counters Counters
	c := &Conn{cfg: &Config{Counters: &counters}, flags: fSACK | fInRecovery, mss: 1460}
	c.sndUna, c.sndMax, c.highRxt = 1000, 9000, 1000
	c.noteRetransmit(1000, 1500)
	c.noteRetransmit(1500, 2000) // the same hole's next piece, same SND.MAX: joined
	c.sndMax = 9500
	c.noteRetransmit(3000, 3500) // sent after new data went: a record of its own
	if c.rxt.n != 2 || c.rxt.r[0] != (rxtRec{1000, 2000, 9000}) || c.rxt.r[1] != (rxtRec{3000, 3500, 9500}) {
		t.Fatalf("log %v", c.rxt.r[:c.rxt.n])
	}

	// SACKed data below the first mark says nothing.
	c.highRxt = 3500
	c.sacked = &reassembly{}
	c.sacked.add(2000, 3000, maxScoreboard)
	c.sacked.add(3500, 8000, maxScoreboard)
	c.detectLostRetransmits()
	if counters.LostRetransmits != 0 || c.rxt.n != 2 || c.highRxt != 3500 {
		t.Fatalf("lost %d, log %v, HighRxt %d", counters.LostRetransmits, c.rxt.r[:c.rxt.n], c.highRxt)
	}
	// Data sent after both is SACKed: the one at SND.UNA is lost and made
	// again; the other, further up, is judged once the holes below it fill.
	c.sacked.add(9000, 9500, maxScoreboard)
	c.sacked.add(9600, 9700, maxScoreboard)
	c.detectLostRetransmits()
	if counters.LostRetransmits != 1 || c.rxt.n != 1 || c.highRxt != 1000 || !c.redoing(1000) || c.redoing(2000) {
		t.Fatalf("lost %d, log %v, HighRxt %d, redo %v to %d", counters.LostRetransmits, c.rxt.r[:c.rxt.n], c.highRxt, c.rxt.redo, c.rxt.redoEnd)
	}
	if s, n, ok := c.nextLost(false); !ok || s != 1000 || n != 1000 {
		t.Fatalf("NextSeg %d %d %v, want the hole at 1000", s, n, ok)
	}
	// Made again (here: the late original arrived and was acknowledged, which
	// moves HighRxt with SND.UNA): at the next ACK, HighRxt returns to where
	// retransmission had reached, so the holes between are not sent twice.
	c.sndUna, c.highRxt = 2000, 2000
	c.detectLostRetransmits()
	if c.highRxt != 3500 || c.rxt.redo {
		t.Fatalf("HighRxt %d after the redo, want 3500", c.highRxt)
	}

	// The record is bounded: the oldest goes.
	c.resetRxtLog()
	for i := range rxtLogLen + 3 {
		c.sndMax = Seq(10000 + i)
		c.noteRetransmit(Seq(1000+100*i), Seq(1050+100*i))
	}
	if c.rxt.n != rxtLogLen || c.rxt.r[0].start != 1300 {
		t.Fatalf("log of %d from %d, want %d from 1300", c.rxt.n, c.rxt.r[0].start, rxtLogLen)
	}
	// Outside SACK recovery nothing is recorded.
	c.resetRxtLog()
	c.flags &^= fInRecovery
	c.noteRetransmit(1000, 2000)
	if c.rxt.n != 0 {
		t.Fatalf("recorded outside recovery")
	}
}
