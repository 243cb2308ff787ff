package linuxconf

import (
	"fmt"
	"strings"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/internal/pktscript"
)

// Event policy: which events the kernel can show, and how the runner sees
// them (see the package documentation).
func needsDescriptor(k engine.EventKind) bool {
	switch k {
	case engine.EventConnected, engine.EventReadable, engine.EventWritable, engine.EventPeerClosed,
		engine.EventReset, engine.EventError:
		return true
	}
	return false
}

func (r *lrun) event(l *pktscript.Line) *pktscript.Failure {
	w := l.Event
	row := pktscript.Row{Pos: l.Pos, At: l.Time.At, Script: l.Body()}
	switch {
	case w.Kind == engine.EventAcceptable && r.listener == nil,
		needsDescriptor(w.Kind) && r.socks[l.Port] == nil && !r.hadEvent(l):
		why := "no socket to ask"
		if w.Kind != engine.EventAcceptable {
			why = fmt.Sprintf("the application holds no socket for port %d (not accepted, or closed)", l.Port)
		}
		r.res.Unobservable = append(r.res.Unobservable, fmt.Sprintf("line %d %s: %s", l.Pos.Line, l.Body(), why))
		row.Actual = "(not observable on Linux: " + why + ")"
		r.rep.Rows = append(r.rep.Rows, row)
		return nil
	case w.Kind == engine.EventFault:
		r.res.Unobservable = append(r.res.Unobservable, fmt.Sprintf("line %d %s: the kernel has no such event", l.Pos.Line, l.Body()))
		row.Actual = "(not observable on Linux)"
		r.rep.Rows = append(r.rep.Rows, row)
		return nil
	}
	_, lo, hi, tol := r.window(l)
	if l.Time.Any {
		lo, hi = time.Time{}, r.wall()
	}
	limit := r.lateLimit(l, hi)
	r.pump(limit, func() bool {
		if r.findEvent(l, lo, hi) != nil {
			return true
		}
		return time.Now().After(hi) && r.findEvent(l, time.Time{}, limit) != nil
	})
	ev := r.findEvent(l, lo, hi)
	if ev == nil {
		ev = r.findEvent(l, time.Time{}, limit)
	}
	if ev == nil {
		row.Actual, row.Failed = "(no such event)", true
		r.rep.Rows = append(r.rep.Rows, row)
		return &pktscript.Failure{Msg: "the kernel showed no such event by " + fmtTime(r.scriptTime(limit)),
			Expected: l.Time.String() + " " + l.Body(), Actual: "events not matched yet: " + r.unusedEvents()}
	}
	if ev.ev.Kind != engine.EventState {
		ev.used = true
	}
	row.At, row.Actual = ev.st.Round(100*time.Microsecond), fmtTime(ev.st)+" "+eventString(ev)
	r.rep.Rows = append(r.rep.Rows, row)
	r.matched(l, ev.at, ev.st, lo, hi, tol, "")
	return nil
}

// hadEvent reports whether an event of l's kind was already seen on l's flow
// (while the application still held the socket).
func (r *lrun) hadEvent(l *pktscript.Line) bool {
	for i := range r.events {
		e := &r.events[i]
		if !e.used && e.ev.Kind == l.Event.Kind && e.port == l.Port && !e.listener {
			return true
		}
	}
	return false
}

// findEvent returns the earliest unused event matching line l seen between
// lo and hi, or nil.
func (r *lrun) findEvent(l *pktscript.Line, lo, hi time.Time) *obsEvent {
	w := l.Event
	for i := range r.events {
		e := &r.events[i]
		if e.used || e.at.Before(lo) || e.at.After(hi) || !r.eventMatch(l, w, e) {
			continue
		}
		return e
	}
	return nil
}

func (r *lrun) eventMatch(l *pktscript.Line, w *pktscript.EventSpec, e *obsEvent) bool {
	if w.Kind == engine.EventAcceptable {
		return e.listener && e.ev.Kind == engine.EventAcceptable
	}
	if e.listener || e.port != l.Port {
		return false
	}
	switch w.Kind {
	case engine.EventState:
		return e.ev.Kind == engine.EventState && explains(e.ev.From, e.ev.To, w)
	case engine.EventReset, engine.EventError:
		return e.ev.Kind == w.Kind && (w.Err == engine.OK || e.ev.Err == w.Err)
	}
	return e.ev.Kind == w.Kind
}

func (r *lrun) unusedEvents() string {
	var b []string
	for i := range r.events {
		e := &r.events[i]
		if !e.used {
			b = append(b, fmtTime(e.st)+" "+eventString(e))
		}
	}
	if len(b) == 0 {
		return "none"
	}
	return strings.Join(b, ", ")
}

func eventString(e *obsEvent) string {
	s := e.ev.Kind.String()
	switch e.ev.Kind {
	case engine.EventReset, engine.EventError:
		s += " " + pktscript.ErrorName(e.ev.Err)
	case engine.EventState:
		s += " " + e.ev.From.String() + "->" + e.ev.To.String()
	}
	if e.listener {
		return s + " (listener)"
	}
	return s + fmt.Sprintf(" (:%d)", e.port)
}

// stateEdges are the transitions a TCP connection can make (RFC 9293 §3.3.2
// Figure 5, with resets and aborts to CLOSED, a passive connection's return
// to LISTEN, and TIME_WAIT's reopening by a new SYN).
var stateEdges = map[engine.State][]engine.State{
	engine.StateClosed:      {engine.StateSynSent, engine.StateListen},
	engine.StateListen:      {engine.StateSynReceived, engine.StateSynSent},
	engine.StateSynSent:     {engine.StateSynReceived, engine.StateEstablished, engine.StateClosed},
	engine.StateSynReceived: {engine.StateEstablished, engine.StateFinWait1, engine.StateListen, engine.StateClosed},
	engine.StateEstablished: {engine.StateFinWait1, engine.StateCloseWait, engine.StateClosed},
	engine.StateFinWait1:    {engine.StateFinWait2, engine.StateClosing, engine.StateTimeWait, engine.StateClosed},
	engine.StateFinWait2:    {engine.StateTimeWait, engine.StateClosed},
	engine.StateCloseWait:   {engine.StateLastAck, engine.StateClosed},
	engine.StateClosing:     {engine.StateTimeWait, engine.StateClosed},
	engine.StateLastAck:     {engine.StateClosed},
	engine.StateTimeWait:    {engine.StateClosed, engine.StateSynReceived},
}

// explains reports whether an observed change from x to y (consecutive
// samples) shows the expected transition w: exactly, or through states the
// connection passed faster than the sampling interval (a path of at most
// three legal transitions from x to y that contains w's).
func explains(x, y engine.State, w *pktscript.EventSpec) bool {
	want := func(a, b engine.State) bool {
		return (w.AnyFrom || a == w.From) && (w.AnyTo || b == w.To)
	}
	if want(x, y) {
		return true
	}
	var walk func(at engine.State, depth int, hit bool) bool
	walk = func(at engine.State, depth int, hit bool) bool {
		if depth == 3 {
			return false
		}
		for _, n := range stateEdges[at] {
			h := hit || want(at, n)
			if n == y && h {
				return true
			}
			if walk(n, depth+1, h) {
				return true
			}
		}
		return false
	}
	return walk(x, 0, false)
}
