package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
	"github.com/tcpeng/tcpeng/host/netns"
	"github.com/tcpeng/tcpeng/host/tun"
)

type serveOptions struct {
	tun        string
	addr       string
	peerAddr   string
	netns      string
	mtu        int
	offload    bool
	txqueuelen int
	echo       int
	discard    int
	chargen    int
	http       int
	root       string
	engine     string
	pcap       string
	maxConns   int
	cpuprofile string
}

func serveFlags(o *serveOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.StringVar(&o.tun, "tun", "tcpeng0", "the TUN device's `name` (created; it must not exist)")
	fs.StringVar(&o.addr, "addr", "10.7.0.2/24", "the engine's `address`")
	fs.StringVar(&o.peerAddr, "peer-addr", "10.7.0.1/24", "the kernel side's `address`, configured on the device; its prefix is routed through it")
	fs.StringVar(&o.netns, "netns", "", "put the device in the existing network namespace `NS` (ip netns add NS); default: the current one")
	fs.IntVar(&o.mtu, "mtu", 1500, "the device's and the engine's MTU `N` (576 to 65535)")
	fs.BoolVar(&o.offload, "offload", false, "turn on the device's offloads (virtio-net header, TSO/GSO both ways): the kernel and the engine exchange 64 KiB super-packets; use it for throughput")
	fs.IntVar(&o.txqueuelen, "txqueuelen", 4096, "the device's transmit queue `N` in packets (the kernel's 500 drops under load)")
	fs.IntVar(&o.echo, "echo", 7, "serve echo (RFC 862) on `port` (0: off)")
	fs.IntVar(&o.discard, "discard", 9, "serve discard (RFC 863) on `port` (0: off)")
	fs.IntVar(&o.chargen, "chargen", 19, "serve chargen (RFC 864) on `port` (0: off)")
	fs.IntVar(&o.http, "http", 0, "serve the files of --root over HTTP/1.1 on `port` (0: off; --root alone means 80)")
	fs.StringVar(&o.root, "root", "", "the `directory` the HTTP server serves")
	fs.StringVar(&o.engine, "engine", "native", "the engine `kind`: "+engineHelp())
	fs.StringVar(&o.pcap, "pcap", "", "write every frame the engine receives and sends to `FILE` (pcap, raw IP)")
	fs.IntVar(&o.maxConns, "max-conns", 16384, "the most connections the engine holds at once, `N`, TIME_WAIT included (past it SYNs are dropped)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the run to `FILE` (go tool pprof)")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, `Usage: tcpeng serve [flags]

Puts the engine on a TUN device as a host of its own: the kernel reaches it
through the device and tcpeng answers with small services. The device gets
--peer-addr (the kernel's side, whose prefix is routed through the device);
the engine answers at --addr. With --netns the device lives in that network
namespace, and programs run there (ip netns exec NS ...) are the clients.

Services (each on the engine's address; 0 turns one off):
  echo     RFC 862: sends back what it reads; passes on the client's half-close
  discard  RFC 863: reads and throws away
  chargen  RFC 864: sends lines of the rotating printable ASCII pattern until
           the client closes (a source for throughput tests)
  http     a static HTTP/1.1 file server (Go's net/http) for --root

Flags (-flag and --flag are the same):
`)
		fs.PrintDefaults()
		fmt.Fprintf(w, `
It runs until SIGINT or SIGTERM, then resets the connections still open and
removes the device (and the addresses and routes that came with it).
It needs CAP_NET_ADMIN (root). Bad flags, a missing privilege, a device name in
use or a missing namespace give one line on stderr and exit status 2 (flags) or
1, with nothing left configured.

Examples:
  ip netns add tcpeng-demo
  tcpeng serve --netns tcpeng-demo --http 80 --root . &
  ip netns exec tcpeng-demo curl http://10.7.0.2/README.md
  ip netns exec tcpeng-demo socat - TCP:10.7.0.2:7
  ip netns exec tcpeng-demo sh -c 'head -c 100M /dev/zero | socat -u - TCP:10.7.0.2:9'
  kill %%1; ip netns del tcpeng-demo
`)
	}
	return fs
}

// servePlan is a checked serveOptions.
type servePlan struct {
	addr, peer netip.Prefix
	ports      []servicePort
}

type servicePort struct {
	name string
	port uint16
}

// check validates o without touching the system and returns the plan, or a
// one-line reason.
func (o *serveOptions) check() (*servePlan, error) {
	p := &servePlan{}
	var err error
	if p.addr, err = parsePrefix("addr", o.addr, 24); err != nil {
		return nil, err
	}
	if p.peer, err = parsePrefix("peer-addr", o.peerAddr, 24); err != nil {
		return nil, err
	}
	switch {
	case p.addr.Addr() == p.peer.Addr():
		return nil, fmt.Errorf("--addr and --peer-addr are both %v: the engine and the kernel need different addresses", p.addr.Addr())
	case !p.peer.Masked().Contains(p.addr.Addr()):
		return nil, fmt.Errorf("--addr %v is outside --peer-addr's network %v: the kernel routes only that network through the device", p.addr.Addr(), p.peer.Masked())
	case o.tun == "":
		return nil, errors.New("--tun is empty: give the device a name, like tcpeng0")
	case o.mtu < 576 || o.mtu > 65535:
		return nil, fmt.Errorf("--mtu %d is out of range: give 576 to 65535", o.mtu)
	case o.txqueuelen < 1 || o.txqueuelen > 1<<20:
		return nil, fmt.Errorf("--txqueuelen %d is out of range: give 1 to 1048576", o.txqueuelen)
	case o.maxConns < 1 || o.maxConns > engine.MaxConnsLimit:
		return nil, fmt.Errorf("--max-conns %d is out of range: give 1 to %d", o.maxConns, engine.MaxConnsLimit)
	case o.netns != "" && !netns.ValidName(o.netns):
		return nil, fmt.Errorf("--netns %q is not a namespace name: give a name without '/' or spaces", o.netns)
	}
	if _, ok := engineKinds[o.engine]; !ok {
		return nil, errors.New(engineMissing(o.engine))
	}
	if o.root != "" && o.http == 0 {
		o.http = 80
	}
	if o.http != 0 {
		if o.root == "" {
			return nil, fmt.Errorf("--http %d needs --root DIR, the directory to serve", o.http)
		}
		if st, err := os.Stat(o.root); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("--root %q is not a directory: give the directory to serve", o.root)
		}
	}
	seen := map[int]string{}
	for _, s := range []struct {
		name string
		port int
	}{{"echo", o.echo}, {"discard", o.discard}, {"chargen", o.chargen}, {"http", o.http}} {
		if s.port == 0 {
			continue
		}
		if s.port < 0 || s.port > 65535 {
			return nil, fmt.Errorf("--%s %d is not a port: give 1 to 65535, or 0 to turn it off", s.name, s.port)
		}
		if other, dup := seen[s.port]; dup {
			return nil, fmt.Errorf("--%s and --%s both use port %d: give them different ports", other, s.name, s.port)
		}
		seen[s.port] = s.name
		p.ports = append(p.ports, servicePort{s.name, uint16(s.port)})
	}
	if len(p.ports) == 0 {
		return nil, errors.New("every service is off: turn one on (--echo 7, --discard 9, --chargen 19, --http 80 --root DIR)")
	}
	return p, nil
}

func runServe(args []string, stdout, stderr io.Writer) int {
	var o serveOptions
	fs := serveFlags(&o)
	if code, stop := parseFlags(fs, args, stdout, stderr); stop {
		return code
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serveMain(ctx, &o, stdout, stderr, nil)
}

// serveSession is a running serve: what tests look at.
type serveSession struct {
	dev    *tun.Device
	driver *host.Driver
	svc    *services
}

// serveMain runs serve until ctx ends and returns the exit code. ready, if
// not nil, is called once everything is up.
func serveMain(ctx context.Context, o *serveOptions, stdout, stderr io.Writer, ready func(*serveSession)) int {
	fail := failer(stderr, "serve")
	plan, err := o.check()
	if err != nil {
		return fail(exitUsage, err)
	}
	if o.netns != "" && !netns.Exists(o.netns) {
		return fail(exitFail, fmt.Errorf("namespace %q does not exist: create it with `ip netns add %s`, or leave out --netns", o.netns, o.netns))
	}
	stopProfile, err := startProfile(o.cpuprofile)
	if err != nil {
		return fail(exitFail, err)
	}
	defer stopProfile()

	dev, err := tun.Open(tun.Config{
		Name: o.tun, Netns: o.netns, MTU: o.mtu, TxQueueLen: o.txqueuelen, Offload: o.offload,
		SkipChecksums: trustChecksums(o.pcap),
		Spin:          true, // see tun.Config.Spin: the kernel is the only other party
		Whole:         true, // with offloads: the kernel's super-packets reach the engine whole (GRO)
		Addrs:         []netip.Prefix{plan.peer},
	})
	if err != nil {
		return fail(exitFail, err)
	}
	var link host.Link = dev
	var pl *pcapLink
	if o.pcap != "" {
		if pl, err = newPcapLink(dev, o.pcap); err != nil {
			dev.Close()
			return fail(exitFail, err)
		}
		link = pl
	}
	// undo closes what is open (the driver, or the link and the device) and
	// removes a capture file made for nothing.
	var drv *host.Driver
	svc := &services{}
	undo := func(err error) int {
		svc.close()
		if drv != nil {
			drv.Close()
		} else {
			link.Close()
		}
		svc.wait()
		if pl != nil {
			os.Remove(o.pcap)
		}
		return fail(exitFail, err)
	}
	eng, err := newEngine(o.engine, engine.Config{
		Addrs: []netip.Addr{plan.addr.Addr()}, MTU: dev.MTU(), MaxConns: o.maxConns, Backlog: min(o.maxConns, 4096),
		TrustLink:        true, // the kernel wrote every frame (see trustChecksums)
		PartialChecksums: partialChecksums(o.offload, o.pcap),
	})
	if err != nil {
		return undo(err)
	}
	if drv, err = host.NewDriver(eng, link, &host.Options{
		// The device spins (tun.Config.Spin above); the driver's goroutines
		// do not: the kernel's side of every connection needs the CPUs too,
		// and without the driver's spinning serve moved 6 to 13% more data
		// and connections (bench/tun).
		NoSpin: true,
		// Buffers for the super-packets tun.Config.Whole hands over; 16 of
		// them a batch (1 MiB) rather than the 4 that 256 KiB would hold, so
		// that the kernel's ACKs still come in batches.
		FrameBuffer: wholeBuffer(o.offload),
		BatchFrames: wholeBatch(o.offload),
	}); err != nil {
		return undo(err)
	}
	for _, sp := range plan.ports {
		ln, err := drv.ListenTCP(netip.AddrPortFrom(plan.addr.Addr(), sp.port))
		if err != nil {
			return undo(fmt.Errorf("listen for %s on port %d: %v", sp.name, sp.port, err))
		}
		svc.start(sp.name, ln, o.root)
	}

	where := ""
	if o.netns != "" {
		where = " in namespace " + o.netns
	}
	var list []string
	for _, sp := range plan.ports {
		list = append(list, fmt.Sprintf("%s %d", sp.name, sp.port))
	}
	off := ""
	if o.offload {
		off = ", offloads on"
	}
	fmt.Fprintf(stdout, "tcpeng serve: engine %v (%s engine) behind %s%s, kernel side %v, MTU %d%s; serving %s; stop with SIGINT or SIGTERM\n",
		plan.addr.Addr(), o.engine, dev.Name(), where, plan.peer, dev.MTU(), off, strings.Join(list, ", "))
	if ready != nil {
		ready(&serveSession{dev: dev, driver: drv, svc: svc})
	}

	<-ctx.Done()
	svc.close()
	drv.Close() // resets what is open, closes the device, which deletes it
	svc.wait()
	if pl != nil {
		if err := pl.Err(); err != nil {
			return fail(exitFail, err)
		}
	}
	return exitOK
}

// isClosed reports whether err comes from a closed listener or driver.
func isClosed(err error) bool { return errors.Is(err, net.ErrClosed) }
