package main

// Helpers of the serve and forward tests: namespaces made by the test, the
// command run in-process or as a child process, nftables loss.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/host/netns"
	"github.com/tcpeng/tcpeng/internal/testkit"
)

// The test binary runs the command line itself when TCPENG_TEST_MAIN is set
// (the child processes of the signal and privilege tests).
func init() {
	if os.Getenv("TCPENG_TEST_MAIN") == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
}

// needKernel skips a test that needs a TUN device and root where there is
// none.
func needKernel(t *testing.T) { t.Helper(); testkit.NeedKernel(t) }

// needTool skips when a tool the test drives is missing, naming the package.
func needTool(t *testing.T, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err != nil {
		t.Fatalf("%s is missing: install it (apt-get install -y %s; scripts/deps.sh does)", tool, pkg)
	}
}

const nsPrefix = "tcpeng-cmd-"

// newNS creates a network namespace for the test, with lo up, and deletes it
// at cleanup.
func newNS(t *testing.T) string { t.Helper(); return testkit.NewNS(t, nsPrefix) }

// mustRun runs a command and returns its standard output; failure fails the test.
func mustRun(t *testing.T, name string, args ...string) string {
	t.Helper()
	return testkit.Run(t, name, args...)
}

// links returns the names of the devices of a namespace ("" for the host's).
func links(t *testing.T, ns string) []string {
	t.Helper()
	args := []string{"-j", "link", "show"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	var v []map[string]any
	if err := json.Unmarshal([]byte(mustRun(t, "ip", args...)), &v); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range v {
		names = append(names, l["ifname"].(string))
	}
	slices.Sort(names)
	return names
}

// namespaces lists this package's namespaces in /run/netns (other packages'
// tests make theirs meanwhile).
func namespaces(t *testing.T) []string {
	t.Helper()
	names, err := netns.List()
	if err != nil {
		t.Fatal(err)
	}
	names = slices.DeleteFunc(names, func(n string) bool { return !strings.HasPrefix(n, nsPrefix) })
	slices.Sort(names)
	return names
}

// snapshot is what a failed or finished command must leave as it was.
type snapshot struct {
	hostLinks, nsLinks, namespaces []string
	ns                             string
}

func takeSnapshot(t *testing.T, ns string) snapshot {
	t.Helper()
	// The host's devices of other tests come and go: only tcpeng's count.
	host := slices.DeleteFunc(links(t, ""), func(n string) bool { return !strings.HasPrefix(n, "tcpeng") })
	s := snapshot{hostLinks: host, namespaces: namespaces(t), ns: ns}
	if ns != "" {
		s.nsLinks = links(t, ns)
	}
	return s
}

// same fails the test if the devices or namespaces changed since s.
func (s snapshot) same(t *testing.T, when string) {
	t.Helper()
	now := takeSnapshot(t, s.ns)
	if !slices.Equal(now.hostLinks, s.hostLinks) {
		t.Errorf("%s: host devices %q, were %q", when, now.hostLinks, s.hostLinks)
	}
	if !slices.Equal(now.namespaces, s.namespaces) {
		t.Errorf("%s: namespaces %q, were %q", when, now.namespaces, s.namespaces)
	}
	if !slices.Equal(now.nsLinks, s.nsLinks) {
		t.Errorf("%s: devices of %s %q, were %q", when, s.ns, now.nsLinks, s.nsLinks)
	}
}

// syncBuffer is a bytes.Buffer safe for the command's and the test's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startServe runs serve in-process with args until the test ends (or stop);
// it returns once serve is ready. Stopping expects exit 0 and an empty
// stderr, and checks the device is gone.
func startServe(t *testing.T, ns string, args ...string) *serveSession {
	s, _ := startServeStop(t, ns, args...)
	return s
}

func startServeStop(t *testing.T, ns string, args ...string) (*serveSession, func()) {
	t.Helper()
	var o serveOptions
	if err := serveFlags(&o).Parse(append([]string{"--netns", ns}, args...)); err != nil {
		t.Fatal(err)
	}
	before := takeSnapshot(t, ns)
	return startSession(t, "serve", func(ctx context.Context, stdout, stderr io.Writer, ready func(*serveSession)) int {
		return serveMain(ctx, &o, stdout, stderr, ready)
	}, func() {
		before.nsLinks = slices.DeleteFunc(before.nsLinks, func(n string) bool { return n == o.tun })
		before.same(t, "after serve")
	})
}

// startSession runs a subcommand's main function in-process until the test
// ends (or stop) and returns once it is ready. Stopping cancels it, expects
// exit 0 and an empty stderr, then runs check.
func startSession[S any](t *testing.T, name string, main func(ctx context.Context, stdout, stderr io.Writer, ready func(S)) int, check func()) (S, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var stdout, stderr syncBuffer
	ready := make(chan S, 1)
	code := make(chan int, 1)
	go func() { code <- main(ctx, &stdout, &stderr, func(s S) { ready <- s }) }()
	var s S
	select {
	case s = <-ready:
	case c := <-code:
		cancel()
		t.Fatalf("%s exited with %d: %s", name, c, stderr.String())
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if c := <-code; c != 0 || stderr.String() != "" {
				t.Errorf("%s: exit %d, stderr %q", name, c, stderr.String())
			}
			check()
		})
	}
	t.Cleanup(stop)
	return s, stop
}

// inNS runs a command inside ns and returns its standard output.
func inNS(t *testing.T, ns string, stdin io.Reader, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Stdin = stdin
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s in %s: %v: %s", name, strings.Join(args, " "), ns, err, stderr.String())
	}
	return out
}

// randomFile writes n random bytes to a file in dir and returns its path and
// SHA-256.
func randomFile(t *testing.T, dir, name string, n int) (string, string) {
	t.Helper()
	f, err := os.Create(dir + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	w := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	if _, err := io.CopyN(w, rand.Reader, int64(n)); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return f.Name(), hex.EncodeToString(h.Sum(nil))
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// addLoss makes nftables in ns drop pct percent of the packets in and out of
// dev, at random (numgen random; the kernel here has no netem).
func addLoss(t *testing.T, ns, dev string, pct int) {
	t.Helper()
	needTool(t, "nft", "nftables")
	rules := fmt.Sprintf(`table inet tcpengloss {
	chain in { type filter hook input priority 0; iifname %q numgen random mod 100 < %d counter drop; }
	chain out { type filter hook output priority 0; oifname %q numgen random mod 100 < %d counter drop; }
}
`, dev, pct, dev, pct)
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
}

// nftDrops returns the packets the loss rules dropped in ns, in and out.
func nftDrops(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "tcpengloss").CombinedOutput()
	if err != nil {
		return err.Error()
	}
	return strings.Join(strings.Fields(string(out)), " ")
}

// child runs the test binary as tcpeng with args (see init) and returns the
// command, started, with its stdout and stderr.
func child(t *testing.T, cred *syscall.Credential, args ...string) (*exec.Cmd, *syncBuffer, *syncBuffer) {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if cred != nil {
		// The build directory is root's alone: copy the binary where the
		// user can run it.
		dir, err := os.MkdirTemp("", "tcpeng-cmd")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		os.Chmod(dir, 0o755)
		data, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		exe = dir + "/tcpeng.test"
		if err := os.WriteFile(exe, data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(exe, args...)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "TCPENG_TEST_MAIN=1")
	var stdout, stderr syncBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	return cmd, &stdout, &stderr
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// exitStatus waits for cmd and returns its exit code.
func exitStatus(t *testing.T, cmd *exec.Cmd, limit time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(limit):
		cmd.Process.Kill()
		<-done
		t.Fatalf("%v still running after %v", cmd.Args, limit)
	}
	return cmd.ProcessState.ExitCode()
}

// argsWant is a command line and the one line it must print on stderr.
type argsWant struct {
	args []string
	want string
}

// checkUnprivileged runs each command line as nobody: it must fail with
// exitFail, print nothing on stdout and exactly its line on stderr, and leave
// ns and the root namespace as they were.
func checkUnprivileged(t *testing.T, ns string, cases []argsWant) {
	t.Helper()
	before := takeSnapshot(t, ns)
	for _, c := range cases {
		cmd, stdout, stderr := child(t, &syscall.Credential{Uid: 65534, Gid: 65534}, c.args...)
		code := exitStatus(t, cmd, 30*time.Second)
		if code != exitFail || stdout.String() != "" || stderr.String() != c.want+"\n" {
			t.Errorf("%q: exit %d, stdout %q, stderr\n got %q\nwant %q", c.args, code, stdout.String(), stderr.String(), c.want+"\n")
		}
	}
	before.same(t, "after the unprivileged runs")
}

// stopBySignal starts the command line args (which serves ns), waits until it
// says how to stop it, runs check, sends sig, and expects exit status 0, an
// empty stderr, and ns and the root namespace as they were before.
func stopBySignal(t *testing.T, ns string, sig syscall.Signal, check func(), args ...string) {
	t.Helper()
	before := takeSnapshot(t, ns)
	cmd, stdout, stderr := child(t, nil, args...)
	if !waitFor(10*time.Second, func() bool { return strings.Contains(stdout.String(), "stop with SIGINT") }) {
		t.Fatalf("%s not ready: stdout %q stderr %q", args[0], stdout.String(), stderr.String())
	}
	check()
	cmd.Process.Signal(sig)
	if code := exitStatus(t, cmd, 10*time.Second); code != 0 || stderr.String() != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr.String())
	}
	before.same(t, "after "+sig.String())
}

// helpMentions runs `tcpeng SUB -h`: it must succeed, print nothing on stderr,
// and mention every word.
func helpMentions(t *testing.T, sub string, words ...string) {
	t.Helper()
	code, out, errs := tcpeng(sub, "-h")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, w := range words {
		if !strings.Contains(out, w) {
			t.Errorf("the help does not mention %q", w)
		}
	}
}

// dialMany opens n connections to addr from inside ns, 64 dials at a time, and
// fails t unless all open. Sockets made inside netns.Do belong to the
// namespace; goroutines started there do not, so each dial enters it itself.
// The connections are closed when the test ends.
func dialMany(t *testing.T, ns string, n int, addr string) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, n)
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	errs := make(chan error, n)
	for i := range conns {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- netns.Do(ns, func() error {
				var err error
				conns[i], err = net.DialTimeout("tcp", addr, 20*time.Second)
				return err
			})
		}()
	}
	wg.Wait()
	for range n {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	return conns
}

// echoEach has every connection, all at once, send 1000 bytes of its own,
// close its sending side, and get exactly those bytes back.
func echoEach(t *testing.T, conns []net.Conn) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, len(conns))
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.SetDeadline(time.Now().Add(60 * time.Second))
			msg := bytes.Repeat([]byte(fmt.Sprintf("%09d\n", i)), 100)
			if _, err := c.Write(msg); err != nil {
				errs <- fmt.Errorf("connection %d: %v", i, err)
				return
			}
			c.(*net.TCPConn).CloseWrite()
			got, err := io.ReadAll(c)
			if err != nil || !bytes.Equal(got, msg) {
				errs <- fmt.Errorf("connection %d: %d bytes back, %v: %q", i, len(got), err, got)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
