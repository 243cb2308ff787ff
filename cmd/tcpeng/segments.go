package main

import (
	"strconv"
	"strings"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
	"github.com/tcpeng/tcpeng/host/pipe"
)

// segment is one TCP segment seen on the wire, decoded for the trace.
type segment struct {
	Time     engine.Time
	From     pipe.Side
	Flags    wire.Flags
	Seq, Ack uint32 // absolute
	RelSeq   uint32 // relative to the sender's ISN (absolute while it is unknown)
	RelAck   uint32 // relative to the receiver's ISN
	HasAck   bool   // the ACK flag is set
	Window   uint32 // bytes: the field scaled once both SYNs offered window scaling
	Len      int    // payload bytes
	Opts     string // "MSS=1460 WS=128", as Wireshark writes them
	Payload  []byte // valid only while the frame is (the OnFrame call)

	Retransmit int             // 0, or which retransmission of its first byte this is
	SinceFirst engine.Duration // for a retransmission: time since the original send
	SinceLast  engine.Duration // for a retransmission: time since the previous send

	Fate pipe.Fate
	Bad  string // not a TCP/IPv4 frame: why
}

// seqLen returns the sequence space the segment takes (payload, SYN, FIN).
func (s *segment) seqLen() uint32 {
	n := uint32(s.Len)
	if s.Flags.Has(wire.FlagSYN) {
		n++
	}
	if s.Flags.Has(wire.FlagFIN) {
		n++
	}
	return n
}

// sent is one range of sequence space as first sent, for finding retransmissions.
type sent struct {
	start, end wire.Seq
	first      engine.Time
	last       engine.Time
	times      int // retransmissions so far
}

// maxRanges bounds the ranges remembered per direction; the oldest go first.
const maxRanges = 1 << 16

// analyzer follows both directions of one connection on the wire: the ISNs (for
// relative numbers), the window scale, and what was sent already (to mark
// retransmissions and say how long after the original they came).
type analyzer struct {
	isn      [2]wire.Seq
	haveISN  [2]bool
	ws       [2]int // window scale shift offered in each side's SYN; -1: none
	sndMax   [2]wire.Seq
	acked    [2]wire.Seq // highest ACK that reached each side (for what it sent)
	ranges   [2][]sent
	sentSome [2]bool
	acks     [2][]ackInFlight // ACKs on their way to each side
}

// ackInFlight is an acknowledgment that reaches a side at a known time: only
// then does the side stop retransmitting what it covers.
type ackInFlight struct {
	at  engine.Time
	ack wire.Seq
}

func newAnalyzer() *analyzer { return &analyzer{ws: [2]int{-1, -1}} }

// decode reads frame f as a TCP segment in IPv4 and updates the analysis.
func (a *analyzer) decode(f *pipe.Frame) segment {
	s := segment{Time: f.Time, From: f.From, Fate: f.Fate}
	ip, err := wire.ParseIPv4(f.Data)
	if err != nil {
		s.Bad = "not IPv4: " + err.Error()
		return s
	}
	if ip.Protocol() != wire.ProtoTCP {
		s.Bad = "IPv4 protocol " + strconv.Itoa(int(ip.Protocol()))
		return s
	}
	t, err := wire.ParseTCP(ip.Payload())
	if err != nil {
		s.Bad = "bad TCP header: " + err.Error()
		return s
	}
	from, to := f.From, f.From.Peer()
	seg := t.Segment()
	s.Flags, s.Seq, s.Ack, s.Len = seg.Flags, uint32(seg.Seq), uint32(seg.Ack), seg.Len
	s.HasAck = seg.Flags.Has(wire.FlagACK)
	s.Payload = t.Payload()
	if seg.Flags.Has(wire.FlagSYN) && !a.haveISN[from] {
		a.isn[from], a.haveISN[from] = seg.Seq, true
		if seg.Opts.Has(wire.HasWindowScale) {
			a.ws[from] = int(seg.Opts.Shift())
		}
	}
	s.RelSeq, s.RelAck = s.Seq, s.Ack
	if a.haveISN[from] {
		s.RelSeq = uint32(seg.Seq - a.isn[from])
	}
	if a.haveISN[to] {
		s.RelAck = uint32(seg.Ack - a.isn[to])
	}
	s.Window = uint32(seg.Window)
	if !seg.Flags.Has(wire.FlagSYN) && a.ws[pipe.A] >= 0 && a.ws[pipe.B] >= 0 {
		s.Window <<= a.ws[from] // RFC 7323 §2.3: SEG.WND << Snd.Wind.Shift of the sender
	}
	s.Opts = a.options(&seg.Opts, to)

	a.arrived(from, f.Time)
	a.track(&s, seg.Seq)
	if s.HasAck && !f.Fate.Dropped() && len(a.acks[to]) < maxRanges {
		at := f.Fate.Arrive[0]
		if f.Fate.Copies == 2 {
			at = min(at, f.Fate.Arrive[1])
		}
		a.acks[to] = append(a.acks[to], ackInFlight{at: at, ack: seg.Ack})
	}
	return s
}

// options formats the options the way Wireshark's summary line does. SACK
// blocks are in the peer's (to's) sequence space.
func (a *analyzer) options(o *wire.Options, to pipe.Side) string {
	var b []string
	if o.Has(wire.HasMSS) {
		b = append(b, "MSS="+strconv.Itoa(int(o.MSS)))
	}
	if o.Has(wire.HasWindowScale) {
		b = append(b, "WS="+strconv.Itoa(1<<o.Shift()))
	}
	if o.Has(wire.HasSACKPermitted) {
		b = append(b, "SACK_PERM")
	}
	if o.Has(wire.HasTimestamps) {
		b = append(b, "TSval="+strconv.FormatUint(uint64(o.TSVal), 10), "TSecr="+strconv.FormatUint(uint64(o.TSEcr), 10))
	}
	if o.Has(wire.HasSACK) {
		for _, blk := range o.SACK[:o.NumSACK] {
			l, r := uint32(blk.Left), uint32(blk.Right)
			if a.haveISN[to] {
				l, r = uint32(blk.Left-a.isn[to]), uint32(blk.Right-a.isn[to])
			}
			b = append(b, "SLE="+strconv.FormatUint(uint64(l), 10)+" SRE="+strconv.FormatUint(uint64(r), 10))
		}
	}
	return strings.Join(b, " ")
}

// track marks s as a retransmission if it repeats sequence space already sent
// (RFC 9293 §3.8.1 resends from SND.UNA), and remembers new space.
func (a *analyzer) track(s *segment, seq wire.Seq) {
	n := s.seqLen()
	if n == 0 || s.Flags.Has(wire.FlagRST) {
		return
	}
	from := s.From
	end := seq.Add(n)
	if !a.sentSome[from] {
		a.sentSome[from], a.sndMax[from] = true, seq
		a.acked[from] = seq
	}
	if seq.LessThan(a.sndMax[from]) {
		// Find the original range holding seq.
		rs := a.ranges[from]
		for i := range rs {
			r := &rs[i]
			if seq.InRange(r.start, r.end) {
				r.times++
				s.Retransmit = r.times
				s.SinceFirst, s.SinceLast = s.Time.Sub(r.first), s.Time.Sub(r.last)
				r.last = s.Time
				break
			}
		}
		if s.Retransmit == 0 {
			s.Retransmit = -1 // older than what is remembered
		}
	}
	if end.GreaterThan(a.sndMax[from]) {
		start := wire.SeqMax(seq, a.sndMax[from])
		if len(a.ranges[from]) >= maxRanges {
			a.ranges[from] = a.ranges[from][1:]
		}
		a.ranges[from] = append(a.ranges[from], sent{start: start, end: end, first: s.Time, last: s.Time})
		a.sndMax[from] = end
	}
}

// arrived applies the ACKs that reached side s by now: the ranges they cover
// are never sent again, so they are forgotten.
func (a *analyzer) arrived(s pipe.Side, now engine.Time) {
	q := a.acks[s][:0]
	for _, k := range a.acks[s] {
		switch {
		case k.at > now:
			q = append(q, k)
		case a.sentSome[s] && k.ack.GreaterThan(a.acked[s]):
			a.acked[s] = k.ack
		}
	}
	a.acks[s] = q
	rs := a.ranges[s]
	i := 0
	for i < len(rs) && rs[i].end.LessEq(a.acked[s]) {
		i++
	}
	if i > 0 {
		a.ranges[s] = append(rs[:0], rs[i:]...)
	}
}
