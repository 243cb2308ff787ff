// Command http runs a net/http server and a net/http client in one process,
// each on its own tcpeng engine, the two engines joined by an in-memory wire.
// Every byte between them goes through two TCP/IP stacks written in Go: no
// socket, no kernel networking.
//
//	go run ./examples/http
package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
	"github.com/tcpeng/tcpeng/host/memlink"
)

func main() {
	if err := run(os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "examples/http:", err)
		os.Exit(1)
	}
}

func run(out io.Writer) error {
	// Two ends of an in-memory wire carrying IP packets (MTU 1500, 1024 queued).
	serverLink, clientLink := memlink.NewPair(1500, 1024)

	// The server's engine, 10.0.0.1, serves HTTP on port 80.
	server, err := start("10.0.0.1", serverLink)
	if err != nil {
		return err
	}
	defer server.Close()
	ln, err := server.Listen("tcp", "10.0.0.1:80")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s, this is %s, over tcpeng\n", r.RemoteAddr, r.Host)
	})}
	go srv.Serve(ln)
	defer srv.Close()

	// The client's engine, 10.0.0.2, dials through the driver.
	client, err := start("10.0.0.2", clientLink)
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
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "%s %s\n%s", resp.Proto, resp.Status, body)
	return nil
}

// start runs an engine with address ip on link.
func start(ip string, link host.Link) (*host.Driver, error) {
	cfg := engine.Config{Addrs: []netip.Addr{netip.MustParseAddr(ip)}}
	rand.Read(cfg.Key[:]) // the secret behind initial sequence numbers (RFC 6528)
	stack, err := engine.New(cfg)
	if err != nil {
		return nil, err
	}
	return host.NewDriver(stack, link, nil)
}
