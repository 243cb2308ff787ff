// Command tunbench runs the TUN jobs of BENCH.md: `tcpeng serve` against
// gVisor's netstack on the same kind of TUN device, and `tcpeng forward`
// against pasta and slirp4netns, with the Linux kernel's clients in network
// namespaces the benchmark makes. Every configuration runs -runs times, each
// in fresh processes and a fresh namespace, rounds interleaved; it prints
// medians and min–max and writes results.jsonl and results.md.
//
//	cd bench && go run ./tun/cmd/tunbench -readme README.md  # everything, 3 runs (about 11 minutes on 2 cores), tables into README.md
//	cd bench && go run ./tun/cmd/tunbench -only serve   # one job
//	cd bench && go run ./tun/cmd/tunbench -quick        # small sizes, one run (a smoke test)
//	cd bench && go run ./tun/cmd/tunbench -profile DIR  # CPU profiles of tcpeng, one per workload
//
// It needs root, /dev/net/tun, iperf3, pasta (Debian's passt) and
// slirp4netns: `apt-get install -y passt slirp4netns iperf3`.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tcpeng/tcpeng/host/netns"
)

func main() {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "client":
			os.Exit(clientMain(os.Args[2:]))
		case "gvisor-serve":
			os.Exit(gvisorMain(os.Args[2:]))
		}
	}
	os.Exit(benchMain())
}

type options struct {
	runs      int
	only      string
	bytes     int64
	conns     int
	rtts      int
	iperfTime int
	out       string
	readme    string
	profile   string
	quick     bool
	tcpeng    string
	base      string
	setups    string
	workloads string
}

var opt options

func benchMain() int {
	flag.IntVar(&opt.runs, "runs", 3, "runs of each configuration (fresh processes and namespace each)")
	flag.StringVar(&opt.only, "only", "", "run one job only: serve or forward")
	flag.Int64Var(&opt.bytes, "bytes", 1<<30, "bytes of the serve throughput workloads")
	flag.IntVar(&opt.conns, "conns", 2000, "sequential connections of the connection-rate workloads")
	flag.IntVar(&opt.rtts, "rtts", 20000, "timed 64-byte round trips")
	flag.IntVar(&opt.iperfTime, "iperf-time", 5, "seconds of each iperf3 run")
	flag.StringVar(&opt.out, "out", "tun", "directory for results.jsonl and results.md")
	flag.StringVar(&opt.readme, "readme", "", "also write the tables into this README, between its tun results markers (bench/README.md: -readme README.md)")
	flag.StringVar(&opt.profile, "profile", "", "instead of measuring, write CPU profiles of tcpeng (one per workload) and their pprof -top to this directory")
	flag.BoolVar(&opt.quick, "quick", false, "small sizes, one run: a smoke test")
	flag.StringVar(&opt.tcpeng, "tcpeng", "", "the tcpeng binary (default: built from ../cmd/tcpeng)")
	flag.StringVar(&opt.base, "base", "", "a baseline tcpeng binary: each tcpeng column gets a base-NAME column run with it, interleaved, and a ratio row")
	flag.StringVar(&opt.setups, "setups", "", "comma-separated columns to run (default: all), e.g. tcpeng-1500-offload,gvisor-1500")
	flag.StringVar(&opt.workloads, "workloads", "", "comma-separated workloads to run (default: all), e.g. rtt-64B,conn-echo-close")
	flag.Parse()
	if opt.quick {
		opt.runs, opt.bytes, opt.conns, opt.rtts, opt.iperfTime = 1, 64<<20, 200, 2000, 1
	}
	chooseSetups()
	if err := preflight(); err != nil {
		fmt.Fprintf(os.Stderr, "tunbench: %v\n", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "tunbench")
	if err != nil {
		fmt.Fprintf(os.Stderr, "tunbench: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if opt.tcpeng == "" {
		opt.tcpeng = filepath.Join(dir, "tcpeng")
		build := exec.Command("go", "build", "-o", opt.tcpeng, "github.com/tcpeng/tcpeng/cmd/tcpeng")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintf(os.Stderr, "tunbench: building tcpeng: %v\n", err)
			return 1
		}
	}
	b := newBench()
	defer b.cleanup()
	if opt.profile != "" {
		if err := b.profileAll(); err != nil {
			fmt.Fprintf(os.Stderr, "tunbench: %v\n", err)
			return 1
		}
		return 0
	}
	b.env = environment()
	if err := b.runAll(); err != nil {
		fmt.Fprintf(os.Stderr, "tunbench: %v\n", err)
		b.write()
		return 1
	}
	if err := b.write(); err != nil {
		fmt.Fprintf(os.Stderr, "tunbench: %v\n", err)
		return 1
	}
	return 0
}

// preflight checks the privileges and tools.
func preflight() error {
	if os.Geteuid() != 0 {
		return errors.New("needs root (TUN devices and network namespaces)")
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return fmt.Errorf("/dev/net/tun is missing: %v", err)
	}
	need := []string{"ip"}
	if opt.only != "serve" {
		need = append(need, "iperf3", "pasta", "slirp4netns")
	}
	for _, t := range need {
		if _, err := exec.LookPath(t); err != nil {
			return fmt.Errorf("%s is missing: apt-get install -y passt slirp4netns iperf3", t)
		}
	}
	return nil
}

// result is one measurement.
type result struct {
	Time     string  `json:"time"`
	Job      string  `json:"job"` // serve, forward
	Setup    string  `json:"setup"`
	Workload string  `json:"workload"`
	Run      int     `json:"run"`
	Value    float64 `json:"value"`
	Unit     string  `json:"unit"`
	P99      float64 `json:"p99,omitempty"`
	StackCPU float64 `json:"stack_cpu_s"` // CPU seconds of the stack's process during the workload
	// MachineCPU is the CPU seconds the whole machine spent busy during the
	// workload (/proc/stat): the stack, the clients, the servers and the
	// kernel's network processing.
	MachineCPU float64 `json:"machine_cpu_s"`
	Seconds    float64 `json:"seconds"` // wall seconds of the workload
	Error      string  `json:"error,omitempty"`
}

type bench struct {
	mu       sync.Mutex
	results  []result
	failures []string
	env      map[string]string
	seq      int
	cleanups []func()

	echoPort, iperfPort string // the forward job's host servers
}

func newBench() *bench { return &bench{} }

func (b *bench) addCleanup(f func()) { b.cleanups = append(b.cleanups, f) }

func (b *bench) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
}

func (b *bench) record(r result) {
	r.Time = time.Now().UTC().Format(time.RFC3339)
	b.mu.Lock()
	b.results = append(b.results, r)
	b.mu.Unlock()
	if r.Error != "" {
		b.failures = append(b.failures, fmt.Sprintf("%s %s %s run %d: %s", r.Job, r.Setup, r.Workload, r.Run, r.Error))
		fmt.Fprintf(os.Stderr, "  %-8s %-22s %-18s run %d: FAILED: %s\n", r.Job, r.Setup, r.Workload, r.Run, r.Error)
		return
	}
	extra := ""
	if r.P99 != 0 {
		extra = fmt.Sprintf(" (p99 %.1f)", r.P99)
	}
	fmt.Fprintf(os.Stderr, "  %-8s %-22s %-18s run %d: %10.2f %-6s%s stack CPU %.2f s of %.2f s\n",
		r.Job, r.Setup, r.Workload, r.Run, r.Value, r.Unit, extra, r.StackCPU, r.Seconds)
}

// newNamespace makes a namespace with lo up.
func (b *bench) newNamespace() (string, error) {
	b.seq++
	name := fmt.Sprintf("tunbench-%d-%d", os.Getpid(), b.seq)
	if err := netns.Add(name); err != nil {
		return "", err
	}
	if err := ip("-n", name, "link", "set", "lo", "up"); err != nil {
		netns.Delete(name)
		return "", err
	}
	return name, nil
}

// proc is a stack's process.
type proc struct {
	cmd    *exec.Cmd
	stdout *lineBuffer
	stderr *lineBuffer
}

// lineBuffer collects a process's output.
type lineBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lineBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() < 1<<20 {
		l.b.Write(p)
	}
	return len(p), nil
}

func (l *lineBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start starts a stack process and waits until ready() holds.
func start(name string, args []string, ready func(out string) bool) (*proc, error) {
	p := &proc{cmd: exec.Command(name, args...), stdout: &lineBuffer{}, stderr: &lineBuffer{}}
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(15 * time.Second)
	for !ready(p.stdout.String()) {
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s not ready after 15 s: %s %s", name, p.stdout.String(), p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return p, nil
}

// stop ends the process with SIGTERM (SIGKILL after 10 s).
func (p *proc) stop() {
	if p == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		p.cmd.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-done
	}
}

// machineCPU returns the CPU seconds all CPUs have spent busy since boot:
// user, nice, system, irq and softirq of /proc/stat's first line (0 if it
// cannot be read).
func machineCPU() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0
	}
	var ticks float64
	for _, i := range []int{1, 2, 3, 6, 7} {
		v, _ := strconv.ParseFloat(f[i], 64)
		ticks += v
	}
	return ticks / clockTicks
}

// cpu returns the CPU seconds (user+sys) the process has used.
func (p *proc) cpu() float64 {
	if p == nil || p.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	s := string(b)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		s = s[i+2:]
	}
	f := strings.Fields(s)
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on Linux.
const clockTicks = 100

// runClient runs `tunbench client MODE ADDR N` inside ns.
func runClientIn(ns, mode, addr string, n int64) (*clientResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "client", mode, addr, strconv.FormatInt(n, 10))
	var out, errb lineBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := netns.Do(ns, cmd.Start); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-time.After(5 * time.Minute):
		cmd.Process.Kill()
		<-done
		return nil, errors.New("client timed out after 5 minutes")
	}
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(errb.String()))
	}
	var r clientResult
	if err := json.Unmarshal([]byte(out.String()), &r); err != nil {
		return nil, fmt.Errorf("client output %q: %v", out.String(), err)
	}
	return &r, nil
}

// echoServer serves echo on a host address until the benchmark ends.
func (b *bench) echoServer(addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	b.addCleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go echoConn(c)
		}
	}()
	return ln.Addr().String(), nil
}

// iperfServer runs iperf3 -s on the host's loopback until the benchmark ends.
func (b *bench) iperfServer() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	ln.Close()
	p, err := start("iperf3", []string{"-s", "-B", "127.0.0.1", "-p", port, "--forceflush"}, func(out string) bool {
		return strings.Contains(out, "Server listening")
	})
	if err != nil {
		return "", err
	}
	b.addCleanup(p.stop)
	return port, nil
}

// iperf runs the iperf3 client in ns and returns the bits per second received.
func iperf(ns, server, port string, extra ...string) (float64, error) {
	args := append([]string{"-c", server, "-p", port, "-t", strconv.Itoa(opt.iperfTime), "-J"}, extra...)
	cmd := exec.Command("iperf3", args...)
	var out, errb lineBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := netns.Do(ns, cmd.Start); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(opt.iperfTime+60)*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		cmd.Process.Kill()
		<-done
		return 0, errors.New("iperf3 timed out")
	}
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal([]byte(out.String()), &r); jerr != nil || r.Error != "" || err != nil {
		return 0, fmt.Errorf("iperf3 %v: %v %v %s %s", extra, err, jerr, r.Error, strings.TrimSpace(errb.String()))
	}
	return r.End.SumReceived.BitsPerSecond, nil
}

// environment describes the machine and the versions.
func environment() map[string]string {
	env := map[string]string{"go": runtime.Version(), "cores": strconv.Itoa(runtime.NumCPU())}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				env["cpu"] = strings.TrimSpace(v)
				break
			}
		}
	}
	cmdOut := func(name string, args ...string) string {
		out, _ := exec.Command(name, args...).CombinedOutput()
		s := strings.TrimSpace(string(out))
		if i := strings.IndexByte(s, '\n'); i >= 0 {
			s = s[:i]
		}
		return s
	}
	env["kernel"] = cmdOut("uname", "-r")
	env["iperf3"] = cmdOut("iperf3", "--version")
	env["slirp4netns"] = cmdOut("slirp4netns", "--version")
	env["passt"] = cmdOut("dpkg-query", "-W", "-f", "${Version}", "passt")
	env["tcpeng"] = cmdOut("git", "-C", "..", "describe", "--always", "--dirty")
	if bi, err := exec.Command("go", "list", "-m", "gvisor.dev/gvisor").Output(); err == nil {
		env["gvisor"] = strings.TrimSpace(string(bi))
	}
	env["loadavg before"] = loadavg()
	return env
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// stderrTail returns the last line of a process's stderr, for errors.
func stderrTail(p *proc) string {
	if p == nil {
		return ""
	}
	s := strings.TrimSpace(p.stderr.String())
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
