package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/host/forward"
	"github.com/tcpeng/tcpeng/host/netns"
	"github.com/tcpeng/tcpeng/internal/testkit"
)

var (
	iperfBytes   = flag.Int("forward.iperf", defaultIperf, "bytes of each iperf3 run of the forward test")
	forwardBytes = flag.Int("forward.bytes", defaultEchoBytes/2, "bytes each way of the forward echo test")
)

// startForwardNS runs forward --netns ns in-process with args until the test
// ends (or stop); it returns once forward is ready. Stopping expects exit 0
// and an empty stderr, and checks the device is gone.
func startForwardNS(t *testing.T, ns string, args ...string) (*forwardSession, func()) {
	t.Helper()
	var o forwardOptions
	if err := forwardFlags(&o).Parse(append([]string{"--netns", ns}, args...)); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(t, ns)
	return startSession(t, "forward", func(ctx context.Context, stdout, stderr io.Writer, ready func(*forwardSession)) int {
		return forwardMain(ctx, nil, &o, stdout, stderr, ready)
	}, func() {
		before.same(t, "after forward")
		if r := mustRun(t, "ip", "-n", ns, "route", "show"); r != "" {
			t.Errorf("routes left in %s: %s", ns, r)
		}
	})
}

// hostServer listens on addr:0 of the host and serves each connection with
// handle until the test ends.
func hostServer(t *testing.T, addr string, handle func(c *net.TCPConn)) netip.AddrPort {
	t.Helper()
	return testkit.Server(t, addr, 60*time.Second, handle)
}

var echoHandler = testkit.Echo

// dialNS connects from inside ns.
func dialNS(t *testing.T, ns, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	err := netns.Do(ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, 10*time.Second)
		return err
	})
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, ns, err)
	}
	c.SetDeadline(time.Now().Add(120 * time.Second))
	return c
}

// echoRoundTrip sends n random bytes through c and checks the echo by SHA-256.
func echoRoundTrip(t *testing.T, c net.Conn, n int) {
	t.Helper()
	data := make([]byte, n)
	for i := 0; i < n; i += 8 {
		binary.LittleEndian.PutUint64(data[i:], uint64(i)*0x9e3779b97f4a7c15)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		if err == nil {
			err = c.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	h := sha256.New()
	got, err := io.Copy(h, c)
	if err != nil || got != int64(n) {
		t.Fatalf("echo: %d bytes back of %d: %v", got, n, err)
	}
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if want := sha256.Sum256(data); !bytes.Equal(h.Sum(nil), want[:]) {
		t.Fatal("echo differs")
	}
}

// hostAddr returns a non-loopback IPv4 address of the host, if it has one.
func hostAddr() (netip.Addr, bool) {
	ifs, _ := net.Interfaces()
	for _, i := range ifs {
		if i.Flags&net.FlagUp == 0 || i.Flags&net.FlagLoopback != 0 || strings.HasPrefix(i.Name, "tcpeng") {
			continue
		}
		addrs, _ := i.Addrs()
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				return p.Addr(), true
			}
		}
	}
	return netip.Addr{}, false
}

// iperf runs iperf3 -s on the host at addr and iperf3 -c to target from ns
// with extra flags, and returns the bits per second received; the bytes
// sent and received must match.
func iperf(t *testing.T, ns, bind, target string, extra ...string) float64 {
	t.Helper()
	needTool(t, "iperf3", "iperf3")
	port := strconv.Itoa(int(freeHostPort(t)))
	srv := exec.Command("iperf3", "-s", "-1", "--forceflush", "-B", bind, "-p", port)
	var srvOut syncBuffer
	srv.Stdout, srv.Stderr = &srvOut, &srvOut
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if srv.ProcessState == nil {
			srv.Process.Kill()
			srv.Wait()
		}
	}()
	// -1 serves one client: do not knock on its port to see it is up.
	if !waitFor(5*time.Second, func() bool { return strings.Contains(srvOut.String(), "Server listening") }) {
		t.Fatalf("iperf3 -s did not start: %s", srvOut.String())
	}
	out := inNS(t, ns, nil, "iperf3", append([]string{"-c", target, "-p", port, "-J", "-n", strconv.Itoa(*iperfBytes)}, extra...)...)
	var r struct {
		End struct {
			SumSent     struct{ Bytes, BitsPerSecond float64 } `json:"sum_sent"`
			SumReceived struct {
				Bytes         float64
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(out, &r); err != nil || r.Error != "" {
		t.Fatalf("iperf3: %v %s", err, r.Error)
	}
	// iperf3 ends the test on the control connection, which may overtake
	// the last bytes of the data connections still buffered in the relay
	// (the engine's and the sockets' buffers, a few MB per connection): the
	// receiver's count can fall short of the sender's by that much, 16 MiB
	// allowed per connection (-P 4 once fell 19.5 MB short of 256 MiB). The
	// bytes themselves are checked by SHA-256 in the curl and echo subtests.
	streams := 1
	for i := 0; i+1 < len(extra); i++ {
		if n, err := strconv.Atoi(extra[i+1]); extra[i] == "-P" && err == nil && n > 0 {
			streams = n
		}
	}
	s, g := r.End.SumSent.Bytes, r.End.SumReceived.Bytes
	if s < float64(*iperfBytes) || g > s || g < s-float64(streams<<24) {
		t.Fatalf("iperf3 %v: sent %.0f bytes, received %.0f", extra, s, g)
	}
	t.Logf("iperf3 %v to %s: %.0f bytes, %.2f Gbit/s", extra, target, g, r.End.SumReceived.BitsPerSecond/1e9)
	return r.End.SumReceived.BitsPerSecond
}

func freeHostPort(t *testing.T) uint16 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return netip.MustParseAddrPort(ln.Addr().String()).Port()
}

// dnsServer answers A queries over TCP for one name (RFC 1035 §4.2.2: each
// message has a two-byte length in front).
func dnsServer(t *testing.T, name string, a [4]byte) netip.AddrPort {
	return hostServer(t, "127.0.0.1", func(c *net.TCPConn) {
		for {
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				return
			}
			q := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(c, q); err != nil || len(q) < 12 {
				return
			}
			// The question: QNAME labels, QTYPE, QCLASS.
			i := 12
			var labels []string
			for i < len(q) && q[i] != 0 {
				n := int(q[i])
				if i+1+n > len(q) {
					return
				}
				labels = append(labels, string(q[i+1:i+1+n]))
				i += 1 + n
			}
			if i+5 > len(q) {
				return
			}
			qtype := binary.BigEndian.Uint16(q[i+1:])
			question := q[12 : i+5]
			resp := append([]byte{}, q[:2]...)                      // ID
			resp = append(resp, 0x81, 0x80, 0, 1, 0, 0, 0, 0, 0, 0) // QR RD RA, 1 question
			rcode, answer := byte(3), []byte(nil)                   // NXDOMAIN
			if strings.EqualFold(strings.Join(labels, "."), name) {
				rcode = 0
				if qtype == 1 {
					answer = append([]byte{0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4}, a[:]...)
					resp[7] = 1
				}
			}
			resp[3] |= rcode
			resp = append(resp, question...)
			resp = append(resp, answer...)
			binary.BigEndian.PutUint16(l[:], uint16(len(resp)))
			c.Write(append(l[:], resp...))
		}
	})
}

// TestForwardNetns serves a namespace the test made and checks what goes
// through: HTTP both ways, echo, iperf3, port forwarding, DNS over TCP,
// refusals, resets and many connections at once. The device and its route
// are gone afterwards.
func TestForwardNetns(t *testing.T) {
	needTool(t, "curl", "curl")
	ns := newNS(t)
	dir := t.TempDir()
	blob, want := randomFile(t, dir, "blob.bin", 5<<20+3)
	mux := http.NewServeMux()
	mux.Handle("/", http.FileServer(http.Dir(dir)))
	mux.HandleFunc("/sha256", func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		io.Copy(h, r.Body)
		fmt.Fprint(w, hex.EncodeToString(h.Sum(nil)))
	})
	hs := &http.Server{Handler: mux}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(hln)
	defer hs.Close()
	httpPort := netip.MustParseAddrPort(hln.Addr().String()).Port()

	dnsUp := dnsServer(t, "box.tcpeng.test", [4]byte{192, 0, 2, 77})
	// A port forward into the namespace, to a listener there.
	hostPort := freeHostPort(t)
	var nsln net.Listener
	if err := netns.Do(ns, func() error {
		var err error
		nsln, err = net.Listen("tcp", "0.0.0.0:8080")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer nsln.Close()
	from := make(chan string, 4)
	go func() {
		for {
			c, err := nsln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				from <- c.RemoteAddr().String()
				echoHandler(c.(*net.TCPConn))
			}()
		}
	}()

	s, _ := startForwardNS(t, ns, "--dns-upstream", dnsUp.String(), "-p", fmt.Sprintf("%d:8080", hostPort))

	t.Run("curl", func(t *testing.T) {
		url := fmt.Sprintf("http://10.0.2.2:%d/", httpPort)
		if got := inNS(t, ns, nil, "curl", "-sS", "--fail", "--max-time", "30", url+"blob.bin"); sha(got) != want {
			t.Fatalf("download: %d bytes, sha256 %s, want %s", len(got), sha(got), want)
		}
		if got := inNS(t, ns, nil, "curl", "-sS", "--fail", "--max-time", "30", "--data-binary", "@"+blob, url+"sha256"); string(got) != want {
			t.Fatalf("upload: the host read sha256 %s, want %s", got, want)
		}
	})
	t.Run("echo", func(t *testing.T) {
		srv := hostServer(t, "127.0.0.1", echoHandler)
		c := dialNS(t, ns, fmt.Sprintf("10.0.2.2:%d", srv.Port()))
		defer c.Close()
		echoRoundTrip(t, c, *forwardBytes)
		if a, ok := hostAddr(); ok {
			srv := hostServer(t, a.String(), echoHandler)
			c := dialNS(t, ns, srv.String())
			defer c.Close()
			echoRoundTrip(t, c, *forwardBytes)
		}
	})
	t.Run("iperf3", func(t *testing.T) {
		iperf(t, ns, "127.0.0.1", "10.0.2.2")
		iperf(t, ns, "127.0.0.1", "10.0.2.2", "-R")
		iperf(t, ns, "127.0.0.1", "10.0.2.2", "-P", "4")
		a, ok := hostAddr()
		if !ok {
			t.Skip("the host has no non-loopback IPv4 address: iperf3 through it skipped")
		}
		iperf(t, ns, a.String(), a.String())
		iperf(t, ns, a.String(), a.String(), "-R")
	})
	t.Run("port-forward", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", hostPort), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		echoRoundTrip(t, c, 4<<20)
		if f := <-from; !strings.HasPrefix(f, "10.0.2.2:") {
			t.Errorf("the namespace saw the connection from %s, want 10.0.2.2", f)
		}
	})
	t.Run("dns-over-tcp", func(t *testing.T) {
		// The resolver dials from goroutines of its own: each dial enters
		// the namespace.
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (c net.Conn, err error) {
			err = netns.Do(ns, func() error {
				var d net.Dialer
				c, err = d.DialContext(ctx, "tcp", "10.0.2.3:53")
				return err
			})
			return c, err
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		addrs, err := r.LookupHost(ctx, "box.tcpeng.test")
		if err != nil || !slices.Equal(addrs, []string{"192.0.2.77"}) {
			t.Fatalf("lookup: %v %v, want [192.0.2.77]", addrs, err)
		}
	})
	t.Run("refused-and-reset", func(t *testing.T) {
		before := s.fwd.Stats()
		// The reset may come before connect(2) returns.
		var c net.Conn
		err := netns.Do(ns, func() error {
			var err error
			c, err = net.DialTimeout("tcp", fmt.Sprintf("10.0.2.2:%d", freeHostPort(t)), 10*time.Second)
			return err
		})
		if err == nil {
			c.SetDeadline(time.Now().Add(10 * time.Second))
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read from a refused destination: %v, want ECONNRESET", err)
		}
		srv := hostServer(t, "127.0.0.1", func(c *net.TCPConn) {
			io.ReadFull(c, make([]byte, 4))
			c.SetLinger(0)
			c.Close()
		})
		c = dialNS(t, ns, fmt.Sprintf("10.0.2.2:%d", srv.Port()))
		c.Write([]byte("ping"))
		_, err = c.Read(make([]byte, 1))
		c.Close()
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("read after the host side's reset: %v, want ECONNRESET", err)
		}
		// A half-close passes through: the host answers after the EOF.
		srv2 := hostServer(t, "127.0.0.1", func(c *net.TCPConn) {
			b, _ := io.ReadAll(c)
			fmt.Fprintf(c, "%d", len(b))
		})
		c = dialNS(t, ns, fmt.Sprintf("10.0.2.2:%d", srv2.Port()))
		c.Write(make([]byte, 12345))
		c.(*net.TCPConn).CloseWrite()
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || string(b) != "12345" {
			t.Fatalf("answer after half-close: %q %v", b, err)
		}
		// The relays count their resets as they end, a moment after the
		// namespace's side saw them.
		var after forward.Stats
		waitFor(5*time.Second, func() bool {
			after = s.fwd.Stats()
			return after.Refused == before.Refused+1 && after.Resets >= before.Resets+1
		})
		if after.Refused != before.Refused+1 || after.Resets < before.Resets+1 {
			t.Errorf("stats before %+v after %+v: want one more refused, a reset carried", before, after)
		}
	})
	t.Run("1000-connections", func(t *testing.T) {
		srv := hostServer(t, "127.0.0.1", echoHandler)
		n := *manyConns
		conns := dialMany(t, ns, n, fmt.Sprintf("10.0.2.2:%d", srv.Port()))
		if !waitFor(10*time.Second, func() bool { return s.fwd.Stats().Active >= int64(n) }) {
			t.Fatalf("%d relayed at once, want %d", s.fwd.Stats().Active, n)
		}
		echoEach(t, conns)
	})
	t.Logf("forwarder: %+v", s.fwd.Stats())
	t.Logf("device: %+v", s.dev.Stats())
}

// Command mode: CMD runs in a new namespace with its network, its exit status
// comes back, and nothing is left when it is done.
func TestForwardCommand(t *testing.T) {
	needKernel(t)
	needTool(t, "curl", "curl")
	dir := t.TempDir()
	_, want := randomFile(t, dir, "blob.bin", 2<<20)
	hs := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	hln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(hln)
	defer hs.Close()
	port := netip.MustParseAddrPort(hln.Addr().String()).Port()
	before := takeSnapshot(t, "")

	script := fmt.Sprintf(`curl -sS --fail --max-time 30 http://10.0.2.2:%d/blob.bin | sha256sum; readlink /proc/self/ns/net; ip -4 -br addr show tcpeng0; ip route`, port)
	code, out, errs := tcpeng("forward", "--", "sh", "-c", script)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], want+" ") || !strings.HasPrefix(lines[1], "net:[") ||
		strings.Join(strings.Fields(lines[2]), " ") != "tcpeng0 UNKNOWN 10.0.2.100/24" ||
		lines[3] != "default via 10.0.2.2 dev tcpeng0 " || !strings.HasPrefix(lines[4], "10.0.2.0/24 dev tcpeng0 proto kernel scope link src 10.0.2.100") {
		t.Fatalf("the command printed:\n%s\nwant the sha256 %s, its namespace, tcpeng0's address and the routes", out, want)
	}
	// The namespace is gone: nothing of this process refers to it any more,
	// and the command's process is gone.
	nsID := lines[1]
	self, _ := os.Readlink("/proc/self/ns/net")
	if nsID == self {
		t.Fatalf("the command ran in the test's own namespace %s", self)
	}
	fds, _ := os.ReadDir("/proc/self/fd")
	for _, fd := range fds {
		if l, _ := os.Readlink("/proc/self/fd/" + fd.Name()); l == nsID {
			t.Errorf("fd %s still holds the namespace %s", fd.Name(), nsID)
		}
	}
	before.same(t, "after the command")

	for _, c := range []struct {
		script string
		code   int
	}{{"exit 7", 7}, {"kill -TERM $$", 128 + 15}, {"true", 0}} {
		if code, _, errs := tcpeng("forward", "--", "sh", "-c", c.script); code != c.code || errs != "" {
			t.Errorf("%q: exit %d, stderr %q; want exit %d", c.script, code, errs, c.code)
		}
	}
	// Without "--" the command is taken all the same.
	if code, out, _ := tcpeng("forward", "sh", "-c", "echo ok"); code != 0 || out != "ok\n" {
		t.Errorf("without --: exit %d, stdout %q", code, out)
	}
	// The same download with the loop not spinning (it spins by default),
	// and with the engine as WebAssembly.
	script = fmt.Sprintf(`curl -sS --fail --max-time 30 http://10.0.2.2:%d/blob.bin | sha256sum`, port)
	if code, out, errs := tcpeng("forward", "--spin=false", "--", "sh", "-c", script); code != 0 || errs != "" || !strings.HasPrefix(out, want+" ") {
		t.Errorf("--spin=false: exit %d, stdout %q, stderr %q; want the sha256 %s", code, out, errs, want)
	}
	useWasm(t)
	if code, out, errs := tcpeng("forward", "--engine", "wasm", "--", "sh", "-c", script); code != 0 || errs != "" || !strings.HasPrefix(out, want+" ") {
		t.Errorf("--engine wasm: exit %d, stdout %q, stderr %q; want the sha256 %s", code, out, errs, want)
	}
	before.same(t, "after the command on the wasm engine")
}

// Bad input: one line on stderr, the right exit code, nothing left behind.
func TestForwardErrors(t *testing.T) {
	ns := newNS(t)
	mustRun(t, "ip", "-n", ns, "tuntap", "add", "mode", "tun", "name", "tcpeng0")
	ns2 := newNS(t)
	before := takeSnapshot(t, ns)
	before2 := takeSnapshot(t, ns2)
	missing := nsPrefix + "missing"
	busyPort := hostServer(t, "127.0.0.1", func(*net.TCPConn) {})
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--netns", ns}, exitFail,
			`tcpeng forward: tun: device "tcpeng0" in namespace "` + ns + `": create: file exists: the name is taken: choose another name, or remove it with ` +
				"`ip link del tcpeng0` in `ip netns exec " + ns + "`, or attach to it (Attach)"},
		{[]string{"--netns", missing}, exitFail,
			`tcpeng forward: namespace "` + missing + `" does not exist: create it with ` + "`ip netns add " + missing + "`, or give a command to run in a new one"},
		{[]string{"--netns", ns2, "-p", busyPort.String()[len("127.0.0.1:"):] + ":80"}, exitFail,
			"tcpeng forward: -p " + busyPort.String() + ":80: listen tcp " + busyPort.String() + ": bind: address already in use"},
		{[]string{"--netns", ns2, "--", "true"}, exitUsage, "tcpeng forward: give --netns NS or a command, not both (the command would run in a new namespace)"},
		{[]string{}, exitUsage, "tcpeng forward: give --netns NS (an existing namespace) or -- CMD [ARGS...] (run CMD in a new one)"},
		{[]string{"--netns", ns2, "--addr", "10.0.3.100/24"}, exitUsage, "tcpeng forward: --gateway 10.0.2.2 must be another address of the namespace's network 10.0.3.0/24"},
		{[]string{"--netns", ns2, "--addr", "10.0.2.0/24"}, exitUsage, "tcpeng forward: --addr 10.0.2.0/24 cannot be a host's address: give a unicast address that is not the network's"},
		{[]string{"--netns", ns2, "--gateway", "x"}, exitUsage, `tcpeng forward: --gateway "x" is not a unicast IPv4 address: give one like 10.0.2.2`},
		{[]string{"--netns", ns2, "--dns", "10.0.2.2"}, exitUsage, "tcpeng forward: --dns 10.0.2.2 must differ from --addr and --gateway"},
		{[]string{"--netns", ns2, "-p", "80"}, exitUsage, `tcpeng forward: invalid value "80" for flag -p: "80" is not HOSTPORT:NSPORT or HOSTIP:HOSTPORT:NSPORT (tcpeng forward -h lists the flags)`},
		{[]string{"--netns", ns2, "-p", "0:80"}, exitUsage, `tcpeng forward: invalid value "0:80" for flag -p: "0:80": ports must be 1 to 65535 (tcpeng forward -h lists the flags)`},
		{[]string{"--netns", ns2, "-p", "::1:80:80"}, exitUsage, `tcpeng forward: invalid value "::1:80:80" for flag -p: "::1:80:80" is not HOSTPORT:NSPORT or HOSTIP:HOSTPORT:NSPORT (tcpeng forward -h lists the flags)`},
		{[]string{"--netns", ns2, "--mtu", "70000"}, exitUsage, "tcpeng forward: --mtu 70000 is out of range: give 576 to 65535"},
		{[]string{"--netns", ns2, "--dns-upstream", "nowhere"}, exitUsage, `tcpeng forward: --dns-upstream "nowhere" is not IP:PORT: give one like 192.0.2.53:53`},
		{[]string{"--netns", ns2, "--engine", "bogus"}, exitUsage, `tcpeng forward: --engine "bogus" is not known: give one of ` + engineNames()},
		{[]string{"--netns", ns2, "--bogus"}, exitUsage, "tcpeng forward: flag provided but not defined: -bogus (tcpeng forward -h lists the flags)"},
		{[]string{"--", "tcpeng-no-such-command"}, exitUsage, `tcpeng forward: command "tcpeng-no-such-command": executable file not found in $PATH`},
		{[]string{"--netns", ns2, "--pcap", "/nonexistent/x.pcap"}, exitFail, "tcpeng forward: --pcap: open /nonexistent/x.pcap: no such file or directory"},
	} {
		code, out, errs := tcpeng(append([]string{"forward"}, c.args...)...)
		if code != c.code || out != "" || errs != c.want+"\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr\n got %q\nwant %q (exit %d)", c.args, code, out, errs, c.want+"\n", c.code)
		}
		before.same(t, fmt.Sprint(c.args))
		before2.same(t, fmt.Sprint(c.args))
		if r := mustRun(t, "ip", "-n", ns2, "route", "show"); r != "" {
			t.Errorf("%q: routes left in %s: %s", c.args, ns2, r)
		}
	}
}

// Without privileges forward says what is missing, in one line.
func TestForwardUnprivileged(t *testing.T) {
	ns := newNS(t)
	checkUnprivileged(t, ns, []argsWant{
		{[]string{"forward", "--", "true"},
			"tcpeng forward: forward: create a network namespace: operation not permitted: run as root (a network namespace needs CAP_SYS_ADMIN)"},
		{[]string{"forward", "--netns", ns},
			`tcpeng forward: tun: enter "` + ns + `": operation not permitted: run as root (network namespaces need CAP_SYS_ADMIN)`},
	})
}

// forward as a process: SIGTERM and SIGINT stop --netns mode cleanly; in
// command mode SIGTERM goes to the command, whose status comes back.
func TestForwardSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run("netns-"+sig.String(), func(t *testing.T) {
			ns := newNS(t)
			stopBySignal(t, ns, sig, func() {
				if got := links(t, ns); !slices.Equal(got, []string{"lo", "tcpeng0"}) {
					t.Fatalf("devices while running: %q", got)
				}
			}, "forward", "--netns", ns)
		})
	}
	t.Run("command-SIGTERM", func(t *testing.T) {
		needKernel(t)
		before := takeSnapshot(t, "")
		cmd, stdout, stderr := child(t, nil, "forward", "--", "sh", "-c", "echo started; exec sleep 30")
		if !waitFor(10*time.Second, func() bool { return strings.Contains(stdout.String(), "started") }) {
			t.Fatalf("command not started: stdout %q stderr %q", stdout.String(), stderr.String())
		}
		start := time.Now()
		cmd.Process.Signal(syscall.SIGTERM)
		if code := exitStatus(t, cmd, 10*time.Second); code != 128+15 {
			t.Fatalf("exit %d, want 143 (the command's SIGTERM); stderr %q", code, stderr.String())
		}
		if el := time.Since(start); el > 5*time.Second {
			t.Errorf("took %v to stop", el)
		}
		before.same(t, "after SIGTERM")
	})
}

func TestForwardHelp(t *testing.T) {
	helpMentions(t, "forward", "-netns", "-tun", "-mtu", "-offload", "-addr", "-gateway", "-dns", "-dns-upstream", "-p ", "-max-conns",
		"-dial-timeout", "-engine", "-pcap", "-spin", "10.0.2.2", "UDP", "use-vc", "Examples")
}
