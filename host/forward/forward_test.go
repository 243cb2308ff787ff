package forward

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestTarget(t *testing.T) {
	cfg := Config{Gateway: gatewayIP, Loopback: netip.MustParseAddr("127.0.0.1"), Network: network, DNS: dnsIP,
		DNSUpstream: netip.MustParseAddrPort("192.0.2.53:53")}
	noDNS := cfg
	noDNS.DNSUpstream = netip.AddrPort{}
	for _, c := range []struct {
		cfg  *Config
		dst  string
		want string
		err  string
	}{
		{&cfg, "10.0.2.2:8080", "127.0.0.1:8080", ""},
		{&cfg, "10.0.2.3:53", "192.0.2.53:53", ""},
		{&cfg, "203.0.113.9:443", "203.0.113.9:443", ""},
		{&cfg, "192.0.2.2:5201", "192.0.2.2:5201", ""},
		{&cfg, "10.0.2.3:80", "", "forward: destination not relayed: 10.0.2.3:80: the DNS relay serves port 53 only"},
		{&noDNS, "10.0.2.3:53", "", "forward: destination not relayed: 10.0.2.3:53: no DNS upstream (the host's resolv.conf names no nameserver)"},
		{&cfg, "10.0.2.77:80", "", "forward: destination not relayed: 10.0.2.77:80 is on the virtual network and is not the gateway"},
		{&cfg, "127.0.0.1:80", "", "forward: destination not relayed: 127.0.0.1:80 cannot be relayed"},
		{&cfg, "224.0.0.1:80", "", "forward: destination not relayed: 224.0.0.1:80 cannot be relayed"},
		{&cfg, "203.0.113.9:0", "", "forward: destination not relayed: 203.0.113.9:0 is not a destination"},
	} {
		got, err := c.cfg.Target(netip.MustParseAddrPort(c.dst))
		switch {
		case c.err == "" && (err != nil || got.String() != c.want):
			t.Errorf("%s: %v %v, want %s", c.dst, got, err, c.want)
		case c.err != "" && (err == nil || err.Error() != c.err || !errors.Is(err, ErrRejected)):
			t.Errorf("%s: %v %v, want error %q", c.dst, got, err, c.err)
		}
	}
}

// The guest's connection to the gateway reaches a loopback echo server; 8 MiB
// go each way, and the counters say so.
func TestRelayBothWays(t *testing.T) {
	e := newEnv(t, nil)
	srv := server(t, echo)
	c := e.dial(t, netip.AddrPortFrom(gatewayIP, srv.Port()))
	n := 8 << 20
	if raceEnabled {
		n = 1 << 20
	}
	roundTrip(t, c, randomBytes(n))
	st := e.quiet(t)
	if st.Accepted != 1 || st.Relayed != 1 || st.BytesOut != uint64(n) || st.BytesIn != uint64(n) || st.Resets != 0 {
		t.Fatalf("stats %+v, want 1 accepted and relayed, %d bytes each way, no resets", st, n)
	}
}

// A half-close goes through in both directions: each side reads the other's
// EOF and goes on writing.
func TestHalfClose(t *testing.T) {
	e := newEnv(t, nil)
	// The host side reads to the end, then answers.
	srv := server(t, func(c *net.TCPConn) {
		b, err := io.ReadAll(c)
		if err != nil {
			return
		}
		fmt.Fprintf(c, "got %d bytes", len(b))
	})
	c := e.dial(t, netip.AddrPortFrom(gatewayIP, srv.Port()))
	c.Write(bytes.Repeat([]byte("x"), 100_000))
	c.CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "got 100000 bytes" {
		t.Fatalf("read %q %v, want \"got 100000 bytes\"", got, err)
	}

	// The host side speaks first and half-closes; the guest answers after EOF.
	answer := make(chan string, 1)
	srv2 := server(t, func(c *net.TCPConn) {
		c.Write([]byte("hello"))
		c.CloseWrite()
		b, _ := io.ReadAll(c)
		answer <- string(b)
	})
	c2 := e.dial(t, netip.AddrPortFrom(gatewayIP, srv2.Port()))
	got, err = io.ReadAll(c2)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q %v, want hello", got, err)
	}
	c2.Write([]byte("world"))
	c2.Close()
	select {
	case a := <-answer:
		if a != "world" {
			t.Fatalf("host side read %q, want world", a)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("host side got no answer")
	}
	if st := e.quiet(t); st.Resets != 0 {
		t.Fatalf("resets %d, want 0", st.Resets)
	}
}

// A reset by the host's side resets the guest's connection, and the other way.
func TestResetPropagation(t *testing.T) {
	e := newEnv(t, nil)
	srv := server(t, func(c *net.TCPConn) {
		b := make([]byte, 5)
		io.ReadFull(c, b)
		c.SetLinger(0)
		c.Close()
	})
	c := e.dial(t, netip.AddrPortFrom(gatewayIP, srv.Port()))
	c.Write([]byte("hello"))
	_, err := c.Read(make([]byte, 10))
	mustReset(t, err, "guest read after the host side's reset")

	readErr := make(chan error, 1)
	srv2 := server(t, func(c *net.TCPConn) {
		_, err := io.ReadAll(c)
		readErr <- err
	})
	c2 := e.dial(t, netip.AddrPortFrom(gatewayIP, srv2.Port()))
	c2.Write([]byte("hello"))
	time.Sleep(50 * time.Millisecond) // let the bytes reach the host
	c2.SetLinger(0)
	c2.Close()
	select {
	case err := <-readErr:
		mustReset(t, err, "host read after the guest's reset")
	case <-time.After(10 * time.Second):
		t.Fatal("host side not reset")
	}
	if st := e.quiet(t); st.Resets != 2 {
		t.Fatalf("resets %d, want 2", st.Resets)
	}
}

// A destination that refuses resets the guest's connection, which the engine
// had accepted.
func TestRefused(t *testing.T) {
	var logged atomic.Value
	e := newEnv(t, func(c *Config) { c.Logf = func(f string, a ...any) { logged.Store(fmt.Sprintf(f, a...)) } })
	port := freePort(t)
	mustReset(t, e.dialReset(t, netip.AddrPortFrom(gatewayIP, port)), "read")
	st := e.quiet(t)
	if st.Refused != 1 || st.Relayed != 0 {
		t.Fatalf("stats %+v, want 1 refused", st)
	}
	want := fmt.Sprintf("-> 10.0.2.2:%d: reset: dial 127.0.0.1:%d: connect: connection refused", port, port)
	if l, _ := logged.Load().(string); !strings.HasSuffix(l, want) {
		t.Errorf("logged %q, want it to end with %q", l, want)
	}
}

// Destinations the mapping refuses are reset without a dial.
func TestRejected(t *testing.T) {
	dials := atomic.Int32{}
	e := newEnv(t, func(c *Config) {
		c.Redirect = func(dst netip.AddrPort) netip.AddrPort {
			dials.Add(1)
			return dst
		}
	})
	for _, dst := range []string{"10.0.2.77:80", "10.0.2.3:53", "10.0.2.3:80"} {
		mustReset(t, e.dialReset(t, netip.MustParseAddrPort(dst)), dst)
	}
	if st := e.quiet(t); st.Rejected != 3 || dials.Load() != 0 {
		t.Fatalf("stats %+v, %d dials; want 3 rejected, no dial", st, dials.Load())
	}
}

// A dial that does not finish within DialTimeout resets the guest's connection.
func TestDialTimeout(t *testing.T) {
	hole := blackHole(t)
	e := newEnv(t, func(c *Config) {
		c.DialTimeout = 200 * time.Millisecond
		c.Redirect = func(netip.AddrPort) netip.AddrPort { return hole }
	})
	c := e.dial(t, netip.MustParseAddrPort("203.0.113.9:80"))
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	mustReset(t, err, "read")
	if el := time.Since(start); el < 150*time.Millisecond || el > 3*time.Second {
		t.Errorf("reset after %v, want about 200ms", el)
	}
	if st := e.quiet(t); st.Refused != 1 {
		t.Fatalf("stats %+v, want 1 refused", st)
	}
}

// Past MaxConns, new connections are reset; the ones relayed go on.
func TestMaxConns(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConns = 2 })
	srv := server(t, echo)
	dst := netip.AddrPortFrom(gatewayIP, srv.Port())
	c1, c2 := e.dial(t, dst), e.dial(t, dst)
	for _, c := range []net.Conn{c1, c2} {
		c.Write([]byte("ping"))
		b := make([]byte, 4)
		if _, err := io.ReadFull(c, b); err != nil || string(b) != "ping" {
			t.Fatalf("echo %q %v", b, err)
		}
	}
	mustReset(t, e.dialReset(t, dst), "third connection")
	if st := e.fwd.Stats(); st.Limited != 1 || st.Active != 2 {
		t.Fatalf("stats %+v, want 1 limited, 2 active", st)
	}
	roundTrip(t, c1, []byte("still here"))
	roundTrip(t, c2, []byte("still here"))
	e.quiet(t)
}

// The host's connections to a port forward reach the guest's listener, from
// the gateway's address; a port the guest does not serve resets them.
func TestPortForward(t *testing.T) {
	e := newEnv(t, nil)
	ln, err := e.guest.ListenTCP(netip.AddrPortFrom(guestIP, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	from := make(chan netip.AddrPort, 1)
	go func() {
		c, err := ln.AcceptTCP()
		if err != nil {
			return
		}
		defer c.Close()
		from <- c.RemoteAddrPort()
		io.Copy(c, c)
		c.CloseWrite()
	}()
	addr, err := e.fwd.AddPort(netip.MustParseAddrPort("127.0.0.1:0"), 80)
	if err != nil {
		t.Fatal(err)
	}
	h, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.SetDeadline(time.Now().Add(20 * time.Second))
	n := 4 << 20
	if raceEnabled {
		n = 512 << 10
	}
	roundTrip(t, h, randomBytes(n))
	if f := <-from; f.Addr() != gatewayIP {
		t.Errorf("the guest saw the connection from %v, want the gateway %v", f, gatewayIP)
	}

	addr2, err := e.fwd.AddPort(netip.MustParseAddrPort("127.0.0.1:0"), 81)
	if err != nil {
		t.Fatal(err)
	}
	// The reset may come before connect(2) has returned.
	h2, err := net.Dial("tcp", addr2.String())
	if err == nil {
		defer h2.Close()
		h2.SetDeadline(time.Now().Add(20 * time.Second))
		_, err = h2.Read(make([]byte, 1))
	}
	mustReset(t, err, "port forward to a closed port")
	st := e.quiet(t)
	if st.Ported != 2 || st.Relayed != 1 || st.Refused != 1 {
		t.Fatalf("stats %+v, want 2 ported, 1 relayed, 1 refused", st)
	}
	if _, err := e.fwd.AddPort(netip.MustParseAddrPort(addr.String()), 80); err == nil {
		t.Errorf("a second forward of the same host port succeeded")
	}
}

// More distinct destinations than the driver interns local addresses for (255):
// each connection still reaches the destination it asked for.
func TestManyDestinations(t *testing.T) {
	srv := server(t, echo)
	var mu sync.Mutex
	seen := map[netip.AddrPort]int{}
	e := newEnv(t, func(c *Config) {
		c.Redirect = func(dst netip.AddrPort) netip.AddrPort {
			mu.Lock()
			seen[dst]++
			mu.Unlock()
			return srv
		}
	})
	n := 300
	for i := range n {
		dst := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i / 200), byte(1 + i%200)}), 443)
		c := e.dial(t, dst)
		roundTrip(t, c, []byte(dst.String()))
		c.Close()
	}
	e.quiet(t)
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Fatalf("%d distinct destinations dialed, want %d", len(seen), n)
	}
	for dst, k := range seen {
		if k != 1 || dst.Port() != 443 || dst.Addr().As4()[0] != 198 {
			t.Fatalf("destination %v dialed %d times", dst, k)
		}
	}
}

// Close resets what is relayed, on both sides, and returns.
func TestCloseResetsAll(t *testing.T) {
	e := newEnv(t, nil)
	hostErrs := make(chan error, 10)
	srv := server(t, func(c *net.TCPConn) {
		c.Write([]byte("hi"))
		_, err := io.ReadAll(c)
		hostErrs <- err
	})
	var conns []net.Conn
	for range 10 {
		c := e.dial(t, netip.AddrPortFrom(gatewayIP, srv.Port()))
		b := make([]byte, 2)
		if _, err := io.ReadFull(c, b); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if st := e.fwd.Stats(); st.Active != 10 {
		t.Fatalf("%d active, want 10", st.Active)
	}
	if err := e.fwd.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range conns {
		_, err := c.Read(make([]byte, 1))
		mustReset(t, err, "guest read after Close")
	}
	for range 10 {
		mustReset(t, <-hostErrs, "host read after Close")
	}
	if err := e.fwd.Close(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("second Close: %v, want net.ErrClosed", err)
	}
}

func TestParseNameserver(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{"nameserver 10.255.255.53\n", "10.255.255.53:53", ""},
		{"# comment\nsearch example.com\nnameserver 0.0.0.0\nnameserver   192.0.2.1 # first\nnameserver 192.0.2.2\n", "192.0.2.1:53", ""},
		{"nameserver fd00::53\n", "[fd00::53]:53", ""},
		{"nameserver bogus\noptions edns0\n", "", "no nameserver line"},
		{"", "", "no nameserver line"},
	} {
		got, err := ParseNameserver(strings.NewReader(c.in))
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("%q: %v %v, want error %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("%q: %v %v, want %s", c.in, got, err, c.want)
		}
	}
	if _, err := Nameserver("/nonexistent/resolv.conf"); err == nil || err.Error() != "forward: read the host's resolver: open /nonexistent/resolv.conf: no such file or directory" {
		t.Errorf("missing file: %v", err)
	}
}

// Start without Config.Forward fails and closes the link.
func TestStartNeedsForwardMode(t *testing.T) {
	checkGoroutines(t)
	_, lb := seqPair(t, 1500)
	_, err := Start(newEngine(t, engineCfg(false)), lb, Config{Gateway: gatewayIP})
	want := "forward: the engine refused the wildcard listener: run it with engine.Config.Forward"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
	if err := lb.WriteBatch(nil); !errors.Is(err, net.ErrClosed) {
		t.Errorf("the link is still open: %v", err)
	}
	_, lb = seqPair(t, 1500)
	if _, err := Start(newEngine(t, engineCfg(true)), lb, Config{}); err == nil ||
		err.Error() != "forward: the gateway address invalid IP is not IPv4: give the engine's address on the virtual network (10.0.2.2)" {
		t.Fatalf("error %v", err)
	}
}

// The loop spins only after payload crossed it (Config.Spin): connections
// opened and closed with no data never make it spin; an echoed byte does.
func TestSpinAfterPayload(t *testing.T) {
	if runtime.GOMAXPROCS(0) == 1 {
		t.Skip("GOMAXPROCS is 1: the loop never spins")
	}
	e := newEnv(t, func(c *Config) { c.Spin = true })
	srv := server(t, echo)
	dst := netip.AddrPortFrom(gatewayIP, srv.Port())
	for range 20 {
		c := e.dial(t, dst)
		c.CloseWrite()
		if n, err := c.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Fatalf("read after the half-close: %d, %v; want the echo server's EOF", n, err)
		}
		c.Close()
	}
	if st := e.quiet(t); st.Relayed != 20 || st.Spins != 0 {
		t.Fatalf("after 20 connections with no data: stats %+v, want 20 relayed and no spin", st)
	}
	c := e.dial(t, dst)
	for i := range 10 {
		if _, err := c.Write([]byte{byte(i)}); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil || b[0] != byte(i) {
			t.Fatalf("echo %d: %v, %v", i, b, err)
		}
	}
	c.Close()
	if st := e.quiet(t); st.Spins == 0 || st.BytesOut != 10 || st.BytesIn != 10 {
		t.Fatalf("after 10 echoed bytes: stats %+v, want spins and 10 bytes each way", st)
	}
}

// A host that does not read for a while fills its socket: the engine's data
// waits in the relay and the namespace's window closes; when the host reads
// again everything arrives, in order. The same with the loop spinning.
func TestSlowHostReader(t *testing.T) {
	for _, spin := range []bool{false, true} {
		e := newEnv(t, func(c *Config) { c.Spin = spin })
		n := 16 << 20
		if raceEnabled {
			n = 4 << 20
		}
		data := randomBytes(n)
		got := make(chan []byte, 1)
		srv := server(t, func(c *net.TCPConn) {
			time.Sleep(300 * time.Millisecond)
			b, _ := io.ReadAll(c)
			got <- b
		})
		c := e.dial(t, netip.AddrPortFrom(gatewayIP, srv.Port()))
		if _, err := c.Write(data); err != nil {
			t.Fatal(err)
		}
		c.Close()
		select {
		case b := <-got:
			if !bytes.Equal(b, data) {
				t.Fatalf("spin %v: the host read %d bytes, not the %d written", spin, len(b), n)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("spin %v: the host got nothing", spin)
		}
		if st := e.quiet(t); st.BytesOut != uint64(n) || st.Resets != 0 {
			t.Fatalf("spin %v: stats %+v", spin, st)
		}
	}
}

// The relay's data path allocates nothing once it runs: a bulk transfer
// through the loop costs no allocation per MiB (the guest's driver, the
// discarding host server and the loop counted together).
func TestRelayAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	e := newEnv(t, nil)
	srv := server(t, func(c *net.TCPConn) {
		b := make([]byte, 256<<10)
		for {
			if _, err := c.Read(b); err != nil {
				return
			}
		}
	})
	c := e.dial(t, netip.AddrPortFrom(gatewayIP, srv.Port()))
	chunk := randomBytes(64 << 10)
	write := func(n int) {
		for range n / len(chunk) {
			if _, err := c.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(16 << 20) // warm-up: buffers, free lists, goroutines
	// The engines' buffers take chunks as they reach new highs of
	// occupancy, which a relay's rhythm can still do after the warm-up: the
	// best of three windows counts.
	const n = 32 << 20
	best := math.Inf(1)
	for range 3 {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		write(n)
		runtime.ReadMemStats(&after)
		best = min(best, float64(after.Mallocs-before.Mallocs)/(n>>20))
	}
	if best > 0.1 {
		t.Errorf("%.2f allocations per MiB relayed, want none", best)
	}
}
