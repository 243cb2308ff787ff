package linuxconf

import (
	"fmt"
	"time"

	"github.com/tcpeng/tcpeng/engine/wire"
	"github.com/tcpeng/tcpeng/internal/pktscript"
)

// unexpected fails if the kernel sent a segment no line expected before line
// l (nil: the end of the script), or broke a quiet period.
func (r *lrun) unexpected(l *pktscript.Line, cutoff time.Time) *pktscript.Failure {
	// Segments that came after the cutoff (the line's time, when the runner
	// itself is late) are not before the line: they wait for the lines after.
	k := len(r.pending)
	for k > 0 && r.pending[k-1].at.After(cutoff) {
		k--
	}
	later := append([]frame(nil), r.pending[k:]...)
	r.pending = r.pending[:k]
	defer func() { r.pending = append(r.pending, later...) }()
	if l != nil && (l.Kind == pktscript.KindCall || l.Kind == pktscript.KindNone) && r.quiet == nil && r.earlyForNext() {
		// The kernel sent, a little before this call, the segment the next
		// expectation wants (an ACK sent at once that the script has
		// delayed): that expectation takes it, and calls it early.
		return nil
	}
	for len(r.pending) > 0 && r.skipQuickAck(l) {
	}
	if r.quiet != nil && len(r.pending) == 0 {
		r.quiet = nil // it was a quick ACK
	}
	if r.quiet != nil {
		q := r.quiet
		f := &pktscript.Failure{Pos: q.line.Pos, Msg: "the kernel sent a segment during the quiet period (" + q.line.Body() + ")",
			Expected: q.line.Body()}
		if len(r.pending) > 0 {
			f.Actual = r.formatFrame(r.pending[len(r.pending)-1])
		}
		return f
	}
	if len(r.pending) == 0 {
		return nil
	}
	p := r.pending[0]
	f := &pktscript.Failure{Msg: "the kernel sent a segment the script does not expect", Actual: r.formatFrame(p)}
	if l != nil {
		f.Pos = l.Pos
		f.Expected = "(next line) " + l.Time.String() + " " + l.Body()
	}
	r.rep.Rows = append(r.rep.Rows, pktscript.Row{At: p.st.Round(100 * time.Microsecond), Script: "(not in the script)", Actual: f.Actual, Failed: true})
	return f
}

// earlyForNext reports whether every pending segment matches, in content and
// in order, the expectations that follow the current line before the next
// injection (calls, events and quiet periods may come between).
func (r *lrun) earlyForNext() bool {
	if len(r.pending) == 0 {
		return false
	}
	k := 0
	for _, l := range r.s.Lines[r.idx+1:] {
		if k == len(r.pending) {
			return true
		}
		if !played(l) {
			continue
		}
		switch l.Kind {
		case pktscript.KindInject:
			return false
		case pktscript.KindExpect:
			g := l.Seg
			if g.Flags&wire.FlagSYN != 0 || g.NewISN || g.AnyFlags {
				return false // matching would teach the peer an ISN: no dry run
			}
			pk, err := pktscript.DecodePacket(r.pending[k].b)
			if err != nil || len(r.peer.Match(pshNormalized(l, pk), pk)) > 0 {
				return false
			}
			k++
		}
	}
	return k == len(r.pending)
}

// line plays one line.
func (r *lrun) line(l *pktscript.Line) *pktscript.Failure {
	switch l.Kind {
	case pktscript.KindInject:
		return r.inject(l)
	case pktscript.KindExpect:
		return r.expect(l)
	case pktscript.KindNone:
		return r.none(l)
	case pktscript.KindCall:
		return r.call(l)
	case pktscript.KindEvent:
		return r.event(l)
	}
	return &pktscript.Failure{Msg: fmt.Sprintf("line kind %d unknown to the Linux runner", l.Kind)}
}

// before brings the run to the time of an action line; a segment sent before
// it that no line expected fails the script.
func (r *lrun) before(l *pktscript.Line) *pktscript.Failure {
	target := r.real(l.Time.At)
	r.pump(target, nil)
	return r.unexpected(l, target.Add(time.Millisecond))
}

// acting re-anchors the script when the runner itself is late for an action
// (a scheduler or virtual machine stall): what the kernel does in answer is
// late by as much, and the lines after keep their intervals to the action.
func (r *lrun) acting(l *pktscript.Line) {
	if late := time.Since(r.real(l.Time.At)); late > time.Millisecond {
		r.shift += late
	}
}

func (r *lrun) inject(l *pktscript.Line) *pktscript.Failure {
	if f := r.before(l); f != nil {
		return f
	}
	r.acting(l)
	b, err := r.peer.Build(l)
	if err != nil {
		return &pktscript.Failure{Msg: err.Error(), Expected: l.Body()}
	}
	row := pktscript.Row{Pos: l.Pos, At: r.scriptTime(time.Now()).Round(100 * time.Microsecond), Script: l.Body()}
	if pk, err := pktscript.DecodePacket(b); err == nil {
		row.Actual = "< " + r.peer.Format(pk, true)
	}
	r.rep.Rows = append(r.rep.Rows, row)
	if pk, err := pktscript.DecodePacket(b); err == nil && len(pk.Payload) > 0 {
		ft := r.flow(l.Port)
		end := pk.Seq + uint32(len(pk.Payload))
		if pk.Flags&wire.FlagSYN != 0 {
			end++
		}
		if len(ft.data) == maxSentData {
			ft.data = append(ft.data[:0], ft.data[1:]...)
		}
		ft.data = append(ft.data, sentData{end: end, at: time.Now()})
	}
	if err := r.e.write(b); err != nil {
		r.res.Err = fmt.Errorf("%s: writing to the TUN device: %w", l.Pos, err)
		return &pktscript.Failure{Msg: "the runner could not write the segment: " + err.Error()}
	}
	return nil
}

func (r *lrun) expect(l *pktscript.Line) *pktscript.Failure {
	_, lo, hi, tol := r.window(l)
	limit := r.lateLimit(l, hi)
	row := pktscript.Row{Pos: l.Pos, At: l.Time.At, Script: l.Body()}
	var p frame
	var skipped *frame // the last quick ACK skipped at this line
	for {
		r.pump(limit, func() bool { return len(r.pending) > 0 })
		if len(r.pending) == 0 && skipped != nil {
			// Nothing came after the quick ACK: it was the answer after all,
			// and it does not match. Take it back.
			r.pending = append(r.pending, *skipped)
			r.res.Timing = r.res.Timing[:len(r.res.Timing)-1]
			r.rep.Rows = r.rep.Rows[:len(r.rep.Rows)-1]
			r.unquick = true
		}
		if len(r.pending) == 0 {
			f := &pktscript.Failure{Msg: "the kernel sent nothing by " + fmtTime(r.scriptTime(limit)),
				Expected: l.Time.String() + " " + l.Body(), Actual: "nothing"}
			row.Actual, row.Failed = "nothing", true
			r.rep.Rows = append(r.rep.Rows, row)
			return f
		}
		p = r.pending[0]
		pk, err := pktscript.DecodePacket(p.b)
		var diffs []string
		if err != nil {
			diffs = []string{"undecodable frame: " + err.Error()}
		} else {
			diffs = r.peer.Match(pshNormalized(l, pk), pk)
		}
		if len(diffs) > 0 && !r.unquick && r.skipQuickAck(l) {
			skipped = &p
			continue
		}
		r.unquick = false
		if err == nil {
			r.peer.Observe(pk)
			r.observed(pk)
		}
		row.At, row.Actual = p.st.Round(100*time.Microsecond), r.formatFrame(p)
		if len(diffs) > 0 {
			row.Failed = true
			r.rep.Rows = append(r.rep.Rows, row)
			f := &pktscript.Failure{Msg: "the segment the kernel sent does not match", Expected: l.Time.String() + " " + l.Body(),
				Actual: row.Actual, Diffs: diffs}
			if q := r.quiet; q != nil && !p.at.Before(q.at) {
				f.Pos, f.Msg = q.line.Pos, "the kernel sent a segment during the quiet period ("+q.line.Body()+"), and it is not the next one expected either"
			}
			return f
		}
		break
	}
	r.pending = r.pending[1:]
	r.rep.Rows = append(r.rep.Rows, row)
	note := ""
	if q := r.quiet; q != nil && !p.at.Before(q.at) {
		note = fmt.Sprintf("(early: during the quiet period of line %d)", q.line.Pos.Line)
		r.quiet = nil
	}
	r.matched(l, p.at, p.st, lo, hi, tol, note)
	return nil
}

// expectsAck reports whether pattern g is a pure ACK that acknowledges ack
// (or any acknowledgment number).
func expectsAck(g *pktscript.Segment, ack, peerISN uint32) bool {
	if g == nil || g.AnyFlags || g.Flags != wire.FlagACK || !g.Len.Any && g.Len.V != 0 {
		return false
	}
	switch {
	case !g.Ack.Set || g.Ack.Any:
		return true
	case g.Ack.Abs:
		return uint32(g.Ack.V) == ack
	}
	return peerISN+uint32(g.Ack.V) == ack
}

// pshNormalized returns l, or for a segment that carries data and differs
// from l's pattern only in PSH, a copy of l whose pattern takes the segment's
// PSH. RFC 9293 §3.9.1 leaves PSH to the sender ("the sender may set PSH ...
// the receiver passes data promptly"); Linux sets it at the end of every GSO
// burst, tcpeng at the end of every write, so PSH on data is not compared.
func pshNormalized(l *pktscript.Line, pk *pktscript.Packet) *pktscript.Line {
	g := l.Seg
	if g == nil || g.AnyFlags || len(pk.Payload) == 0 || (g.Flags^pk.Flags) != wire.FlagPSH {
		return l
	}
	l2, g2 := *l, *g
	g2.Flags = pk.Flags
	l2.Seg = &g2
	return &l2
}

// observed notes the acknowledgment of a segment the kernel sent.
func (r *lrun) observed(pk *pktscript.Packet) {
	if pk.Flags&wire.FlagACK == 0 {
		return
	}
	ft := r.flow(pk.Dst.Port())
	ft.ack, ft.ackSet = pk.Ack, true
}

func (r *lrun) flow(port uint16) *flowTrack {
	ft := r.flows[port]
	if ft == nil {
		ft = &flowTrack{}
		r.flows[port] = ft
	}
	return ft
}

// skipQuickAck drops the first pending segment if it is Linux's quick ACK:
// a pure ACK without options, acknowledging more than the kernel's previous
// ACK, and exactly the end of a data segment of the peer written at most
// quickAckWindow before. Linux acknowledges the first segments of a
// connection at once (quick-ACK mode, tcp_incr_quickack), where tcpeng and the
// scripts delay the ACK or let data carry it. The runner calls this only
// where the segment would otherwise fail the script: before an action line,
// at the end, or at an expectation of something else than this ACK (a
// segment with data or other flags, or another acknowledgment number). It is
// recorded as a timing difference at line l (nil: the end).
func (r *lrun) skipQuickAck(l *pktscript.Line) bool {
	p := r.pending[0]
	pk, err := pktscript.DecodePacket(p.b)
	if err != nil || pk.Flags != wire.FlagACK || len(pk.Payload) > 0 || len(pk.Opts) > 0 {
		return false
	}
	ft := r.flows[pk.Dst.Port()]
	if ft == nil || ft.ackSet && int32(pk.Ack-ft.ack) <= 0 {
		return false
	}
	fresh := false
	for _, d := range ft.data {
		if d.end == pk.Ack && !p.at.Before(d.at) && p.at.Sub(d.at) <= quickAckWindow {
			fresh = true
		}
	}
	if !fresh {
		return false
	}
	if l != nil && l.Kind == pktscript.KindExpect && expectsAck(l.Seg, pk.Ack, r.s.PeerISN) {
		return false // this is the ACK the line expects, whatever else differs
	}
	r.pending = r.pending[1:]
	r.peer.Observe(pk)
	r.observed(pk)
	d := TimingDiff{Got: p.st.Round(100 * time.Microsecond), Line: r.peer.Format(pk, false), QuickAck: true}
	if l != nil {
		d.Pos = l.Pos
	}
	r.res.Timing = append(r.res.Timing, d)
	r.rep.Rows = append(r.rep.Rows, pktscript.Row{At: d.Got, Script: "(quick ACK, skipped)", Actual: r.formatFrame(p)})
	return true
}

// matched settles the time of a line the kernel matched at real time at: a
// time outside [lo, hi] is a timing difference. The script's clock does not
// move for it (timers the kernel started before must still be judged against
// the script's clock); when the runner has had to wait for a late segment
// and so comes late to its next action, acting moves the clock then.
func (r *lrun) matched(l *pktscript.Line, at time.Time, st time.Duration, lo, hi time.Time, tol string, note string) {
	if l.Time.Any {
		return
	}
	if at.Before(lo) || at.After(hi) {
		r.res.Timing = append(r.res.Timing, TimingDiff{Pos: l.Pos, Line: l.Body(), Want: l.Time.At, Got: st.Round(100 * time.Microsecond), Tol: tol, Note: note})
	}
}

func (r *lrun) none(l *pktscript.Line) *pktscript.Failure {
	if f := r.before(l); f != nil {
		return f
	}
	end := r.real(r.ends[l])
	n0 := len(r.pending) // early segments for later lines, already there
	r.pump(end.Add(-time.Nanosecond), func() bool { return len(r.pending) > n0 })
	row := pktscript.Row{Pos: l.Pos, At: l.Time.At, Script: l.Body(), Actual: "(nothing)"}
	if u := r.ends[l]; u < l.Until.At {
		row.Actual = "(nothing; checked until " + pktscript.FormatSeconds(u) + ")"
		r.res.Notes = append(r.res.Notes, fmt.Sprintf("line %d: quiet period checked until %s, not %s (trailing quiet periods are capped at %s s of real time)",
			l.Pos.Line, pktscript.FormatSeconds(u), pktscript.FormatSeconds(l.Until.At), trimSec(r.o.QuietCap)))
	}
	if len(r.pending) > n0 {
		// Early or unexpected: the next expectations decide.
		r.quiet = &quietBreak{line: l, at: r.pending[n0].at}
		row.Actual = r.formatFrame(r.pending[n0]) + " (during the quiet period)"
	}
	r.rep.Rows = append(r.rep.Rows, row)
	return nil
}
