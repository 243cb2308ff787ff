package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/internal/jstest"
	"github.com/tcpeng/tcpeng/wasm/wasmbuild"
)

// build builds the module into a temporary directory.
func build(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "tcpeng.wasm")
	if err := wasmbuild.Build(context.Background(), "", out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestReproducible: two builds of the same tree are byte-identical.
func TestReproducible(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the module twice")
	}
	a, err := os.ReadFile(build(t))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(build(t))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatalf("two builds differ: %d and %d bytes", len(a), len(b))
	}
	sum := sha256.Sum256(a)
	t.Logf("tcpeng.wasm: %d bytes, sha256 %s", len(a), hex.EncodeToString(sum[:]))
}

// TestNodeABI drives the module from Node with nothing but the ABI document
// (testdata/abi_smoke.mjs, its own MessagePack codec): init, a dial whose SYN
// must equal the native engine's byte for byte, a malformed message, a
// recovered panic, a trap.
func TestNodeABI(t *testing.T) {
	node, script := jstest.NodeScript(t, "testdata", "abi_smoke.mjs")
	cmd := exec.Command(node, "--no-warnings", script, build(t), nativeSYN(t, 80))
	got, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "ok" {
		t.Fatalf("node: %v\n%s", err, got)
	}
}

// jsDir holds the JavaScript hosts' checks and their npm packages.
var jsDir = filepath.Join("..", "abi", "testdata", "js")

// nativeSYN is the SYN, as hex, that the native engine sends for a dial to
// 10.7.0.1:port with the Config the Node scripts give the module.
func nativeSYN(t *testing.T, port uint16) string {
	t.Helper()
	s, err := engine.New(engine.Config{Addrs: []netip.Addr{netip.MustParseAddr("10.7.0.2")}, Seed: 1,
		Key: [16]byte{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}, TraceStates: true})
	if err != nil {
		t.Fatal(err)
	}
	var out engine.Output
	s.Step(&engine.Input{Commands: []engine.Command{{Op: engine.OpDial, Addr: netip.AddrPortFrom(netip.MustParseAddr("10.7.0.1"), port)}}}, &out)
	if len(out.Frames) != 1 {
		t.Fatalf("the native engine sent %d frames, want a SYN", len(out.Frames))
	}
	return hex.EncodeToString(out.Frames[0])
}

// TestNodeMsgpack runs the module in Node with @msgpack/msgpack as its only
// codec (wasm/abi/testdata/js/crosscheck.mjs, live): two instances, a
// handshake, data both ways, a close, every state change checked; the
// client's SYN must be the native engine's, byte for byte. It logs V8's
// compile and instantiate times (BENCH.md W5, cold start).
func TestNodeMsgpack(t *testing.T) {
	node, script := jstest.NodeScript(t, jsDir, "crosscheck.mjs", "@msgpack/msgpack")
	got, _ := jstest.Output(t, exec.Command(node, "--no-warnings", script, "live", build(t), nativeSYN(t, 7)))
	var fig struct {
		CompileMs, InstantiateMs float64
		Bytes                    int
	}
	if err := json.Unmarshal(got, &fig); err != nil {
		t.Fatalf("node printed %q: %v", got, err)
	}
	t.Logf("Node %s: %d bytes; compile %.1f ms, instantiate and init %.1f ms", nodeVersion(node), fig.Bytes, fig.CompileMs, fig.InstantiateMs)
}

// TestChromium runs the same conversation in headless Chromium
// (wasm/abi/testdata/js/browser.mjs, through playwright-core): two instances
// of the module in a page, @bjorn3/browser_wasi_shim as WASI and
// @msgpack/msgpack as the codec; the client's SYN must be the native engine's.
// Three runs, each a new page, so the module is compiled from its bytes each
// time; it logs the cold start (BENCH.md W5).
func TestChromium(t *testing.T) {
	browser, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium is not installed (scripts/deps.sh installs it from Debian's packages)")
	}
	node, script := jstest.NodeScript(t, jsDir, "browser.mjs", "playwright-core", "@bjorn3/browser_wasi_shim", "@msgpack/msgpack")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	got, _ := jstest.Output(t, exec.CommandContext(ctx, node, "--no-warnings", script, build(t), nativeSYN(t, 7), "3", browser))
	var fig struct {
		Runs []struct {
			FetchMs, CompileMs, InstantiateMs float64
			Bytes                             int
			UserAgent                         string
		}
	}
	if err := json.Unmarshal(got, &fig); err != nil || len(fig.Runs) != 3 {
		t.Fatalf("browser.mjs printed %q (%v)", got, err)
	}
	for i, r := range fig.Runs {
		t.Logf("run %d: %d bytes; fetch %.1f ms, compile %.1f ms, instantiate and init %.1f ms", i+1, r.Bytes, r.FetchMs, r.CompileMs, r.InstantiateMs)
	}
	t.Logf("%s", fig.Runs[0].UserAgent)
}

func nodeVersion(node string) string {
	v, err := exec.Command(node, "--version").Output()
	if err != nil {
		return "(version unknown)"
	}
	return strings.TrimSpace(string(v))
}
