// Package testkit holds the helpers that tests of several packages share:
// network namespaces for tests against the kernel, commands that fail the
// test, and host socket servers. Only tests import it.
package testkit

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/host/netns"
)

// NeedKernel skips a test that needs a real TUN device where there is none,
// and where the test cannot be root (the project's tests run as root).
func NeedKernel(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		t.Skipf("skipped: /dev/net/tun is missing (%v): this machine has no TUN driver", err)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: TUN and namespace tests need root (CAP_NET_ADMIN, CAP_SYS_ADMIN)")
	}
}

var nsSeq atomic.Int32

// NewNS creates a network namespace named prefix, the process ID and a
// sequence number, with lo up, and deletes it at cleanup.
func NewNS(t testing.TB, prefix string) string {
	t.Helper()
	NeedKernel(t)
	name := fmt.Sprintf("%s%d-%d", prefix, os.Getpid(), nsSeq.Add(1))
	if err := netns.Add(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := netns.Delete(name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	Run(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// Run runs a command and returns its standard output; failure fails the test
// with the command's standard error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		msg := ""
		if ee, ok := err.(*exec.ExitError); ok {
			msg = string(ee.Stderr)
		}
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, msg)
	}
	return string(out)
}

// Server listens on addr:0 of the host and serves each connection with handle,
// under a deadline of timeout, until the test ends.
func Server(t testing.TB, addr string, timeout time.Duration, handle func(c *net.TCPConn)) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", addr+":0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(timeout))
				handle(c.(*net.TCPConn))
			}()
		}
	}()
	return netip.MustParseAddrPort(ln.Addr().String())
}

// Echo sends back what it reads and passes the half-close on.
func Echo(c *net.TCPConn) {
	io.Copy(c, c)
	c.CloseWrite()
}

// CheckGoroutines fails the test if goroutines started during it are still
// running a few seconds after it ended (its cleanups done).
func CheckGoroutines(t testing.TB) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= before {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("%d goroutines before the test, %d after:\n%s", before, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}
