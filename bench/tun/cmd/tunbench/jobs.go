package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tcpeng/tcpeng/host/netns"
)

// serveSetup is a column of the serve job.
type serveSetup struct {
	name    string
	kind    string // tcpeng, gvisor
	mtu     int
	offload bool
	bin     string // tcpeng: the binary (empty: -tcpeng's)
}

var serveSetups = []serveSetup{
	{name: "tcpeng-1500-offload", kind: "tcpeng", mtu: 1500, offload: true},
	{name: "tcpeng-1500", kind: "tcpeng", mtu: 1500, offload: false},
	{name: "gvisor-1500", kind: "gvisor", mtu: 1500, offload: false},
	{name: "tcpeng-65000", kind: "tcpeng", mtu: 65000, offload: false},
	{name: "tcpeng-65000-offload", kind: "tcpeng", mtu: 65000, offload: true},
	{name: "gvisor-65000", kind: "gvisor", mtu: 65000, offload: false},
}

// Serve workloads, in the order of the table.
var serveWorkloads = []string{"kernel-to-stack", "stack-to-kernel", "conn-echo-close", "rtt-64B"}

// forwardSetup is a column of the forward job.
type forwardSetup struct {
	name string
	kind string // tcpeng, pasta, slirp4netns, loopback (no stack: the floor)
	mtu  int    // 0: the tool's default
	bin  string // tcpeng: the binary (empty: -tcpeng's)
}

var forwardSetups = []forwardSetup{
	{name: "tcpeng-65520", kind: "tcpeng", mtu: 65520},
	{name: "tcpeng-1500", kind: "tcpeng", mtu: 1500},
	{name: "pasta", kind: "pasta", mtu: 0},
	{name: "slirp4netns-65520", kind: "slirp4netns", mtu: 65520},
	{name: "slirp4netns-1500", kind: "slirp4netns", mtu: 1500},
	// The same clients in the root namespace, straight to the servers on
	// 127.0.0.1: the kernel alone, one TCP connection where a relay carries
	// two (the namespace's to the stack, the stack's to the server).
	{name: "kernel-loopback", kind: "loopback"},
}

var forwardWorkloads = []string{"upload", "download", "upload-x4", "download-x4", "conn-close", "conn-echo-close", "rtt-64B"}

const stackAddr = "10.7.0.2"

// startServe starts a serve column's stack for ns; profile, if set, is the
// CPU profile file for tcpeng.
func startServe(s serveSetup, ns, profile string) (*proc, error) {
	if s.kind == "gvisor" {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		return start(exe, []string{"gvisor-serve", ns, "tb0", strconv.Itoa(s.mtu)}, func(out string) bool { return strings.Contains(out, "ready") })
	}
	args := []string{"serve", "--netns", ns, "--tun", "tb0", "--mtu", strconv.Itoa(s.mtu)}
	if s.offload {
		args = append(args, "--offload")
	}
	if profile != "" {
		args = append(args, "--cpuprofile", profile)
	}
	return start(tcpengBin(s.bin), args, func(out string) bool { return strings.Contains(out, "stop with SIGINT") })
}

// tcpengBin returns the tcpeng binary of a setup.
func tcpengBin(bin string) string {
	if bin != "" {
		return bin
	}
	return opt.tcpeng
}

// selected reports whether name passes a comma-separated filter (empty: all).
func selected(filter, name string) bool {
	if filter == "" {
		return true
	}
	for _, f := range strings.Split(filter, ",") {
		if strings.TrimSpace(f) == name {
			return true
		}
	}
	return false
}

// chooseColumns keeps the setups that -setups selects, each tcpeng one
// followed by its "base-" twin when -base is given; fields gives a setup's
// name, binary and kind.
func chooseColumns[S any](setups []S, fields func(*S) (name, bin *string, kind string)) []S {
	var out []S
	for _, s := range setups {
		name, _, kind := fields(&s)
		if !selected(opt.setups, *name) {
			continue
		}
		out = append(out, s)
		if kind == "tcpeng" && opt.base != "" {
			b := s
			bname, bbin, _ := fields(&b)
			*bname, *bbin = "base-"+*name, opt.base
			out = append(out, b)
		}
	}
	return out
}

// chooseSetups applies -setups and -workloads, and adds a "base-" column
// after each tcpeng column when -base names a baseline binary.
func chooseSetups() {
	serveSetups = chooseColumns(serveSetups, func(s *serveSetup) (*string, *string, string) { return &s.name, &s.bin, s.kind })
	forwardSetups = chooseColumns(forwardSetups, func(s *forwardSetup) (*string, *string, string) { return &s.name, &s.bin, s.kind })
	var sw, fw []string
	for _, w := range serveWorkloads {
		if selected(opt.workloads, w) {
			sw = append(sw, w)
		}
	}
	for _, w := range forwardWorkloads {
		if selected(opt.workloads, w) {
			fw = append(fw, w)
		}
	}
	serveWorkloads, forwardWorkloads = sw, fw
}

// serveWorkload runs one workload against the stack at 10.7.0.2 from ns.
func serveWorkload(ns, w string) (*clientResult, error) {
	switch w {
	case "kernel-to-stack":
		return runClientIn(ns, modeSend, stackAddr+":9", opt.bytes)
	case "stack-to-kernel":
		return runClientIn(ns, modeRecv, stackAddr+":19", opt.bytes)
	case "conn-echo-close":
		return runClientIn(ns, modeConns, stackAddr+":7", int64(opt.conns))
	case "rtt-64B":
		return runClientIn(ns, modeRTT, stackAddr+":7", int64(opt.rtts))
	}
	return nil, fmt.Errorf("unknown workload %s", w)
}

// value turns a client result into the table's figure.
func value(r *clientResult) (v float64, unit string, p99 float64) {
	switch r.Mode {
	case modeSend, modeRecv:
		return r.Gbps, "Gbit/s", 0
	case modeConns, modeConnClose:
		return r.PerSec, "conn/s", r.P99us
	case modeRTT:
		return r.P50us, "µs", r.P99us
	}
	return 0, "", 0
}

func (b *bench) runServe(s serveSetup, run int) {
	fail := func(w string, err error) {
		b.record(result{Job: "serve", Setup: s.name, Workload: w, Run: run, Error: err.Error()})
	}
	ns, err := b.newNamespace()
	if err != nil {
		fail("setup", err)
		return
	}
	defer netns.Delete(ns)
	p, err := startServe(s, ns, "")
	if err != nil {
		fail("setup", err)
		return
	}
	defer p.stop()
	for _, w := range serveWorkloads {
		c0, m0, t0 := p.cpu(), machineCPU(), time.Now()
		r, err := serveWorkload(ns, w)
		if err != nil {
			fail(w, fmt.Errorf("%v (stack: %s)", err, stderrTail(p)))
			continue
		}
		v, unit, p99 := value(r)
		b.record(result{Job: "serve", Setup: s.name, Workload: w, Run: run, Value: v, Unit: unit, P99: p99,
			StackCPU: p.cpu() - c0, MachineCPU: machineCPU() - m0, Seconds: time.Since(t0).Seconds()})
	}
}

// startForward starts a forward column's stack for ns and returns it with
// the address that reaches the host's loopback from the namespace.
func startForward(s forwardSetup, ns, profile string) (*proc, string, error) {
	routed := func(string) bool {
		out, _ := exec.Command("ip", "-n", ns, "route", "show", "default").Output()
		return strings.HasPrefix(string(out), "default via ")
	}
	var p *proc
	var err error
	switch s.kind {
	case "tcpeng":
		args := []string{"forward", "--netns", ns, "--mtu", strconv.Itoa(s.mtu)}
		if profile != "" {
			args = append(args, "--cpuprofile", profile)
		}
		p, err = start(tcpengBin(s.bin), args, func(out string) bool { return strings.Contains(out, "stop with SIGINT") })
	case "pasta":
		// As root pasta needs --runas 0 (it drops to nobody otherwise) and
		// --config-net to configure the namespace's interface itself.
		args := []string{"--runas", "0", "--config-net", "-f", "-q", "--netns", ns}
		if s.mtu != 0 {
			args = append(args, "--mtu", strconv.Itoa(s.mtu))
		}
		p, err = start("pasta", args, routed)
	case "slirp4netns":
		p, err = start("slirp4netns", []string{"--configure", "--mtu=" + strconv.Itoa(s.mtu), "--netns-type=path", netns.Path(ns), "tap0"}, routed)
	default:
		return nil, "", fmt.Errorf("unknown kind %s", s.kind)
	}
	if err != nil {
		return nil, "", err
	}
	out, _ := exec.Command("ip", "-n", ns, "route", "show", "default").Output()
	f := strings.Fields(string(out))
	if len(f) < 3 {
		p.stop()
		return nil, "", fmt.Errorf("no default route in %s: %q", ns, out)
	}
	// The gateway: slirp4netns's and tcpeng's 10.0.2.2, pasta's copy of the
	// host's gateway; each maps it to the host's loopback.
	return p, f[2], nil
}

func (b *bench) forwardWorkload(ns, gw, w string) (*clientResult, error) {
	echo := net.JoinHostPort(gw, b.echoPort)
	switch w {
	case "upload", "download", "upload-x4", "download-x4":
		var extra []string
		if strings.HasPrefix(w, "download") {
			extra = append(extra, "-R")
		}
		if strings.HasSuffix(w, "-x4") {
			extra = append(extra, "-P", "4")
		}
		t0 := time.Now()
		bps, err := iperf(ns, gw, b.iperfPort, extra...)
		for try := 1; try <= 3 && err != nil && iperfBetweenTests(err); try++ {
			time.Sleep(time.Duration(try) * time.Second)
			t0 = time.Now()
			bps, err = iperf(ns, gw, b.iperfPort, extra...)
		}
		if err != nil {
			return nil, err
		}
		return &clientResult{Mode: modeSend, Gbps: bps / 1e9, Seconds: time.Since(t0).Seconds()}, nil
	case "conn-close":
		return runClientIn(ns, modeConnClose, echo, int64(opt.conns))
	case "conn-echo-close":
		return runClientIn(ns, modeConns, echo, int64(opt.conns))
	case "rtt-64B":
		return runClientIn(ns, modeRTT, echo, int64(opt.rtts))
	}
	return nil, fmt.Errorf("unknown workload %s", w)
}

// iperfBetweenTests reports whether iperf3's client failed because the
// server was between two tests: iperf3 -s closes its listening socket after
// each test and opens it again, so a client that comes in between is refused
// (a stack that completes the namespace's handshake before it connects to
// the host shows it as a reset), and one that comes before the server has
// seen the last test's end is told the server is busy (after a stack that
// was slow to pass that end on). A moment later it is ready.
func iperfBetweenTests(err error) bool {
	return strings.Contains(err.Error(), "unable to connect to server") ||
		strings.Contains(err.Error(), "the server is busy")
}

func (b *bench) runForward(s forwardSetup, run int) {
	fail := func(w string, err error) {
		b.record(result{Job: "forward", Setup: s.name, Workload: w, Run: run, Error: err.Error()})
	}
	ns, gw := "", "127.0.0.1" // loopback: the root namespace, no stack
	var p *proc
	if s.kind != "loopback" {
		var err error
		if ns, err = b.newNamespace(); err != nil {
			fail("setup", err)
			return
		}
		defer netns.Delete(ns)
		if p, gw, err = startForward(s, ns, ""); err != nil {
			fail("setup", err)
			return
		}
		defer p.stop()
	}
	for _, w := range forwardWorkloads {
		c0, m0, t0 := p.cpu(), machineCPU(), time.Now()
		r, err := b.forwardWorkload(ns, gw, w)
		if err != nil {
			fail(w, fmt.Errorf("%v (stack: %s)", err, stderrTail(p)))
			continue
		}
		v, unit, p99 := value(r)
		b.record(result{Job: "forward", Setup: s.name, Workload: w, Run: run, Value: v, Unit: unit, P99: p99,
			StackCPU: p.cpu() - c0, MachineCPU: machineCPU() - m0, Seconds: time.Since(t0).Seconds()})
	}
}

// hostServers starts the host side of the forward job once.
func (b *bench) hostServers() error {
	if b.echoPort != "" {
		return nil
	}
	addr, err := b.echoServer("127.0.0.1:0")
	if err != nil {
		return err
	}
	_, b.echoPort, _ = net.SplitHostPort(addr)
	b.iperfPort, err = b.iperfServer()
	return err
}

func (b *bench) runAll() error {
	if opt.only != "serve" {
		if err := b.hostServers(); err != nil {
			return err
		}
	}
	for run := 1; run <= opt.runs; run++ {
		fmt.Fprintf(os.Stderr, "run %d of %d (load %s)\n", run, opt.runs, loadavg())
		if opt.only != "forward" {
			for _, s := range serveSetups {
				b.runServe(s, run)
			}
		}
		if opt.only != "serve" {
			for _, s := range forwardSetups {
				b.runForward(s, run)
			}
		}
	}
	b.env["loadavg after"] = loadavg()
	if len(b.failures) > 0 {
		return fmt.Errorf("%d measurements failed", len(b.failures))
	}
	return nil
}

// profileAll runs each tcpeng column's workloads once, each in its own
// tcpeng process with --cpuprofile, and writes `go tool pprof -top` of each.
func (b *bench) profileAll() error {
	if err := os.MkdirAll(opt.profile, 0o755); err != nil {
		return err
	}
	prof := func(name string) string { return filepath.Join(opt.profile, name+".prof") }
	top := func(name string) {
		out, err := exec.Command("go", "tool", "pprof", "-top", "-nodecount=35", opt.tcpeng, prof(name)).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "pprof %s: %v\n", name, err)
		}
		os.WriteFile(filepath.Join(opt.profile, name+".txt"), out, 0o644)
		fmt.Fprintf(os.Stderr, "  %s\n", filepath.Join(opt.profile, name+".txt"))
	}
	if opt.only != "forward" {
		for _, s := range serveSetups {
			if s.kind != "tcpeng" {
				continue
			}
			for _, w := range serveWorkloads {
				name := "serve-" + s.name + "-" + w
				ns, err := b.newNamespace()
				if err != nil {
					return err
				}
				p, err := startServe(s, ns, prof(name))
				if err != nil {
					netns.Delete(ns)
					return err
				}
				_, werr := serveWorkload(ns, w)
				p.stop()
				netns.Delete(ns)
				if werr != nil {
					return fmt.Errorf("%s: %v", name, werr)
				}
				top(name)
			}
		}
	}
	if opt.only != "serve" {
		if err := b.hostServers(); err != nil {
			return err
		}
		for _, s := range forwardSetups {
			if s.kind != "tcpeng" {
				continue
			}
			for _, w := range forwardWorkloads {
				name := "forward-" + s.name + "-" + w
				ns, err := b.newNamespace()
				if err != nil {
					return err
				}
				p, gw, err := startForward(s, ns, prof(name))
				if err != nil {
					netns.Delete(ns)
					return err
				}
				_, werr := b.forwardWorkload(ns, gw, w)
				p.stop()
				netns.Delete(ns)
				if werr != nil {
					return fmt.Errorf("%s: %v", name, werr)
				}
				top(name)
			}
		}
	}
	return nil
}
