package pktscript

import (
	"bytes"
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tcpeng/tcpeng/engine"
)

// Limits of a run.
const (
	// lookahead is how far past a failed expectation the runner lets the engine
	// run to show what it did send instead.
	lookahead = 10 * time.Minute
	// maxSteps bounds the Step calls of one run: an engine whose deadline never
	// settles fails the script instead of hanging the test.
	maxSteps = 1_000_000
	// maxEvents bounds the events a run records.
	maxEvents = 100_000
)

// Native makes the native engine (engine.New) for Run.
func Native(c engine.Config) (engine.Engine, error) {
	s, err := engine.New(c)
	if err != nil {
		return nil, err // not a typed nil in the interface
	}
	return s, nil
}

// Run plays script s against a fresh engine made by newEngine from the script's
// configuration. The engine is driven only through engine.Engine.Step, on a
// virtual clock that starts at 0 and jumps to the next scripted time or to the
// engine's deadline, whichever comes first. Lines marked @linux are skipped.
//
// Timers due at or before a line's time run before the line. Segments the
// engine sends must be expected in order, by "> ..." lines; a segment nobody
// expected fails the script when the next injection, call or "> none" comes,
// or at the end. Events are matched in any order among those not yet matched.
func Run(s *Script, newEngine func(engine.Config) (engine.Engine, error)) Report {
	r := &runner{s: s, peer: NewPeer(s), conns: map[uint16]engine.ConnID{}, flowOf: map[engine.ConnID]uint16{}}
	r.rep = Report{Name: s.Name, Rule: s.Rule, Linux: s.Linux, Passed: true}
	cfg, err := s.EngineConfig()
	if err == nil {
		r.eng, err = newEngine(cfg)
	}
	if err != nil {
		r.rep.Passed = false
		r.rep.Failure = &Failure{Msg: "cannot make the engine: " + err.Error()}
		return r.rep
	}
	r.deadline = engine.Never
	for _, l := range s.Lines {
		if l.Only == LinuxOnly {
			continue
		}
		if f := r.safeLine(l); f != nil {
			r.rep.Passed = false
			r.rep.Failure = f
			break
		}
	}
	if r.rep.Passed {
		if f := r.unexpected(nil); f != nil {
			f.Msg += " after the last line"
			r.rep.Passed, r.rep.Failure = false, f
		}
	}
	if !r.rep.Passed {
		for _, p := range r.pending {
			r.rep.Unmatched = append(r.rep.Unmatched, r.formatSent(p))
		}
	}
	for i := range r.events {
		if r.events[i].Port == 0 {
			r.events[i].Port = r.flowOf[r.events[i].Event.Conn]
		}
	}
	r.rep.Events = r.events
	r.rep.Steps = r.steps
	return r.rep
}

// Report is the outcome of a run.
type Report struct {
	Name, Rule, Linux string
	Passed            bool
	Failure           *Failure    // why the script failed, or nil
	Rows              []Row       // one per line played, script and engine side by side
	Events            []SeenEvent // every event the engine raised, in order
	Unmatched         []string    // segments the engine sent that no line matched when the script failed
	Steps             int         // Step calls made
}

// Failure says where and why a script failed.
type Failure struct {
	Pos      Pos
	Msg      string
	Expected string   // the script line (or what it expected)
	Actual   string   // what happened instead
	Diffs    []string // field by field, for a segment that did not match
}

// Row is one played line: what the script said and what the engine did.
type Row struct {
	Pos    Pos
	At     time.Duration // when it happened
	Script string        // the line's body
	Actual string        // the frame injected or sent, the call's result, the event
	Failed bool
}

// SeenEvent is an event and when the engine raised it.
type SeenEvent struct {
	At    time.Duration
	Event engine.Event
	Port  uint16 // the flow of its connection, when known
	Used  bool   // an "event" line matched it
}

type pending struct {
	at    engine.Time
	frame []byte
}

type runner struct {
	s    *Script
	eng  engine.Engine
	peer *Peer
	in   engine.Input
	out  engine.Output

	now      engine.Time
	deadline engine.Time
	steps    int
	pending  []pending
	events   []SeenEvent

	listener engine.ConnID
	conns    map[uint16]engine.ConnID // flow (peer port) to connection
	flowOf   map[engine.ConnID]uint16

	rep Report
}

func at(d time.Duration) engine.Time { return engine.Time(d) }

func dur(t engine.Time) time.Duration { return time.Duration(t) }

// step makes one Step call at time t and collects its output.
func (r *runner) step(t engine.Time, frames [][]byte, cmds []engine.Command) *Failure {
	r.steps++
	if r.steps > maxSteps {
		return &Failure{Msg: fmt.Sprintf("more than %d Step calls: the engine's deadline never settles (now %s, deadline %s)",
			maxSteps, FormatSeconds(dur(r.now)), FormatSeconds(dur(r.deadline)))}
	}
	if t > r.now {
		r.now = t
	}
	r.in = engine.Input{Now: r.now, Frames: frames, Commands: cmds}
	r.eng.Step(&r.in, &r.out)
	for _, f := range r.out.Frames {
		r.pending = append(r.pending, pending{at: r.now, frame: bytes.Clone(f)})
	}
	for _, ev := range r.out.Events {
		if len(r.events) >= maxEvents {
			return &Failure{Msg: fmt.Sprintf("more than %d events", maxEvents)}
		}
		r.events = append(r.events, SeenEvent{At: dur(r.now), Event: ev, Port: r.flowOf[ev.Conn]})
	}
	r.deadline = r.out.Deadline
	return nil
}

// advance runs the engine's timers due at or before limit. With stop it returns
// as soon as a frame is pending.
func (r *runner) advance(limit engine.Time, stop bool) *Failure {
	for r.deadline != engine.Never && r.deadline <= limit {
		if stop && len(r.pending) > 0 {
			return nil
		}
		if f := r.step(max(r.deadline, r.now), nil, nil); f != nil {
			return f
		}
	}
	return nil
}

// unexpected fails if a frame is pending that no line expected.
func (r *runner) unexpected(l *Line) *Failure {
	if len(r.pending) == 0 {
		return nil
	}
	p := r.pending[0]
	f := &Failure{Msg: "the engine sent a segment the script does not expect", Actual: r.formatSent(p)}
	if l != nil {
		f.Pos = l.Pos
		f.Expected = "(next line) " + l.Time.String() + " " + l.Body()
	}
	r.rep.Rows = append(r.rep.Rows, Row{At: dur(p.at), Script: "(not in the script)", Actual: f.Actual, Failed: true})
	return f
}

func (r *runner) formatSent(p pending) string {
	pk, err := DecodePacket(p.frame)
	if err != nil {
		return FormatSeconds(dur(p.at)) + " > (undecodable frame: " + err.Error() + ")"
	}
	return FormatSeconds(dur(p.at)) + " > " + r.peer.Format(pk, false)
}

// safeLine plays one line and turns a panic of the engine into a failure, so
// that one script cannot take the test binary down.
func (r *runner) safeLine(l *Line) (f *Failure) {
	defer func() {
		if v := recover(); v != nil {
			f = &Failure{Pos: l.Pos, Msg: fmt.Sprintf("the engine panicked: %v", v), Expected: l.Body(),
				Actual: "panic; stack:\n" + trimStack(debug.Stack())}
		}
	}()
	return r.line(l)
}

// trimStack keeps the engine's frames of a panic's stack.
func trimStack(b []byte) string {
	lines := strings.Split(string(b), "\n")
	var out []string
	for i := 0; i+1 < len(lines) && len(out) < 24; i++ {
		if strings.HasPrefix(lines[i], "github.com/tcpeng/tcpeng/engine") {
			out = append(out, "        "+lines[i], "        "+strings.TrimSpace(lines[i+1]))
		}
	}
	return strings.Join(out, "\n")
}

// line plays one line.
func (r *runner) line(l *Line) *Failure {
	var f *Failure
	switch l.Kind {
	case KindInject:
		f = r.inject(l)
	case KindExpect:
		f = r.expect(l)
	case KindNone:
		f = r.none(l)
	case KindCall:
		f = r.call(l)
	case KindEvent:
		f = r.event(l)
	}
	if f != nil && f.Pos.Line == 0 {
		f.Pos = l.Pos
	}
	return f
}

// before brings the engine to the time of an action line: timers due by then
// run, and any segment they or earlier lines left unexpected fails the script.
func (r *runner) before(l *Line) *Failure {
	if f := r.advance(at(l.Time.At), false); f != nil {
		return f
	}
	return r.unexpected(l)
}

func (r *runner) inject(l *Line) *Failure {
	if f := r.before(l); f != nil {
		return f
	}
	frame, err := r.peer.Build(l)
	if err != nil {
		return &Failure{Msg: err.Error(), Expected: l.Body()}
	}
	row := Row{Pos: l.Pos, At: l.Time.At, Script: l.Body()}
	if pk, err := DecodePacket(frame); err == nil {
		row.Actual = "< " + r.peer.Format(pk, true)
	}
	r.rep.Rows = append(r.rep.Rows, row)
	return r.step(at(l.Time.At), [][]byte{frame}, nil)
}

// window returns the times an expectation accepts.
func window(t Time) (lo, hi engine.Time) {
	if t.Any {
		return 0, engine.Never
	}
	return at(t.At - t.Tol), at(t.At + t.Tol)
}

func (r *runner) expect(l *Line) *Failure {
	lo, hi := window(l.Time)
	limit := hi
	if l.Time.Any {
		limit = r.now + at(lookahead)
	}
	if len(r.pending) == 0 {
		if f := r.advance(limit, true); f != nil {
			return f
		}
	}
	row := Row{Pos: l.Pos, At: l.Time.At, Script: l.Body()}
	if len(r.pending) == 0 {
		// Nothing by the deadline: run on a while to show what came instead.
		if f := r.advance(limit+at(lookahead), true); f != nil {
			return f
		}
		f := &Failure{Msg: "the engine sent nothing by " + FormatSeconds(dur(limit)), Expected: l.Time.String() + " " + l.Body(), Actual: "nothing"}
		if len(r.pending) > 0 {
			f.Actual = r.formatSent(r.pending[0])
			f.Msg += "; its next segment came later"
		}
		row.Actual, row.Failed = f.Actual, true
		r.rep.Rows = append(r.rep.Rows, row)
		return f
	}
	p := r.pending[0]
	pk, err := DecodePacket(p.frame)
	var diffs []string
	if err != nil {
		diffs = []string{"undecodable frame: " + err.Error()}
	} else {
		diffs = r.peer.Match(l, pk)
		r.peer.Observe(pk)
	}
	if p.at < lo || p.at > hi {
		diffs = append(diffs, fmt.Sprintf("sent at %s (want %s)", FormatSeconds(dur(p.at)), l.Time))
	}
	row.At = dur(p.at)
	row.Actual = r.formatSent(p)
	if len(diffs) > 0 {
		row.Failed = true
		r.rep.Rows = append(r.rep.Rows, row)
		return &Failure{Msg: "the segment the engine sent does not match", Expected: l.Time.String() + " " + l.Body(),
			Actual: row.Actual, Diffs: diffs}
	}
	r.pending = r.pending[1:]
	r.rep.Rows = append(r.rep.Rows, row)
	return nil
}

func (r *runner) none(l *Line) *Failure {
	if f := r.before(l); f != nil {
		return f
	}
	if f := r.advance(at(l.Until.At)-1, true); f != nil {
		return f
	}
	row := Row{Pos: l.Pos, At: l.Time.At, Script: l.Body(), Actual: "(nothing)"}
	if len(r.pending) > 0 {
		row.Actual, row.Failed = r.formatSent(r.pending[0]), true
		r.rep.Rows = append(r.rep.Rows, row)
		return &Failure{Msg: "the engine sent a segment before " + FormatSeconds(l.Until.At), Expected: l.Body(), Actual: row.Actual}
	}
	r.rep.Rows = append(r.rep.Rows, row)
	return nil
}

func (r *runner) event(l *Line) *Failure {
	lo, hi := window(l.Time)
	limit := hi
	if l.Time.Any {
		limit = r.now + at(lookahead)
	}
	row := Row{Pos: l.Pos, At: l.Time.At, Script: "event " + l.Event.String()}
	for {
		for i := range r.events {
			e := &r.events[i]
			if e.Used || !r.eventMatch(l, e) || at(e.At) < lo || at(e.At) > hi {
				continue
			}
			e.Used = true
			if e.Event.Conn != 0 && e.Event.Conn != r.listener {
				r.bind(l.Port, e.Event.Conn)
				e.Port = l.Port
			}
			row.At, row.Actual = e.At, FormatSeconds(e.At)+" "+r.formatEvent(*e)
			r.rep.Rows = append(r.rep.Rows, row)
			return nil
		}
		if r.deadline == engine.Never || r.deadline > limit {
			break
		}
		if f := r.step(max(r.deadline, r.now), nil, nil); f != nil {
			return f
		}
	}
	f := &Failure{Msg: "the engine raised no such event at " + l.Time.String(), Expected: "event " + l.Event.String(), Actual: "events not matched yet: " + r.unusedEvents()}
	row.Actual, row.Failed = "(no such event)", true
	r.rep.Rows = append(r.rep.Rows, row)
	return f
}

// eventMatch reports whether e is what line l expects, on l's flow.
func (r *runner) eventMatch(l *Line, e *SeenEvent) bool {
	want, ev := l.Event, e.Event
	if ev.Kind != want.Kind {
		return false
	}
	switch ev.Kind {
	case engine.EventAcceptable:
		return ev.Conn == r.listener
	case engine.EventReset, engine.EventError:
		if want.Err != engine.OK && ev.Err != want.Err {
			return false
		}
	case engine.EventState:
		if !want.AnyFrom && ev.From != want.From || !want.AnyTo && ev.To != want.To {
			return false
		}
	}
	if c, ok := r.conns[l.Port]; ok {
		return ev.Conn == c
	}
	_, bound := r.flowOf[ev.Conn]
	return !bound && ev.Conn != r.listener
}

func (r *runner) bind(port uint16, c engine.ConnID) {
	if old, ok := r.conns[port]; ok && old != c {
		delete(r.flowOf, old)
	}
	r.conns[port] = c
	r.flowOf[c] = port
}

func (r *runner) formatEvent(e SeenEvent) string {
	s := e.Event.Kind.String()
	switch e.Event.Kind {
	case engine.EventReset, engine.EventError:
		s += " " + ErrorName(e.Event.Err)
	case engine.EventState:
		s += " " + e.Event.From.String() + "->" + e.Event.To.String()
	}
	if e.Port == 0 {
		e.Port = r.flowOf[e.Event.Conn]
	}
	switch {
	case e.Event.Conn == r.listener && e.Event.Conn != 0:
		s += " (listener)"
	case e.Port != 0:
		s += fmt.Sprintf(" (conn %d, :%d)", e.Event.Conn, e.Port)
	default:
		s += fmt.Sprintf(" (conn %d)", e.Event.Conn)
	}
	return s
}

func (r *runner) unusedEvents() string {
	var b bytes.Buffer
	for _, e := range r.events {
		if e.Used {
			continue
		}
		if b.Len() > 0 {
			b.WriteString(", ")
		}
		b.WriteString(FormatSeconds(e.At) + " " + r.formatEvent(e))
	}
	if b.Len() == 0 {
		return "none"
	}
	return b.String()
}
