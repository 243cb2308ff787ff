package main

import (
	"strings"
	"testing"
)

// TestTargetTable judges a made-up run against BENCH.md's goals: every kind of
// goal (absolute, against pasta, against gVisor of a named MTU and of the
// column's own MTU, at most and at least), met and not met, and a goal whose
// columns did not run left out.
func TestTargetTable(t *testing.T) {
	b := newBench()
	add := func(job, setup, work, unit string, vals ...float64) {
		for i, v := range vals {
			b.results = append(b.results, result{Job: job, Setup: setup, Workload: work, Unit: unit, Run: i + 1, Value: v})
		}
	}
	add("forward", "tcpeng-65520", "upload", "Gbit/s", 11, 9.5, 12)
	add("forward", "tcpeng-65520", "download", "Gbit/s", 15)
	add("forward", "pasta", "download", "Gbit/s", 12)
	add("forward", "tcpeng-65520", "conn-close", "conn/s", 6000)
	add("forward", "pasta", "conn-close", "conn/s", 5000)
	add("forward", "tcpeng-65520", "rtt-64B", "µs", 60)
	add("forward", "pasta", "rtt-64B", "µs", 120)
	add("serve", "tcpeng-65000", "kernel-to-stack", "Gbit/s", 20)
	add("serve", "tcpeng-65000-offload", "kernel-to-stack", "Gbit/s", 26)
	add("serve", "gvisor-65000", "kernel-to-stack", "Gbit/s", 16)
	add("serve", "tcpeng-1500", "rtt-64B", "µs", 30)
	add("serve", "tcpeng-65000", "rtt-64B", "µs", 90)
	add("serve", "gvisor-1500", "rtt-64B", "µs", 100)
	add("serve", "gvisor-65000", "rtt-64B", "µs", 100)
	var sb strings.Builder
	b.targetTable(&sb)
	want := `
### Against the targets of BENCH.md (this run's medians)

| goal | this run | |
|---|---|---|
| forward upload ≥ 10 Gb/s, stable (every run) | tcpeng-65520: 11.00 Gbit/s median, 9.50–12.00 | **not met** |
| forward download ≥ 1.2× pasta | tcpeng-65520 1.25× (15.00 against 12.00 Gbit/s) | met |
| forward connect+close ≥ 2× pasta | tcpeng-65520 1.20× (6000 against 5000 conn/s) | **not met** |
| forward 64 B round trip ≤ 0.7× pasta | tcpeng-65520 0.50× (60.0 against 120.0 µs) | met |
| serve kernel→stack ≥ 1.2× gVisor at MTU 65000 | tcpeng-65000 1.25× (20.00 against 16.00 Gbit/s); tcpeng-65000-offload 1.62× (26.00 against 16.00 Gbit/s) | met |
| serve 64 B round trip ≤ 0.8× gVisor | tcpeng-1500 0.30× (30.0 against 100.0 µs); tcpeng-65000 0.90× (90.0 against 100.0 µs) | **not met** |
`
	if got := sb.String(); got != want {
		t.Errorf("got:\n%s\nwant:\n%s", got, want)
	}
}
