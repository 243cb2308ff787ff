package tcp

import "github.com/tcpeng/tcpeng/engine/wire"

// reassembly records which sequence ranges beyond RCV.NXT have arrived out of
// order (RFC 9293 §3.10.7.4, seventh: segments "may be held for later
// processing"). The data itself is written in place in the receive ring, inside
// the advertised window, so the bytes held are bounded by the receive buffer; the
// number of ranges is bounded by Config.MaxOutOfOrder. Ranges are kept sorted and
// disjoint, and are the SACK blocks the receiver can report.
type reassembly struct {
	r []seqRange
}

type seqRange struct{ start, end Seq }

func (q *reassembly) empty() bool { return q == nil || len(q.r) == 0 }

// add records [start, end). It returns false, recording nothing, if that would
// need more than max ranges.
func (q *reassembly) add(start, end Seq, max int) bool {
	// Find the first range that ends at or after start.
	i := 0
	for i < len(q.r) && q.r[i].end.LessThan(start) {
		i++
	}
	// Merge every range that overlaps or touches [start, end).
	j := i
	for j < len(q.r) && q.r[j].start.LessEq(end) {
		start = wire.SeqMin(start, q.r[j].start)
		end = wire.SeqMax(end, q.r[j].end)
		j++
	}
	if i == j {
		if len(q.r) >= max {
			return false
		}
		q.r = append(q.r, seqRange{})
		copy(q.r[i+1:], q.r[i:])
		q.r[i] = seqRange{start, end}
		return true
	}
	q.r[i] = seqRange{start, end}
	q.r = append(q.r[:i+1], q.r[j:]...)
	return true
}

// endOf returns the end of the recorded range holding seq, if one does.
func (q *reassembly) endOf(seq Seq) (Seq, bool) {
	if q.empty() {
		return 0, false
	}
	for _, r := range q.r {
		if seq.InRange(r.start, r.end) {
			return r.end, true
		}
	}
	return 0, false
}

// covers reports whether [start, end), not empty, lies inside one recorded range.
func (q *reassembly) covers(start, end Seq) bool {
	e, ok := q.endOf(start)
	return ok && end.LessEq(e)
}

// popFront removes and returns the end of the first range if it starts at or
// before nxt; ok is false otherwise.
func (q *reassembly) popFront(nxt Seq) (end Seq, ok bool) {
	if q.empty() || q.r[0].start.GreaterThan(nxt) {
		return 0, false
	}
	end = q.r[0].end
	q.r = append(q.r[:0], q.r[1:]...)
	return end, true
}
