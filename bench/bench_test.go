package bench_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tcpeng/tcpeng/bench/gvnet"
	"github.com/tcpeng/tcpeng/bench/raw"
	"github.com/tcpeng/tcpeng/bench/tcpnet"
	"github.com/tcpeng/tcpeng/bench/workload"
	"github.com/tcpeng/tcpeng/bindings/wazero"
	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/wasm/wasmbuild"
)

// TestSmokeRaw runs every workload tiny on the raw engine column.
func TestSmokeRaw(t *testing.T) {
	pr := workload.Tiny()
	for _, mtu := range []int{1500, 65535} {
		p, err := raw.New(mtu)
		if err != nil {
			t.Fatal(err)
		}
		m, err := p.Bulk(pr.BulkBytes)
		check(t, fmt.Sprintf("raw W1 mtu %d", mtu), m, err, workload.MetricGbps)
	}
	run := func(name string, f func(p *raw.Pair) (workload.Metrics, error), key string) {
		p, err := raw.New(1500)
		if err != nil {
			t.Fatal(err)
		}
		m, err := f(p)
		check(t, "raw "+name, m, err, key)
	}
	run("W2", func(p *raw.Pair) (workload.Metrics, error) { return p.ConnRate(pr.Conns) }, workload.MetricConnPerSec)
	run("W3", func(p *raw.Pair) (workload.Metrics, error) { return p.IdleMem(pr.IdleConns) }, workload.MetricBytesPerPair)
	run("W4", func(p *raw.Pair) (workload.Metrics, error) { return p.PingPong(pr.Warmup, pr.Rounds) }, workload.MetricMedianRTT)
}

// TestSmokeGVisor runs every workload tiny on both gVisor links.
func TestSmokeGVisor(t *testing.T) {
	for _, link := range []gvnet.Link{gvnet.Channel, gvnet.Pipe} {
		netSmoke(t, "gvisor-"+string(link), func(mtu int) (workload.Net, error) { return gvnet.New(link, mtu) })
	}
}

// TestSmokeTcpeng runs every workload tiny on tcpeng's net.Conn column.
func TestSmokeTcpeng(t *testing.T) {
	netSmoke(t, "tcpeng", func(mtu int) (workload.Net, error) { return tcpnet.New(mtu) })
}

// TestSmokeWasm runs every workload tiny on the tcpeng-wasm column (W5): the
// net.Conn column with the engines in wazero. It uses ../wasm/guest/tcpeng.wasm
// when `make wasm` has built it, else builds a module of its own.
func TestSmokeWasm(t *testing.T) {
	file := "../wasm/guest/tcpeng.wasm"
	if _, err := os.Stat(file); err != nil {
		file = filepath.Join(t.TempDir(), "tcpeng.wasm")
		if err := wasmbuild.Build(context.Background(), "..", file); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	m, err := wazero.CompileFile(ctx, file, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close(ctx)
	netSmoke(t, "tcpeng-wasm", func(mtu int) (workload.Net, error) {
		w := func(c engine.Config) (engine.Engine, error) { return m.New(ctx, c) }
		return tcpnet.NewWith(mtu, tcpnet.Options{Client: w, Server: w})
	})
}

func netSmoke(t *testing.T, name string, mk func(mtu int) (workload.Net, error)) {
	pr := workload.Tiny()
	with := func(mtu int, what string, f func(n workload.Net) (workload.Metrics, error), key string) {
		n, err := mk(mtu)
		if err != nil {
			t.Fatal(err)
		}
		defer n.Close()
		m, err := f(n)
		check(t, fmt.Sprintf("%s %s mtu %d", name, what, mtu), m, err, key)
	}
	for _, mtu := range []int{1500, 65535} {
		with(mtu, "W1", func(n workload.Net) (workload.Metrics, error) { return workload.Bulk(n, pr.BulkBytes) }, workload.MetricGbps)
	}
	with(1500, "W2 sequential", func(n workload.Net) (workload.Metrics, error) { return workload.ConnRate(n, pr.Conns, 1) }, workload.MetricConnPerSec)
	with(1500, "W2 concurrent", func(n workload.Net) (workload.Metrics, error) {
		return workload.ConnRate(n, pr.Conns, pr.Clients)
	}, workload.MetricConnPerSec)
	with(1500, "W3", func(n workload.Net) (workload.Metrics, error) { return workload.IdleMem(n, pr.IdleConns) }, workload.MetricBytesPerPair)
	with(1500, "W4", func(n workload.Net) (workload.Metrics, error) { return workload.PingPong(n, pr.Warmup, pr.Rounds) }, workload.MetricMedianRTT)
}

func check(t *testing.T, what string, m workload.Metrics, err error, key string) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
		return
	}
	if v, ok := m[key]; !ok || v <= 0 {
		t.Errorf("%s: %s = %v, want a positive figure (all: %v)", what, key, v, m)
		return
	}
	t.Logf("%s: %v", what, m)
}
