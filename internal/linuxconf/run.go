package linuxconf

import (
	"fmt"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/internal/pktscript"
)

// Options shape a Linux run.
type Options struct {
	// Budget is the real time a script may take; a script that needs more
	// is skipped ("needs N s of real time").
	Budget time.Duration
	// Base and Frac make the timing tolerance of an expectation: Base plus
	// Frac of the interval since the previous line (a quiet period does not
	// count as a line), plus the script's own "~TOL". Linux's timers run on
	// jiffies (4 ms at HZ=250) and the runner reads the device from a
	// goroutine: a few milliseconds either way are noise, not a difference.
	Base time.Duration
	Frac float64
	// LateFrac widens the tolerance on the late side only: Linux's timer
	// wheel batches a timer that is due far ahead into coarser buckets and
	// fires it up to an eighth of its length late (kernel/time/timer.c), so
	// a 3.2 s retransmission timer may fire 256 ms late.
	LateFrac float64
	// Late is the least the runner waits past the tolerance for a segment or
	// an event before it calls it missing (it waits half the interval since
	// the previous line if that is longer).
	Late time.Duration
	// QuietCap bounds how long a trailing "> none until T" (the script's last
	// lines) is checked: a long quiet period at the end would only cost real
	// time. The report notes the truncation.
	QuietCap time.Duration
	// Sample is how often the runner samples the sockets (poll) and the
	// connection states (sock_diag) for events.
	Sample time.Duration
	// RetryNeed: RunAll runs a script that does not pass a second time if
	// it needs at most this much real time.
	RetryNeed time.Duration
}

// DefaultOptions are the options of TestLinuxDifferential.
func DefaultOptions() Options {
	return Options{
		Budget:    65 * time.Second,
		Base:      10 * time.Millisecond,
		Frac:      0.02,
		LateFrac:  0.125,
		Late:      300 * time.Millisecond,
		QuietCap:  3 * time.Second,
		Sample:    2 * time.Millisecond,
		RetryNeed: 10 * time.Second,
	}
}

// Result is the outcome of one script on Linux.
type Result struct {
	// Report has the script and the kernel side by side; Report.Failure is
	// the first content difference (a segment, a result or an event that
	// does not match), after which the script stops.
	Report pktscript.Report
	// Timing lists the lines whose content matched but whose time was off by
	// more than the tolerance.
	Timing []TimingDiff
	// Unobservable lists the event lines skipped because Linux cannot show
	// them (see the package documentation).
	Unobservable []string
	// Notes: truncated quiet periods, config Linux cannot mirror, frames that
	// were not the script's.
	Notes []string
	// Skipped says why the script was not run ("" if it was).
	Skipped string
	// Err is a failure of the runner itself (setup, I/O), not of Linux.
	Err error
	// Elapsed is the real time the run took, setup and teardown included.
	Elapsed time.Duration
	// Config is how the kernel was configured.
	Config KernelConfig
}

// Content reports whether the kernel matched every line in content.
func (r *Result) Content() bool { return r.Err == nil && r.Skipped == "" && r.Report.Failure == nil }

// Passed reports whether the kernel matched every line in content and time.
func (r *Result) Passed() bool { return r.Content() && len(r.Timing) == 0 }

// TimingDiff is a line the kernel matched at the wrong time.
type TimingDiff struct {
	Pos  pktscript.Pos
	Line string        // the line's body
	Want time.Duration // the script's time
	Got  time.Duration // when it happened, in script time
	Tol  string        // the tolerance applied ("-0.014/+0.039")
	Note string        // e.g. "during the quiet period of line 12"
	// QuickAck: Linux sent this ACK at once where the script has none (it
	// delays the ACK or lets data carry it); Line is the segment.
	QuickAck bool
}

func (d TimingDiff) String() string {
	if d.QuickAck {
		where := fmt.Sprintf("before line %d", d.Pos.Line)
		if d.Pos.Line == 0 {
			where = "after the last line"
		}
		return fmt.Sprintf("quick ACK %s at %s: %s (Linux acknowledged the peer's data at once; the script has no ACK there)",
			where, fmtTime(d.Got), d.Line)
	}
	s := fmt.Sprintf("line %d %s at %s (want %s %s, %+.0f ms)", d.Pos.Line, d.Line, fmtTime(d.Got),
		pktscript.FormatSeconds(d.Want), d.Tol, float64(d.Got-d.Want)/float64(time.Millisecond))
	if d.Note != "" {
		s += " " + d.Note
	}
	return s
}

// played reports whether the Linux runner plays line l.
func played(l *pktscript.Line) bool { return l.Only != pktscript.TcpengOnly }

// quietEnds returns the end of each "> none" line as the Linux runner plays
// it: a trailing quiet period (only other quiet periods follow it) is capped
// at QuietCap.
func quietEnds(s *pktscript.Script, o Options) map[*pktscript.Line]time.Duration {
	ends := map[*pktscript.Line]time.Duration{}
	trailing := true
	for i := len(s.Lines) - 1; i >= 0; i-- {
		l := s.Lines[i]
		if !played(l) {
			continue
		}
		if l.Kind != pktscript.KindNone {
			trailing = false
			continue
		}
		end := l.Until.At
		if trailing && o.QuietCap > 0 {
			end = min(end, l.Time.At+o.QuietCap)
		}
		ends[l] = end
	}
	return ends
}

// Need returns the real time the Linux runner needs for script s: the time of
// its last played line, trailing quiet periods capped.
func Need(s *pktscript.Script, o Options) time.Duration {
	ends := quietEnds(s, o)
	var need time.Duration
	for _, l := range s.Lines {
		if !played(l) {
			continue
		}
		t := l.Time.At
		if l.Kind == pktscript.KindNone {
			t = ends[l]
		}
		need = max(need, t)
	}
	return need
}

// sock is a socket a script's call made.
type sock struct {
	fd         int
	port       uint16 // the flow (the peer's port); 0 for the listener
	listener   bool
	connecting bool         // a connect in progress
	prev       int16        // poll revents at the last sample
	sampled    bool         // prev is valid
	err        engine.Error // the connection's error, once the kernel reported it
}

// obsEvent is an event the runner saw the kernel raise.
type obsEvent struct {
	at       time.Time
	st       time.Duration // the script time it came at
	ev       engine.Event
	port     uint16
	listener bool
	used     bool
}

// quietBreak is a "> none" line during which the kernel sent a segment: the
// next expectation decides whether it came early (timing) or was unexpected
// (content).
type quietBreak struct {
	line *pktscript.Line
	at   time.Time
}

type lrun struct {
	s    *pktscript.Script
	o    Options
	k    KernelConfig
	e    *env
	peer *pktscript.Peer
	res  *Result
	rep  *pktscript.Report

	t0      time.Time
	shift   time.Duration // how far the kernel's lateness has moved the script
	prevAt  time.Duration // the time of the previous played lines before this line's time (quiet periods do not count)
	groupAt time.Duration // the time of the lines being played
	ends    map[*pktscript.Line]time.Duration
	need    time.Duration

	pending []frame // the kernel's segments not matched yet
	ignored int
	timer   *time.Timer

	listener *sock
	socks    map[uint16]*sock // by flow
	states   map[uint16]engine.State
	events   []obsEvent
	quiet    *quietBreak
	idx      int           // the index of the line being played
	unquick  bool          // the pending quick ACK was taken back: do not skip it again
	stall    time.Duration // the longest the runner woke up late
	stallAt  time.Duration

	lastSample time.Time
	diagBuf    []byte
	diagOut    []diagSock

	flows map[uint16]*flowTrack
}

// flowTrack is what the quick-ACK rule needs to know of a flow: the
// acknowledgment the kernel sent last and the peer's latest data.
type flowTrack struct {
	ack    uint32 // the last acknowledgment number the kernel sent
	ackSet bool
	data   []sentData // the peer's latest data segments (at most maxSentData)
}

// sentData is a data segment the runner wrote for the peer: the sequence
// number after it, and when.
type sentData struct {
	end uint32
	at  time.Time
}

const maxSentData = 16

// stallNote: a run whose runner woke up this late notes it.
const stallNote = 20 * time.Millisecond

// quickAckWindow is how soon after the peer's data a pure ACK counts as
// Linux's quick ACK.
const quickAckWindow = 20 * time.Millisecond

// Run plays script s against the Linux kernel in a fresh namespace made from
// parent (nil: from the current one; see the package documentation). It never panics; a problem of the runner itself is
// in Result.Err.
func Run(parent *Parent, s *pktscript.Script, o Options) (res Result) {
	start := time.Now()
	res.Report = pktscript.Report{Name: s.Name, Rule: s.Rule, Linux: s.Linux, Passed: true}
	defer func() { res.Elapsed = time.Since(start) }()
	if need := Need(s, o); o.Budget > 0 && need > o.Budget {
		res.Skipped = fmt.Sprintf("needs %s s of real time (budget %s s)", trimSec(need), trimSec(o.Budget))
		return res
	}
	k, err := Configure(s)
	res.Config = k
	if err != nil {
		res.Err = err
		return res
	}
	for _, u := range k.Unmapped {
		res.Notes = append(res.Notes, "config "+u)
	}
	e, err := newEnv(parent, s.Local.Addr(), s.Remote.Addr(), k)
	if err != nil {
		res.Err = fmt.Errorf("setting up the namespace: %w", err)
		return res
	}
	defer func() {
		if err := e.close(); err != nil && res.Err == nil {
			res.Err = fmt.Errorf("tearing down namespace %s: %w", e.ns, err)
		}
	}()
	res.Notes = append(res.Notes, e.notes...)
	if testHookSetUp != nil {
		testHookSetUp(s)
	}
	r := &lrun{s: s, o: o, k: k, e: e, peer: pktscript.NewPeer(s), res: &res, rep: &res.Report,
		socks: map[uint16]*sock{}, states: map[uint16]engine.State{}, ends: quietEnds(s, o), need: Need(s, o),
		diagBuf: make([]byte, 1<<16), timer: time.NewTimer(time.Hour), flows: map[uint16]*flowTrack{}}
	defer r.timer.Stop()
	func() {
		defer func() {
			if v := recover(); v != nil {
				res.Err = fmt.Errorf("the runner panicked: %v\n%s", v, debug.Stack())
			}
		}()
		r.play()
	}()
	if r.stall > stallNote {
		res.Notes = append(res.Notes, fmt.Sprintf("the runner was stalled for %.0f ms near %s (the host's scheduling): timing there is not reliable",
			float64(r.stall)/float64(time.Millisecond), fmtTime(r.stallAt)))
	}
	if n := e.dropped.Load(); n > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d frames from the kernel dropped (more than %d)", n, maxFrames))
	}
	if r.ignored > 0 {
		res.Notes = append(res.Notes, fmt.Sprintf("%d frames that are not TCP between the script's addresses ignored", r.ignored))
	}
	return res
}

// testHookSetUp, when set by a test, runs after a run's namespace is set up
// (to check that a panic there still tears everything down).
var testHookSetUp func(*pktscript.Script)

// fmtTime formats a measured time to a tenth of a millisecond.
func fmtTime(d time.Duration) string { return pktscript.FormatSeconds(d.Round(100 * time.Microsecond)) }

func trimSec(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimRight(pktscript.FormatSeconds(d), "0"), ".")
}

// play runs the lines in order.
func (r *lrun) play() {
	r.t0 = time.Now()
	r.lastSample = r.t0.Add(-time.Hour)
	var last time.Duration
	for i, l := range r.s.Lines {
		if !played(l) {
			continue
		}
		r.idx = i
		if l.Kind != pktscript.KindNone && !l.Time.Any && l.Time.At > r.groupAt {
			// Lines at the same time share their tolerance: it grows with
			// the time since the previous, earlier line.
			r.prevAt, r.groupAt = r.groupAt, l.Time.At
		}
		f := r.line(l)
		switch {
		case l.Kind == pktscript.KindNone:
			last = max(last, r.ends[l])
		case !l.Time.Any:
			last = max(last, l.Time.At)
		}
		if f != nil {
			if f.Pos.Line == 0 {
				f.Pos = l.Pos
			}
			r.fail(f)
			return
		}
	}
	// What the last lines caused must have been expected.
	r.idx = len(r.s.Lines)
	end := r.real(last).Add(5 * time.Millisecond)
	r.pump(end, nil)
	if f := r.unexpected(nil, end); f != nil {
		f.Msg += " after the last line"
		r.fail(f)
	}
}

func (r *lrun) fail(f *pktscript.Failure) {
	r.rep.Passed = false
	r.rep.Failure = f
	for _, p := range r.pending {
		r.rep.Unmatched = append(r.rep.Unmatched, r.formatFrame(p))
	}
	for _, ev := range r.events {
		r.rep.Events = append(r.rep.Events, pktscript.SeenEvent{At: ev.st.Round(100 * time.Microsecond), Event: ev.ev, Port: ev.port, Used: ev.used})
	}
}

// real returns the real time of script time d.
func (r *lrun) real(d time.Duration) time.Time { return r.t0.Add(r.shift + d) }

// scriptTime returns the script time of real time t.
func (r *lrun) scriptTime(t time.Time) time.Duration { return t.Sub(r.t0) - r.shift }

// wall is the latest real time the run may reach.
func (r *lrun) wall() time.Time { return r.real(r.need + r.o.Late + 5*time.Second) }

// window returns when line l is due in real time, and the earliest and
// latest times its tolerance accepts.
func (r *lrun) window(l *pktscript.Line) (target, lo, hi time.Time, tol string) {
	gap := float64(max(l.Time.At-r.prevAt, 0))
	early := l.Time.Tol + r.o.Base + time.Duration(r.o.Frac*gap)
	late := early + time.Duration(r.o.LateFrac*gap)
	target = r.real(l.Time.At)
	return target, target.Add(-early), target.Add(late), "-" + fmtTime(early) + "/+" + fmtTime(late)
}

// lateLimit is how long the runner waits for a line's segment or event.
func (r *lrun) lateLimit(l *pktscript.Line, hi time.Time) time.Time {
	if l.Time.Any {
		return r.wall()
	}
	t := hi.Add(max(r.o.Late, (l.Time.At-r.prevAt)/2))
	if w := r.wall(); t.After(w) {
		t = w
	}
	return t
}

// pump waits until deadline or until cond holds, taking the kernel's frames
// and sampling the sockets and states as it goes.
func (r *lrun) pump(deadline time.Time, cond func() bool) {
	for {
		r.drain()
		if time.Since(r.lastSample) >= r.o.Sample {
			r.sample()
		}
		if cond != nil && cond() {
			return
		}
		now := time.Now()
		if !now.Before(deadline) {
			return
		}
		wait := min(deadline.Sub(now), max(r.o.Sample-now.Sub(r.lastSample), 0))
		r.timer.Reset(wait)
		select {
		case f := <-r.e.frames:
			r.addFrame(f)
		case <-r.timer.C:
			if d := time.Since(now) - wait; d > r.stall {
				r.stall, r.stallAt = d, r.scriptTime(now)
			}
		}
	}
}

// drain takes the frames that are waiting.
func (r *lrun) drain() {
	for {
		select {
		case f := <-r.e.frames:
			r.addFrame(f)
		default:
			return
		}
	}
}

// addFrame keeps a frame if it is TCP from the script's local address to its
// remote address; anything else is counted and ignored.
func (r *lrun) addFrame(f frame) {
	pk, err := pktscript.DecodePacket(f.b)
	if err != nil || pk.NotTCP || pk.Src.Addr() != r.s.Local.Addr() || pk.Dst.Addr() != r.s.Remote.Addr() {
		r.ignored++
		return
	}
	f.st = r.scriptTime(f.at)
	r.pending = append(r.pending, f)
}

func (r *lrun) formatFrame(f frame) string {
	pk, err := pktscript.DecodePacket(f.b)
	if err != nil {
		return fmtTime(f.st) + " > (undecodable: " + err.Error() + ")"
	}
	return fmtTime(f.st) + " > " + r.peer.Format(pk, false)
}
