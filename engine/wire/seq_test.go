package wire

import (
	"math"
	"testing"
)

// TestSeqCompare checks the wraparound-aware comparisons of RFC 9293 §3.4 on pairs
// where the first precedes the second, including pairs that straddle 2^31 and
// 2^32.
func TestSeqCompare(t *testing.T) {
	pairs := []struct {
		a, b Seq
		diff int32 // b - a
	}{
		{0, 1, 1},
		{100, 200, 100},
		{0x7fffffff, 0x80000000, 1},  // across 2^31
		{0x7ffffff0, 0x80000010, 32}, // across 2^31
		{0xffffffff, 0, 1},           // across 2^32
		{0xfffffff0, 0x10, 32},       // across 2^32
		{0x80000000, 0xffffffff, 0x7fffffff},
		{0, 0x7fffffff, math.MaxInt32},        // the farthest apart that still orders
		{0xc0000000, 0x3fffffff, 0x7fffffff},  // the same distance across 2^32
		{0x40000000, 0xbfffffff, 0x7fffffff},  // the same distance across 2^31
		{0x80000001, 0x00000000, 0x7fffffff},  // wraps
		{0xdeadbeef, 0xdeadbeef + 1460, 1460}, // a typical segment
	}
	for _, p := range pairs {
		a, b := p.a, p.b
		checks := []struct {
			name      string
			got, want bool
		}{
			{"a.LessThan(b)", a.LessThan(b), true},
			{"a.LessEq(b)", a.LessEq(b), true},
			{"a.GreaterThan(b)", a.GreaterThan(b), false},
			{"a.GreaterEq(b)", a.GreaterEq(b), false},
			{"b.LessThan(a)", b.LessThan(a), false},
			{"b.LessEq(a)", b.LessEq(a), false},
			{"b.GreaterThan(a)", b.GreaterThan(a), true},
			{"b.GreaterEq(a)", b.GreaterEq(a), true},
			{"a.LessThan(a)", a.LessThan(a), false},
			{"a.LessEq(a)", a.LessEq(a), true},
			{"a.GreaterThan(a)", a.GreaterThan(a), false},
			{"a.GreaterEq(a)", a.GreaterEq(a), true},
		}
		for _, c := range checks {
			if c.got != c.want {
				t.Errorf("a=%#08x b=%#08x: %s = %v, want %v", uint32(a), uint32(b), c.name, c.got, c.want)
			}
		}
		if got := b.Diff(a); got != p.diff {
			t.Errorf("%#08x.Diff(%#08x) = %d, want %d", uint32(b), uint32(a), got, p.diff)
		}
		if got := a.Diff(b); got != -p.diff {
			t.Errorf("%#08x.Diff(%#08x) = %d, want %d", uint32(a), uint32(b), got, -p.diff)
		}
		if got := b.Size(a); got != uint32(p.diff) {
			t.Errorf("%#08x.Size(%#08x) = %d, want %d", uint32(b), uint32(a), got, p.diff)
		}
		if got := a.Add(uint32(p.diff)); got != b {
			t.Errorf("%#08x.Add(%d) = %#08x, want %#08x", uint32(a), p.diff, uint32(got), uint32(b))
		}
		if got := b.Sub(uint32(p.diff)); got != a {
			t.Errorf("%#08x.Sub(%d) = %#08x, want %#08x", uint32(b), p.diff, uint32(got), uint32(a))
		}
		if got := SeqMax(a, b); got != b {
			t.Errorf("SeqMax(%#08x, %#08x) = %#08x", uint32(a), uint32(b), uint32(got))
		}
		if got := SeqMax(b, a); got != b {
			t.Errorf("SeqMax(%#08x, %#08x) = %#08x", uint32(b), uint32(a), uint32(got))
		}
		if got := SeqMin(a, b); got != a {
			t.Errorf("SeqMin(%#08x, %#08x) = %#08x", uint32(a), uint32(b), uint32(got))
		}
		if got := SeqMin(b, a); got != a {
			t.Errorf("SeqMin(%#08x, %#08x) = %#08x", uint32(b), uint32(a), uint32(got))
		}
	}
}

// TestSeqHalfSpace documents the one pair the comparisons cannot order: two
// numbers exactly 2^31 apart. The signed distance is -2^31 both ways, so each
// "precedes" the other; callers must keep windows below 2^31 (RFC 7323 §2.3
// limits them to 2^30).
func TestSeqHalfSpace(t *testing.T) {
	for _, a := range []Seq{0, 1, 0x7fffffff, 0x80000000, 0xffffffff} {
		b := a.Add(1 << 31)
		if got := a.Diff(b); got != math.MinInt32 {
			t.Errorf("%#08x.Diff(%#08x) = %d, want MinInt32", uint32(a), uint32(b), got)
		}
		if !a.LessThan(b) || !b.LessThan(a) || a.GreaterThan(b) || b.GreaterThan(a) {
			t.Errorf("%#08x and %#08x: want each LessThan the other and neither GreaterThan", uint32(a), uint32(b))
		}
	}
	// One less than half the space still orders; one more flips the order.
	a := Seq(0x10)
	if !a.LessThan(a.Add(1<<31 - 1)) {
		t.Error("a < a+2^31-1 must hold")
	}
	if !a.GreaterThan(a.Add(1<<31 + 1)) {
		t.Error("a+2^31+1 is behind a (it is a-2^31+1)")
	}
}

// TestSeqInWindow checks window membership (RFC 9293 §3.4:
// RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND) across the 2^31 and 2^32 boundaries.
func TestSeqInWindow(t *testing.T) {
	tests := []struct {
		s, start Seq
		size     uint32
		want     bool
	}{
		{0, 0, 0, false},                   // a zero window holds nothing
		{0x80000000, 0x80000000, 0, false}, // not even its start
		{5, 5, 1, true},
		{6, 5, 1, false},
		{4, 5, 1, false},
		{100, 100, 1000, true},
		{1099, 100, 1000, true},
		{1100, 100, 1000, false}, // the right edge is outside
		{99, 100, 1000, false},
		{0xfffffff0, 0xfffffff0, 0x20, true}, // window across 2^32
		{0xffffffff, 0xfffffff0, 0x20, true},
		{0, 0xfffffff0, 0x20, true},
		{0xf, 0xfffffff0, 0x20, true},
		{0x10, 0xfffffff0, 0x20, false},
		{0xffffffef, 0xfffffff0, 0x20, false},
		{0x7ffffff0, 0x7ffffff0, 0x20, true}, // window across 2^31
		{0x80000000, 0x7ffffff0, 0x20, true},
		{0x8000000f, 0x7ffffff0, 0x20, true},
		{0x80000010, 0x7ffffff0, 0x20, false},
		{0x7fffffef, 0x7ffffff0, 0x20, false},
		{0x3fffffff, 0, 1 << 30, true}, // about the largest scaled window, 65535 << 14
		{0x40000000, 0, 1 << 30, false},
		{0xfffffffe, 0xffffffff, math.MaxUint32, false}, // all but start-1
		{0xfffffffd, 0xffffffff, math.MaxUint32, true},
	}
	for _, tt := range tests {
		if got := tt.s.InWindow(tt.start, tt.size); got != tt.want {
			t.Errorf("%#08x.InWindow(%#08x, %#x) = %v, want %v", uint32(tt.s), uint32(tt.start), tt.size, got, tt.want)
		}
		// InRange over the same span agrees.
		if got := tt.s.InRange(tt.start, tt.start.Add(tt.size)); got != tt.want {
			t.Errorf("%#08x.InRange(%#08x, %#08x) = %v, want %v", uint32(tt.s), uint32(tt.start), uint32(tt.start.Add(tt.size)), got, tt.want)
		}
	}
	// An empty range is empty wherever it sits.
	for _, s := range []Seq{0, 0x7fffffff, 0x80000000, 0xffffffff} {
		if s.InRange(s, s) {
			t.Errorf("%#08x.InRange(s, s) = true", uint32(s))
		}
	}
}

// TestSeqExhaustiveNeighbourhood compares the methods with int64 arithmetic for
// every pair within a small distance of the boundaries.
func TestSeqExhaustiveNeighbourhood(t *testing.T) {
	for _, base := range []uint32{0, 0x7fffffc0, 0xffffffc0} {
		for i := range uint32(128) {
			for j := range uint32(128) {
				a, b := Seq(base+i), Seq(base+j)
				d := int64(j) - int64(i) // b - a, small, so it orders correctly
				if a.LessThan(b) != (d > 0) || a.LessEq(b) != (d >= 0) ||
					a.GreaterThan(b) != (d < 0) || a.GreaterEq(b) != (d <= 0) || int64(b.Diff(a)) != d {
					t.Fatalf("a=%#08x b=%#08x: comparisons disagree with distance %d", uint32(a), uint32(b), d)
				}
				if got, want := b.InWindow(a, 16), d >= 0 && d < 16; got != want {
					t.Fatalf("%#08x.InWindow(%#08x, 16) = %v, want %v", uint32(b), uint32(a), got, want)
				}
			}
		}
	}
}

func TestSegmentSeqLen(t *testing.T) {
	tests := []struct {
		seg  Segment
		want uint32
	}{
		{Segment{Seq: 1000, Flags: FlagACK}, 0},
		{Segment{Seq: 1000, Flags: FlagSYN}, 1},
		{Segment{Seq: 1000, Flags: FlagSYN | FlagACK}, 1},
		{Segment{Seq: 1000, Flags: FlagFIN | FlagACK}, 1},
		{Segment{Seq: 1000, Flags: FlagSYN | FlagFIN}, 2},
		{Segment{Seq: 1000, Flags: FlagPSH | FlagACK, Len: 1460}, 1460},
		{Segment{Seq: 0xffffff00, Flags: FlagFIN | FlagPSH | FlagACK, Len: 0x100}, 0x101},
		{Segment{Seq: 1000, Flags: FlagRST, Len: 0}, 0},
	}
	for _, tt := range tests {
		if got := tt.seg.SeqLen(); got != tt.want {
			t.Errorf("%+v: SeqLen = %d, want %d", tt.seg, got, tt.want)
		}
		if got, want := tt.seg.End(), tt.seg.Seq.Add(tt.want); got != want {
			t.Errorf("%+v: End = %#08x, want %#08x", tt.seg, uint32(got), uint32(want))
		}
	}
	// End wraps across 2^32.
	s := Segment{Seq: 0xffffff00, Flags: FlagFIN | FlagACK, Len: 0x100}
	if got := s.End(); got != 1 {
		t.Errorf("End across 2^32 = %#08x, want 1", uint32(got))
	}
}
