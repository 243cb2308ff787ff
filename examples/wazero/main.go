// Command wazero serves HTTP from a tcpeng engine compiled to WebAssembly and
// sandboxed in wazero (no filesystem, no network, a memory limit), to a client
// on a native engine; the two engines are joined by an in-memory wire.
//
//	go generate ./wasm/guest   # builds wasm/guest/tcpeng.wasm from the tree
//	go run ./examples/wazero
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"

	"github.com/tcpeng/tcpeng/bindings/wazero"
	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
	"github.com/tcpeng/tcpeng/host/memlink"
	"github.com/tcpeng/tcpeng/host/offload"
)

func main() {
	if err := run(os.Stdout, "wasm/guest/tcpeng.wasm"); err != nil {
		fmt.Fprintln(os.Stderr, "examples/wazero:", err)
		os.Exit(1)
	}
}

func run(out io.Writer, wasmPath string) error {
	module, err := os.ReadFile(wasmPath)
	if err != nil {
		return fmt.Errorf("%w: build the module first with `go generate ./wasm/guest`", err)
	}
	serverLink, clientLink := memlink.NewPair(1500, 1024)

	// The server's engine runs inside WebAssembly; the driver cannot tell.
	// host/offload cuts the engine's super-packets at the MTU and joins the
	// bursts that arrive, in native code: that spares the sandboxed engine
	// most of its per-segment work (three times the throughput at MTU 1500).
	cfg := engine.Config{Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, SegmentOffload: true}
	sandboxed, err := wazero.New(context.Background(), module, cfg)
	if err != nil {
		return err
	}
	server, err := host.NewDriver(offload.New(sandboxed, engine.DefaultMTU), serverLink, nil)
	if err != nil {
		return err
	}
	defer server.Close()
	ln, err := server.Listen("tcp", "10.0.0.1:80")
	if err != nil {
		return err
	}
	go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s, from an engine inside WebAssembly\n", r.RemoteAddr)
	}))

	// The client's engine is native.
	native, err := engine.New(engine.Config{Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}})
	if err != nil {
		return err
	}
	client, err := host.NewDriver(native, clientLink, nil)
	if err != nil {
		return err
	}
	defer client.Close()
	transport := &http.Transport{DialContext: client.DialContext}
	defer transport.CloseIdleConnections()
	resp, err := (&http.Client{Transport: transport}).Get("http://10.0.0.1/")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	fmt.Fprintf(out, "%s %s\n%s", resp.Proto, resp.Status, body)
	return err
}
