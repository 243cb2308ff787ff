// Package forward is the relay of userspace networking (`tcpeng forward`, the
// job of slirp4netns and pasta): TCP connections that a network namespace (or
// a VM) opens to any destination are terminated by a tcpeng engine running
// with engine.Config.Forward, and each one is relayed through an ordinary
// socket of the host to the destination the namespace asked for. The other
// way, port forwards take connections on host sockets and have the engine
// dial them into the namespace.
//
// A Forwarder is one event loop, as pasta is: a single goroutine waits in
// epoll(7) on the link (the TUN device), on every host socket it relays and
// on the port forwards' listeners, and drives the engine's Step directly. A
// message from the namespace is written to its host socket in the same turn
// of the loop that read it from the device, and an answer goes back the same
// way, with no goroutine woken in between. Only a Step's larger batches of
// frames (bulk data, more than a few segments) are written to the link by a
// second goroutine while the loop goes on with the host's sockets and the next
// Step (host/internal/wqueue, as host.Driver does): the namespace's kernel
// takes each packet inside that write, and with several bulk connections the
// loop's one core was the bound. The engine listens on the wildcard
// address (0.0.0.0, port 0), which takes connections to every destination,
// and an accepted connection's local address is the destination. Destinations
// are mapped by Config.Target:
//
//   - the gateway address (10.0.2.2 in `tcpeng forward`) is the host's
//     loopback (127.0.0.1), with the same port, as slirp4netns's 10.0.2.2;
//   - the DNS address, port 53, is the host's resolver (DNS over TCP);
//   - other addresses of the virtual network are refused (reset);
//   - everything else is dialed as it is, from the host.
//
// A relayed connection carries a half-close (FIN) from one side to the other
// and turns a reset on one side into a reset on the other. A destination
// that refuses, or that cannot be reached within Config.DialTimeout, has the
// engine's connection reset. Resources are bounded: Config.MaxConns relayed
// connections (more are reset at once). Data from the host is peeked into the
// loop's scratch memory and taken from the socket only once the engine has
// queued it, so the engine's send buffer is the only buffer on that side;
// data for the host waits in a buffer of the loop only when the host's socket
// is full, at most one chunk (256 KiB) per connection.
//
// The engine completes the namespace's handshake before the Forwarder dials
// the destination (the engine accepts, then the relay connects), so a refused
// destination shows in the namespace as a connection that opens and is reset,
// not as a refused connect. UDP waits for the engine's IP layer.
package forward

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
)

// Defaults.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultMaxConns    = 4096
)

// Config configures a Forwarder. Gateway is required; the zero value of the
// other fields gives the defaults.
type Config struct {
	// Gateway is the engine's address on the virtual network, the namespace's
	// default gateway; connections to it go to Loopback, same port.
	Gateway netip.Addr
	// Loopback is the host address the gateway maps to. Default 127.0.0.1.
	Loopback netip.Addr
	// Network is the virtual network (10.0.2.0/24). Connections to its other
	// addresses (but Gateway and DNS) are refused. Optional.
	Network netip.Prefix
	// DNS is the address of the DNS relay (10.0.2.3): connections to its port
	// 53 go to DNSUpstream, to other ports are refused. Optional.
	DNS netip.Addr
	// DNSUpstream is the host's resolver (see Nameserver). Invalid: DNS
	// connections are refused.
	DNSUpstream netip.AddrPort
	// Guest is the namespace's address, the destination of port forwards.
	Guest netip.Addr
	// DialTimeout bounds a connection's dial of its destination (host side)
	// or of the namespace (port forwards). Default 10 s.
	DialTimeout time.Duration
	// MaxConns bounds the connections relayed at once, both ways together,
	// those still dialing included; past it new connections are reset.
	// Default 4096.
	MaxConns int
	// Redirect, if set, is called with the host address a connection is
	// about to be dialed to (the result of Target) and returns the address
	// dialed instead: a local proxy, or a test's server. It runs on the
	// Forwarder's loop and must not block.
	Redirect func(target netip.AddrPort) netip.AddrPort
	// Spin makes the loop poll for up to 50 µs before it sleeps when payload
	// crossed the relay since it last slept, as long as waits keep ending
	// that soon (host/internal/spin), yielding the CPU to the kernel's
	// scheduler between polls: the answer to a request passed on finds the
	// loop awake. It does not spin after handshakes and closes alone, nor
	// while the writer goroutine writes a batch (bulk data). tunbench
	// forward, beside the loop without it: 64-byte round trips 0.66x as long;
	// connect+close, connect+echo+close and bulk unchanged. tcpeng forward
	// turns it on unless told --spin=false.
	Spin bool
	// FrameBuffer is the size of each buffer the loop reads frames into, if
	// more than the link's MTU: for a link that delivers frames longer than
	// its MTU (a TUN device with tun.Config.Whole: 65535).
	FrameBuffer int
	// Logf, if set, gets one line per connection that could not be relayed.
	Logf func(format string, args ...any)
}

// Stats are a Forwarder's counters. Resets, BytesOut and BytesIn count the
// relays that ended.
type Stats struct {
	Active   int64  // connections held now: dialing or relayed
	Accepted uint64 // connections from the namespace
	Ported   uint64 // connections taken by port forwards
	Relayed  uint64 // connections whose destination answered
	Refused  uint64 // connections reset because the destination refused, was unreachable or timed out
	Rejected uint64 // connections reset by the mapping (an address of the virtual network, no DNS upstream)
	Limited  uint64 // connections reset because MaxConns were active
	Resets   uint64 // resets carried from one side to the other
	BytesOut uint64 // bytes from the namespace to the host
	BytesIn  uint64 // bytes from the host to the namespace
	Spins    uint64 // waits the loop began by polling rather than sleeping (Config.Spin)
}

// Link is what a Forwarder runs on: a host.Link whose arrivals can be waited
// for with epoll (a *tun.Device is one).
type Link interface {
	host.Link
	// Fd is a descriptor that polls readable when a frame is there to read.
	Fd() int
	// TryReadBatch is ReadBatch without the wait: 0 frames and no error when
	// none is ready. The Forwarder calls it again while it fills the whole
	// batch, whatever the descriptor shows.
	TryReadBatch(bufs [][]byte, sizes []int) (int, error)
	// (WriteBatch is called from another goroutine than the reads, as
	// host.Driver does: the two may run in parallel.)
}

// A Forwarder relays the connections of one engine. Its methods are safe for
// concurrent use.
type Forwarder struct {
	cfg  Config
	wake int           // eventfd: control requests for the loop
	done chan struct{} // closed when the loop has ended

	mu      sync.Mutex
	closing bool
	ports   []portReq // listeners AddPort made, for the loop to take

	accepted, ported, relayed, refused, rejected, limited, resets, bytesOut, bytesIn, spins atomic.Uint64
	active                                                                                  atomic.Int64
}

// portReq is a port forward's listener on its way to the loop.
type portReq struct {
	fd    int
	guest uint16
}

// ErrRejected is the error of Target for a destination the Forwarder does not
// relay.
var ErrRejected = errors.New("forward: destination not relayed")

// Start runs e on link and relays the connections of e, which must run with
// engine.Config.Forward: the Forwarder listens on the wildcard address
// (0.0.0.0, port 0) and relays every connection it accepts. The Forwarder
// owns the engine and the link: Close closes the link. On error the link is
// closed.
func Start(e engine.Engine, link Link, cfg Config) (*Forwarder, error) {
	if !cfg.Gateway.Is4() {
		link.Close()
		return nil, fmt.Errorf("forward: the gateway address %v is not IPv4: give the engine's address on the virtual network (10.0.2.2)", cfg.Gateway)
	}
	if !cfg.Loopback.IsValid() {
		cfg.Loopback = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.MaxConns <= 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	f := &Forwarder{cfg: cfg, done: make(chan struct{})}
	l, err := newLoop(f, e, link)
	if err != nil {
		link.Close()
		return nil, err
	}
	f.wake = l.wake
	go l.run()
	return f, nil
}

// Config returns the configuration in effect, defaults filled in.
func (f *Forwarder) Config() Config { return f.cfg }

// Target maps a destination the namespace asked for to the host address the
// Forwarder dials, or returns an error wrapping ErrRejected.
func (f *Forwarder) Target(dst netip.AddrPort) (netip.AddrPort, error) {
	return f.cfg.Target(dst)
}

// Target maps a destination; see Forwarder.Target.
func (c *Config) Target(dst netip.AddrPort) (netip.AddrPort, error) {
	a := dst.Addr().Unmap()
	switch {
	case !a.IsValid() || dst.Port() == 0:
		return netip.AddrPort{}, fmt.Errorf("%w: %v is not a destination", ErrRejected, dst)
	case a == c.Gateway:
		return netip.AddrPortFrom(c.Loopback, dst.Port()), nil
	case c.DNS.IsValid() && a == c.DNS:
		if dst.Port() != 53 {
			return netip.AddrPort{}, fmt.Errorf("%w: %v: the DNS relay serves port 53 only", ErrRejected, dst)
		}
		if !c.DNSUpstream.IsValid() {
			return netip.AddrPort{}, fmt.Errorf("%w: %v: no DNS upstream (the host's resolv.conf names no nameserver)", ErrRejected, dst)
		}
		return c.DNSUpstream, nil
	case c.Network.IsValid() && c.Network.Contains(a):
		return netip.AddrPort{}, fmt.Errorf("%w: %v is on the virtual network and is not the gateway", ErrRejected, dst)
	case a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || a.IsLoopback():
		return netip.AddrPort{}, fmt.Errorf("%w: %v cannot be relayed", ErrRejected, dst)
	}
	return netip.AddrPortFrom(a, dst.Port()), nil
}

// Stats returns the counters.
func (f *Forwarder) Stats() Stats {
	return Stats{
		Active: f.active.Load(), Accepted: f.accepted.Load(), Ported: f.ported.Load(), Relayed: f.relayed.Load(),
		Refused: f.refused.Load(), Rejected: f.rejected.Load(), Limited: f.limited.Load(), Resets: f.resets.Load(),
		BytesOut: f.bytesOut.Load(), BytesIn: f.bytesIn.Load(), Spins: f.spins.Load(),
	}
}

func (f *Forwarder) logf(format string, args ...any) {
	if f.cfg.Logf != nil {
		f.cfg.Logf(format, args...)
	}
}

// signal wakes the loop to look at the control requests (f.mu held: Close
// closes the descriptor under it).
func (f *Forwarder) signal() {
	one := [8]byte{1}
	unix.Write(f.wake, one[:])
}

// AddPort forwards connections to the host address hostAddr (127.0.0.1:8080)
// into the namespace: each one has the engine dial Config.Guest on guestPort,
// from the gateway address. It returns the address listened on (port 0 in
// hostAddr picks a free one).
func (f *Forwarder) AddPort(hostAddr netip.AddrPort, guestPort uint16) (net.Addr, error) {
	if !f.cfg.Guest.IsValid() {
		return nil, errors.New("forward: port forwarding needs Config.Guest, the namespace's address")
	}
	if guestPort == 0 {
		return nil, errors.New("forward: port forward to port 0: give the namespace's port")
	}
	fd, addr, err := listenTCP(hostAddr)
	if err != nil {
		return nil, fmt.Errorf("forward: port forward %v to %v: %w", hostAddr, guestPort, err)
	}
	f.mu.Lock()
	if f.closing {
		f.mu.Unlock()
		unix.Close(fd)
		return nil, net.ErrClosed
	}
	f.ports = append(f.ports, portReq{fd, guestPort})
	f.signal()
	f.mu.Unlock()
	return net.TCPAddrFromAddrPort(addr), nil
}

// Close stops the Forwarder: its listeners close, dials in progress give up,
// the connections still relayed are reset on both sides (the engine's resets
// written to the link before it closes), and the link closes. It returns when
// the loop has ended. Closing twice returns net.ErrClosed.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closing {
		f.mu.Unlock()
		<-f.done
		return net.ErrClosed
	}
	f.closing = true
	f.signal()
	f.mu.Unlock()
	<-f.done
	// The loop is gone: what it did not take (it stopped on a failed link)
	// is closed here, with its wake-up descriptor.
	f.mu.Lock()
	for _, p := range f.ports {
		unix.Close(p.fd)
	}
	f.ports = nil
	unix.Close(f.wake)
	f.mu.Unlock()
	return nil
}
