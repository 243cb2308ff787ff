package tcp

import (
	"fmt"
	"testing"
)

// TestRxtLog checks the record of a recovery's retransmissions: pieces of one
// hole sent in one turn join, the record keeps the newest rxtLogLen, and only a
// retransmission at SND.UNA with SACKed data sent after it is found lost. It
// runs at two places in sequence space, the second where the numbers are more
// than 2^31 above zero.
func TestRxtLog(t *testing.T) {
	for _, base := range []Seq{0, 0x90000000} {
		t.Run(fmt.Sprintf("%#x", uint32(base)), func(t *testing.T) { testRxtLog(t, base) })
	}
}

func testRxtLog(t *testing.T, base Seq) {
	q := func(n uint32) Seq { return base.Add(n) }
	var counters Counters
	c := &Conn{cfg: &Config{Counters: &counters}, flags: fSACK | fInRecovery, mss: 1460}
	c.sndUna, c.sndMax, c.highRxt = q(1000), q(9000), q(1000)
	c.noteRetransmit(q(1000), q(1500))
	c.noteRetransmit(q(1500), q(2000)) // the same hole's next piece, same SND.MAX: joined
	c.sndMax = q(9500)
	c.noteRetransmit(q(3000), q(3500)) // sent after new data went: a record of its own
	if c.rxt.n != 2 || c.rxt.r[0] != (rxtRec{q(1000), q(2000), q(9000)}) || c.rxt.r[1] != (rxtRec{q(3000), q(3500), q(9500)}) {
		t.Fatalf("log %v", c.rxt.r[:c.rxt.n])
	}

	// SACKed data below the first mark says nothing.
	c.highRxt = q(3500)
	c.sacked = &reassembly{}
	c.sacked.add(q(2000), q(3000), maxScoreboard)
	c.sacked.add(q(3500), q(8000), maxScoreboard)
	c.detectLostRetransmits()
	if counters.LostRetransmits != 0 || c.rxt.n != 2 || c.highRxt != q(3500) {
		t.Fatalf("lost %d, log %v, HighRxt %d", counters.LostRetransmits, c.rxt.r[:c.rxt.n], c.highRxt)
	}
	// Data sent after both is SACKed: the one at SND.UNA is lost and made
	// again; the other, further up, is judged once the holes below it fill.
	c.sacked.add(q(9000), q(9500), maxScoreboard)
	c.sacked.add(q(9600), q(9700), maxScoreboard)
	c.detectLostRetransmits()
	if counters.LostRetransmits != 1 || c.rxt.n != 1 || c.highRxt != q(1000) || !c.redoing(q(1000)) || c.redoing(q(2000)) {
		t.Fatalf("lost %d, log %v, HighRxt %d, redo %v to %d", counters.LostRetransmits, c.rxt.r[:c.rxt.n], c.highRxt, c.rxt.redo, c.rxt.redoEnd)
	}
	if s, n, ok := c.nextLost(false); !ok || s != q(1000) || n != 1000 {
		t.Fatalf("NextSeg %d %d %v, want the hole at %d", s, n, ok, q(1000))
	}
	// Made again (here: the late original arrived and was acknowledged, which
	// moves HighRxt with SND.UNA): at the next ACK, HighRxt returns to where
	// retransmission had reached, so the holes between are not sent twice.
	c.sndUna, c.highRxt = q(2000), q(2000)
	c.detectLostRetransmits()
	if c.highRxt != q(3500) || c.rxt.redo {
		t.Fatalf("HighRxt %d after the redo, want %d", c.highRxt, q(3500))
	}

	// The record is bounded: the oldest goes.
	c.resetRxtLog()
	for i := range uint32(rxtLogLen + 3) {
		c.sndMax = q(10000 + i)
		c.noteRetransmit(q(1000+100*i), q(1050+100*i))
	}
	if c.rxt.n != rxtLogLen || c.rxt.r[0].start != q(1300) {
		t.Fatalf("log of %d from %d, want %d from %d", c.rxt.n, c.rxt.r[0].start, rxtLogLen, q(1300))
	}
	// Outside SACK recovery nothing is recorded.
	c.resetRxtLog()
	c.flags &^= fInRecovery
	c.noteRetransmit(q(1000), q(2000))
	if c.rxt.n != 0 {
		t.Fatalf("recorded outside recovery")
	}
}
