package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/forward"
	"github.com/tcpeng/tcpeng/host/netns"
	"github.com/tcpeng/tcpeng/host/tun"
	"golang.org/x/sys/unix"
)

type forwardOptions struct {
	netns       string
	tun         string
	mtu         int
	offload     bool
	txqueuelen  int
	addr        string
	gateway     string
	dns         string
	dnsUpstream string
	resolvConf  string
	ports       portFlags
	maxConns    int
	dialTimeout time.Duration
	engine      string
	pcap        string
	cpuprofile  string
	verbose     bool
	spin        bool
	cmd         []string
}

// portFlag is one -p [HOSTIP:]HOSTPORT:NSPORT.
type portFlag struct {
	host netip.AddrPort
	ns   uint16
}

type portFlags []portFlag

func (p *portFlags) String() string {
	var s []string
	for _, f := range *p {
		s = append(s, fmt.Sprintf("%v:%d", f.host, f.ns))
	}
	return strings.Join(s, ",")
}

func (p *portFlags) Set(v string) error {
	parts := strings.Split(v, ":")
	ip := netip.AddrFrom4([4]byte{127, 0, 0, 1})
	switch len(parts) {
	case 2:
	case 3:
		a, err := netip.ParseAddr(parts[0])
		if err != nil || !a.Is4() {
			return fmt.Errorf("%q: %q is not an IPv4 address to listen on", v, parts[0])
		}
		ip, parts = a, parts[1:]
	default:
		return fmt.Errorf("%q is not HOSTPORT:NSPORT or HOSTIP:HOSTPORT:NSPORT", v)
	}
	hp, err1 := strconv.ParseUint(parts[0], 10, 16)
	np, err2 := strconv.ParseUint(parts[1], 10, 16)
	if err1 != nil || err2 != nil || hp == 0 || np == 0 {
		return fmt.Errorf("%q: ports must be 1 to 65535", v)
	}
	*p = append(*p, portFlag{netip.AddrPortFrom(ip, uint16(hp)), uint16(np)})
	return nil
}

func forwardFlags(o *forwardOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("forward", flag.ContinueOnError)
	fs.StringVar(&o.netns, "netns", "", "give userspace networking to the existing network namespace `NS` (ip netns add NS) and run until SIGINT/SIGTERM")
	fs.StringVar(&o.tun, "tun", "tcpeng0", "the TUN device's `name` in the namespace")
	fs.IntVar(&o.mtu, "mtu", 65520, "the device's and the engine's MTU `N` (576 to 65535; pasta's default)")
	fs.BoolVar(&o.offload, "offload", true, "the device's offloads (virtio-net header, TSO/GSO both ways); --offload=false turns them off")
	fs.IntVar(&o.txqueuelen, "txqueuelen", 4096, "the device's transmit queue `N` in packets")
	fs.StringVar(&o.addr, "addr", "10.0.2.100/24", "the namespace's `address` on the device")
	fs.StringVar(&o.gateway, "gateway", "10.0.2.2", "the gateway `address`: the engine, the namespace's default route; connections to it reach the host's 127.0.0.1")
	fs.StringVar(&o.dns, "dns", "10.0.2.3", "the DNS relay's `address`: TCP port 53 there reaches the host's resolver")
	fs.StringVar(&o.dnsUpstream, "dns-upstream", "", "the resolver `IP:PORT` DNS is relayed to (default: the first nameserver of --resolv-conf, port 53)")
	fs.StringVar(&o.resolvConf, "resolv-conf", "/etc/resolv.conf", "the host's resolver configuration `FILE`")
	fs.Var(&o.ports, "p", "forward the host's `[HOSTIP:]HOSTPORT:NSPORT` (HOSTIP 127.0.0.1 by default) into the namespace; repeatable")
	fs.IntVar(&o.maxConns, "max-conns", forward.DefaultMaxConns, "the most connections relayed at once, `N`; past it new ones are reset")
	fs.DurationVar(&o.dialTimeout, "dial-timeout", forward.DefaultDialTimeout, "how long a relayed connection waits for its destination to answer, `D`")
	fs.StringVar(&o.engine, "engine", "native", "the engine `kind`: "+engineHelp())
	fs.StringVar(&o.pcap, "pcap", "", "write every frame the engine receives and sends to `FILE` (pcap, raw IP)")
	fs.StringVar(&o.cpuprofile, "cpuprofile", "", "write a CPU profile of the run to `FILE` (go tool pprof)")
	fs.BoolVar(&o.spin, "spin", true, "after relaying data, poll for up to 50 µs before sleeping: shorter round trips (--spin=false: sleep at once, no CPU spent polling)")
	fs.BoolVar(&o.verbose, "v", false, "print the setup, and one line per connection that could not be relayed, on stderr")
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, `Usage:
  tcpeng forward [flags] --netns NS
  tcpeng forward [flags] -- CMD [ARGS...]

Userspace networking for a network namespace, the job of slirp4netns and
pasta. The namespace gets a TUN device (tcpeng0, 10.0.2.100/24, MTU 65520,
offloads on) and a default route through the gateway 10.0.2.2, which is the
tcpeng engine, running in this process in the current namespace. TCP
connections from the namespace to any destination end at the engine and are
relayed through ordinary sockets of this host:
  10.0.2.2:PORT     the host's 127.0.0.1:PORT
  10.0.2.3:53       the host's resolver, over TCP (DNS over TCP only, below)
  anything else     dialed as it is, from the host
Half-closes are passed on; a reset on one side resets the other; a
destination that refuses or does not answer within --dial-timeout gets the
namespace's connection reset (the engine has accepted it by then).

With --netns NS, the existing namespace NS is served until SIGINT or SIGTERM.
With a command, a new namespace (with no name, and lo up) is made, CMD runs
in it, and everything is torn down when CMD exits; tcpeng exits with CMD's
status (128+N if a signal N ended it). SIGTERM and SIGHUP are passed to CMD,
and so is SIGINT unless the terminal sent it to CMD already.

-p HOSTPORT:NSPORT listens on the host's 127.0.0.1:HOSTPORT; the engine dials
each connection into the namespace's address, port NSPORT, from 10.0.2.2.

Not yet: UDP (and so ordinary DNS, which asks over UDP first) waits for the
engine's IP layer (issue: the IP layer); ICMP (ping) too; IPv6. Until then,
resolvers in the namespace must use TCP: "options use-vc" in its
resolv.conf, dig +tcp, or Go's resolver with a TCP dialer.

Flags (-flag and --flag are the same):
`)
		fs.PrintDefaults()
		fmt.Fprintf(w, `
It needs root (CAP_NET_ADMIN, and CAP_SYS_ADMIN for namespaces). Bad flags, a
missing privilege, a device name in use or a missing namespace give one line
on stderr and exit status 2 (flags) or 1, with nothing left configured.

Examples:
  tcpeng forward -- curl -s http://10.0.2.2:8000/       # a server on the host's loopback
  tcpeng forward -p 8080:80 -- python3 -m http.server 80
  ip netns add box; tcpeng forward --netns box &
  ip netns exec box iperf3 -c 10.0.2.2                  # iperf3 -s on the host
`)
	}
	return fs
}

// forwardPlan is a checked forwardOptions.
type forwardPlan struct {
	addr        netip.Prefix
	gateway     netip.Addr
	dns         netip.Addr
	dnsUpstream netip.AddrPort
	dnsNote     string // why there is no upstream
	path        string // CMD's path
}

func (o *forwardOptions) check() (*forwardPlan, error) {
	p := &forwardPlan{}
	var err error
	if p.addr, err = parsePrefix("addr", o.addr, 24); err != nil {
		return nil, err
	}
	if p.gateway, err = parseAddr4("gateway", o.gateway); err != nil {
		return nil, err
	}
	if p.dns, err = parseAddr4("dns", o.dns); err != nil {
		return nil, err
	}
	net := p.addr.Masked()
	switch {
	case !net.Contains(p.gateway) || p.gateway == p.addr.Addr() || p.gateway == net.Addr():
		return nil, fmt.Errorf("--gateway %v must be another address of the namespace's network %v", p.gateway, net)
	case p.dns == p.addr.Addr() || p.dns == p.gateway:
		return nil, fmt.Errorf("--dns %v must differ from --addr and --gateway", p.dns)
	case o.netns != "" && len(o.cmd) > 0:
		return nil, fmt.Errorf("give --netns NS or a command, not both (the command would run in a new namespace)")
	case o.netns == "" && len(o.cmd) == 0:
		return nil, errors.New("give --netns NS (an existing namespace) or -- CMD [ARGS...] (run CMD in a new one)")
	case o.netns != "" && !netns.ValidName(o.netns):
		return nil, fmt.Errorf("--netns %q is not a namespace name: give a name without '/' or spaces", o.netns)
	case o.tun == "":
		return nil, errors.New("--tun is empty: give the device a name, like tcpeng0")
	case o.mtu < 576 || o.mtu > 65535:
		return nil, fmt.Errorf("--mtu %d is out of range: give 576 to 65535", o.mtu)
	case o.txqueuelen < 1 || o.txqueuelen > 1<<20:
		return nil, fmt.Errorf("--txqueuelen %d is out of range: give 1 to 1048576", o.txqueuelen)
	case o.maxConns < 1 || o.maxConns > 1<<18:
		return nil, fmt.Errorf("--max-conns %d is out of range: give 1 to %d", o.maxConns, 1<<18)
	case o.dialTimeout <= 0 || o.dialTimeout > 10*time.Minute:
		return nil, fmt.Errorf("--dial-timeout %v is out of range: give more than 0 and at most 10m", o.dialTimeout)
	}
	if _, ok := engineKinds[o.engine]; !ok {
		return nil, errors.New(engineMissing(o.engine))
	}
	if o.dnsUpstream != "" {
		if p.dnsUpstream, err = netip.ParseAddrPort(o.dnsUpstream); err != nil || p.dnsUpstream.Port() == 0 {
			return nil, fmt.Errorf("--dns-upstream %q is not IP:PORT: give one like 192.0.2.53:53", o.dnsUpstream)
		}
	} else if p.dnsUpstream, err = forward.Nameserver(o.resolvConf); err != nil {
		p.dnsNote = err.Error()
	}
	if len(o.cmd) > 0 {
		if p.path, err = exec.LookPath(o.cmd[0]); err != nil {
			return nil, fmt.Errorf("command %q: %v", o.cmd[0], errors.Unwrap(err))
		}
	}
	return p, nil
}

func runForward(args []string, stdout, stderr io.Writer) int {
	var o forwardOptions
	fs := forwardFlags(&o)
	if code, stop := parseFlagsArgs(fs, args, stdout, stderr); stop {
		return code
	}
	o.cmd = fs.Args()
	// Signals: in command mode they go to the command (see forwardMain); the
	// context ends on the first one that should stop tcpeng.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	return forwardMain(context.Background(), sigs, &o, stdout, stderr, nil)
}

// forwardSession is a running forward: what tests look at.
type forwardSession struct {
	ns   *os.File // the namespace (ours, or --netns's)
	dev  *tun.Device
	fwd  *forward.Forwarder
	pcap *pcapLink
}

// close tears everything down: relayed connections are reset, the engine
// resets what is left, the device goes (and its address and route with it),
// the namespace file is closed (a namespace of ours disappears with it and
// its processes).
func (s *forwardSession) close() {
	if s.fwd != nil {
		s.fwd.Close() // and the link
	} else if s.pcap != nil {
		s.pcap.Close()
	} else if s.dev != nil {
		s.dev.Close()
	}
	if s.ns != nil {
		s.ns.Close()
	}
}

// startForward sets up the namespace, the device, the engine and the
// forwarder. On error nothing is left.
func startForward(o *forwardOptions, p *forwardPlan, stderr io.Writer) (_ *forwardSession, err error) {
	s := &forwardSession{}
	defer func() {
		if err != nil {
			s.close()
			if o.pcap != "" && s.pcap != nil {
				os.Remove(o.pcap)
			}
		}
	}()
	cfg := tun.Config{
		Name: o.tun, MTU: o.mtu, TxQueueLen: o.txqueuelen, Offload: o.offload,
		SkipChecksums: trustChecksums(o.pcap),
		Whole:         true, // with offloads: the namespace's super-packets reach the engine whole (GRO)
		Addrs:         []netip.Prefix{p.addr},
		Routes:        []tun.Route{{Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: p.gateway}},
	}
	if o.netns != "" {
		if !netns.Exists(o.netns) {
			return nil, fmt.Errorf("namespace %q does not exist: create it with `ip netns add %s`, or give a command to run in a new one", o.netns, o.netns)
		}
		cfg.Netns = o.netns
		if s.dev, err = tun.Open(cfg); err != nil {
			return nil, err
		}
	} else {
		if s.ns, err = forward.NewNamespace(); err != nil {
			return nil, err
		}
		if err = forward.LoopbackUp(s.ns); err != nil {
			return nil, err
		}
		// tun.Open with no Netns works in the calling thread's namespace,
		// which DoFile has switched to the new one.
		err = netns.DoFile(s.ns, "new", func() error {
			var err error
			s.dev, err = tun.Open(cfg)
			return err
		})
		if err != nil {
			return nil, err
		}
	}
	var link forward.Link = s.dev
	if o.pcap != "" {
		if s.pcap, err = newPcapLink(s.dev, o.pcap); err != nil {
			return nil, err
		}
		link = s.pcap
	}
	eng, err := newEngine(o.engine, engine.Config{
		Addrs: []netip.Addr{p.gateway}, MTU: s.dev.MTU(), Forward: true,
		TrustLink:        true, // the kernel wrote every frame (see trustChecksums)
		PartialChecksums: partialChecksums(o.offload, o.pcap),
		// The engine's table also holds connections closing and in
		// TIME_WAIT (2×MSL after each close the engine started).
		MaxConns: min(max(engine.DefaultMaxConns, 2*o.maxConns+64), engine.MaxConnsLimit), Backlog: min(o.maxConns, 4096),
	})
	if err != nil {
		return nil, err
	}
	fcfg := forward.Config{
		Gateway: p.gateway, Network: p.addr.Masked(), DNS: p.dns, DNSUpstream: p.dnsUpstream,
		Guest: p.addr.Addr(), DialTimeout: o.dialTimeout, MaxConns: o.maxConns,
		Spin: o.spin, FrameBuffer: wholeBuffer(o.offload), // FrameBuffer: tun.Config.Whole
	}
	if o.verbose {
		fcfg.Logf = func(format string, args ...any) { fmt.Fprintf(stderr, format+"\n", args...) }
	}
	if s.fwd, err = forward.Start(eng, link, fcfg); err != nil {
		s.dev, s.pcap = nil, nil // Start closed the link
		return nil, err
	}
	for _, pf := range o.ports {
		if _, err = s.fwd.AddPort(pf.host, pf.ns); err != nil {
			return nil, fmt.Errorf("-p %v:%d: %v", pf.host, pf.ns, errors.Unwrap(err))
		}
	}
	return s, nil
}

// forwardMain runs forward and returns the exit code. sigs delivers the
// signals that stop it (nil: none); ctx ending stops it too (as SIGTERM).
// ready, if not nil, is called once everything is up.
func forwardMain(ctx context.Context, sigs <-chan os.Signal, o *forwardOptions, stdout, stderr io.Writer, ready func(*forwardSession)) int {
	fail := failer(stderr, "forward")
	p, err := o.check()
	if err != nil {
		return fail(exitUsage, err)
	}
	stopProfile, err := startProfile(o.cpuprofile)
	if err != nil {
		return fail(exitFail, err)
	}
	defer stopProfile()
	s, err := startForward(o, p, stderr)
	if err != nil {
		return fail(exitFail, err)
	}
	defer s.close()

	dns := fmt.Sprintf("DNS over TCP at %v:53 to %v", p.dns, p.dnsUpstream)
	if !p.dnsUpstream.IsValid() {
		dns = fmt.Sprintf("no DNS relay (%s)", p.dnsNote)
	}
	var ports []string
	for _, pf := range o.ports {
		ports = append(ports, fmt.Sprintf(", host %v to port %d", pf.host, pf.ns))
	}
	where := "a new namespace"
	if o.netns != "" {
		where = "namespace " + o.netns
	}
	summary := fmt.Sprintf("tcpeng forward: %s has %s %v (MTU %d) with a default route via %v, the host's 127.0.0.1; %s%s",
		where, s.dev.Name(), p.addr, s.dev.MTU(), p.gateway, dns, strings.Join(ports, ""))
	if ready != nil {
		ready(s)
	}

	if o.netns != "" {
		fmt.Fprintf(stdout, "%s; stop with SIGINT or SIGTERM\n", summary)
		select {
		case <-ctx.Done():
		case <-sigs:
		}
		return exitOK
	}
	if o.verbose {
		fmt.Fprintln(stderr, summary)
	}
	return runCommand(ctx, sigs, s, p.path, o.cmd, stdout, stderr)
}

// runCommand runs the command in the session's namespace and returns its
// exit code; signals are passed on to it.
func runCommand(ctx context.Context, sigs <-chan os.Signal, s *forwardSession, path string, args []string, stdout, stderr io.Writer) int {
	cmd := exec.Command(path, args[1:]...)
	cmd.Args[0] = args[0]
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, stdout, stderr
	// If tcpeng dies, so does the command (and with both gone, the namespace).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := netns.DoFile(s.ns, "new", cmd.Start); err != nil {
		fmt.Fprintf(stderr, "tcpeng forward: start %s: %s\n", args[0], oneLine(err))
		return exitFail
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var kill <-chan time.Time
	ctxDone := ctx.Done()
	for {
		select {
		case err := <-done:
			return exitCode(err)
		case sig := <-sigs:
			if sig == os.Interrupt && terminalSentIt() {
				continue // the command got it from the terminal
			}
			cmd.Process.Signal(sig)
			if kill == nil {
				kill = time.After(10 * time.Second)
			}
		case <-ctxDone:
			ctxDone = nil
			cmd.Process.Signal(syscall.SIGTERM)
			kill = time.After(10 * time.Second)
		case <-kill:
			cmd.Process.Kill()
		}
	}
}

// terminalSentIt reports whether tcpeng runs in the foreground of a terminal,
// where ^C sends SIGINT to the command as well.
func terminalSentIt() bool {
	pg, err := unix.IoctlGetInt(0, unix.TIOCGPGRP)
	return err == nil && pg == unix.Getpgrp()
}

// exitCode turns the command's end into tcpeng's exit status.
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	return exitFail
}
