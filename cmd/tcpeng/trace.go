package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
	"github.com/tcpeng/tcpeng/host/pipe"
)

// maxStates bounds the state path kept per side for the summary.
const maxStates = 64

// jumpShown is the smallest clock jump the trace points out.
const jumpShown = engine.Second

// dirStats count what one direction of the wire carried.
type dirStats struct {
	Segments    int   `json:"segments"`
	Data        int   `json:"data_segments"`
	Bytes       int64 `json:"payload_bytes"`
	Retransmits int   `json:"retransmissions"`
	Lost        int   `json:"lost"`
	Duplicated  int   `json:"duplicated"`
	Reordered   int   `json:"reordered"`
	// The time between a retransmission and the previous send of the same
	// bytes: the retransmission timeout in effect, or less for a fast retransmit.
	MinResend engine.Duration `json:"min_resend_ns,omitempty"`
	MaxResend engine.Duration `json:"max_resend_ns,omitempty"`
}

// tracer turns what the pipe reports into the demo's trace: aligned text, or
// one JSON object per line.
type tracer struct {
	w        *bufio.Writer
	json     bool
	absolute bool
	brief    bool // text: only segments with SYN, FIN or RST, and no data notes
	msl      engine.Duration

	an      *analyzer
	pending []segment // segments of the Step in progress, shown after its state changes
	dirs    [2]dirStats
	states  [2][]engine.State // each side's path of states
	state   [2]engine.State
	ports   [2]uint16 // from the SYNs
	enc     *json.Encoder
}

func newTracer(w *bufio.Writer, o *demoOptions) *tracer {
	t := &tracer{w: w, json: o.json, absolute: o.absolute, brief: o.bytes > 0, msl: demoMSL, an: newAnalyzer()}
	t.enc = json.NewEncoder(w)
	t.enc.SetEscapeHTML(false)
	return t
}

// fmtDur formats d in seconds from 1 s up ("59.99s"), else in milliseconds
// ("200ms", "1.5ms").
func fmtDur(d engine.Duration) string {
	if d >= engine.Second || d <= -engine.Second {
		return strconv.FormatFloat(float64(d)/1e9, 'f', -1, 64) + "s"
	}
	return strconv.FormatFloat(float64(d)/1e6, 'f', -1, 64) + "ms"
}

func fmtTime(t engine.Time) string {
	return strconv.FormatInt(int64(t)/1e9, 10) + "." + fmt.Sprintf("%06d", int64(t)%1e9/1e3)
}

// frame is pipe.Config.OnFrame.
func (t *tracer) frame(f *pipe.Frame) {
	s := t.an.decode(f)
	d := &t.dirs[f.From]
	if s.Bad == "" {
		d.Segments++
		if s.Len > 0 {
			d.Data++
			d.Bytes += int64(s.Len)
		}
		if s.Flags.Has(wire.FlagSYN) && t.ports[f.From] == 0 {
			t.ports[f.From] = uint16(wireSrcPort(f.Data))
		}
	}
	if s.Retransmit != 0 {
		d.Retransmits++
		if s.Retransmit > 0 {
			if d.MinResend == 0 || s.SinceLast < d.MinResend {
				d.MinResend = s.SinceLast
			}
			d.MaxResend = max(d.MaxResend, s.SinceLast)
		}
	}
	switch {
	case s.Fate.Dropped():
		d.Lost++
	case s.Fate.Duplicated():
		d.Duplicated++
	}
	if s.Fate.Reordered {
		d.Reordered++
	}
	s.Payload = nil
	t.pending = append(t.pending, s)
}

func wireSrcPort(b []byte) int {
	ip, err := wire.ParseIPv4(b)
	if err != nil {
		return 0
	}
	tcp, err := wire.ParseTCP(ip.Payload())
	if err != nil {
		return 0
	}
	return int(tcp.SrcPort())
}

// output is pipe.Config.OnOutput: the side's state changes and events, then
// the segments its Step sent.
func (t *tracer) output(side pipe.Side, now engine.Time, out *engine.Output) {
	for _, ev := range out.Events {
		if ev.Kind == engine.EventState && len(t.states[side]) < maxStates {
			if len(t.states[side]) == 0 {
				t.states[side] = append(t.states[side], ev.From)
			}
			t.states[side] = append(t.states[side], ev.To)
		}
		if ev.Kind == engine.EventState {
			t.state[side] = ev.To
		}
		t.event(side, now, ev)
	}
	for i := range t.pending {
		t.segment(&t.pending[i])
	}
	t.pending = t.pending[:0]
}

// advance is pipe.Config.OnAdvance.
func (t *tracer) advance(from, to engine.Time) {
	d := to.Sub(from)
	if d < jumpShown {
		return
	}
	if t.json {
		t.emit(struct {
			Type string `json:"type"`
			From int64  `json:"from_ns"`
			To   int64  `json:"to_ns"`
		}{"clock", int64(from), int64(to)})
		return
	}
	why := "the next deadline"
	for s := pipe.A; s <= pipe.B; s++ {
		if t.state[s] == engine.StateTimeWait {
			why = fmt.Sprintf("when %v's TIME_WAIT ends (2×MSL = %s)", s, fmtDur(2*t.msl))
		}
	}
	fmt.Fprintf(t.w, "%10s  ~    nothing to do for %s: the virtual clock jumps to %s, %s\n", "", fmtDur(d), fmtTime(to), why)
}

func (t *tracer) event(side pipe.Side, now engine.Time, ev engine.Event) {
	if t.json {
		if ev.Kind == engine.EventState {
			t.emit(struct {
				Type string `json:"type"`
				Time int64  `json:"time_ns"`
				Side string `json:"side"`
				Conn uint32 `json:"conn"`
				From string `json:"from"`
				To   string `json:"to"`
			}{"state", int64(now), side.String(), uint32(ev.Conn), ev.From.String(), ev.To.String()})
			return
		}
		var e string
		if ev.Err != engine.OK {
			e = ev.Err.Error()
		}
		t.emit(struct {
			Type  string `json:"type"`
			Time  int64  `json:"time_ns"`
			Side  string `json:"side"`
			Conn  uint32 `json:"conn"`
			Event string `json:"event"`
			Error string `json:"error,omitempty"`
		}{"event", int64(now), side.String(), uint32(ev.Conn), ev.Kind.String(), e})
		return
	}
	switch ev.Kind {
	case engine.EventState:
		t.line(now, side.String(), fmt.Sprintf("%-11s %v -> %v", "state", ev.From, ev.To))
	case engine.EventReset, engine.EventError, engine.EventFault:
		t.line(now, side.String(), fmt.Sprintf("%-11s %v: %v", "event", ev.Kind, ev.Err))
	}
}

// note reports what a side's app did. data notes are left out of the brief text.
func (t *tracer) note(side pipe.Side, now engine.Time, data bool, text string) {
	if t.json {
		t.emit(struct {
			Type string `json:"type"`
			Time int64  `json:"time_ns"`
			Side string `json:"side"`
			Text string `json:"text"`
		}{"app", int64(now), side.String(), text})
		return
	}
	if data && t.brief {
		return
	}
	t.line(now, side.String(), fmt.Sprintf("%-11s %s", "app", text))
}

func (t *tracer) line(now engine.Time, who, text string) {
	fmt.Fprintf(t.w, "%10s  %-3s  %s\n", fmtTime(now), who, text)
}

func (t *tracer) segment(s *segment) {
	seq, ack := s.RelSeq, s.RelAck
	if t.absolute {
		seq, ack = s.Seq, s.Ack
	}
	if t.json {
		rec := jsonSegment{
			Type: "segment", Time: int64(s.Time), Dir: s.From.Dir(), Bad: s.Bad,
		}
		if s.Bad == "" {
			rec.Flags, rec.Seq, rec.SeqAbs, rec.Win, rec.Len, rec.Options = s.Flags.String(), s.RelSeq, s.Seq, s.Window, s.Len, s.Opts
			if s.HasAck {
				rec.Ack, rec.AckAbs = &s.RelAck, &s.Ack
			}
		}
		if s.Retransmit != 0 {
			rec.Retransmission, rec.SinceFirst, rec.SinceLast = s.Retransmit, int64(s.SinceFirst), int64(s.SinceLast)
		}
		rec.Drop, rec.Copies, rec.Reordered = s.Fate.Drop.String(), s.Fate.Copies, s.Fate.Reordered
		t.emit(rec)
		return
	}
	control := s.Flags&(wire.FlagSYN|wire.FlagFIN|wire.FlagRST) != 0
	if t.brief && !control && s.Bad == "" {
		return
	}
	if s.Bad != "" {
		t.line(s.Time, s.From.Dir(), "not a TCP segment: "+s.Bad)
		return
	}
	ackText := "-"
	if s.HasAck {
		ackText = strconv.FormatUint(uint64(ack), 10)
	}
	var notes []string
	if s.Opts != "" {
		notes = append(notes, s.Opts)
	}
	switch {
	case s.Retransmit == 1:
		notes = append(notes, fmt.Sprintf("[retransmission, %s after the original]", fmtDur(s.SinceFirst)))
	case s.Retransmit > 1:
		notes = append(notes, fmt.Sprintf("[retransmission #%d, %s after the original, %s after #%d]",
			s.Retransmit, fmtDur(s.SinceFirst), fmtDur(s.SinceLast), s.Retransmit-1))
	case s.Retransmit < 0:
		notes = append(notes, "[retransmission]")
	}
	switch {
	case s.Fate.Drop == pipe.DropLoss:
		notes = append(notes, "[lost]")
	case s.Fate.Dropped():
		notes = append(notes, "[dropped: "+s.Fate.Drop.String()+"]")
	case s.Fate.Duplicated():
		notes = append(notes, "[duplicated]")
	}
	if s.Fate.Reordered && !s.Fate.Dropped() {
		notes = append(notes, "[held back]")
	}
	l := fmt.Sprintf("%10s  %-3s  %-11s %10d %10s %8d %6d  %s", fmtTime(s.Time), s.From.Dir(), s.Flags,
		seq, ackText, s.Window, s.Len, strings.Join(notes, " "))
	fmt.Fprintln(t.w, strings.TrimRight(l, " "))
}

type jsonSegment struct {
	Type           string  `json:"type"`
	Time           int64   `json:"time_ns"`
	Dir            string  `json:"dir"`
	Flags          string  `json:"flags,omitempty"`
	Seq            uint32  `json:"seq"`
	Ack            *uint32 `json:"ack"`
	SeqAbs         uint32  `json:"seq_abs"`
	AckAbs         *uint32 `json:"ack_abs"`
	Win            uint32  `json:"win"`
	Len            int     `json:"len"`
	Options        string  `json:"options,omitempty"`
	Retransmission int     `json:"retransmission,omitempty"`
	SinceFirst     int64   `json:"since_first_ns,omitempty"`
	SinceLast      int64   `json:"since_last_ns,omitempty"`
	Drop           string  `json:"drop,omitempty"`
	Copies         int     `json:"copies"`
	Reordered      bool    `json:"reordered,omitempty"`
	Bad            string  `json:"bad,omitempty"`
}

func (t *tracer) emit(v any) {
	// Encoding these plain structs cannot fail; a write error shows at Flush.
	_ = t.enc.Encode(v)
}

// header explains the columns of the text trace.
func (t *tracer) header() {
	if t.json {
		return
	}
	seqs := "count from each side's\ninitial sequence number, as Wireshark shows them (--absolute shows raw values)"
	if t.absolute {
		seqs = "are the raw 32-bit\nvalues (without --absolute, they count from each side's initial sequence number)"
	}
	fmt.Fprintf(t.w, "TIME is virtual seconds; DIR says who sent the segment; SEQ and ACK %s;\n", seqs)
	fmt.Fprintf(t.w, "WIN is the receive window in bytes and LEN the payload. The other lines show each\n")
	fmt.Fprintf(t.w, "side's state changes and what its application does.\n")
	if t.brief {
		fmt.Fprintf(t.w, "With --bytes only the segments with SYN, FIN or RST are shown; the summary counts all.\n")
	}
	fmt.Fprintf(t.w, "\n%10s  %-3s  %-11s %10s %10s %8s %6s  %s\n", "TIME", "DIR", "FLAGS", "SEQ", "ACK", "WIN", "LEN", "OPTIONS")
}
