package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
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
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed")
	}
	s, err := engine.New(engine.Config{Addrs: []netip.Addr{netip.MustParseAddr("10.7.0.2")}, Seed: 1,
		Key: [16]byte{7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7}, TraceStates: true})
	if err != nil {
		t.Fatal(err)
	}
	var out engine.Output
	s.Step(&engine.Input{Commands: []engine.Command{{Op: engine.OpDial, Addr: netip.MustParseAddrPort("10.7.0.1:80")}}}, &out)
	if len(out.Frames) != 1 {
		t.Fatalf("the native engine sent %d frames, want a SYN", len(out.Frames))
	}
	cmd := exec.Command(node, "--no-warnings", "testdata/abi_smoke.mjs", build(t), hex.EncodeToString(out.Frames[0]))
	got, err := cmd.CombinedOutput()
	if err != nil || strings.TrimSpace(string(got)) != "ok" {
		t.Fatalf("node: %v\n%s", err, got)
	}
}
