package host_test

import (
	"crypto/rand"
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
	"github.com/tcpeng/tcpeng/host/memlink"
	"github.com/tcpeng/tcpeng/internal/testkit"
)

var (
	ipA = netip.MustParseAddr("10.0.0.1")
	ipB = netip.MustParseAddr("10.0.0.2")
)

// env is two drivers joined by memlink: A (10.0.0.1) and B (10.0.0.2).
type env struct {
	a, b   *host.Driver
	la, lb host.Link
}

// newEnv starts two drivers; mod may change both engines' configuration. The
// drivers are closed, and goroutines checked for leaks, when the test ends.
func newEnv(t testing.TB, mod func(*engine.Config)) *env {
	t.Helper()
	checkGoroutines(t)
	la, lb := memlink.NewPair(1500, 1024)
	e := &env{la: la, lb: lb}
	e.a = newDriver(t, ipA, 1, la, mod)
	e.b = newDriver(t, ipB, 2, lb, mod)
	return e
}

func newDriver(t testing.TB, ip netip.Addr, seed uint64, l host.Link, mod func(*engine.Config)) *host.Driver {
	t.Helper()
	cfg := engine.Config{Addrs: []netip.Addr{ip}, Seed: seed}
	rand.Read(cfg.Key[:])
	if mod != nil {
		mod(&cfg)
	}
	s, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, err := host.NewDriver(s, l, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// pair returns a connected pair: client on A, server on B.
func (e *env) pair(t testing.TB) (client, server *host.Conn) {
	t.Helper()
	ln, err := e.b.ListenTCP(netip.AddrPortFrom(ipB, 0))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type res struct {
		c   *host.Conn
		err error
	}
	ch := make(chan res, 1)
	go func() {
		c, err := ln.AcceptTCP()
		ch <- res{c, err}
	}()
	client, err = e.a.DialTCP(t.Context(), ln.AddrPort())
	if err != nil {
		t.Fatal(err)
	}
	r := <-ch
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { client.Close(); r.c.Close() })
	return client, r.c
}

// checkGoroutines fails the test if goroutines started during it are still
// running a few seconds after it ended (its cleanups done).
var checkGoroutines = testkit.CheckGoroutines

// pattern returns n deterministic pseudo-random bytes.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}

// mustTimeout checks that err is a timeout of the net package's kind.
func mustTimeout(t *testing.T, err error, op string) {
	t.Helper()
	var ne net.Error
	var oe *net.OpError
	switch {
	case err == nil:
		t.Fatalf("%s: no error, want a timeout", op)
	case !errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("%s: %v, want os.ErrDeadlineExceeded", op, err)
	case !errors.As(err, &ne) || !ne.Timeout():
		t.Fatalf("%s: %v is not a net.Error with Timeout()", op, err)
	case !errors.As(err, &oe) || oe.Op != op || oe.Net != "tcp":
		t.Fatalf("%s: %#v, want a *net.OpError with Op %q", op, err, op)
	}
}

// contains reports whether s holds every part.
func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
