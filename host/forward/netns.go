package forward

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"runtime"
	"strings"

	"github.com/tcpeng/tcpeng/host/netns"
	"golang.org/x/sys/unix"
)

// NewNamespace creates a network namespace with no name (nothing under
// /run/netns): it lives while the returned file, a socket or device opened in
// it, or a process inside it holds it, and disappears with the last of them,
// even if the program is killed. Use it with netns.DoFile. The namespace has
// only a loopback device, down (see LoopbackUp).
func NewNamespace() (*os.File, error) {
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			ch <- result{err: err}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			// The thread stays locked and ends with the goroutine: it must
			// not run anything else in the wrong namespace.
			if fd >= 0 {
				unix.Close(fd)
			}
			ch <- result{err: rerr}
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			ch <- result{err: err}
			return
		}
		ch <- result{f: os.NewFile(uintptr(fd), "netns:anonymous")}
	}()
	r := <-ch
	if r.err != nil {
		hint := ""
		if errors.Is(r.err, unix.EPERM) || errors.Is(r.err, unix.EACCES) {
			hint = ": run as root (a network namespace needs CAP_SYS_ADMIN)"
		}
		return nil, fmt.Errorf("forward: create a network namespace: %v%s", r.err, hint)
	}
	return r.f, nil
}

// LoopbackUp brings the loopback device of the namespace ns up.
func LoopbackUp(ns *os.File) error {
	return netns.DoFile(ns, "new", func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("forward: bring lo up: %w", err)
		}
		defer unix.Close(fd)
		ifr, err := unix.NewIfreq("lo")
		if err != nil {
			return err
		}
		if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
			return fmt.Errorf("forward: bring lo up: %w", err)
		}
		ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
		if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
			return fmt.Errorf("forward: bring lo up: %w", err)
		}
		return nil
	})
}

// Nameserver returns the first nameserver of a resolv.conf file
// (/etc/resolv.conf), port 53, or an error saying there is none.
func Nameserver(path string) (netip.AddrPort, error) {
	f, err := os.Open(path)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("forward: read the host's resolver: %w", err)
	}
	defer f.Close()
	a, err := ParseNameserver(f)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("forward: %s: %w", path, err)
	}
	return a, nil
}

// ParseNameserver returns the first usable "nameserver" line of resolv.conf
// text (resolv.conf(5)), port 53. Zones of link-local IPv6 addresses are kept.
func ParseNameserver(r io.Reader) (netip.AddrPort, error) {
	sc := bufio.NewScanner(io.LimitReader(r, 1<<20))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "nameserver" {
			continue
		}
		a, err := netip.ParseAddr(f[1])
		if err != nil || a.IsUnspecified() {
			continue
		}
		return netip.AddrPortFrom(a.Unmap(), 53), nil
	}
	if err := sc.Err(); err != nil {
		return netip.AddrPort{}, err
	}
	return netip.AddrPort{}, errors.New("no nameserver line")
}
