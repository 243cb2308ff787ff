package host_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
)

func TestEcho(t *testing.T) {
	e := newEnv(t, nil)
	ln, err := e.b.Listen("tcp", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if got := ln.Addr().String(); got != "10.0.0.2:7" {
		t.Fatalf("listener address %s, want 10.0.0.2:7", got)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		io.Copy(c, c)
	}()
	c, err := e.a.Dial("tcp", "10.0.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	la, ra := c.LocalAddr().(*net.TCPAddr), c.RemoteAddr().(*net.TCPAddr)
	if !la.IP.Equal(ipA.AsSlice()) || la.Port < 49152 || ra.String() != "10.0.0.2:7" {
		t.Fatalf("addresses %v -> %v, want 10.0.0.1:ephemeral -> 10.0.0.2:7", la, ra)
	}
	for _, msg := range []string{"hello, tcpeng", "a second line", string(pattern(100000, 1))} {
		if _, err := c.Write([]byte(msg)); err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(msg))
		if _, err := io.ReadFull(c, got); err != nil {
			t.Fatal(err)
		}
		if string(got) != msg {
			t.Fatalf("echo of %d bytes differs", len(msg))
		}
	}
}

// TestBulk sends 16 MiB each way at once and checks both by hash.
func TestBulk(t *testing.T) {
	e := newEnv(t, nil)
	client, server := e.pair(t)
	const size = 16 << 20
	up, down := pattern(size, 1), pattern(size, 2)
	var wg sync.WaitGroup
	sum := func(c *host.Conn, out *[32]byte, n *int64) {
		defer wg.Done()
		h := sha256.New()
		*n, _ = io.Copy(h, c)
		copy(out[:], h.Sum(nil))
	}
	send := func(c *host.Conn, data []byte) {
		defer wg.Done()
		if _, err := c.Write(data); err != nil {
			t.Error(err)
		}
		if err := c.CloseWrite(); err != nil {
			t.Error(err)
		}
	}
	var gotUp, gotDown [32]byte
	var nUp, nDown int64
	wg.Add(4)
	start := time.Now()
	go sum(server, &gotUp, &nUp)
	go sum(client, &gotDown, &nDown)
	go send(client, up)
	go send(server, down)
	wg.Wait()
	el := time.Since(start)
	if nUp != size || nDown != size || gotUp != sha256.Sum256(up) || gotDown != sha256.Sum256(down) {
		t.Fatalf("received %d and %d bytes; hashes match: %v %v", nUp, nDown, gotUp == sha256.Sum256(up), gotDown == sha256.Sum256(down))
	}
	sa, sb := e.a.Stats(), e.b.Stats()
	t.Logf("2×16 MiB in %v (%.0f MiB/s each way); A: %d steps, %d frames in, %d out; B: %d steps, %d in, %d out",
		el, float64(size)/(1<<20)/el.Seconds(), sa.Steps, sa.FramesIn, sa.FramesOut, sb.Steps, sb.FramesIn, sb.FramesOut)
}

func TestHalfClose(t *testing.T) {
	e := newEnv(t, nil)
	client, server := e.pair(t)
	request := pattern(300000, 3)
	if _, err := client.Write(request); err != nil {
		t.Fatal(err)
	}
	if err := client.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Write([]byte("x")); !errors.Is(err, syscall.EPIPE) {
		t.Fatalf("write after CloseWrite: %v, want EPIPE", err)
	}
	got, err := io.ReadAll(server)
	if err != nil || !bytes.Equal(got, request) {
		t.Fatalf("server read %d bytes, %v; want %d bytes and EOF", len(got), err, len(request))
	}
	// The server still writes after the client's FIN, then closes.
	reply := pattern(200000, 4)
	if _, err := server.Write(reply); err != nil {
		t.Fatal(err)
	}
	server.Close()
	got, err = io.ReadAll(client)
	if err != nil || !bytes.Equal(got, reply) {
		t.Fatalf("client read %d bytes, %v; want %d bytes and EOF", len(got), err, len(reply))
	}
	if n, err := client.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read after EOF: %d, %v; want 0, io.EOF", n, err)
	}
}

func TestReadDeadline(t *testing.T) {
	e := newEnv(t, nil)
	client, server := e.pair(t)
	buf := make([]byte, 100)

	// A deadline in the future fires while Read blocks.
	start := time.Now()
	client.SetReadDeadline(start.Add(50 * time.Millisecond))
	n, err := client.Read(buf)
	mustTimeout(t, err, "read")
	if el := time.Since(start); n != 0 || el < 50*time.Millisecond || el > 2*time.Second {
		t.Fatalf("read returned %d bytes after %v, want 0 after 50ms", n, el)
	}
	// A deadline in the past fails at once, even with data waiting.
	server.Write([]byte("ping"))
	time.Sleep(20 * time.Millisecond)
	_, err = client.Read(buf)
	mustTimeout(t, err, "read")
	// Extending the deadline makes the connection usable again.
	client.SetReadDeadline(time.Now().Add(time.Minute))
	if n, err := client.Read(buf); err != nil || string(buf[:n]) != "ping" {
		t.Fatalf("read after extending the deadline: %q, %v", buf[:n], err)
	}
	// Moving the deadline into the past wakes a blocked Read.
	client.SetReadDeadline(time.Time{})
	done := make(chan error, 1)
	go func() {
		_, err := client.Read(buf)
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	client.SetReadDeadline(time.Now().Add(-time.Second))
	select {
	case err := <-done:
		mustTimeout(t, err, "read")
	case <-time.After(5 * time.Second):
		t.Fatal("a blocked Read did not wake when its deadline moved into the past")
	}
	// Clearing the deadline: Read blocks until data comes.
	client.SetDeadline(time.Time{})
	go func() {
		time.Sleep(30 * time.Millisecond)
		server.Write([]byte("pong"))
	}()
	if n, err := client.Read(buf); err != nil || string(buf[:n]) != "pong" {
		t.Fatalf("read without deadline: %q, %v", buf[:n], err)
	}
}

func TestWriteDeadline(t *testing.T) {
	e := newEnv(t, nil)
	client, _ := e.pair(t) // the server never reads
	big := make([]byte, 8<<20)
	// Write under short deadlines until a whole deadline passes with no
	// progress: the window is then closed for good, however slow the machine.
	n := 0
	for {
		client.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		m, err := client.Write(big)
		mustTimeout(t, err, "write")
		n += m
		if m == 0 {
			break
		}
		if n > 2<<20 {
			t.Fatalf("write took %d bytes, more than the 2 MiB of buffer on both sides", n)
		}
	}
	// The engine's send buffer (1 MiB) and the peer's receive buffer (1 MiB)
	// take 2 MiB, less the tail under one MSS that the sender's silly window
	// avoidance holds back (RFC 9293 §3.8.6.2.1); then the window is closed.
	if n > 2<<20 || n < 2<<20-1460 {
		t.Fatalf("write took %d bytes before the deadline, want 2 MiB less under one MSS", n)
	}
	client.SetWriteDeadline(time.Time{})
	// The connection stays usable: a Write blocks (window closed) until Close.
	done := make(chan error, 1)
	go func() {
		_, err := client.Write(big)
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	client.SetWriteDeadline(time.Now())
	select {
	case err := <-done:
		mustTimeout(t, err, "write")
	case <-time.After(5 * time.Second):
		t.Fatal("a blocked Write did not wake when its deadline was set to now")
	}
}

func TestRefused(t *testing.T) {
	e := newEnv(t, nil)
	_, err := e.a.Dial("tcp", "10.0.0.2:81")
	var oe *net.OpError
	if !errors.Is(err, syscall.ECONNREFUSED) || !errors.Is(err, engine.ErrRefused) || !errors.As(err, &oe) {
		t.Fatalf("dial to a closed port: %v, want ECONNREFUSED in a *net.OpError", err)
	}
	if oe.Op != "dial" || oe.Net != "tcp" || oe.Addr.String() != "10.0.0.2:81" || oe.Timeout() {
		t.Fatalf("dial error %+v: want Op dial, Net tcp, Addr 10.0.0.2:81, not a timeout", oe)
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) || errno != syscall.ECONNREFUSED {
		t.Fatalf("errors.As(err, *syscall.Errno) = %v", errno)
	}
	t.Log(err)
}

func TestReset(t *testing.T) {
	e := newEnv(t, nil)
	client, server := e.pair(t)
	if _, err := client.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(server, buf); err != nil {
		t.Fatal(err)
	}
	server.SetLinger(0)
	server.Close() // RST
	_, err := client.Read(buf)
	var oe *net.OpError
	if !errors.Is(err, syscall.ECONNRESET) || !errors.Is(err, engine.ErrReset) || !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("read after the peer's reset: %v, want ECONNRESET in a read *net.OpError", err)
	}
	if _, err := client.Write([]byte("x")); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write after the peer's reset: %v, want ECONNRESET", err)
	}
	t.Log(err)

	// Closing with unread data resets too (RFC 2525 §2.17).
	client, server = e.pair(t)
	client.Write([]byte("unread"))
	time.Sleep(20 * time.Millisecond)
	server.Close()
	if _, err := client.Read(buf); !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after the peer closed with unread data: %v, want ECONNRESET", err)
	}
}

func TestManyConns(t *testing.T) {
	const n = 1000
	e := newEnv(t, func(c *engine.Config) { c.Backlog = 2 * n })
	ln, err := e.b.Listen("tcp", "10.0.0.2:9")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.Copy(c, c)
			}()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := e.a.Dial("tcp", "10.0.0.2:9")
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			msg := pattern(1000+i, byte(i))
			if _, err := c.Write(msg); err != nil {
				errs <- err
				return
			}
			got := make([]byte, len(msg))
			if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
				errs <- errors.Join(errors.New("echo differs"), err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d connections echoed in %v", n, time.Since(start))
}

func TestCloseUnblocks(t *testing.T) {
	e := newEnv(t, nil)
	_, server := e.pair(t)  // the server reads, the client writes nothing
	client2, _ := e.pair(t) // the client writes, the server reads nothing
	ln, err := e.b.Listen("tcp", ":99")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 3)
	go func() { _, err := server.Read(make([]byte, 10)); results <- err }()
	go func() { _, err := client2.Write(make([]byte, 8<<20)); results <- err }()
	go func() { _, err := ln.Accept(); results <- err }()
	time.Sleep(50 * time.Millisecond)
	server.Close()
	client2.Close()
	ln.Close()
	for range 3 {
		select {
		case err := <-results:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("blocked call after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Close did not unblock Read, Write and Accept")
		}
	}
	if err := client2.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v, want net.ErrClosed", err)
	}
	if _, err := client2.Read(make([]byte, 1)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Read after Close: %v, want net.ErrClosed", err)
	}
}

func TestDriverCloseUnblocks(t *testing.T) {
	e := newEnv(t, nil)
	client, server := e.pair(t)
	ln, err := e.b.Listen("tcp", ":99")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 4)
	go func() { _, err := server.Read(make([]byte, 10)); results <- err }()
	go func() { _, err := server.Write(make([]byte, 8<<20)); results <- err }()
	go func() { _, err := ln.Accept(); results <- err }()
	go func() {
		// A SYN into the void: B's engine is gone and A retries.
		_, err := e.a.Dial("tcp", "10.0.0.3:1")
		results <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := e.b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.a.Close(); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		select {
		case err := <-results:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("blocked call after Driver.Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Driver.Close did not unblock every call")
		}
	}
	if err := e.a.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Driver.Close: %v, want net.ErrClosed", err)
	}
	if _, err := client.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Driver.Close: %v, want net.ErrClosed", err)
	}
	if _, err := e.a.Dial("tcp", "10.0.0.2:99"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Dial after Driver.Close: %v, want net.ErrClosed", err)
	}
	if _, err := e.b.Listen("tcp", ":100"); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Listen after Driver.Close: %v, want net.ErrClosed", err)
	}
}

func TestDialContext(t *testing.T) {
	e := newEnv(t, nil)
	// Nobody answers at 10.0.0.3: the SYN goes unanswered until the context ends.
	// start before the context: the deadline is then at least 100 ms after
	// it, however long the test is descheduled in between (on a loaded
	// machine, under -race, it was 3 ms once).
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	_, err := e.a.DialContext(ctx, "tcp", "10.0.0.3:80")
	var ne net.Error
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial with an expiring context: %v, want context.DeadlineExceeded and a timeout", err)
	}
	if el := time.Since(start); el < 100*time.Millisecond || el > 3*time.Second {
		t.Fatalf("dial gave up after %v, want 100ms", el)
	}
	// Bad addresses fail before anything is sent.
	for _, addr := range []string{"example.com:80", "10.0.0.2", ":80", "10.0.0.2:99999"} {
		if _, err := e.a.Dial("tcp", addr); err == nil {
			t.Fatalf("Dial(%q) succeeded", addr)
		}
	}
	if _, err := e.a.Dial("udp", "10.0.0.2:80"); err == nil || !contains(err.Error(), "unknown network udp") {
		t.Fatalf("Dial(udp): %v", err)
	}
	// The engine refuses what it cannot do, with its reason.
	if _, err := e.b.Listen("tcp", "10.0.0.9:80"); !errors.Is(err, syscall.EADDRNOTAVAIL) {
		t.Fatalf("Listen on a foreign address: %v, want EADDRNOTAVAIL", err)
	}
	ln, err := e.b.Listen("tcp", "10.0.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if _, err := e.b.Listen("tcp", "10.0.0.2:80"); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("second Listen on a port: %v, want EADDRINUSE", err)
	}
}

func TestAddrs(t *testing.T) {
	e := newEnv(t, nil)
	client, server := e.pair(t)
	if client.LocalAddrPort() != server.RemoteAddrPort() || client.RemoteAddrPort() != server.LocalAddrPort() {
		t.Fatalf("addresses do not match: client %v->%v, server %v->%v",
			client.LocalAddrPort(), client.RemoteAddrPort(), server.LocalAddrPort(), server.RemoteAddrPort())
	}
	if client.LocalAddrPort().Addr() != ipA || server.LocalAddrPort().Addr() != ipB {
		t.Fatalf("local addresses %v, %v", client.LocalAddrPort(), server.LocalAddrPort())
	}
	if _, ok := client.LocalAddr().(*net.TCPAddr); !ok {
		t.Fatalf("LocalAddr is %T, want *net.TCPAddr", client.LocalAddr())
	}
	client.SetReadDeadline(time.Now())
	_, err := client.Read(make([]byte, 1))
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Source.String() != client.LocalAddr().String() || oe.Addr.String() != client.RemoteAddr().String() {
		t.Fatalf("read error %v: want Source and Addr set to the connection's addresses", err)
	}
	want := "read tcp " + client.LocalAddr().String() + "->" + client.RemoteAddr().String() + ": i/o timeout"
	if err.Error() != want {
		t.Fatalf("error text %q, want %q", err.Error(), want)
	}
}

func TestInspect(t *testing.T) {
	e := newEnv(t, nil)
	client, _ := e.pair(t)
	var st engine.Stats
	if err := e.a.Inspect(func(en engine.Engine) { st = en.(*engine.Stack).Stats() }); err != nil {
		t.Fatal(err)
	}
	if st.Conns != 1 {
		t.Fatalf("engine A holds %d connections, want 1", st.Conns)
	}
	var info engine.State
	id := client.ID()
	e.a.Inspect(func(en engine.Engine) {
		i, _ := en.(*engine.Stack).Info(id)
		info = i.State
	})
	if info != engine.StateEstablished {
		t.Fatalf("state %v, want ESTABLISHED", info)
	}
}

func TestDialTimedOut(t *testing.T) {
	e := newEnv(t, func(c *engine.Config) {
		c.InitialRTO, c.MinRTO, c.SynRetries = 10*engine.Millisecond, 10*engine.Millisecond, 2
	})
	// Nobody has 10.0.0.3: the SYN and its 2 retries go unanswered.
	_, err := e.a.Dial("tcp", "10.0.0.3:80")
	var ne net.Error
	if !errors.Is(err, syscall.ETIMEDOUT) || !errors.Is(err, engine.ErrTimedOut) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("dial into the void: %v, want ETIMEDOUT and a timeout", err)
	}
	t.Log(err)
}

// TestListenAfterClose: once Listener.Close returns, the address is free for
// the next Listen, as with the kernel's sockets, even while another goroutine
// runs the engine (here a bulk transfer keeps it busy), which then carries
// the Close: the driver issues a batch's closes before its listens.
func TestListenAfterClose(t *testing.T) {
	e := newEnv(t, nil)
	c, s := e.pair(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(io.Discard, s)
	}()
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		data := make([]byte, 64<<10)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := c.Write(data); err != nil {
				return
			}
		}
	}()
	addr := netip.AddrPortFrom(ipB, 7070)
	for i := range 5000 {
		ln, err := e.b.ListenTCP(addr)
		if err != nil {
			t.Fatalf("listen %d after close: %v", i, err)
		}
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	<-writerDone
	c.Close()
	<-done
}
