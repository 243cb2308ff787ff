package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/tcpeng/tcpeng/bench/internal/readme"
)

// stat is the median and range of one setup's workload over the runs.
type stat struct {
	med, lo, hi float64
	cpu         float64 // median stack CPU cores (CPU seconds per wall second)
	machine     float64 // median busy cores of the whole machine
	n           int
	unit        string
}

func (b *bench) stats(job, setup, w string) (stat, bool) {
	var vals, cpus, machine []float64
	var unit string
	for _, r := range b.results {
		if r.Job == job && r.Setup == setup && r.Workload == w && r.Error == "" {
			vals = append(vals, r.Value)
			if r.Seconds > 0 {
				cpus = append(cpus, r.StackCPU/r.Seconds)
				machine = append(machine, r.MachineCPU/r.Seconds)
			}
			unit = r.Unit
		}
	}
	if len(vals) == 0 {
		return stat{}, false
	}
	slices.Sort(vals)
	slices.Sort(cpus)
	slices.Sort(machine)
	s := stat{med: median(vals), lo: vals[0], hi: vals[len(vals)-1], n: len(vals), unit: unit}
	if len(cpus) > 0 {
		s.cpu, s.machine = median(cpus), median(machine)
	}
	return s, true
}

// has reports whether setup has a result in job.
func (b *bench) has(job, setup string) bool {
	for _, r := range b.results {
		if r.Job == job && r.Setup == setup && r.Error == "" {
			return true
		}
	}
	return false
}

func median(v []float64) float64 {
	n := len(v)
	if n%2 == 1 {
		return v[n/2]
	}
	return (v[n/2-1] + v[n/2]) / 2
}

func fmtVal(v float64, unit string) string {
	switch unit {
	case "Gbit/s":
		return fmt.Sprintf("%.2f", v)
	case "µs":
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// table writes one job's medians (min–max) and the stack's CPU use.
func (b *bench) table(sb *strings.Builder, job string, setups []string, works []string) {
	b.grid(sb, job, setups, works, "failed", func(st stat) string {
		cell := fmtVal(st.med, st.unit)
		if st.n > 1 {
			cell += fmt.Sprintf(" (%s–%s)", fmtVal(st.lo, st.unit), fmtVal(st.hi, st.unit))
		}
		return cell
	})
	fmt.Fprintf(sb, "\nStack process CPU during each workload (cores: CPU seconds per wall second, median):\n\n")
	b.grid(sb, job, setups, works, "", func(st stat) string { return fmt.Sprintf("%.2f", st.cpu) })
	fmt.Fprintf(sb, "\nThe whole machine's busy CPU during each workload (cores, median; the machine has %d):\n\n", runtime.NumCPU())
	b.grid(sb, job, setups, works, "", func(st stat) string { return fmt.Sprintf("%.2f", st.machine) })
}

// grid writes a table of setups × works whose cells cell makes from the
// figures, missing where none.
func (b *bench) grid(sb *strings.Builder, job string, setups, works []string, missing string, cell func(stat) string) {
	fmt.Fprintf(sb, "| %s | %s |\n", job, strings.Join(works, " | "))
	fmt.Fprintf(sb, "|---|%s\n", strings.Repeat("---|", len(works)))
	for _, s := range setups {
		row := []string{s}
		for _, w := range works {
			if st, ok := b.stats(job, s, w); ok {
				row = append(row, cell(st))
			} else {
				row = append(row, missing)
			}
		}
		fmt.Fprintf(sb, "| %s |\n", strings.Join(row, " | "))
	}
}

// ratios writes a/b per workload (for round trips lower is better).
func (b *bench) ratios(sb *strings.Builder, job string, pairs [][2]string, works []string) {
	fmt.Fprintf(sb, "| ratio | %s |\n", strings.Join(works, " | "))
	fmt.Fprintf(sb, "|---|%s\n", strings.Repeat("---|", len(works)))
	for _, p := range pairs {
		if !b.has(job, p[0]) || !b.has(job, p[1]) {
			continue
		}
		row := []string{p[0] + " / " + p[1]}
		for _, w := range works {
			x, ok1 := b.stats(job, p[0], w)
			y, ok2 := b.stats(job, p[1], w)
			if !ok1 || !ok2 || y.med == 0 {
				row = append(row, "")
				continue
			}
			row = append(row, fmt.Sprintf("%.2f×", x.med/y.med))
		}
		fmt.Fprintf(sb, "| %s |\n", strings.Join(row, " | "))
	}
}

func (b *bench) markdown() string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "Medians of %d runs (min–max in parentheses); each run a fresh stack process and namespace, rounds interleaved.\n\n", opt.runs)
	keys := make([]string, 0, len(b.env))
	for k := range b.env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&sb, "- %s: %s\n", k, b.env[k])
	}
	names := func(n int, f func(int) string) []string {
		var s []string
		for i := range n {
			s = append(s, f(i))
		}
		return s
	}
	if opt.only != "forward" {
		fmt.Fprintf(&sb, "\n### serve (kernel clients in the namespace → the stack at 10.7.0.2)\n\n")
		b.table(&sb, "serve", names(len(serveSetups), func(i int) string { return serveSetups[i].name }), serveWorkloads)
		fmt.Fprintf(&sb, "\n")
		pairs := [][2]string{
			{"tcpeng-1500-offload", "gvisor-1500"}, {"tcpeng-1500", "gvisor-1500"},
			{"tcpeng-65000", "gvisor-65000"}, {"tcpeng-65000-offload", "gvisor-65000"},
		}
		for _, s := range serveSetups {
			if s.bin != "" {
				pairs = append(pairs, [2]string{strings.TrimPrefix(s.name, "base-"), s.name})
			}
		}
		b.ratios(&sb, "serve", pairs, serveWorkloads)
	}
	if opt.only != "serve" {
		fmt.Fprintf(&sb, "\n### forward (clients in the namespace → servers on the host's 127.0.0.1 through the gateway)\n\n")
		b.table(&sb, "forward", names(len(forwardSetups), func(i int) string { return forwardSetups[i].name }), forwardWorkloads)
		fmt.Fprintf(&sb, "\n")
		pairs := [][2]string{
			{"tcpeng-65520", "pasta"}, {"tcpeng-65520", "slirp4netns-65520"}, {"tcpeng-1500", "slirp4netns-1500"},
			{"tcpeng-65520", "kernel-loopback"}, {"pasta", "kernel-loopback"},
		}
		for _, s := range forwardSetups {
			if s.bin != "" {
				pairs = append(pairs, [2]string{strings.TrimPrefix(s.name, "base-"), s.name})
			}
		}
		b.ratios(&sb, "forward", pairs, forwardWorkloads)
	}
	b.targetTable(&sb)
	if len(b.failures) > 0 {
		fmt.Fprintf(&sb, "\nFailed:\n\n")
		for _, f := range b.failures {
			fmt.Fprintf(&sb, "- %s\n", f)
		}
	}
	return sb.String()
}

// write writes results.jsonl and results.md into opt.out, the tables to stdout
// and, with -readme, into that README between its tun results markers.
func (b *bench) write() error {
	if err := os.MkdirAll(opt.out, 0o755); err != nil {
		return err
	}
	var jl strings.Builder
	enc := json.NewEncoder(&jl)
	for _, r := range b.results {
		enc.Encode(r)
	}
	if err := os.WriteFile(filepath.Join(opt.out, "results.jsonl"), []byte(jl.String()), 0o644); err != nil {
		return err
	}
	md := b.markdown()
	fmt.Print(md)
	if err := os.WriteFile(filepath.Join(opt.out, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if opt.readme != "" {
		return readme.Write(opt.readme, "tun", md)
	}
	return nil
}

// A target is one goal of BENCH.md's TUN jobs, measured as the ratio of two
// columns (or, where against is empty, as the column's own figure).
type target struct {
	goal     string
	job      string
	work     string
	setups   []string // the tcpeng columns the goal applies to
	against  string   // the peer column, "gvisor" for gVisor's at the column's MTU; empty: an absolute goal on the median and the minimum
	min, max float64  // the figure must lie in [min, max] (0: no bound)
}

// targets are BENCH.md's goals for the TUN jobs (its "tcpeng goal" rows).
// Forward is judged on tcpeng's column at pasta's MTU (65520), serve on every
// tcpeng column of the MTU the goal names; a goal is met when every column
// it names meets it.
var targets = []target{
	{goal: "forward upload ≥ 10 Gb/s, stable (every run)", job: "forward", work: "upload", setups: []string{"tcpeng-65520"}, min: 10},
	{goal: "forward download ≥ 1.2× pasta", job: "forward", work: "download", setups: []string{"tcpeng-65520"}, against: "pasta", min: 1.2},
	{goal: "forward upload ×4 ≥ 1.2× pasta", job: "forward", work: "upload-x4", setups: []string{"tcpeng-65520"}, against: "pasta", min: 1.2},
	{goal: "forward download ×4 ≥ 1.2× pasta", job: "forward", work: "download-x4", setups: []string{"tcpeng-65520"}, against: "pasta", min: 1.2},
	{goal: "forward connect+close ≥ 2× pasta", job: "forward", work: "conn-close", setups: []string{"tcpeng-65520"}, against: "pasta", min: 2},
	{goal: "forward 64 B round trip ≤ 0.7× pasta", job: "forward", work: "rtt-64B", setups: []string{"tcpeng-65520"}, against: "pasta", max: 0.7},
	{goal: "serve kernel→stack ≥ 1.2× gVisor at MTU 65000", job: "serve", work: "kernel-to-stack", setups: []string{"tcpeng-65000", "tcpeng-65000-offload"}, against: "gvisor-65000", min: 1.2},
	{goal: "serve stack→kernel ≥ 1.2× gVisor at MTU 65000", job: "serve", work: "stack-to-kernel", setups: []string{"tcpeng-65000", "tcpeng-65000-offload"}, against: "gvisor-65000", min: 1.2},
	{goal: "serve kernel→stack ≥ 5× gVisor at MTU 1500, offloads", job: "serve", work: "kernel-to-stack", setups: []string{"tcpeng-1500-offload"}, against: "gvisor-1500", min: 5},
	{goal: "serve stack→kernel ≥ 5× gVisor at MTU 1500, offloads", job: "serve", work: "stack-to-kernel", setups: []string{"tcpeng-1500-offload"}, against: "gvisor-1500", min: 5},
	{goal: "serve connect+echo+close ≥ 1.5× gVisor", job: "serve", work: "conn-echo-close", setups: []string{"tcpeng-1500-offload", "tcpeng-1500", "tcpeng-65000", "tcpeng-65000-offload"}, against: "gvisor", min: 1.5},
	{goal: "serve 64 B round trip ≤ 0.8× gVisor", job: "serve", work: "rtt-64B", setups: []string{"tcpeng-1500-offload", "tcpeng-1500", "tcpeng-65000", "tcpeng-65000-offload"}, against: "gvisor", max: 0.8},
}

// peerOf is the gVisor column a serve column is compared with where a goal
// names no MTU: the one of its own MTU.
func peerOf(setup string) string {
	if strings.Contains(setup, "65000") {
		return "gvisor-65000"
	}
	return "gvisor-1500"
}

// targetTable writes one row per goal whose columns this run measured: the
// figures and whether the goal is met.
func (b *bench) targetTable(sb *strings.Builder) {
	var rows []string
	for _, t := range targets {
		var cells []string
		met, measured := true, false
		for _, s := range t.setups {
			x, ok := b.stats(t.job, s, t.work)
			if !ok {
				continue
			}
			against := t.against
			if against == "gvisor" {
				against = peerOf(s)
			}
			if against == "" {
				measured = true
				cells = append(cells, fmt.Sprintf("%s: %s %s median, %s–%s", s, fmtVal(x.med, x.unit), x.unit, fmtVal(x.lo, x.unit), fmtVal(x.hi, x.unit)))
				met = met && inBounds(x.med, t) && inBounds(x.lo, t)
				continue
			}
			y, ok := b.stats(t.job, against, t.work)
			if !ok || y.med == 0 {
				continue
			}
			measured = true
			r := x.med / y.med
			cells = append(cells, fmt.Sprintf("%s %.2f× (%s against %s %s)", s, r, fmtVal(x.med, x.unit), fmtVal(y.med, y.unit), x.unit))
			met = met && inBounds(r, t)
		}
		if !measured {
			continue
		}
		verdict := "met"
		if !met {
			verdict = "**not met**"
		}
		rows = append(rows, fmt.Sprintf("| %s | %s | %s |", t.goal, strings.Join(cells, "; "), verdict))
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(sb, "\n### Against the targets of BENCH.md (this run's medians)\n\n| goal | this run | |\n|---|---|---|\n%s\n", strings.Join(rows, "\n"))
}

func inBounds(v float64, t target) bool {
	return (t.min == 0 || v >= t.min) && (t.max == 0 || v <= t.max)
}
