package linuxconf

import (
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/tcpeng/tcpeng/internal/pktscript"
)

// Verdict is how a script's runs on Linux and tcpeng compare.
type Verdict string

// Verdicts.
const (
	// Agree: tcpeng passes and Linux matches every line in content and time.
	Agree Verdict = "agree"
	// Deliberate: the script says tcpeng differs on purpose ("# linux:
	// deliberate: ..."), and Linux indeed differs: it fails the script, or,
	// where "@linux" lines spell out what Linux does, it passes them.
	Deliberate Verdict = "deliberate"
	// Differ: an unexplained difference in content (a segment, a call's
	// result or an event).
	Differ Verdict = "differ"
	// Timing: Linux matches every line in content but some at other times
	// than the tolerance allows.
	Timing Verdict = "timing"
	// Skipped: the script needs more real time than the budget.
	Skipped Verdict = "skipped"
	// RunnerError: the runner could not run the script on Linux.
	RunnerError Verdict = "error"
	// TcpengFails: the script fails on tcpeng itself.
	TcpengFails Verdict = "tcpeng-fails"
)

// Outcome is one script's row of the table.
type Outcome struct {
	Script  *pktscript.Script
	Linux   Result
	Tcpeng  pktscript.Report
	Known   string // tcpeng's failure is listed in known_failures.txt, with this reason
	Verdict Verdict
	Why     string // the first difference, or why the verdict
	// Proposal is a suggested change of the script's "# linux:" line, when
	// the run contradicts it.
	Proposal string
}

// hasLinuxLines reports whether the script spells out Linux's behaviour in
// "@linux" lines.
func hasLinuxLines(s *pktscript.Script) bool {
	for _, l := range s.Lines {
		if l.Only == pktscript.LinuxOnly {
			return true
		}
	}
	return false
}

// Decide sets the verdict of an outcome.
func Decide(o *Outcome) {
	s, lin := o.Script, &o.Linux
	_, deliberate := s.Deliberate()
	o.Proposal = ""
	switch {
	case lin.Err != nil:
		o.Verdict, o.Why = RunnerError, firstLine(lin.Err.Error())
		return
	case !o.Tcpeng.Passed:
		o.Verdict, o.Why = TcpengFails, failureLine(o.Tcpeng.Failure)
		if o.Known != "" {
			o.Why += " (known: " + o.Known + ")"
		}
		return
	case lin.Skipped != "":
		o.Verdict, o.Why = Skipped, lin.Skipped
		return
	}
	contentWhy := failureLine(lin.Report.Failure)
	timingWhy := timingLine(lin.Timing)
	switch {
	case !deliberate && lin.Passed():
		o.Verdict, o.Why = Agree, ""
	case !deliberate && lin.Content():
		o.Verdict, o.Why = Timing, timingWhy
	case !deliberate:
		o.Verdict, o.Why = Differ, contentWhy
	case hasLinuxLines(s) && lin.Passed():
		o.Verdict, o.Why = Deliberate, "Linux does what the @linux lines say"
	case hasLinuxLines(s) && lin.Content():
		o.Verdict, o.Why = Timing, timingWhy
	case hasLinuxLines(s):
		o.Verdict, o.Why = Differ, "Linux does not do what the @linux lines say: "+contentWhy
	case lin.Passed():
		o.Verdict, o.Why = Agree, "Linux passes a script labelled deliberate"
		o.Proposal = "# linux: agree (Linux passes every line)"
	case lin.Content():
		o.Verdict, o.Why = Deliberate, "timing: "+timingWhy
	default:
		o.Verdict, o.Why = Deliberate, contentWhy
	}
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

func failureLine(f *pktscript.Failure) string {
	if f == nil {
		return ""
	}
	s := fmt.Sprintf("line %d: %s", f.Pos.Line, f.Msg)
	if f.Pos.Line == 0 {
		s = "end: " + f.Msg
	}
	if len(f.Diffs) > 0 {
		s += ": " + strings.Join(f.Diffs, "; ")
	} else if f.Actual != "" && !strings.Contains(f.Msg, f.Actual) {
		s += " (got " + f.Actual + ")"
	}
	return s
}

func timingLine(ts []TimingDiff) string {
	if len(ts) == 0 {
		return ""
	}
	parts := make([]string, 0, len(ts))
	for i, d := range ts {
		if i == 3 {
			parts = append(parts, fmt.Sprintf("and %d more", len(ts)-3))
			break
		}
		if d.QuickAck {
			if d.Pos.Line == 0 {
				parts = append(parts, "quick ACK at the end")
			} else {
				parts = append(parts, fmt.Sprintf("quick ACK before line %d", d.Pos.Line))
			}
			continue
		}
		parts = append(parts, fmt.Sprintf("line %d %+.0f ms", d.Pos.Line, float64(d.Got-d.Want)/float64(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// linuxCell is the Linux column: pass or fail and the first difference.
func linuxCell(o *Outcome) string {
	lin := &o.Linux
	switch {
	case lin.Err != nil:
		return "error"
	case lin.Skipped != "":
		return "skipped"
	case lin.Passed():
		return "pass"
	case lin.Content():
		return "pass, timing off"
	}
	return fmt.Sprintf("FAIL line %d", lin.Report.Failure.Pos.Line)
}

func tcpengCell(o *Outcome) string {
	if o.Tcpeng.Passed {
		return "pass"
	}
	if o.Known != "" {
		return "FAIL (known)"
	}
	return "FAIL"
}

// Totals counts the verdicts.
type Totals map[Verdict]int

// Count returns the totals of outcomes.
func Count(out []*Outcome) Totals {
	t := Totals{}
	for _, o := range out {
		t[o.Verdict]++
	}
	return t
}

func (t Totals) String() string {
	return fmt.Sprintf("agree %d, deliberate %d, differ %d, timing %d, skipped %d, error %d, tcpeng-fails %d",
		t[Agree], t[Deliberate], t[Differ], t[Timing], t[Skipped], t[RunnerError], t[TcpengFails])
}

func clipText(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "…"
}

// Table renders the outcomes as a plain-text table: script, rule, Linux,
// tcpeng, verdict and why, then the totals. Differences are marked "!!".
func Table(out []*Outcome) string {
	var b strings.Builder
	wName := len("script")
	for _, o := range out {
		wName = max(wName, len(o.Script.Name))
	}
	fmt.Fprintf(&b, "   %-*s  %-40s  %-16s  %-12s  %-12s  %s\n", wName, "script", "rule", "Linux", "tcpeng", "verdict", "first difference / reason")
	for _, o := range out {
		mark := "  "
		if o.Verdict == Differ || o.Verdict == RunnerError || o.Verdict == TcpengFails && o.Known == "" {
			mark = "!!"
		}
		fmt.Fprintf(&b, "%s %-*s  %-40s  %-16s  %-12s  %-12s  %s\n", mark, wName, o.Script.Name, clipText(o.Script.Rule, 40),
			linuxCell(o), tcpengCell(o), o.Verdict, clipText(o.Why, 160))
	}
	fmt.Fprintf(&b, "totals (%d scripts): %s\n", len(out), Count(out))
	return b.String()
}

func mdEscape(s string) string {
	return strings.NewReplacer("|", "\\|", "\n", " ", "<", "&lt;", ">", "&gt;").Replace(s)
}

// Markdown renders the outcomes as a markdown document: the totals, the
// table, the proposals, and the side-by-side report of every script that did
// not agree.
func Markdown(out []*Outcome, header string) string {
	var b strings.Builder
	b.WriteString("# tcpeng and Linux: differential conformance\n\n")
	b.WriteString(header)
	fmt.Fprintf(&b, "\n**Totals (%d scripts):** %s.\n\n", len(out), Count(out))
	b.WriteString("| script | rule | Linux | tcpeng | verdict | first difference / reason |\n|---|---|---|---|---|---|\n")
	for _, o := range out {
		v := string(o.Verdict)
		if o.Verdict == Differ || o.Verdict == RunnerError || o.Verdict == TcpengFails {
			v = "**" + v + "**"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", o.Script.Name, mdEscape(clipText(o.Script.Rule, 100)),
			linuxCell(o), tcpengCell(o), v, mdEscape(o.Why))
	}
	var props []string
	for _, o := range out {
		if o.Proposal != "" {
			props = append(props, fmt.Sprintf("- %s: %s", o.Script.Name, o.Proposal))
		}
	}
	if len(props) > 0 {
		b.WriteString("\n## Proposed `# linux:` changes\n\n" + strings.Join(props, "\n") + "\n")
	}
	b.WriteString("\n## Details\n\nThe side-by-side report of every script that differs; for the others, their timing differences and notes.\n")
	for _, o := range out {
		full := o.Verdict == Differ || o.Verdict == RunnerError || o.Verdict == TcpengFails
		if !full && len(o.Linux.Timing) == 0 && len(o.Linux.Notes) == 0 && len(o.Linux.Unobservable) == 0 || o.Verdict == Skipped {
			continue
		}
		fmt.Fprintf(&b, "\n### %s (%s)\n\n", o.Script.Name, o.Verdict)
		if o.Script.Linux != "" {
			fmt.Fprintf(&b, "`# linux: %s`\n\n", o.Script.Linux)
		}
		if !full && o.Why != "" {
			b.WriteString(mdEscape(o.Why) + "\n\n")
		}
		b.WriteString("```\n" + detail(o, full) + "```\n")
	}
	return b.String()
}

// Detail is the full account of one script's Linux run: timing differences,
// skipped events, notes, then the side-by-side report.
func Detail(o *Outcome) string { return detail(o, true) }

func detail(o *Outcome, full bool) string {
	var b strings.Builder
	lin := &o.Linux
	if lin.Err != nil {
		b.WriteString("runner error: " + lin.Err.Error() + "\n")
	}
	for _, d := range lin.Timing {
		b.WriteString("timing: " + d.String() + "\n")
	}
	for _, u := range lin.Unobservable {
		b.WriteString("not observable: " + u + "\n")
	}
	for _, n := range lin.Notes {
		b.WriteString("note: " + n + "\n")
	}
	if full && lin.Err == nil && lin.Skipped == "" {
		b.WriteString(lin.Report.String())
	}
	if full && !o.Tcpeng.Passed {
		b.WriteString("tcpeng:\n" + o.Tcpeng.String())
	}
	return b.String()
}

// RunAll runs the scripts on Linux, parallel at a time (each in its own
// namespace), the longest first, and returns the results in the order of
// scripts. A script that does not pass and needs at most o.RetryNeed of real
// time runs a second time, and the better run counts: real time is at the
// mercy of the host's scheduler (a virtual machine here stalls for tens of
// milliseconds now and then), and a second run tells a stall from a
// difference. The result notes when the two runs disagreed.
func RunAll(scripts []*pktscript.Script, o Options, parallel int) []Result {
	res := make([]Result, len(scripts))
	parent, err := NewParent()
	if err != nil {
		for i := range res {
			res[i].Err = fmt.Errorf("making the parent namespace: %w", err)
		}
		return res
	}
	defer parent.Close()
	all := make([]int, len(scripts))
	for i := range all {
		all[i] = i
	}
	runPool(parent, scripts, all, o, parallel, res)
	var again []int
	for i, r := range res {
		if r.Err == nil && r.Skipped == "" && !r.Passed() && Need(scripts[i], o) <= o.RetryNeed {
			again = append(again, i)
		}
	}
	second := make([]Result, len(scripts))
	runPool(parent, scripts, again, o, parallel, second)
	for _, i := range again {
		first, other := res[i], second[i]
		if other.Err != nil {
			continue
		}
		if score(&other) > score(&first) {
			other.Notes = append(other.Notes, "second run; the first differed: "+summary(&first))
			res[i] = other
		} else if score(&other) < score(&first) || outcomeKey(&other) != outcomeKey(&first) {
			res[i].Notes = append(res[i].Notes, "first of two runs; the second differed: "+summary(&other))
		} else {
			res[i].Notes = append(res[i].Notes, "a second run gave the same result")
		}
	}
	return res
}

// score ranks runs: passed, content only, failed.
func score(r *Result) int {
	switch {
	case r.Passed():
		return 2
	case r.Content():
		return 1
	}
	return 0
}

// outcomeKey says where a run failed, without the times: two runs with the
// same key tell the same story.
func outcomeKey(r *Result) string {
	switch {
	case r.Passed():
		return "pass"
	case r.Content():
		var lines []string
		for _, d := range r.Timing {
			lines = append(lines, fmt.Sprint(d.Pos.Line, d.QuickAck))
		}
		return "timing " + strings.Join(lines, ",")
	}
	return fmt.Sprint("content ", r.Report.Failure.Pos.Line)
}

func summary(r *Result) string {
	switch {
	case r.Passed():
		return "pass"
	case r.Content():
		return "timing: " + timingLine(r.Timing)
	}
	return failureLine(r.Report.Failure)
}

// safeRun is Run that turns a panic into a runner error (Run's own teardown
// has run by then: its defers close the namespace).
func safeRun(parent *Parent, s *pktscript.Script, o Options) (res Result) {
	defer func() {
		if v := recover(); v != nil {
			res = Result{Err: fmt.Errorf("the runner panicked: %v", v)}
		}
	}()
	return Run(parent, s, o)
}

// runPool runs the scripts of idx, the longest first, parallel at a time.
func runPool(parent *Parent, scripts []*pktscript.Script, idx []int, o Options, parallel int, res []Result) {
	order := append([]int(nil), idx...)
	sort.SliceStable(order, func(a, b int) bool { return Need(scripts[order[a]], o) > Need(scripts[order[b]], o) })
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < max(parallel, 1); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				res[i] = safeRun(parent, scripts[i], o)
			}
		}()
	}
	for _, i := range order {
		work <- i
	}
	close(work)
	wg.Wait()
}
