package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/host/netns"
	"github.com/tcpeng/tcpeng/host/pcap/pcaptest"
	"github.com/tcpeng/tcpeng/internal/chargen"
)

// Sizes of the kernel transfers (smaller under the race detector, which
// slows the engine tenfold: see tun_race_test.go).
var (
	echoBytes = flag.Int("serve.bytes", defaultEchoBytes, "bytes each way of the socat echo test")
	lossBytes = flag.Int("serve.lossbytes", defaultLossBytes, "bytes each way of the echo test with 5% loss (100 MiB take 80 to 100 s)")
	manyConns = flag.Int("serve.conns", 1000, "connections of the concurrent connections test")
)

// Kernel curl fetches a file from the engine's HTTP server; the content
// must be the file's.
func TestServeHTTPCurl(t *testing.T) {
	needTool(t, "curl", "curl")
	ns := newNS(t)
	dir := t.TempDir()
	_, want := randomFile(t, dir, "blob.bin", 3<<20+17)
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello, kernel\n"), 0o644)
	for _, tc := range []struct {
		name string
		args []string
	}{
		{"offload=false", nil},
		{"offload=true", []string{"--offload"}},
		{"engine=wasm", []string{"--offload", "--engine", "wasm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if strings.Contains(tc.name, "wasm") {
				useWasm(t)
			}
			startServe(t, ns, append([]string{"--http", "8080", "--root", dir}, tc.args...)...)
			got := inNS(t, ns, nil, "curl", "-sS", "--fail", "--max-time", "30", "http://10.7.0.2:8080/blob.bin")
			if sha(got) != want {
				t.Fatalf("curl got %d bytes, sha256 %s; want %s", len(got), sha(got), want)
			}
			if got := inNS(t, ns, nil, "curl", "-sS", "--fail", "http://10.7.0.2:8080/hello.txt"); string(got) != "hello, kernel\n" {
				t.Fatalf("curl got %q", got)
			}
			code := inNS(t, ns, nil, "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://10.7.0.2:8080/nothing-here")
			if string(code) != "404" {
				t.Fatalf("missing file: HTTP %s, want 404", code)
			}
		})
	}
}

// socatEcho sends n random bytes each way through serve's echo with socat
// and compares them by SHA-256.
func socatEcho(t *testing.T, ns string, n int, limit time.Duration) time.Duration {
	t.Helper()
	needTool(t, "socat", "socat")
	dir := t.TempDir()
	in, want := randomFile(t, dir, "in.bin", n)
	f, err := os.Open(in)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	start := time.Now()
	// -t: after the input's end, wait this long for the echo's end.
	got := inNS(t, ns, f, "timeout", fmt.Sprint(int(limit.Seconds())), "socat", "-t", fmt.Sprint(int(limit.Seconds())), "-", "TCP:10.7.0.2:7")
	el := time.Since(start)
	if sha(got) != want {
		t.Fatalf("echo: %d bytes back of %d, sha256 %s, want %s", len(got), n, sha(got), want)
	}
	t.Logf("%d bytes each way in %v (%.1f MB/s each way)", n, el.Round(time.Millisecond), float64(n)/el.Seconds()/1e6)
	return el
}

// 100 MiB each way through echo, with socat, plain and with offloads.
func TestServeEchoSocat(t *testing.T) {
	ns := newNS(t)
	for _, offload := range []bool{false, true} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			args := []string{}
			if offload {
				args = append(args, "--offload")
			}
			s := startServe(t, ns, args...)
			socatEcho(t, ns, *echoBytes, 120*time.Second)
			st := s.dev.Stats()
			if st.RxDropped != 0 || st.TxErrors != 0 {
				t.Errorf("device dropped %d, refused %d", st.RxDropped, st.TxErrors)
			}
			if offload && (st.RxGSO == 0 || st.TxGSO == 0) {
				t.Errorf("offload: %d super-packets in, %d out", st.RxGSO, st.TxGSO)
			}
		})
	}
}

// The same with 5% of the packets dropped at random in each direction by
// nftables in the namespace. The engine and the kernel recover by
// retransmission; 100 MiB each way took 79 to 96 s in three runs on the
// 2-core machine (1.1 to 1.3 MB/s each way; 90 to 110 s before the engine
// counted duplicate ACKs that carry data and resent lost retransmissions).
// The limit allows 0.4 MB/s.
func TestServeEchoSocatLoss(t *testing.T) {
	ns := newNS(t)
	startServe(t, ns)
	addLoss(t, ns, "tcpeng0", 5)
	socatEcho(t, ns, *lossBytes, 60*time.Second+time.Duration(*lossBytes/400_000)*time.Second)
	drops := nftDrops(t, ns)
	t.Logf("nftables: %s", drops)
	if !strings.Contains(drops, "counter packets") || strings.Contains(drops, "counter packets 0 ") {
		t.Errorf("the loss rules dropped nothing: %s", drops)
	}
}

// 1000 kernel connections to echo at once, each echoing its own bytes.
func TestServeConcurrent(t *testing.T) {
	ns := newNS(t)
	s := startServe(t, ns)
	echoEach(t, dialMany(t, ns, *manyConns, "10.7.0.2:7"))
	st := s.driver.Stats()
	t.Logf("driver: %+v", st)
}

// discard takes everything and closes after the client's FIN; chargen sends
// the RFC 864 pattern.
func TestServeDiscardChargen(t *testing.T) {
	ns := newNS(t)
	startServe(t, ns, "--offload")
	err := netns.Do(ns, func() error {
		c, err := net.DialTimeout("tcp", "10.7.0.2:9", 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		if _, err := c.Write(make([]byte, 16<<20)); err != nil {
			return err
		}
		c.(*net.TCPConn).CloseWrite()
		if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
			return fmt.Errorf("discard answered %d bytes, %v", len(b), err)
		}

		g, err := net.DialTimeout("tcp", "10.7.0.2:19", 5*time.Second)
		if err != nil {
			return err
		}
		defer g.Close()
		g.SetDeadline(time.Now().Add(30 * time.Second))
		b := make([]byte, 3*chargen.Period+100)
		if _, err := io.ReadFull(g, b); err != nil {
			return err
		}
		lines := strings.Split(string(b), "\r\n")
		if lines[0] != ` !"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`+"`"+`abcdefg` ||
			lines[1] != `!"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\]^_`+"`"+`abcdefgh` {
			return fmt.Errorf("chargen's first lines: %q %q", lines[0], lines[1])
		}
		for i, l := range lines[:len(lines)-1] {
			if len(l) != 72 || l[0] != byte(' '+i%95) {
				return fmt.Errorf("chargen line %d: %q", i, l)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// --pcap records the frames both ways.
func TestServePcap(t *testing.T) {
	ns := newNS(t)
	// No IPv6 on the device: the kernel's router solicitations would be in the
	// capture, and the check wants TCP over IPv4 only.
	mustRun(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1")
	file := filepath.Join(t.TempDir(), "serve.pcap")
	_, stop := startServeStop(t, ns, "--pcap", file)
	err := netns.Do(ns, func() error {
		c, err := net.DialTimeout("tcp", "10.7.0.2:7", 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.Write([]byte("ping"))
		b := make([]byte, 4)
		_, err = io.ReadFull(c, b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	stop() // closes the file
	{
		var syn, synack int
		lines := pcaptest.Check(t, file, -1)
		for _, l := range lines {
			if strings.Contains(l, "→ 7 [SYN]") {
				syn++
			}
			if strings.Contains(l, "7 → ") && strings.Contains(l, "[SYN, ACK]") {
				synack++
			}
		}
		if syn != 1 || synack != 1 {
			t.Errorf("%d SYNs to port 7 and %d SYN-ACKs from it, want 1 and 1:\n%s", syn, synack, strings.Join(lines, "\n"))
		}
	}
}

// Bad input: one line on stderr, the right exit code, nothing left behind.
func TestServeErrors(t *testing.T) {
	ns := newNS(t)
	mustRun(t, "ip", "-n", ns, "tuntap", "add", "mode", "tun", "name", "busy0")
	before := takeSnapshot(t, ns)
	missing := nsPrefix + "missing"
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--netns", ns, "--tun", "busy0"}, exitFail,
			`tcpeng serve: tun: device "busy0" in namespace "` + ns + `": create: file exists: the name is taken: choose another name, or remove it with ` +
				"`ip link del busy0` in `ip netns exec " + ns + "`, or attach to it (Attach)"},
		{[]string{"--netns", missing}, exitFail,
			`tcpeng serve: namespace "` + missing + `" does not exist: create it with ` + "`ip netns add " + missing + "`, or leave out --netns"},
		{[]string{"--netns", ns, "--addr", "10.8.0.2/24"}, exitUsage,
			"tcpeng serve: --addr 10.8.0.2 is outside --peer-addr's network 10.7.0.0/24: the kernel routes only that network through the device"},
		{[]string{"--netns", ns, "--addr", "10.7.0.1/24"}, exitUsage,
			"tcpeng serve: --addr and --peer-addr are both 10.7.0.1: the engine and the kernel need different addresses"},
		{[]string{"--netns", ns, "--addr", "bogus"}, exitUsage,
			`tcpeng serve: --addr "bogus" is not an IPv4 address with a prefix length: give one like 10.7.0.2/24`},
		{[]string{"--netns", ns, "--peer-addr", "fd00::1/64"}, exitUsage,
			"tcpeng serve: --peer-addr fd00::1/64 is not IPv4: the engine speaks IPv4 for now; give one like 10.7.0.2/24"},
		{[]string{"--netns", ns, "--mtu", "100"}, exitUsage, "tcpeng serve: --mtu 100 is out of range: give 576 to 65535"},
		{[]string{"--netns", ns, "--echo", "70000"}, exitUsage, "tcpeng serve: --echo 70000 is not a port: give 1 to 65535, or 0 to turn it off"},
		{[]string{"--netns", ns, "--echo", "9"}, exitUsage, "tcpeng serve: --echo and --discard both use port 9: give them different ports"},
		{[]string{"--netns", ns, "--http", "80"}, exitUsage, "tcpeng serve: --http 80 needs --root DIR, the directory to serve"},
		{[]string{"--netns", ns, "--root", "/nonexistent"}, exitUsage, `tcpeng serve: --root "/nonexistent" is not a directory: give the directory to serve`},
		{[]string{"--netns", ns, "--echo", "0", "--discard", "0", "--chargen", "0"}, exitUsage,
			"tcpeng serve: every service is off: turn one on (--echo 7, --discard 9, --chargen 19, --http 80 --root DIR)"},
		{[]string{"--netns", ns, "--engine", "bogus"}, exitUsage, `tcpeng serve: --engine "bogus" is not known: give one of ` + engineNames()},
		{[]string{"--netns", ns, "--bogus"}, exitUsage, "tcpeng serve: flag provided but not defined: -bogus (tcpeng serve -h lists the flags)"},
		{[]string{"--netns", ns, "extra"}, exitUsage, `tcpeng serve: unexpected argument "extra": it takes only flags (tcpeng serve -h)`},
		{[]string{"--netns", ns, "--pcap", "/nonexistent/x.pcap"}, exitFail, "tcpeng serve: --pcap: open /nonexistent/x.pcap: no such file or directory"},
	} {
		code, out, errs := tcpeng(append([]string{"serve"}, c.args...)...)
		if code != c.code || out != "" || errs != c.want+"\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr\n got %q\nwant %q (exit %d)", c.args, code, out, errs, c.want+"\n", c.code)
		}
		before.same(t, fmt.Sprint(c.args))
	}
}

// Without privileges serve says what is missing, in one line.
func TestServeUnprivileged(t *testing.T) {
	ns := newNS(t)
	checkUnprivileged(t, ns, []argsWant{
		{[]string{"serve", "--tun", "tcpengnp0"},
			`tcpeng serve: tun: device "tcpengnp0": open /dev/net/tun: permission denied: this needs CAP_NET_ADMIN: run as root (or grant the program cap_net_admin)`},
		{[]string{"serve", "--netns", ns},
			`tcpeng serve: tun: enter "` + ns + `": operation not permitted: run as root (network namespaces need CAP_SYS_ADMIN)`},
	})
}

// serve as a process stops on SIGINT and on SIGTERM, removing its device.
func TestServeSignals(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			ns := newNS(t)
			stopBySignal(t, ns, sig, func() {
				err := netns.Do(ns, func() error {
					c, err := net.DialTimeout("tcp", "10.7.0.2:7", 5*time.Second)
					if err == nil {
						c.Close()
					}
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
			}, "serve", "--netns", ns, "--offload")
		})
	}
}

func TestServeHelp(t *testing.T) {
	helpMentions(t, "serve", "-tun", "-addr", "-peer-addr", "-netns", "-mtu", "-offload", "-echo", "-discard", "-chargen", "-http", "-root", "-engine", "-pcap", "RFC 862", "Examples")
}
