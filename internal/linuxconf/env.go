package linuxconf

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpeng/tcpeng/host/netns"
	"github.com/tcpeng/tcpeng/host/tun"
	"golang.org/x/sys/unix"
)

// NamePrefix starts the name of every namespace the runner makes:
// NamePrefix + PID + "-" + N, so that leftovers of a killed run can be found
// and removed (CleanStale).
const NamePrefix = "tcpeng-lc-"

// devName is the TUN device's name inside each namespace.
const devName = "lc0"

// maxFrames bounds the frames one run keeps from the kernel; past it they are
// dropped and counted (a kernel in a retransmission storm cannot exhaust
// memory).
const maxFrames = 4096

// frame is an IP packet the kernel wrote to the TUN device, and when the
// runner read it.
type frame struct {
	at time.Time
	st time.Duration // the script time it came at (set when the runner takes it)
	b  []byte
}

// env is one script's Linux environment: a fresh network namespace, a TUN
// device in it that carries the peer's traffic, the kernel configured like
// tcpeng, a sock_diag socket that watches connection states, and the sockets
// the script's calls made.
type env struct {
	ns      string
	dev     *tun.Device
	diag    int // NETLINK_SOCK_DIAG socket in the namespace, or -1
	frames  chan frame
	dropped atomic.Int64 // frames dropped because the channel was full

	mu    sync.Mutex
	socks map[int]bool // descriptors to close at teardown

	readerDone chan struct{}
	notes      []string // what of the configuration could not be applied
}

var envSeq atomic.Int64

// Available reports why the Linux runner cannot run here, or "" if it can:
// it needs root and /dev/net/tun.
func Available() string {
	if os.Geteuid() != 0 {
		return "not root: the Linux runner needs CAP_SYS_ADMIN and CAP_NET_ADMIN for namespaces and TUN devices"
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "/dev/net/tun is missing (" + err.Error() + "): this machine has no TUN driver (`modprobe tun`)"
	}
	return ""
}

// Parent is the namespace the runner's namespaces are made from. sock_diag
// walks the whole TCP established hash of a namespace for every dump, and a
// new namespace shares the host's (262144 buckets on a small machine: about a
// millisecond a dump, hundreds of dumps a second per script). A namespace made
// from Parent gets a hash of its own with childHashEntries buckets
// (net.ipv4.tcp_child_ehash_entries, Linux 6.1), which costs microseconds.
type Parent struct {
	name string
	file *os.File // the namespace, held open
}

const childHashEntries = 128

// NewParent makes the parent namespace. Close it after the last run.
func NewParent() (*Parent, error) {
	name := NamePrefix + strconv.Itoa(os.Getpid()) + "-parent"
	if err := netns.Add(name); err != nil {
		return nil, err
	}
	p := &Parent{name: name}
	f, err := netns.OpenFile(name, "/proc/sys/net/ipv4/tcp_child_ehash_entries", os.O_WRONLY, 0)
	if err == nil {
		_, err = f.WriteString(strconv.Itoa(childHashEntries))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		// An older kernel: the children share the host's hash; dumps are
		// slower, nothing else changes.
		netns.Delete(name)
		return &Parent{}, nil
	}
	if p.file, err = netns.Open(name); err != nil {
		netns.Delete(name)
		return nil, err
	}
	return p, nil
}

// Close deletes the parent namespace.
func (p *Parent) Close() error {
	if p == nil || p.name == "" {
		return nil
	}
	p.file.Close()
	return netns.Delete(p.name)
}

// addChild creates the named namespace as netns.Add does, but as a child of
// the parent (so that it takes the parent's tcp_child_ehash_entries): on a
// locked thread that enters the parent, unshares a new network namespace and
// bind-mounts it at /run/netns/NAME, then returns to its own namespace (or
// dies with its thread if it cannot).
func (p *Parent) addChild(name string) error {
	if p == nil || p.file == nil {
		return netns.Add(name)
	}
	path := netns.Path(name)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("creating %s: %w", path, err)
	}
	unix.Close(fd)
	err = netns.OnThread(func() error {
		self := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
		err := unix.Setns(int(p.file.Fd()), unix.CLONE_NEWNET)
		if err == nil {
			err = unix.Unshare(unix.CLONE_NEWNET)
		}
		if err == nil {
			err = unix.Mount(self, path, "none", unix.MS_BIND, "")
		}
		return err
	})
	if err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return fmt.Errorf("creating namespace %s in %s: %w", name, p.name, err)
	}
	return nil
}

// newEnv makes the namespace and the device for script addresses local and
// remote, with the kernel configured by k. On error nothing is left behind.
func newEnv(parent *Parent, local, remote netip.Addr, k KernelConfig) (e *env, err error) {
	name := NamePrefix + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(envSeq.Add(1), 10)
	if err := parent.addChild(name); err != nil {
		return nil, err
	}
	e = &env{ns: name, diag: -1, socks: map[int]bool{}, frames: make(chan frame, maxFrames)}
	defer func() {
		if err != nil {
			e.close()
			e = nil
		}
	}()
	// No IPv6 on the device: the kernel would send router solicitations and
	// MLD reports into the script's traffic.
	for _, s := range []Sysctl{{"net/ipv6/conf/all/disable_ipv6", "1"}, {"net/ipv6/conf/default/disable_ipv6", "1"}} {
		if err := e.sysctl(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	routeAttrs := append([]string(nil), k.RouteAttrs...)
	for _, s := range k.Sysctls {
		err := e.sysctl(s)
		switch {
		case err == nil:
		case errors.Is(err, os.ErrNotExist) && s.Key == "net/ipv4/tcp_rto_min_us":
			// Before Linux 6.11: the route's rto_min attribute does the same.
			us, _ := strconv.Atoi(s.Value)
			routeAttrs = append(routeAttrs, "rto_min", strconv.Itoa(max(us/1000, 1))+"ms")
		case errors.Is(err, os.ErrNotExist):
			e.notes = append(e.notes, "this kernel has no "+strings.ReplaceAll(s.Key, "/", ".")+": left at its default")
		default:
			return nil, err
		}
	}
	e.dev, err = tun.Open(tun.Config{
		Name:   devName,
		Netns:  name,
		MTU:    k.MTU,
		Addrs:  []netip.Prefix{netip.PrefixFrom(local, 32)},
		Routes: []tun.Route{{Dst: netip.PrefixFrom(remote, 32)}},
	})
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath("ip"); err != nil && len(routeAttrs) > 0 {
		e.notes = append(e.notes, "route "+strings.Join(routeAttrs, " ")+" not set: iproute2's ip is missing (scripts/deps.sh installs it)")
	} else if len(routeAttrs) > 0 {
		args := append([]string{"-n", name, "route", "replace", remote.String() + "/32", "dev", devName}, routeAttrs...)
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ip %s: %v: %s (the runner needs iproute2's ip for route attributes)",
				strings.Join(args, " "), err, strings.TrimSpace(string(out)))
		}
	}
	e.diag, err = netns.Socket(name, unix.AF_NETLINK, unix.SOCK_RAW, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, err
	}
	_ = unix.SetsockoptTimeval(e.diag, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
	e.readerDone = make(chan struct{})
	go e.read()
	return e, nil
}

// sysctl writes one setting of the namespace.
func (e *env) sysctl(s Sysctl) error {
	f, err := netns.OpenFile(e.ns, "/proc/sys/"+s.Key, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("sysctl %s: %w", s.Key, err)
	}
	_, err = f.WriteString(s.Value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sysctl %s=%q in namespace %s: %w (does this kernel have it?)", strings.ReplaceAll(s.Key, "/", "."), s.Value, e.ns, err)
	}
	return nil
}

// read copies what the kernel sends through the device into e.frames, each
// with the time it was read, until the device is closed.
func (e *env) read() {
	defer close(e.readerDone)
	mtu := max(e.dev.MTU(), 1500)
	bufs := make([][]byte, 16)
	for i := range bufs {
		bufs[i] = make([]byte, mtu)
	}
	sizes := make([]int, len(bufs))
	for {
		n, err := e.dev.ReadBatch(bufs, sizes)
		if err != nil {
			return
		}
		now := time.Now()
		for i := 0; i < n; i++ {
			select {
			case e.frames <- frame{at: now, b: append([]byte(nil), bufs[i][:sizes[i]]...)}:
			default:
				e.dropped.Add(1)
			}
		}
	}
}

// write gives the kernel one frame, as if the peer had sent it.
func (e *env) write(b []byte) error {
	return e.dev.WriteBatch([][]byte{b})
}

// socket opens a non-blocking TCP socket in the namespace.
func (e *env) socket() (int, error) {
	fd, err := netns.Socket(e.ns, unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return -1, err
	}
	e.track(fd)
	return fd, nil
}

func (e *env) track(fd int) {
	e.mu.Lock()
	e.socks[fd] = true
	e.mu.Unlock()
}

// closeSock closes a descriptor the runner made.
func (e *env) closeSock(fd int) error {
	e.mu.Lock()
	delete(e.socks, fd)
	e.mu.Unlock()
	return unix.Close(fd)
}

// close tears everything down: sockets, the device (the reader stops), the
// diag socket, the namespace. It returns the first error; it never leaves a
// namespace mounted if it can remove it.
func (e *env) close() error {
	var first error
	keep := func(err error) {
		if err != nil && first == nil {
			first = err
		}
	}
	e.mu.Lock()
	for fd := range e.socks {
		// A socket with unread data would send a reset into a device that is
		// about to go; it does not matter, nobody reads it.
		keep(unix.Close(fd))
	}
	e.socks = map[int]bool{}
	e.mu.Unlock()
	if e.dev != nil {
		keep(e.dev.Close())
		if e.readerDone != nil {
			<-e.readerDone
		}
	}
	if e.diag >= 0 {
		keep(unix.Close(e.diag))
		e.diag = -1
	}
	keep(netns.Delete(e.ns))
	return first
}

// Leftovers returns the namespaces of this process's runs that still exist:
// after every run has finished, there must be none.
func Leftovers() ([]string, error) {
	names, err := netns.List()
	if err != nil {
		return nil, err
	}
	mine := NamePrefix + strconv.Itoa(os.Getpid()) + "-"
	var left []string
	for _, n := range names {
		if strings.HasPrefix(n, mine) {
			left = append(left, n)
		}
	}
	return left, nil
}

// CleanStale deletes the namespaces of earlier runs whose process is gone
// (a run killed before it could clean up), and returns their names.
func CleanStale() ([]string, error) {
	names, err := netns.List()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, NamePrefix)
		if !ok {
			continue
		}
		pidStr, _, _ := strings.Cut(rest, "-")
		if pid, err := strconv.Atoi(pidStr); err != nil || pid == os.Getpid() {
			continue
		}
		if _, err := os.Stat("/proc/" + pidStr); err == nil {
			continue // its process still runs
		}
		if err := netns.Delete(n); err != nil {
			return removed, err
		}
		removed = append(removed, n)
	}
	return removed, nil
}
