// Package forward is the relay of userspace networking (`tcpeng forward`, the
// job of slirp4netns and pasta): TCP connections that a network namespace (or
// a VM) opens to any destination are terminated by a tcpeng engine running
// with engine.Config.Forward, and each one is relayed through an ordinary
// socket of the host to the destination the namespace asked for. The other
// way, port forwards take connections on host sockets and have the engine
// dial them into the namespace.
//
// A Forwarder runs an engine that has Config.Forward set with a host.Driver
// (Start): it listens on the wildcard address (0.0.0.0, port 0), which takes
// connections to every destination, and an accepted connection's local
// address is the destination. Destinations are mapped by Config.Target:
//
//   - the gateway address (10.0.2.2 in `tcpeng forward`) is the host's
//     loopback (127.0.0.1), with the same port, as slirp4netns's 10.0.2.2;
//   - the DNS address, port 53, is the host's resolver (DNS over TCP);
//   - other addresses of the virtual network are refused (reset);
//   - everything else is dialed as it is, from the host.
//
// Each relayed connection is two copy loops (Splice) that carry a half-close
// (CloseWrite) from one side to the other and turn a reset on one side into a
// reset on the other (SetLinger(0) and Close). A destination that refuses, or
// that cannot be reached within Config.DialTimeout, has the engine's
// connection reset. Resources are bounded: Config.MaxConns relayed
// connections (more are reset at once), two goroutines and two small buffers
// per connection, and at most Config.BigBuffers large buffers shared by the
// connections that move bulk data.
//
// The engine completes the namespace's handshake before the Forwarder dials
// the destination (the engine accepts, then the relay connects), so a refused
// destination shows in the namespace as a connection that opens and is reset,
// not as a refused connect. UDP waits for the engine's IP layer.
package forward

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
)

// Defaults.
const (
	DefaultDialTimeout = 10 * time.Second
	DefaultMaxConns    = 4096
	DefaultBigBuffers  = 128
	// SmallBuffer is the buffer each direction of a relayed connection owns:
	// enough for interactive traffic.
	SmallBuffer = 16 << 10
	// BigBuffer is the size of the shared buffers a direction takes while it
	// moves bulk data (a read filled its small buffer).
	BigBuffer = 256 << 10
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
	// MaxConns bounds the connections relayed at once, both ways together;
	// past it new connections are reset. Default 4096.
	MaxConns int
	// BigBuffers bounds the shared buffers of BigBuffer bytes. Default 128
	// (32 MiB); negative: none.
	BigBuffers int
	// Dial opens the host side of a relayed connection. Default: a
	// net.Dialer with DialTimeout and TCP keepalives.
	Dial func(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
	// Logf, if set, gets one line per connection that could not be relayed.
	Logf func(format string, args ...any)
}

// Stats are a Forwarder's counters. Resets, BytesOut and BytesIn count the
// relays that ended: a relay adds its own when both of its sides are closed,
// which may be a moment after an application saw its connection end.
type Stats struct {
	Active   int64  // connections being relayed now
	Accepted uint64 // connections from the namespace
	Ported   uint64 // connections taken by port forwards
	Relayed  uint64 // connections whose destination answered
	Refused  uint64 // connections reset because the destination refused, was unreachable or timed out
	Rejected uint64 // connections reset by the mapping (an address of the virtual network, no DNS upstream)
	Limited  uint64 // connections reset because MaxConns were active
	Resets   uint64 // resets carried from one side to the other
	BytesOut uint64 // bytes from the namespace to the host
	BytesIn  uint64 // bytes from the host to the namespace
}

// A Forwarder relays the connections of one driver's engine. Its methods are
// safe for concurrent use.
type Forwarder struct {
	d   *host.Driver
	cfg Config
	ln  *host.Listener

	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	big    *BufferPool
	wg     sync.WaitGroup
	pool   *pool        // the relays' goroutines
	accept atomic.Int32 // goroutines waiting in Accept

	mu     sync.Mutex
	closed bool
	live   map[*splice]struct{}
	ports  []net.Listener

	accepted, ported, relayed, refused, rejected, limited, resets, bytesOut, bytesIn atomic.Uint64
	active                                                                           atomic.Int64
}

// ErrRejected is the error of Target for a destination the Forwarder does not
// relay.
var ErrRejected = errors.New("forward: destination not relayed")

// Start runs e on link with a host.Driver (opts may be nil) and relays the
// connections of e, which must run with engine.Config.Forward: the Forwarder
// listens on the wildcard address (0.0.0.0, port 0) and relays every
// connection it accepts. The Forwarder owns the driver, the engine and the
// link: Close closes them.
func Start(e engine.Engine, link host.Link, opts *host.Options, cfg Config) (*Forwarder, error) {
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
	if cfg.BigBuffers == 0 {
		cfg.BigBuffers = DefaultBigBuffers
	}
	if cfg.Dial == nil {
		// Keepalives find a destination that went away silently; a loopback
		// peer cannot (its kernel is ours), and its connections skip the four
		// system calls that set them up.
		dialer := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 15 * time.Second}
		local := &net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: -1}
		cfg.Dial = func(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
			if dst.Addr().IsLoopback() {
				return local.DialContext(ctx, "tcp", dst.String())
			}
			return dialer.DialContext(ctx, "tcp", dst.String())
		}
	}
	d, err := host.NewDriver(e, link, opts)
	if err != nil {
		link.Close()
		return nil, err
	}
	ln, err := d.ListenForward()
	if err != nil {
		d.Close()
		if errors.Is(err, engine.ErrInvalid) {
			return nil, fmt.Errorf("forward: the engine refused the wildcard listener: run it with engine.Config.Forward (%v)", err)
		}
		return nil, fmt.Errorf("forward: listen on the wildcard address: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{
		d: d, cfg: cfg, ln: ln, ctx: ctx, cancel: cancel,
		sem:  make(chan struct{}, cfg.MaxConns),
		big:  NewBufferPool(max(cfg.BigBuffers, 0), BigBuffer),
		live: map[*splice]struct{}{},
	}
	f.pool = newPool(maxIdleWorkers, &f.wg)
	f.pool.run(f.acceptLoop)
	return f, nil
}

// maxIdleWorkers bounds the idle goroutines kept for new connections.
const maxIdleWorkers = 64

// Driver returns the driver the Forwarder runs the engine with.
func (f *Forwarder) Driver() *host.Driver { return f.d }

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
		BytesOut: f.bytesOut.Load(), BytesIn: f.bytesIn.Load(),
	}
}

func (f *Forwarder) logf(format string, args ...any) {
	if f.cfg.Logf != nil {
		f.cfg.Logf(format, args...)
	}
}

// acquire takes a slot of MaxConns, or reports false.
func (f *Forwarder) acquire() bool {
	select {
	case f.sem <- struct{}{}:
		return true
	default:
		f.limited.Add(1)
		return false
	}
}

func (f *Forwarder) release() { <-f.sem }

// abortConn resets c (RST) and releases it.
func abortConn(c interface {
	SetLinger(int) error
	Close() error
}) {
	c.SetLinger(0)
	c.Close()
}

// acceptLoop takes connections from the namespace and relays each on the
// goroutine that accepted it; before it starts relaying, it makes sure another
// goroutine (from the pool) waits in Accept, so that the next connection is
// taken at once. It runs on a pool goroutine, and goes back to the pool when it
// finishes a connection and others are accepting.
func (f *Forwarder) acceptLoop() {
	for {
		f.accept.Add(1)
		c, err := f.ln.AcceptTCP()
		left := f.accept.Add(-1)
		if err != nil {
			return // closed (by Close, or the driver's end)
		}
		if left == 0 {
			f.pool.run(f.acceptLoop)
		}
		f.accepted.Add(1)
		if !f.acquire() {
			f.logf("forward: %v -> %v: reset: %d connections are relayed already (MaxConns)", c.RemoteAddrPort(), c.LocalAddrPort(), f.cfg.MaxConns)
			abortConn(c)
		} else {
			f.outbound(c)
		}
		if f.accept.Load() > 0 {
			return
		}
	}
}

// spawn runs g on a pool goroutine (on a goroutine of its own once the pool
// is closed).
func (f *Forwarder) spawn(g func()) {
	if !f.pool.run(g) {
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			g()
		}()
	}
}

// destination returns the address the namespace dialed: the accepted
// connection's local address (engine.Config.Forward).
func (f *Forwarder) destination(c *host.Conn) netip.AddrPort { return c.LocalAddrPort() }

// outbound relays a connection from the namespace to its destination.
func (f *Forwarder) outbound(c *host.Conn) {
	defer f.release()
	dst := f.destination(c)
	target, err := f.cfg.Target(dst)
	if err != nil {
		f.rejected.Add(1)
		f.logf("forward: %v -> %v: reset: %v", c.RemoteAddrPort(), dst, err)
		abortConn(c)
		return
	}
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.DialTimeout)
	h, err := f.cfg.Dial(ctx, target)
	cancel()
	if err != nil {
		f.refused.Add(1)
		f.logf("forward: %v -> %v: reset: dial %v: %v", c.RemoteAddrPort(), dst, target, err)
		abortConn(c)
		return
	}
	f.relayed.Add(1)
	f.run(c, h)
}

// run splices the engine's connection e and the host's connection h until
// both are done.
func (f *Forwarder) run(e *host.Conn, h net.Conn) {
	hc, ok := h.(HalfConn)
	if !ok {
		hc = noHalf{h}
	}
	s := newSplice(e, hc, f.big)
	s.spawn = f.spawn
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		s.abort()
		return
	}
	f.live[s] = struct{}{}
	f.mu.Unlock()
	f.active.Add(1)
	s.run()
	f.active.Add(-1)
	f.mu.Lock()
	delete(f.live, s)
	f.mu.Unlock()
	f.bytesOut.Add(uint64(s.n[0].Load()))
	f.bytesIn.Add(uint64(s.n[1].Load()))
	if s.resets.Load() > 0 {
		f.resets.Add(uint64(s.resets.Load()))
	}
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
	ln, err := net.Listen("tcp", hostAddr.String())
	if err != nil {
		return nil, fmt.Errorf("forward: port forward %v to %v: %w", hostAddr, guestPort, err)
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		ln.Close()
		return nil, net.ErrClosed
	}
	f.ports = append(f.ports, ln)
	f.mu.Unlock()
	dst := netip.AddrPortFrom(f.cfg.Guest, guestPort)
	f.wg.Add(1)
	go f.portLoop(ln, dst)
	return ln.Addr(), nil
}

func (f *Forwarder) portLoop(ln net.Listener, dst netip.AddrPort) {
	defer f.wg.Done()
	for {
		h, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// EMFILE and friends: wait a little rather than spin.
			f.logf("forward: port forward %v: accept: %v", ln.Addr(), err)
			select {
			case <-time.After(50 * time.Millisecond):
				continue
			case <-f.ctx.Done():
				return
			}
		}
		f.ported.Add(1)
		if !f.acquire() {
			f.logf("forward: %v -> %v: reset: %d connections are relayed already (MaxConns)", h.RemoteAddr(), dst, f.cfg.MaxConns)
			resetNet(h)
			continue
		}
		f.spawn(func() { f.inbound(h, dst) })
	}
}

// resetNet closes a host connection with a reset.
func resetNet(h net.Conn) {
	if l, ok := h.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	h.Close()
}

// inbound relays a port-forwarded host connection into the namespace.
func (f *Forwarder) inbound(h net.Conn, dst netip.AddrPort) {
	defer f.release()
	ctx, cancel := context.WithTimeout(f.ctx, f.cfg.DialTimeout)
	e, err := f.d.DialTCP(ctx, dst)
	cancel()
	if err != nil {
		f.refused.Add(1)
		f.logf("forward: %v -> %v: reset: %v", h.RemoteAddr(), dst, err)
		resetNet(h)
		return
	}
	f.relayed.Add(1)
	f.run(e, h)
}

// Close stops the Forwarder: its listeners close, dials in progress give up,
// the connections still relayed are reset on both sides, and the driver
// closes (with the engine and the link). It returns when every goroutine it
// started has ended. Closing twice returns net.ErrClosed.
func (f *Forwarder) Close() error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return net.ErrClosed
	}
	f.closed = true
	live := make([]*splice, 0, len(f.live))
	for s := range f.live {
		live = append(live, s)
	}
	ports := f.ports
	f.ports = nil
	f.mu.Unlock()
	f.cancel()
	f.ln.Close()
	for _, ln := range ports {
		ln.Close()
	}
	for _, s := range live {
		s.abort()
	}
	f.pool.close()
	f.wg.Wait()
	f.d.Close()
	return nil
}
