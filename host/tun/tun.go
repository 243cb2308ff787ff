// Package tun opens and configures Linux TUN devices (IFF_TUN|IFF_NO_PI: raw IP
// packets, no link layer) for the engine's TUN mode, optionally in a named
// network namespace, and reads and writes them in batches. It configures the
// device itself through rtnetlink (MTU, addresses, routes, link state), undoes
// its configuration if a step fails, and removes the device on Close.
//
// With Config.Offload the device carries virtio-net headers (IFF_VNET_HDR) and
// takes TCP segmentation offload (TUNSETOFFLOAD): the kernel hands over TCP
// super-packets of up to 64 KiB, which ReadBatch cuts into MTU-sized segments,
// and WriteBatch joins in-order segments of one flow into super-packets that the
// kernel takes in one write. Frames in and out of the package are always plain
// IP packets of at most MTU bytes.
//
// Limits: TCP segmentation offload only (UDP segmentation, TUN_F_USO4/6, is not
// asked for, so the kernel segments UDP itself); IPv6 super-packets with
// extension headers are dropped (the kernel's TCP does not send them); one
// queue (no IFF_MULTI_QUEUE).
package tun

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/tcpeng/tcpeng/host/netns"
	"golang.org/x/sys/unix"
)

// Config says which device to open and how to configure it. The zero Config
// (but for what it must name) creates a device with a kernel-chosen name in the
// current namespace, leaves its MTU at the kernel's 1500 and brings it up.
type Config struct {
	// Name is the device's name (at most 15 bytes). Empty: the kernel picks
	// tunN.
	Name string
	// Netns is the named network namespace (/run/netns/NAME, see package netns)
	// the device lives in. Empty: the current one. The descriptor is used from
	// the host's threads either way.
	Netns string
	// Attach uses an existing TUN device named Name (a persistent one, made by
	// `ip tuntap add mode tun`) if there is one, instead of failing because the
	// name is taken. Close then undoes only what Open configured on it and
	// leaves the device.
	Attach bool
	// MTU sets the device's MTU (68 to 65535; at least 1280 with IPv6
	// addresses). 0 leaves it as it is.
	MTU int
	// Addrs are the kernel side's addresses on the device, with their prefix
	// length (10.7.0.1/24 also routes 10.7.0.0/24 through the device).
	Addrs []netip.Prefix
	// Routes are added through the device after it is up.
	Routes []Route
	// TxQueueLen sets the queue of packets the kernel holds for the reader
	// (the kernel's default is 500; past it, packets are dropped and counted
	// as TX drops on the kernel side). 0 leaves it as it is.
	TxQueueLen int
	// Down leaves the link down (routes then cannot be added).
	Down bool
	// Offload turns on virtio-net headers and TCP segmentation offload in both
	// directions (TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6).
	Offload bool
	// SkipChecksums (with Offload) leaves out the checksum work ReadBatch
	// does only for a reader that verifies checksums. The kernel hands over
	// the packets it sends through the device with partial checksums
	// (VIRTIO_NET_HDR_F_NEEDS_CSUM: it wrote them and they never crossed a
	// wire); ReadBatch normally completes them, and gives each segment it cuts
	// from a super-packet a full TCP checksum. With SkipChecksums such packets
	// keep the partial sum and cut segments get no TCP checksum (their IPv4
	// header checksum is still set), so their TCP and UDP checksum fields are
	// wrong. Set it only when the reader does not verify them (an engine with
	// engine.Config.TrustLink) and nothing else looks at the frames: a packet
	// capture (pcap) written from them would show every such checksum as bad.
	// Packets that carry full checksums are passed on as they are either way.
	SkipChecksums bool
	// Spin has a blocking ReadBatch poll the device for up to 50 µs before it
	// waits on the runtime's poller, while packets keep coming that soon
	// (host/internal/spin). Waking the reader's thread onto an idle CPU takes
	// tens of µs on a VM; with Spin a request's answer is read at once.
	// `tcpeng serve` sets it (and runs its driver with host.Options.NoSpin):
	// its 64-byte round trip with the kernel fell from 60 to 27 µs and its
	// connection rate rose 1.6×. It costs CPU while
	// traffic flows (about 0.3 cores in a round-trip loop) and none when the
	// device is idle, and it hurts where other busy processes need the CPUs:
	// `tcpeng forward`, whose relayed connections end in the host's own
	// servers, leaves it off (its round trip grew 10% with it).
	Spin bool
	// Whole (with Offload) has ReadBatch hand a TCP super-packet from the
	// kernel over whole, as one frame longer than the MTU, when it fits the
	// caller's buffer, instead of cutting it into segments of gso_size: what
	// GRO does for a NIC's receivers. The frame keeps the super-packet's
	// headers (IP length of the whole, PSH and FIN as the kernel set them,
	// the IPv4 header checksum computed) and a TCP checksum completed over
	// the whole (left partial with SkipChecksums).
	// The reader must take segments larger than its MSS, as the engine does
	// (it acknowledges one at once: it carries full-sized segments), and must
	// give buffers of up to 65535 bytes (host.Options.FrameBuffer). At MTU
	// 1500 the kernel's 64 KiB super-packets then cost the engine one
	// segment's work instead of 45.
	Whole bool
}

// Route is a route through the device.
type Route struct {
	Dst     netip.Prefix // 0.0.0.0/0 or ::/0 for a default route
	Gateway netip.Addr   // optional; unset for an on-link route
	Metric  uint32       // optional
}

// Stats are a device's counters. They only grow.
type Stats struct {
	RxFrames    uint64 // frames returned by ReadBatch
	RxGSO       uint64 // TCP super-packets read from the kernel (cut into segments, or whole with Config.Whole)
	RxCsum      uint64 // partial checksums completed
	RxDropped   uint64 // packets dropped: malformed, or larger than the caller's buffer
	TxFrames    uint64 // frames given to WriteBatch
	TxWrites    uint64 // writes to the device
	TxGSO       uint64 // super-packets written
	TxCoalesced uint64 // frames carried in super-packets
	TxErrors    uint64 // frames the kernel refused (counted and dropped)
}

// Device is an open TUN device. ReadBatch is called from one goroutine at a
// time, WriteBatch from one goroutine at a time (the two may run in parallel),
// Close from anywhere.
type Device struct {
	name    string
	netns   string
	index   int
	mtu     int
	offload bool
	nosum   bool // Config.SkipChecksums
	whole   bool // Config.Whole
	created bool

	file *os.File
	fd   int // file's descriptor (Fd); file.Fd() would make it blocking
	rc   syscall.RawConn
	nl   *rtnl

	closed    atomic.Bool
	closeOnce sync.Once
	undo      []func() error // in order of application; Close runs them backwards

	rmu      sync.Mutex
	rhdr     [vnetHdrLen]byte // vnet mode: the header of the packet read
	rx       []byte           // vnet mode: a packet larger than the caller's buffer (a super-packet)
	overflow []byte           // plain mode: catches what does not fit the caller's buffer
	pending  gsoPacket        // a super-packet being cut; pending.next < pending.segs
	rop      readOp

	wmu  sync.Mutex
	coal *coalescer
	wop  writeOp

	rxFrames, rxGSO, rxCsum, rxDropped               atomic.Uint64
	txFrames, txWrites, txGSO, txCoalesced, txErrors atomic.Uint64
}

const maxRead = 1<<16 + 256 // the largest packet a TUN device hands over, with room

// offloads are the offloads asked for with Config.Offload: the kernel may hand
// over TCP super-packets (IPv4 and IPv6) with partial checksums.
const offloads = unix.TUN_F_CSUM | unix.TUN_F_TSO4 | unix.TUN_F_TSO6

// Open opens and configures the device cfg describes. On error nothing is left
// behind: a device it created is deleted, configuration it applied to an
// attached device is undone. Errors are one line saying what to do.
func Open(cfg Config) (*Device, error) {
	if err := cfg.check(); err != nil {
		return nil, err
	}
	d := &Device{name: cfg.Name, netns: cfg.Netns, offload: cfg.Offload, nosum: cfg.Offload && cfg.SkipChecksums,
		whole: cfg.Offload && cfg.Whole}
	d.rop.spinOn = cfg.Spin
	var tunFd, nlFd = -1, -1
	err := netns.Do(cfg.Netns, func() error {
		var err error
		nlFd, err = unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return d.errorf("open a netlink socket", err, "")
		}
		tunFd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err != nil {
			return d.errorf("open /dev/net/tun", err, "")
		}
		return nil
	})
	if err != nil {
		closeFd(nlFd)
		closeFd(tunFd)
		var ne *netns.Error
		if errors.As(err, &ne) {
			return nil, &Error{msg: "tun: " + ne.Error()[len("netns: "):], err: ne}
		}
		return nil, err
	}
	d.nl, err = newRTNL(nlFd)
	if err != nil {
		closeFd(tunFd)
		return nil, d.errorf("bind a netlink socket", err, "")
	}
	if err := d.attach(tunFd, cfg); err != nil {
		if d.file != nil {
			d.file.Close() // it owns tunFd
		} else {
			closeFd(tunFd)
		}
		d.nl.close()
		return nil, err
	}
	if err := d.configure(cfg); err != nil {
		d.teardown()
		return nil, err
	}
	return d, nil
}

func closeFd(fd int) {
	if fd >= 0 {
		unix.Close(fd)
	}
}

func (c *Config) check() error {
	bad := func(what, fix string) error { return errors.New("tun: " + what + ": " + fix) }
	if len(c.Name) >= unix.IFNAMSIZ {
		return bad("device name "+strconv.Quote(c.Name)+" is too long", "use at most 15 bytes")
	}
	for _, r := range c.Name {
		if r == '/' || r == ':' || r <= ' ' || r == 0x7f || r == '%' {
			return bad("device name "+strconv.Quote(c.Name)+" has a character Linux refuses", "use letters, digits, '-', '_' or '.'")
		}
	}
	if c.Name == "." || c.Name == ".." {
		return bad("device name "+strconv.Quote(c.Name)+" is not allowed", "choose another name")
	}
	if c.Attach && c.Name == "" {
		return bad("Attach needs a device name", "set Name to the device to attach to")
	}
	if c.Netns != "" && !netns.ValidName(c.Netns) {
		return bad("namespace name "+strconv.Quote(c.Netns)+" is not valid", "use a name without '/' or spaces")
	}
	v6 := false
	for _, p := range c.Addrs {
		if !p.IsValid() || p.Addr().Zone() != "" || p.Addr().Is4In6() {
			return bad("address "+p.String()+" is not valid", "give addresses like 10.7.0.1/24 or fd00::1/64")
		}
		v6 = v6 || p.Addr().Is6()
	}
	for _, r := range c.Routes {
		if !r.Dst.IsValid() || r.Dst.Addr().Zone() != "" {
			return bad("route destination "+r.Dst.String()+" is not valid", "give a prefix like 10.8.0.0/16 or 0.0.0.0/0")
		}
		if r.Gateway.IsValid() && r.Gateway.Is4() != r.Dst.Addr().Is4() {
			return bad("route to "+r.Dst.String()+" has a gateway of the other IP version", "use a gateway of the same family")
		}
	}
	if c.TxQueueLen < 0 || c.TxQueueLen > 1<<20 {
		return bad("TxQueueLen "+strconv.Itoa(c.TxQueueLen)+" is out of range", "use 1 to 1048576, or 0 to leave it")
	}
	if len(c.Routes) > 0 && c.Down {
		return bad("routes need the link up", "drop Down or the routes")
	}
	switch {
	case c.MTU == 0:
	case c.MTU < 68 || c.MTU > 65535:
		return bad("MTU "+strconv.Itoa(c.MTU)+" is out of range", "use 68 to 65535")
	case v6 && c.MTU < 1280:
		return bad("MTU "+strconv.Itoa(c.MTU)+" is below IPv6's minimum of 1280", "raise it or drop the IPv6 addresses")
	}
	return nil
}

// where names the device and its namespace in errors.
func (d *Device) where() string {
	s := "device " + strconv.Quote(d.name)
	if d.name == "" {
		s = "a TUN device"
	}
	if d.netns != "" {
		s += " in namespace " + strconv.Quote(d.netns)
	}
	return s
}

// errorf makes the one-line error of a failed step: what failed, why, and
// (from fix, or from the error) what to do.
func (d *Device) errorf(step string, err error, fix string) error {
	if fix == "" {
		switch {
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			fix = "this needs CAP_NET_ADMIN: run as root (or grant the program cap_net_admin)"
		case errors.Is(err, unix.ENOENT) && step == "open /dev/net/tun":
			fix = "the TUN driver is missing: `modprobe tun`, or `mkdir -p /dev/net && mknod /dev/net/tun c 10 200`"
		}
	}
	s := "tun: " + d.where() + ": " + step + ": " + err.Error()
	if fix != "" {
		s += ": " + fix
	}
	return &Error{msg: s, err: err}
}

// Error is the error Open and the Device return: one line, unwrapping to the
// system error (errors.Is(err, fs.ErrPermission) and so on work).
type Error struct {
	msg string
	err error
}

func (e *Error) Error() string { return e.msg }
func (e *Error) Unwrap() error { return e.err }

// attach runs TUNSETIFF on tunFd: it creates the device, or attaches to an
// existing one with Attach.
func (d *Device) attach(tunFd int, cfg Config) error {
	pre := false
	if cfg.Name != "" {
		li, err := d.nl.getLink(cfg.Name, 0)
		pre = err == nil
		switch {
		case err == nil && !cfg.Attach:
			return d.errorf("create", unix.EEXIST, "the name is taken: choose another name, or remove it with `ip link del "+
				cfg.Name+"`"+d.inNS()+", or attach to it (Attach)")
		case err == nil && li.kind != "tun":
			return d.errorf("attach", unix.EINVAL, "it exists and is not a TUN device ("+kindName(li.kind)+"): choose another name")
		case err != nil && !errors.Is(err, unix.ENODEV):
			return d.errorf("look up the device", err, "")
		}
	}
	flags := uint16(unix.IFF_TUN | unix.IFF_NO_PI)
	if cfg.Offload {
		flags |= unix.IFF_VNET_HDR
	}
	if !cfg.Attach {
		flags |= unix.IFF_TUN_EXCL
	}
	ifr, err := unix.NewIfreq(cfg.Name)
	if err != nil {
		return d.errorf("name the device", err, "use at most 15 bytes")
	}
	ifr.SetUint16(flags)
	if err := unix.IoctlIfreq(tunFd, unix.TUNSETIFF, ifr); err != nil {
		switch {
		case err == unix.EBUSY && cfg.Attach:
			return d.errorf("attach", err, "another process has it open (a TUN device has one reader): stop it or choose another name")
		case err == unix.EBUSY:
			return d.errorf("create", err, "the name is taken: choose another name, or remove it with `ip link del "+cfg.Name+"`"+d.inNS())
		case err == unix.EINVAL && cfg.Attach:
			return d.errorf("attach", err, "it is a TAP device, or was made with other flags (multi-queue): use a TUN device made with `ip tuntap add mode tun`")
		}
		return d.errorf("create", err, "")
	}
	d.name = ifr.Name()
	li, err := d.nl.getLink(d.name, 0)
	if err != nil {
		return d.errorf("look up the new device", err, "")
	}
	d.index, d.mtu = li.index, li.mtu
	// TUNSETIFF does not say whether it attached or created; the look-up
	// before it does (without Attach, IFF_TUN_EXCL makes sure).
	d.created = !pre
	if cfg.Offload {
		if err := unix.IoctlSetPointerInt(tunFd, unix.TUNSETVNETHDRSZ, vnetHdrLen); err != nil {
			return d.errorf("set the virtio-net header size", err, "")
		}
		if err := unix.IoctlSetPointerInt(tunFd, unix.TUNSETVNETLE, 1); err != nil {
			return d.errorf("set little-endian virtio-net headers", err, "")
		}
		if err := unix.IoctlSetInt(tunFd, unix.TUNSETOFFLOAD, offloads); err != nil {
			return d.errorf("turn on segmentation offload", err, "")
		}
	} else {
		// An attached device may keep the offloads of an earlier user: without
		// the virtio-net header they would bring super-packets we cannot cut.
		if pre {
			if err := unix.IoctlSetInt(tunFd, unix.TUNSETOFFLOAD, 0); err != nil {
				return d.errorf("turn off segmentation offload", err, "")
			}
		}
	}
	if err := d.use(tunFd); err != nil {
		return d.errorf("use the descriptor", err, "")
	}
	return nil
}

// use makes fd, a non-blocking descriptor that reads and writes one packet per
// call (with a virtio-net header if d.offload), the device's descriptor, served
// by the runtime poller, and allocates the buffers.
func (d *Device) use(fd int) error {
	d.rop.fn, d.wop.fn, d.rop.pollFn = d.rop.do, d.wop.do, d.rop.poll
	if d.offload {
		d.rx = make([]byte, maxRead)
		d.coal = newCoalescer()
	} else {
		d.overflow = make([]byte, maxRead)
	}
	d.fd = fd
	d.file = os.NewFile(uintptr(fd), "/dev/net/tun:"+d.name)
	var err error
	d.rc, err = d.file.SyscallConn()
	return err
}

func kindName(k string) string {
	if k == "" {
		return "a physical or loopback device"
	}
	return "a " + k + " device"
}

func (d *Device) inNS() string {
	if d.netns == "" {
		return ""
	}
	return " in `ip netns exec " + d.netns + "`"
}

// configure applies MTU, addresses, link state and routes, recording how to
// undo each step.
func (d *Device) configure(cfg Config) error {
	nl, idx := d.nl, d.index
	li, err := nl.getLink("", idx)
	if err != nil {
		return d.errorf("read the link state", err, "")
	}
	if cfg.MTU != 0 && cfg.MTU != d.mtu {
		old := d.mtu
		if err := nl.setMTU(idx, cfg.MTU); err != nil {
			return d.errorf("set MTU "+strconv.Itoa(cfg.MTU), err, "")
		}
		d.mtu = cfg.MTU
		d.undo = append(d.undo, func() error { return nl.setMTU(idx, old) })
	}
	if cfg.TxQueueLen != 0 && cfg.TxQueueLen != li.txqlen {
		old := li.txqlen
		if err := nl.setTxQueueLen(idx, cfg.TxQueueLen); err != nil {
			return d.errorf("set the transmit queue length to "+strconv.Itoa(cfg.TxQueueLen), err, "")
		}
		d.undo = append(d.undo, func() error { return nl.setTxQueueLen(idx, old) })
	}
	for _, p := range cfg.Addrs {
		if err := nl.addr(true, idx, p); err != nil {
			fix := ""
			if errors.Is(err, unix.EEXIST) {
				fix = "the device already has it: remove it with `ip addr del " + p.String() + " dev " + d.name + "`"
			}
			return d.errorf("add address "+p.String(), err, fix)
		}
		d.undo = append(d.undo, func() error { return nl.addr(false, idx, p) })
	}
	if !cfg.Down {
		if li.flags&unix.IFF_UP == 0 {
			if err := nl.setUp(idx, true); err != nil {
				return d.errorf("bring the link up", err, "")
			}
			d.undo = append(d.undo, func() error { return nl.setUp(idx, false) })
		}
	}
	for _, r := range cfg.Routes {
		if err := nl.route(true, idx, r); err != nil {
			fix := ""
			if errors.Is(err, unix.EEXIST) {
				fix = "a route to " + r.Dst.String() + " exists: remove it with `ip route del " + r.Dst.String() + "`" + d.inNS()
			}
			return d.errorf("add route to "+r.Dst.String(), err, fix)
		}
		d.undo = append(d.undo, func() error { return nl.route(false, idx, r) })
	}
	return nil
}

// teardown closes the descriptor, deletes a device Open created, or undoes the
// configuration of an attached one, and closes the netlink socket. It returns
// the first error.
func (d *Device) teardown() error {
	var first error
	keep := func(err error) {
		if first == nil && err != nil {
			first = err
		}
	}
	if d.file != nil {
		if !d.created && d.offload {
			// Leave an attached device without offloads, for the next user.
			_ = d.rc.Control(func(fd uintptr) { _ = unix.IoctlSetInt(int(fd), unix.TUNSETOFFLOAD, 0) })
		}
		keep(d.file.Close())
	}
	if d.created && d.nl != nil {
		// A device that is not persistent goes with its last descriptor; delete
		// it by index in case something made it persistent meanwhile.
		if err := d.nl.delLink(d.index); err != nil && !errors.Is(err, unix.ENODEV) {
			keep(d.errorf("delete the device", err, ""))
		}
	} else {
		for i := len(d.undo) - 1; i >= 0; i-- {
			if err := d.undo[i](); err != nil && !errors.Is(err, unix.ENODEV) && !errors.Is(err, unix.EADDRNOTAVAIL) &&
				!errors.Is(err, unix.ESRCH) {
				keep(d.errorf("undo the configuration", err, ""))
			}
		}
	}
	d.undo = nil
	if d.nl != nil {
		keep(d.nl.close())
	}
	return first
}

// Close closes the device: a blocked ReadBatch returns net.ErrClosed, the
// device is deleted if Open created it (an attached device gets its earlier
// configuration back). Closing again does nothing.
func (d *Device) Close() error {
	var err error
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		err = d.teardown()
	})
	return err
}

// Name returns the device's name.
func (d *Device) Name() string { return d.name }

// Index returns the device's interface index (in its namespace).
func (d *Device) Index() int { return d.index }

// Netns returns the namespace the device lives in ("" for the current one).
func (d *Device) Netns() string { return d.netns }

// MTU returns the largest frame ReadBatch returns and WriteBatch takes.
func (d *Device) MTU() int { return d.mtu }

// Offload reports whether the device runs with virtio-net headers and
// segmentation offload.
func (d *Device) Offload() bool { return d.offload }

// SkipsChecksums reports whether ReadBatch leaves partial checksums partial
// (Config.SkipChecksums with Offload).
func (d *Device) SkipsChecksums() bool { return d.nosum }

// Stats returns the device's counters.
func (d *Device) Stats() Stats {
	return Stats{
		RxFrames: d.rxFrames.Load(), RxGSO: d.rxGSO.Load(), RxCsum: d.rxCsum.Load(), RxDropped: d.rxDropped.Load(),
		TxFrames: d.txFrames.Load(), TxWrites: d.txWrites.Load(), TxGSO: d.txGSO.Load(),
		TxCoalesced: d.txCoalesced.Load(), TxErrors: d.txErrors.Load(),
	}
}

// closedErr maps an error after Close to net.ErrClosed.
func (d *Device) closedErr(err error) error {
	if d.closed.Load() {
		return net.ErrClosed
	}
	return d.errorf("I/O", err, "")
}
