package pktscript

import (
	"fmt"
	"strings"
)

// String renders the report: the verdict, for a failure where and why with
// the expected and actual segments and their differences, then the script and
// what the engine did side by side, and the events the engine raised.
func (r Report) String() string {
	var b strings.Builder
	verdict := "PASS"
	if !r.Passed {
		verdict = "FAIL"
	}
	fmt.Fprintf(&b, "%s %s", verdict, r.Name)
	if r.Rule != "" {
		fmt.Fprintf(&b, " (%s)", r.Rule)
	}
	b.WriteByte('\n')
	if f := r.Failure; f != nil {
		if f.Pos.Line > 0 {
			b.WriteString(f.Pos.String() + ": ")
		}
		b.WriteString(f.Msg + "\n")
		if f.Expected != "" {
			b.WriteString("    expected: " + f.Expected + "\n")
		}
		if f.Actual != "" {
			b.WriteString("    actual:   " + f.Actual + "\n")
		}
		if len(f.Diffs) > 0 {
			b.WriteString("    differs:  " + strings.Join(f.Diffs, "; ") + "\n")
		}
	}
	b.WriteString(r.Table())
	if len(r.Unmatched) > 0 {
		b.WriteString("sent, not matched:\n")
		for _, u := range r.Unmatched {
			b.WriteString("         " + u + "\n")
		}
	}
	if len(r.Events) > 0 {
		b.WriteString("events:\n")
		for _, e := range r.Events {
			mark := " "
			if e.Used {
				mark = "*"
			}
			fmt.Fprintf(&b, "  %s %8s %s\n", mark, FormatSeconds(e.At), eventString(e))
		}
	}
	return b.String()
}

// Table renders the rows: line, time, what the script says, what the engine did.
func (r Report) Table() string {
	if len(r.Rows) == 0 {
		return ""
	}
	w := len("script")
	for _, row := range r.Rows {
		w = max(w, min(len(row.Script), 64))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "   line     time  %-*s | engine\n", w, "script")
	for _, row := range r.Rows {
		line := "     -"
		if row.Pos.Line > 0 {
			line = fmt.Sprintf("%6d", row.Pos.Line)
		}
		mark := " "
		if row.Failed {
			mark = "!"
		}
		fmt.Fprintf(&b, "%s%s %8s  %-*s | %s\n", mark, line, FormatSeconds(row.At), w, row.Script, row.Actual)
	}
	return b.String()
}

func eventString(e SeenEvent) string {
	s := e.Event.Kind.String()
	switch {
	case e.Event.Kind == 0:
		return "?"
	case e.Event.Err != 0:
		s += " " + ErrorName(e.Event.Err)
	}
	if e.Event.From != e.Event.To {
		s += " " + e.Event.From.String() + "->" + e.Event.To.String()
	}
	if e.Port != 0 {
		s += fmt.Sprintf(" (conn %d, :%d)", e.Event.Conn, e.Port)
	} else {
		s += fmt.Sprintf(" (conn %d)", e.Event.Conn)
	}
	return s
}
