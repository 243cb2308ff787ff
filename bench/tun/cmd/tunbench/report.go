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
	if len(b.failures) > 0 {
		fmt.Fprintf(&sb, "\nFailed:\n\n")
		for _, f := range b.failures {
			fmt.Fprintf(&sb, "- %s\n", f)
		}
	}
	return sb.String()
}

// write writes results.jsonl and results.md into opt.out and the table to stdout.
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
	return os.WriteFile(filepath.Join(opt.out, "results.md"), []byte(md), 0o644)
}
