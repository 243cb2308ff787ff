package forward

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
	"github.com/tcpeng/tcpeng/internal/testkit"
	"golang.org/x/sys/unix"
)

var (
	guestIP   = netip.MustParseAddr("10.0.2.100")
	gatewayIP = netip.MustParseAddr("10.0.2.2")
	dnsIP     = netip.MustParseAddr("10.0.2.3")
	network   = netip.MustParsePrefix("10.0.2.0/24")
)

// env is a namespace's engine (the guest, 10.0.2.100) joined by memlink to a
// Forwarder's engine (10.0.2.2, Config.Forward).
type env struct {
	guest *host.Driver
	fwd   *Forwarder
}

func newEngine(t testing.TB, cfg engine.Config) *engine.Stack {
	t.Helper()
	rand.Read(cfg.Key[:])
	s, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newEnv starts both; mod may change the Forwarder's configuration. Both are
// closed, and goroutines checked for leaks, when the test ends.
func newEnv(t testing.TB, mod func(*Config)) *env {
	t.Helper()
	checkGoroutines(t)
	la, lb := seqPair(t, 1500)
	g, err := host.NewDriver(newEngine(t, engine.Config{Addrs: []netip.Addr{guestIP}, Seed: 1}), la, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	cfg := Config{Gateway: gatewayIP, Network: network, DNS: dnsIP, Guest: guestIP, DialTimeout: 2 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	fe := newEngine(t, engine.Config{Addrs: []netip.Addr{gatewayIP}, Seed: 2, Forward: true, Backlog: 1024})
	f, err := Start(fe, lb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return &env{guest: g, fwd: f}
}

// dial connects from the guest.
func (e *env) dial(t testing.TB, dst netip.AddrPort) *host.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.guest.DialTCP(ctx, dst)
	if err != nil {
		t.Fatalf("dial %v: %v", dst, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return c
}

// dialReset dials dst, whose connection the Forwarder is to reset, and
// returns the error that shows it: the first read's, or the dial's when the
// reset came before the dialing goroutine saw the handshake done (as a
// kernel's connect(2) reports a reset that beat it, RFC 9293 §3.10.7.3).
func (e *env) dialReset(t testing.TB, dst netip.AddrPort) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := e.guest.DialTCP(ctx, dst)
	if err != nil {
		return err
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	_, err = c.Read(make([]byte, 1))
	return err
}

// quiet waits until the Forwarder relays nothing.
func (e *env) quiet(t testing.TB) Stats {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		st := e.fwd.Stats()
		if st.Active == 0 {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("still %d connections relayed: %+v", st.Active, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// server is a loopback listener whose connections go to handle.
func server(t testing.TB, handle func(c *net.TCPConn)) netip.AddrPort {
	t.Helper()
	return testkit.Server(t, "127.0.0.1", 30*time.Second, handle)
}

// echo sends back what it reads and passes the half-close on.
var echo = testkit.Echo

// freePort returns a loopback port nothing listens on.
func freePort(t testing.TB) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := netip.MustParseAddrPort(ln.Addr().String()).Port()
	ln.Close()
	return p
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// roundTrip writes data on c, half-closes, reads to the end and checks the
// echo by SHA-256.
func roundTrip(t testing.TB, c net.Conn, data []byte) {
	t.Helper()
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(interface{ CloseWrite() error }).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v after %d of %d bytes", err, len(got), len(data))
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("echo differs: %d bytes back of %d", len(got), len(data))
	}
}

// mustReset checks that err is a reset.
func mustReset(t testing.TB, err error, what string) {
	t.Helper()
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("%s: %v, want a reset (ECONNRESET)", what, err)
	}
}

// checkGoroutines fails the test if goroutines started during it are still
// running a few seconds after it ended (its cleanups done).
var checkGoroutines = testkit.CheckGoroutines

func engineCfg(fwd bool) engine.Config {
	return engine.Config{Addrs: []netip.Addr{gatewayIP}, Forward: fwd}
}

// blackHole returns a loopback address whose connects hang: a listener with
// a backlog of one that accepts nothing, its queue filled by one connection,
// so the kernel drops further SYNs.
func blackHole(t testing.TB) netip.AddrPort {
	t.Helper()
	fd, addr, err := listenTCP(netip.MustParseAddrPort("127.0.0.1:0"))
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	for range 2 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			break // the queue is full
		}
		t.Cleanup(func() { c.Close() })
	}
	return addr
}
