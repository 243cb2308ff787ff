package main

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"

	"github.com/tcpeng/tcpeng/bench/workload"
)

// Machine describes where the benchmark ran.
type Machine struct {
	CPU, CPUs, Kernel, Go, GVisor string
	LoadBefore, LoadAfter         string
	Duration                      string
}

func machine() Machine {
	m := Machine{Go: runtime.Version(), LoadBefore: loadavg(), GVisor: "unknown"}
	if out, err := exec.Command("lscpu").Output(); err == nil {
		for _, l := range strings.Split(string(out), "\n") {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				continue
			}
			v = strings.TrimSpace(v)
			switch strings.TrimSpace(k) {
			case "Model name":
				m.CPU = v
			case "CPU(s)":
				m.CPUs = v
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, d := range bi.Deps {
			if d.Path == "gvisor.dev/gvisor" {
				m.GVisor = d.Version
			}
		}
	}
	return m
}

func (m Machine) summary() string {
	return fmt.Sprintf("%s, %s CPUs, Linux %s, %s, gVisor %s, load average %s", m.CPU, m.CPUs, m.Kernel, m.Go, m.GVisor, m.LoadBefore)
}

// figure is one reported number of a workload.
type figure struct {
	key, name string
	higher    bool // higher is better
	goal      string
	met       func(adv, tcpeng float64) bool // adv: the advantage of tcpeng (>1 better)
}

func atLeast(x float64) func(adv, v float64) bool {
	return func(adv, _ float64) bool { return adv >= x }
}
func zero(_, v float64) bool { return v < 0.01 } // 0 to two decimals

func figuresOf(w string) []figure {
	switch w {
	case wBulk:
		return []figure{
			{workload.MetricGbps, "Gbit/s", true, "", nil},
			{workload.MetricCPUPerGiB, "CPU s per GiB", false, "", nil},
			{workload.MetricMallocsPerMiB, "mallocs per MiB", false, "0 (< 0.01)", zero},
		}
	case wConnSeq, wConnPar:
		return []figure{
			{workload.MetricConnPerSec, "connections/s", true, "", nil},
			{workload.MetricCPUPerConn, "CPU µs per connection", false, "", nil},
			{workload.MetricMallocsPerConn, "mallocs per connection", false, "≤ 20", func(_, v float64) bool { return v <= 20 }},
			{workload.MetricP99Lifecycle, "p99 lifecycle µs", false, "", nil},
			{workload.MetricStalls, "lifecycles over 100 ms", false, "", nil},
		}
	case wIdle:
		return []figure{
			{workload.MetricBytesPerPair, "bytes per idle pair", false, "≤ 1.5 KB", func(_, v float64) bool { return v <= 1500 }},
			{workload.MetricGoroutinesPerConn, "goroutines per connection", false, "", nil},
		}
	case wPing:
		return []figure{
			{workload.MetricMedianRTT, "median round trip µs", false, "≤ ½ gVisor", atLeast(2)},
			{workload.MetricP99RTT, "p99 round trip µs", false, "", nil},
			{workload.MetricMallocsRTT, "mallocs per round trip", false, "0 (< 0.01)", zero},
		}
	}
	return nil
}

// goalOf adds the ratio goals that depend on the configuration.
func goalOf(c spec, f figure) figure {
	switch {
	case c.workload == wBulk && f.key == workload.MetricGbps && c.mtu == 1500:
		f.goal, f.met = "≥ 3× gVisor", atLeast(3)
	case c.workload == wBulk && f.key == workload.MetricGbps:
		f.goal, f.met = "≥ 1× gVisor", atLeast(1)
	case c.workload == wBulk && f.key == workload.MetricCPUPerGiB && c.mtu == 1500:
		f.goal, f.met = "≤ ⅓ gVisor", atLeast(3)
	case c.workload == wConnSeq && f.key == workload.MetricConnPerSec:
		f.goal, f.met = "≥ 4× gVisor", atLeast(4)
	case c.workload == wConnPar && f.key == workload.MetricConnPerSec:
		f.goal, f.met = "≥ 3× gVisor", atLeast(3)
	}
	return f
}

// stat is the summary of one figure over the runs of one configuration.
type stat struct {
	med, lo, hi float64
	n           int
}

func summarize(vals []float64) stat {
	if len(vals) == 0 {
		return stat{}
	}
	v := slices.Clone(vals)
	slices.Sort(v)
	med := v[len(v)/2]
	if len(v)%2 == 0 {
		med = (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	return stat{med, v[0], v[len(v)-1], len(v)}
}

func num(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1000:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case a >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case a >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case a >= 0.01:
		return strconv.FormatFloat(v, 'f', 3, 64)
	}
	return strconv.FormatFloat(v, 'g', 2, 64)
}

func cell(s stat, runs int) string {
	if s.n == 0 {
		return "failed"
	}
	c := num(s.med)
	if s.n > 1 {
		c += " (" + num(s.lo) + "–" + num(s.hi) + ")"
	}
	if s.n < runs {
		c += fmt.Sprintf(" [%d of %d runs]", s.n, runs)
	}
	return c
}

// advantage is tcpeng's advantage over gVisor: tcpeng÷gVisor when higher is
// better, gVisor÷tcpeng when smaller is better; above 1, tcpeng is better.
func advantage(t, g float64, higher bool) float64 {
	if !higher {
		t, g = g, t
	}
	switch {
	case g == 0 && t == 0:
		return 1
	case g == 0:
		return math.Inf(1)
	}
	return t / g
}

func ratioCell(t, g stat, f figure) string {
	if t.n == 0 || g.n == 0 {
		return "—"
	}
	if t.med == 0 && g.med == 0 {
		return "equal (0)"
	}
	a := advantage(t.med, g.med, f.higher)
	if math.IsInf(a, 1) {
		return "∞ (tcpeng 0)"
	}
	return num(a) + "×"
}

// report renders the results as markdown.
func report(recs []Record, m Machine, runs int, quick bool) string {
	vals := map[spec]map[string][]float64{}
	fails := map[spec]int{}
	var order []spec
	seen := map[spec]bool{}
	for _, r := range recs {
		c := spec{r.Workload, r.Stack, r.MTU}
		if !seen[c] {
			seen[c] = true
			order = append(order, c)
		}
		k := spec{r.Workload, r.Stack, r.MTU}
		if r.Error != "" {
			fails[k]++
			continue
		}
		if vals[k] == nil {
			vals[k] = map[string][]float64{}
		}
		for name, v := range r.Metrics {
			vals[k][name] = append(vals[k][name], v)
		}
	}
	st := func(w, s string, mtu int, fig string) stat { return summarize(vals[spec{w, s, mtu}][fig]) }

	var b strings.Builder
	size := "full sizes (BENCH.md)"
	if quick {
		size = "QUICK sizes (smoke run, not comparable with BENCH.md)"
	}
	fmt.Fprintf(&b, "Machine: %s; %s CPUs; Linux %s; %s; gVisor %s. Load average %s before, %s after; %d runs per configuration, %s, took %s.\n\n",
		m.CPU, m.CPUs, m.Kernel, m.Go, m.GVisor, m.LoadBefore, m.LoadAfter, runs, size, m.Duration)
	b.WriteString("Each cell: median (min–max) over the runs. The ratio columns give tcpeng's advantage over gVisor: " +
		"tcpeng ÷ gVisor where higher is better (throughput, connections/s), and the inverse, gVisor ÷ tcpeng, where smaller is better " +
		"(CPU, mallocs, memory, latency: W3 and W4 among them). Above 1 means tcpeng does better. The gVisor column is the better of its two links " +
		"for each workload (by the workload's first figure); both are in the detailed table.\n\n")
	b.WriteString("| workload | figure | tcpeng net.Conn | tcpeng raw (Step, no goroutines) | gVisor (link) | net.Conn advantage | raw advantage | goal | net.Conn meets goal |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
	type group struct {
		w   string
		mtu int
	}
	var groups []group
	gseen := map[group]bool{}
	for _, c := range order {
		g := group{c.workload, c.mtu}
		if !gseen[g] {
			gseen[g] = true
			groups = append(groups, g)
		}
	}
	for _, g := range groups {
		figs := figuresOf(g.w)
		// The better gVisor link by the first figure's median.
		best := ""
		var bestStat stat
		for _, link := range []string{stackGVChannel, stackGVPipe} {
			s := st(g.w, link, g.mtu, figs[0].key)
			if s.n == 0 {
				continue
			}
			if best == "" || advantage(s.med, bestStat.med, figs[0].higher) > 1 {
				best, bestStat = link, s
			}
		}
		for _, f := range figs {
			f = goalOf(spec{g.w, "", g.mtu}, f)
			t := st(g.w, stackTcpeng, g.mtu, f.key)
			r := st(g.w, stackRaw, g.mtu, f.key)
			gv := st(g.w, best, g.mtu, f.key)
			gcell := "—"
			if best != "" {
				gcell = cell(gv, runs) + " (" + strings.TrimPrefix(best, "gvisor-") + ")"
			}
			rcell, radv := "—", "—"
			if seen[spec{g.w, stackRaw, g.mtu}] {
				rcell, radv = cell(r, runs), ratioCell(r, gv, f)
			}
			tcell := "—"
			if seen[spec{g.w, stackTcpeng, g.mtu}] {
				tcell = cell(t, runs)
			}
			met := ""
			if f.met != nil && t.n > 0 && (gv.n > 0 || !strings.Contains(f.goal, "gVisor")) {
				met = map[bool]string{true: "yes", false: "no"}[f.met(advantage(t.med, gv.med, f.higher), t.med)]
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
				label(g.w, g.mtu), f.name, tcell, rcell, gcell, ratioCell(t, gv, f), radv, f.goal, met)
		}
	}

	b.WriteString(w5Table(workloadMTUs(order), st, seen, runs))
	b.WriteString(w5OffloadTable(workloadMTUs(order), st, seen, runs))

	b.WriteString("\n#### Every column\n\n| workload | stack | figure | median | min | max | runs |\n|---|---|---|---|---|---|---|\n")
	for _, c := range order {
		k := c
		if fails[k] > 0 && len(vals[k]) == 0 {
			fmt.Fprintf(&b, "| %s | %s | (all runs failed) | | | | 0 of %d |\n", label(c.workload, c.mtu), c.stack, fails[k])
			continue
		}
		keys := make([]string, 0, len(vals[k]))
		for name := range vals[k] {
			keys = append(keys, name)
		}
		slices.Sort(keys)
		for _, name := range keys {
			s := summarize(vals[k][name])
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %d of %d |\n", label(c.workload, c.mtu), c.stack, name, num(s.med), num(s.lo), num(s.hi), s.n, s.n+fails[k])
		}
	}
	var errs []string
	for _, r := range recs {
		if r.Error != "" {
			errs = append(errs, fmt.Sprintf("- %s/%s/%d run %d: %s", r.Workload, r.Stack, r.MTU, r.Run, r.Error))
		}
	}
	if len(errs) > 0 {
		b.WriteString("\n#### Failed runs\n\n" + strings.Join(errs, "\n") + "\n")
	}
	return b.String()
}

// workloadMTUs lists the workload/MTU pairs of order, first seen first.
func workloadMTUs(order []spec) []spec {
	var out []spec
	for _, c := range order {
		g := spec{c.workload, "", c.mtu}
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// w5Table renders W5 of BENCH.md: the tcpeng-wasm column (the engines in
// wazero) beside the native net.Conn column of the same run, as wasm ÷ native
// speed (above 1 the WebAssembly engine would be faster). Empty when no wasm
// run was made.
func w5Table(groups []spec, st func(w, s string, mtu int, fig string) stat, seen map[spec]bool, runs int) string {
	var b strings.Builder
	for _, g := range groups {
		if !seen[spec{g.workload, stackWasm, g.mtu}] {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\n#### W5: the engine as WebAssembly in wazero\n\n" +
				"Both engines are the WebAssembly module (bindings/wazero) under the same net.Conn driver as the native column, " +
				"in the same run. The ratio is the WebAssembly engine's speed as a fraction of the native one's.\n\n" +
				"| workload | figure | tcpeng native | tcpeng WebAssembly | wasm ÷ native | goal | meets goal |\n|---|---|---|---|---|---|---|\n")
		}
		for _, f := range figuresOf(g.workload) {
			if strings.HasPrefix(f.key, "mallocs") || f.key == workload.MetricStalls {
				continue // the host's figures, the same driver in both columns
			}
			n, w := st(g.workload, stackTcpeng, g.mtu, f.key), st(g.workload, stackWasm, g.mtu, f.key)
			ratio, goal, met := "—", "", ""
			if n.n > 0 && w.n > 0 {
				ratio = num(advantage(w.med, n.med, f.higher)) + "×"
			}
			if g.workload == wBulk && f.key == workload.MetricGbps {
				goal = "≥ 0.4× native"
				if n.n > 0 && w.n > 0 {
					met = map[bool]string{true: "yes", false: "no"}[advantage(w.med, n.med, true) >= 0.4]
				}
			}
			ncell := "—"
			if seen[spec{g.workload, stackTcpeng, g.mtu}] {
				ncell = cell(n, runs)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", label(g.workload, g.mtu), f.name, ncell, cell(w, runs), ratio, goal, met)
		}
	}
	return b.String()
}

// w5OffloadTable renders W1 with host/offload.Engine around every engine:
// each WebAssembly configuration's speed as a fraction of the native engines'
// behind the same offloads, in the same run. Empty when none of them ran.
func w5OffloadTable(groups []spec, st func(w, s string, mtu int, fig string) stat, seen map[spec]bool, runs int) string {
	var b strings.Builder
	for _, g := range groups {
		if g.workload != wBulk || !slices.ContainsFunc(offloadStacks, func(s string) bool { return seen[spec{g.workload, s, g.mtu}] }) {
			continue
		}
		if b.Len() == 0 {
			b.WriteString("\n#### W5 with offloads: the engines behind host/offload.Engine\n\n" +
				"Every engine, native or WebAssembly, behind host/offload.Engine (segmentation, receive offload and checksum verification in native code, the engines made with TrustLink; " +
				"the link still carries frames of the MTU), in the same run. In W1 the server sends and the client receives: " +
				"\"receiver\" has the receiving engine in WebAssembly and the sender native, \"sender\" the other way round, " +
				"\"both\" both in WebAssembly. Each ratio is that configuration's speed as a fraction of the native engines' " +
				"with the same offloads.\n\n" +
				"| workload | figure | native | both WebAssembly | ÷ native | receiver WebAssembly | ÷ native | sender WebAssembly | ÷ native | goal | meets goal (both, receiver, sender) |\n" +
				"|---|---|---|---|---|---|---|---|---|---|---|\n")
		}
		for _, f := range figuresOf(g.workload) {
			if f.key != workload.MetricGbps && f.key != workload.MetricCPUPerGiB {
				continue
			}
			// A column that did not run is "—"; one whose runs failed, "failed".
			col := func(s string) (stat, string) {
				x := st(g.workload, s, g.mtu, f.key)
				if !seen[spec{g.workload, s, g.mtu}] {
					return x, "—"
				}
				return x, cell(x, runs)
			}
			n, ncell := col(stackOffload)
			row := []string{label(g.workload, g.mtu), f.name, ncell}
			var met []string
			for _, s := range offloadStacks[1:] {
				w, wcell := col(s)
				ratio := "—"
				if n.n > 0 && w.n > 0 {
					r := advantage(w.med, n.med, f.higher)
					ratio = num(r) + "×"
					met = append(met, map[bool]string{true: "yes", false: "no"}[r >= 0.4])
				} else {
					met = append(met, "—")
				}
				row = append(row, wcell, ratio)
			}
			if f.key == workload.MetricGbps {
				row = append(row, "≥ 0.4× native", strings.Join(met, ", "))
			} else {
				row = append(row, "", "")
			}
			b.WriteString("| " + strings.Join(row, " | ") + " |\n")
		}
	}
	return b.String()
}

func label(w string, mtu int) string {
	switch w {
	case wBulk:
		return fmt.Sprintf("W1 bulk, MTU %d", mtu)
	case wConnSeq:
		return "W2 connrate, sequential"
	case wConnPar:
		return "W2 connrate, 64 clients"
	case wIdle:
		return "W3 idlemem"
	case wPing:
		return "W4 pingpong"
	}
	return w
}
