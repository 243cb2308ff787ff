package wire

// Seq is a TCP sequence number: arithmetic modulo 2^32 (RFC 9293 §3.4).
//
// Two sequence numbers are ordered only by their signed 32-bit distance, so
// comparisons are valid while the two are less than 2^31 apart. Never compare
// Seq values with < or >: a test in engine/ rejects any such comparison; use
// the methods below.
type Seq uint32

// Add returns s advanced by n.
func (s Seq) Add(n uint32) Seq { return s + Seq(n) }

// Sub returns s moved back by n.
func (s Seq) Sub(n uint32) Seq { return s - Seq(n) }

// Diff returns the signed distance s - t.
func (s Seq) Diff(t Seq) int32 { return int32(s - t) }

// Size returns the number of sequence numbers from t up to s (s - t, unsigned);
// it is meaningful when t precedes or equals s.
func (s Seq) Size(t Seq) uint32 { return uint32(s - t) }

// LessThan reports whether s precedes t.
func (s Seq) LessThan(t Seq) bool { return int32(s-t) < 0 }

// LessEq reports whether s precedes or equals t.
func (s Seq) LessEq(t Seq) bool { return int32(s-t) <= 0 }

// GreaterThan reports whether s follows t.
func (s Seq) GreaterThan(t Seq) bool { return int32(s-t) > 0 }

// GreaterEq reports whether s follows or equals t.
func (s Seq) GreaterEq(t Seq) bool { return int32(s-t) >= 0 }

// InWindow reports whether start <= s < start+size, the window membership test of
// RFC 9293 §3.4 (for example RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND). A window of
// size 0 contains nothing.
func (s Seq) InWindow(start Seq, size uint32) bool { return uint32(s-start) < size }

// InRange reports whether lo <= s < hi.
func (s Seq) InRange(lo, hi Seq) bool { return uint32(s-lo) < uint32(hi-lo) }

// SeqMax returns whichever of a and b follows the other.
func SeqMax(a, b Seq) Seq {
	if a.LessThan(b) {
		return b
	}
	return a
}

// SeqMin returns whichever of a and b precedes the other.
func SeqMin(a, b Seq) Seq {
	if a.LessThan(b) {
		return a
	}
	return b
}
