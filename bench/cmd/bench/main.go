// Command bench runs the in-process workloads of BENCH.md (W1 bulk, W2
// connrate, W3 idlemem, W4 pingpong) on tcpeng (the net.Conn column through
// host.Driver and host/memlink, and the raw sans-I/O column) and on gVisor's
// netstack (link/channel with pump goroutines, and the direct link/pipe), each
// configuration run -runs times, each run in a fresh process, rounds
// interleaved. It prints median and min–max, and writes results.jsonl and
// results.md (and, with -readme, the table into README.md).
//
//	cd bench && go run ./cmd/bench -runs 5          # the full benchmark
//	cd bench && go run ./cmd/bench -quick           # a short smoke run
//
// The parent re-executes its own binary with -child workload/stack/mtu for
// each run.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tcpeng/tcpeng/bench/internal/readme"
)

// Workloads.
const (
	wBulk    = "w1-bulk"
	wConnSeq = "w2-connrate-seq"
	wConnPar = "w2-connrate-64"
	wIdle    = "w3-idlemem"
	wPing    = "w4-pingpong"
)

// Stacks (columns).
const (
	stackTcpeng    = "tcpeng"         // net.Conn through host.Driver over memlink
	stackRaw       = "tcpeng-raw"     // two engine.Stack driven through Step, no goroutines
	stackGVChannel = "gvisor-channel" // link/channel, 16384-packet queues, a pump goroutine per direction
	stackGVPipe    = "gvisor-pipe"    // link/pipe: synchronous delivery
	stackWasm      = "tcpeng-wasm"    // net.Conn as tcpeng, both engines the WebAssembly module in wazero (W5)

	// W5 with host/offload.Engine around every engine (segmentation and
	// receive offload in native code; the link still carries MTU frames).
	stackOffload     = "tcpeng-offload"           // both engines native
	stackWasmOffload = "tcpeng-wasm-offload"      // both engines WebAssembly
	stackWasmRecv    = "tcpeng-wasm-recv-offload" // the receiving engine (W1's client) WebAssembly, the sender native
	stackWasmSend    = "tcpeng-wasm-send-offload" // the sending engine (W1's server) WebAssembly, the receiver native
)

// offloadStacks are the W5 columns with offloads, in the order of their table.
var offloadStacks = []string{stackOffload, stackWasmOffload, stackWasmRecv, stackWasmSend}

// isWasm reports whether a column runs the WebAssembly module.
func isWasm(stack string) bool {
	return stack == stackWasm || stack == stackWasmOffload || stack == stackWasmRecv || stack == stackWasmSend
}

// configs lists every configuration, in the order of a round.
func configs() []spec {
	var out []spec
	add := func(w string, mtu int, stacks ...string) {
		for _, s := range stacks {
			out = append(out, spec{w, s, mtu})
		}
	}
	all := []string{stackTcpeng, stackGVChannel, stackRaw, stackGVPipe}
	// W5 (BENCH.md): W1, W2 and W4 with the engines in wazero.
	add(wBulk, 1500, append(append(all, stackWasm), offloadStacks...)...)
	add(wBulk, 65535, append(append(all, stackWasm), offloadStacks...)...)
	add(wConnSeq, 1500, append(all, stackWasm)...)
	add(wConnPar, 1500, stackTcpeng, stackGVChannel, stackGVPipe)
	add(wIdle, 1500, all...)
	add(wPing, 1500, append(all, stackWasm)...)
	return out
}

func now() string { return time.Now().UTC().Format(time.RFC3339) }

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func main() {
	var (
		childArg   = flag.String("child", "", "internal: run one configuration (workload/stack/mtu) in this process and print its JSON line")
		run        = flag.Int("run", 0, "internal: the run number of -child")
		runs       = flag.Int("runs", 5, "runs of each configuration, each in a fresh process (default 1 with -quick)")
		quick      = flag.Bool("quick", false, "small sizes (64 MiB, 1000 connections, 500 idle, 2000 round trips) for a smoke run")
		only       = flag.String("only", "", "comma-separated workloads to run (w1-bulk, w2-connrate-seq, w2-connrate-64, w3-idlemem, w4-pingpong); default all")
		stacks     = flag.String("stacks", "", "comma-separated stacks to run (tcpeng, tcpeng-raw, gvisor-channel, gvisor-pipe, tcpeng-wasm, tcpeng-offload, tcpeng-wasm-offload, tcpeng-wasm-recv-offload, tcpeng-wasm-send-offload); default all")
		mtus       = flag.String("mtu", "", "comma-separated MTUs of W1 to run (1500, 65535); default both")
		outDir     = flag.String("out", ".", "directory for results.jsonl and results.md")
		readme     = flag.String("readme", "", "also write the table into this README, between its results markers")
		timeout    = flag.Duration("timeout", 10*time.Minute, "time limit of one run")
		cpuprofile = flag.String("cpuprofile", "", "with -child: write a CPU profile of the run here; without: a directory for one profile per run")
		wasmFile   = flag.String("wasm", "", "the WebAssembly module of the tcpeng-wasm column (default: built from ../wasm/guest into a temporary directory)")
	)
	flag.Parse()
	if *childArg != "" {
		os.Exit(child(*childArg, *run, *quick, *cpuprofile, *wasmFile))
	}
	runsSet := false
	flag.Visit(func(f *flag.Flag) { runsSet = runsSet || f.Name == "runs" })
	if *quick && !runsSet {
		*runs = 1
	}
	if *runs < 1 {
		fatal(errors.New("-runs must be at least 1"))
	}
	cfgs, err := selectConfigs(*only, *stacks, *mtus)
	if err != nil {
		fatal(err)
	}
	tmp := ""
	if *wasmFile == "" && slices.ContainsFunc(cfgs, func(c spec) bool { return isWasm(c.stack) }) {
		if tmp, err = os.MkdirTemp("", "tcpeng-bench-"); err != nil {
			fatal(err)
		}
		*wasmFile = filepath.Join(tmp, "tcpeng.wasm")
		err = buildWasm(*wasmFile)
	}
	if err == nil {
		err = parent(cfgs, *runs, *quick, *outDir, *readme, *timeout, *cpuprofile, *wasmFile)
	}
	if tmp != "" {
		os.RemoveAll(tmp)
	}
	if err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "bench:", err)
	os.Exit(2)
}

func selectConfigs(only, stacks, mtus string) ([]spec, error) {
	pick := func(list string, valid []string) (map[string]bool, error) {
		if list == "" {
			return nil, nil
		}
		m := map[string]bool{}
		for _, x := range strings.Split(list, ",") {
			x = strings.TrimSpace(x)
			ok := false
			for _, v := range valid {
				ok = ok || v == x
			}
			if !ok {
				return nil, fmt.Errorf("unknown %q: use one of %s", x, strings.Join(valid, ", "))
			}
			m[x] = true
		}
		return m, nil
	}
	ws, err := pick(only, []string{wBulk, wConnSeq, wConnPar, wIdle, wPing})
	if err != nil {
		return nil, err
	}
	ss, err := pick(stacks, append([]string{stackTcpeng, stackRaw, stackGVChannel, stackGVPipe, stackWasm}, offloadStacks...))
	if err != nil {
		return nil, err
	}
	ms, err := pick(mtus, []string{"1500", "65535"})
	if err != nil {
		return nil, err
	}
	var out []spec
	for _, c := range configs() {
		if (ws == nil || ws[c.workload]) && (ss == nil || ss[c.stack]) && (ms == nil || c.workload != wBulk || ms[strconv.Itoa(c.mtu)]) {
			out = append(out, c)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("the selection leaves no configuration to run")
	}
	return out, nil
}

// parent runs every configuration runs times, rounds interleaved, each run
// in a fresh process.
func parent(cfgs []spec, runs int, quick bool, outDir, readmePath string, timeout time.Duration, profDir, wasmFile string) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("cannot find my own binary to re-execute: %w", err)
	}
	if err := os.MkdirAll(outDir, 0o755); err != nil {
		return err
	}
	if profDir != "" {
		if err := os.MkdirAll(profDir, 0o755); err != nil {
			return err
		}
	}
	jsonlPath := filepath.Join(outDir, "results.jsonl")
	jf, err := os.Create(jsonlPath)
	if err != nil {
		return err
	}
	defer jf.Close()
	m := machine()
	fmt.Fprintf(os.Stderr, "bench: %d configurations × %d runs, %s; %s\n", len(cfgs), runs, map[bool]string{true: "quick sizes", false: "full sizes"}[quick], m.summary())
	var recs []Record
	started := time.Now()
	for r := 1; r <= runs; r++ {
		for _, c := range cfgs {
			rec := runChild(exe, c, r, quick, timeout, profDir, wasmFile)
			recs = append(recs, rec)
			line, _ := json.Marshal(rec)
			jf.Write(append(line, '\n'))
			fmt.Fprintf(os.Stderr, "round %d/%d %-32s %s\n", r, runs, c.String(), brief(rec))
		}
	}
	m.Duration = time.Since(started).Round(time.Second).String()
	m.LoadAfter = loadavg()
	md := report(recs, m, runs, quick)
	fmt.Print(md)
	if err := os.WriteFile(filepath.Join(outDir, "results.md"), []byte(md), 0o644); err != nil {
		return err
	}
	if readmePath != "" {
		if err := readme.Write(readmePath, "bench", md); err != nil {
			return err
		}
	}
	for _, rec := range recs {
		if rec.Error != "" {
			return fmt.Errorf("some runs failed (see %s); the first: %s: %s", jsonlPath, rec.Workload+"/"+rec.Stack, rec.Error)
		}
	}
	return nil
}

func runChild(exe string, c spec, run int, quick bool, timeout time.Duration, profDir, wasmFile string) Record {
	rec := Record{Workload: c.workload, Stack: c.stack, MTU: c.mtu, Run: run, Quick: quick, Time: now(), Load: loadavg()}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	args := []string{"-child", c.String(), "-run", strconv.Itoa(run)}
	if quick {
		args = append(args, "-quick")
	}
	if isWasm(c.stack) {
		args = append(args, "-wasm", wasmFile)
	}
	if profDir != "" {
		args = append(args, "-cpuprofile", filepath.Join(profDir, fmt.Sprintf("%s-%s-%d-run%d.pprof", c.workload, c.stack, c.mtu, run)))
	}
	cmd := exec.CommandContext(ctx, exe, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var got Record
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	found := false
	for sc.Scan() {
		if json.Unmarshal(sc.Bytes(), &got) == nil && got.Workload == c.workload {
			found = true
		}
	}
	switch {
	case found:
		got.Load, got.Time = rec.Load, rec.Time
		if err != nil && got.Error == "" {
			got.Error = fmt.Sprintf("the run printed its result but then failed: %v: %s", err, lastLines(stderr.String(), 8))
		}
		return got
	case ctx.Err() != nil:
		rec.Error = fmt.Sprintf("timed out after %v", timeout)
	default:
		rec.Error = fmt.Sprintf("the run failed: %v: %s", err, lastLines(stderr.String(), 12))
	}
	return rec
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n] // the first lines of a panic say the most
	}
	return strings.Join(lines, " | ")
}

// brief is one run's line on the console.
func brief(r Record) string {
	if r.Error != "" {
		return "ERROR " + r.Error
	}
	var parts []string
	for _, f := range figuresOf(r.Workload) {
		if v, ok := r.Metrics[f.key]; ok {
			parts = append(parts, f.name+" "+num(v))
		}
	}
	return strings.Join(parts, ", ")
}
