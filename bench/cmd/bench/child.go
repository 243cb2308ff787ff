package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime/pprof"
	"strconv"
	"strings"

	"github.com/tcpeng/tcpeng/bench/gvnet"
	"github.com/tcpeng/tcpeng/bench/raw"
	"github.com/tcpeng/tcpeng/bench/tcpnet"
	"github.com/tcpeng/tcpeng/bench/workload"
	"github.com/tcpeng/tcpeng/bindings/wazero"
	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/wasm/wasmbuild"
)

// buildWasm builds the WebAssembly module into out from the tcpeng module this
// benchmark replaces its dependency with (go.mod: replace ... => ../).
func buildWasm(out string) error {
	dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/tcpeng/tcpeng").Output()
	if err != nil {
		return fmt.Errorf("cannot find the tcpeng module to build the WebAssembly module from (go list -m): %w; or pass -wasm FILE", err)
	}
	fmt.Fprintln(os.Stderr, "bench: building the WebAssembly module for the tcpeng-wasm column")
	return wasmbuild.Build(context.Background(), strings.TrimSpace(string(dir)), out)
}

// Record is one run's line of results.jsonl.
type Record struct {
	Workload string           `json:"workload"`
	Stack    string           `json:"stack"`
	MTU      int              `json:"mtu"`
	Run      int              `json:"run"`
	Quick    bool             `json:"quick,omitempty"`
	Metrics  workload.Metrics `json:"metrics,omitempty"`
	Error    string           `json:"error,omitempty"`
	Load     string           `json:"loadavg,omitempty"` // /proc/loadavg when the run started
	Time     string           `json:"time"`
}

// spec names one configuration: workload/stack/mtu.
type spec struct {
	workload, stack string
	mtu             int
}

func (s spec) String() string { return s.workload + "/" + s.stack + "/" + strconv.Itoa(s.mtu) }

func parseSpec(s string) (spec, error) {
	f := strings.Split(s, "/")
	if len(f) != 3 {
		return spec{}, fmt.Errorf("bad -child %q: want workload/stack/mtu, such as w1/tcpeng/1500", s)
	}
	mtu, err := strconv.Atoi(f[2])
	if err != nil || mtu < 576 || mtu > 65535 {
		return spec{}, fmt.Errorf("bad -child %q: the MTU must be a number from 576 to 65535", s)
	}
	return spec{f[0], f[1], mtu}, nil
}

// newNet builds the net.Conn pair of a stack column; wasmFile is the module of
// the tcpeng-wasm column.
func newNet(stack string, mtu int, wasmFile string) (workload.Net, error) {
	switch stack {
	case stackTcpeng:
		return tcpnet.New(mtu)
	case stackOffload:
		return tcpnet.NewWith(mtu, tcpnet.Options{Offload: true})
	case stackWasm, stackWasmOffload, stackWasmRecv, stackWasmSend:
		if wasmFile == "" {
			return nil, errors.New("the " + stack + " column needs -wasm FILE")
		}
		ctx := context.Background()
		m, err := wazero.CompileFile(ctx, wasmFile, nil)
		if err != nil {
			return nil, err
		}
		w := func(c engine.Config) (engine.Engine, error) { return m.New(ctx, c) }
		switch stack {
		case stackWasm:
			return tcpnet.NewWith(mtu, tcpnet.Options{Client: w, Server: w})
		case stackWasmOffload:
			return tcpnet.NewWith(mtu, tcpnet.Options{Client: w, Server: w, Offload: true})
		case stackWasmRecv:
			return tcpnet.NewWith(mtu, tcpnet.Options{Client: w, Offload: true})
		default:
			return tcpnet.NewWith(mtu, tcpnet.Options{Server: w, Offload: true})
		}
	case stackGVChannel:
		return gvnet.New(gvnet.Channel, mtu)
	case stackGVPipe:
		return gvnet.New(gvnet.Pipe, mtu)
	}
	return nil, fmt.Errorf("unknown stack %q", stack)
}

// runOne runs one configuration in this process and returns its figures.
func runOne(s spec, p workload.Params, wasmFile string) (workload.Metrics, error) {
	if s.stack == stackRaw {
		rp, err := raw.New(s.mtu)
		if err != nil {
			return nil, err
		}
		switch s.workload {
		case wBulk:
			return rp.Bulk(p.BulkBytes)
		case wConnSeq:
			return rp.ConnRate(p.Conns)
		case wIdle:
			return rp.IdleMem(p.IdleConns)
		case wPing:
			return rp.PingPong(p.Warmup, p.Rounds)
		}
		return nil, fmt.Errorf("the raw column has no workload %q", s.workload)
	}
	n, err := newNet(s.stack, s.mtu, wasmFile)
	if err != nil {
		return nil, err
	}
	// The process ends after the run: the pair is not closed, so that what is
	// measured does not depend on how a stack shuts down.
	switch s.workload {
	case wBulk:
		return workload.Bulk(n, p.BulkBytes)
	case wConnSeq:
		return workload.ConnRate(n, p.Conns, 1)
	case wConnPar:
		return workload.ConnRate(n, p.Conns, p.Clients)
	case wIdle:
		return workload.IdleMem(n, p.IdleConns)
	case wPing:
		return workload.PingPong(n, p.Warmup, p.Rounds)
	}
	return nil, fmt.Errorf("unknown workload %q", s.workload)
}

// child runs one configuration and prints its Record as one JSON line.
func child(arg string, run int, quick bool, cpuprofile, wasmFile string) int {
	rec := Record{Run: run, Quick: quick, Time: now()}
	s, err := parseSpec(arg)
	if err == nil {
		rec.Workload, rec.Stack, rec.MTU = s.workload, s.stack, s.mtu
		p := workload.Full()
		if quick {
			p = workload.Quick()
		}
		if cpuprofile != "" {
			f, ferr := os.Create(cpuprofile)
			if ferr != nil {
				err = ferr
			} else {
				defer f.Close()
				if err = pprof.StartCPUProfile(f); err == nil {
					defer pprof.StopCPUProfile()
				}
			}
		}
		if err == nil {
			rec.Metrics, err = runOne(s, p, wasmFile)
		}
	}
	if err != nil {
		rec.Error = err.Error()
	}
	if err := json.NewEncoder(os.Stdout).Encode(rec); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}
