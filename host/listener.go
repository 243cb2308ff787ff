package host

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"

	"github.com/tcpeng/tcpeng/engine"
)

// Listener is a TCP listener of a Driver. It implements net.Listener.
type Listener struct {
	d          *Driver
	id         engine.ConnID
	addr       netip.AddrPort
	state      uint8
	code       engine.Error // why the Listen failed
	closed     bool         // Close was called
	released   bool         // OpClose was issued
	dirty      bool         // in the driver's dirty list
	acceptable bool         // OpAccept may return a connection
	waiting    int          // Accept calls blocked
	inflight   int          // OpAccepts in the Step under way
	ready      []*Conn      // accepted from the engine, not yet returned by Accept
	cond       sync.Cond    // L is &d.mu
}

const (
	lsPending uint8 = iota
	lsOpen
	lsFailed
)

// Listen listens on address ("host:port", host an IP address of the engine or
// empty for all of them, port 0 for a free port from 49152-65535). network
// must be "tcp" or "tcp4" ("tcp6" once the engine has IPv6). Host names are
// not resolved: the driver has no resolver.
func (d *Driver) Listen(network, address string) (net.Listener, error) {
	ap, err := parseAddr(network, address, true)
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: network, Err: err}
	}
	l, err := d.ListenTCP(ap)
	if err != nil {
		return nil, err
	}
	return l, nil
}

// ListenTCP listens on addr; see Listen.
func (d *Driver) ListenTCP(addr netip.AddrPort) (*Listener, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	if !addr.Addr().IsValid() {
		addr = netip.AddrPortFrom(netip.IPv4Unspecified(), addr.Port())
	}
	if addr.Port() != 0 {
		return d.listen(addr)
	}
	// RFC 6335 §6: the dynamic ports; retry a few times if one is taken.
	var err error
	for range 32 {
		var l *Listener
		if l, err = d.listen(netip.AddrPortFrom(addr.Addr(), uint16(49152+rand.IntN(16384)))); err == nil {
			return l, nil
		}
		if oe, ok := err.(*net.OpError); !ok || oe.Err != codeError(engine.ErrAddrInUse) {
			break
		}
	}
	return nil, err
}

func (d *Driver) listen(addr netip.AddrPort) (*Listener, error) {
	l := &Listener{d: d, addr: addr}
	l.cond.L = &d.mu
	d.mu.Lock()
	if !d.closing {
		d.listens = append(d.listens, l)
		d.mu.Unlock()
		d.poke(roleApp)
		d.mu.Lock()
	}
	for l.state == lsPending && !d.closing {
		l.cond.Wait()
	}
	var err error
	switch {
	case l.state == lsFailed:
		err = codeErr(l.code)
	case l.state == lsPending:
		err = net.ErrClosed
	}
	d.mu.Unlock()
	if err != nil {
		return nil, &net.OpError{Op: "listen", Net: "tcp", Addr: tcpAddr(addr), Err: err}
	}
	return l, nil
}

// Accept waits for the next connection; see AcceptTCP.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.AcceptTCP()
	if err != nil {
		return nil, err
	}
	return c, nil
}

// AcceptTCP waits for the next connection that completed its handshake. It
// returns net.ErrClosed after Close (of the listener or the driver).
func (l *Listener) AcceptTCP() (*Conn, error) {
	d := l.d
	d.mu.Lock()
	if len(l.ready) == 0 && !l.closed && !d.closing {
		l.waiting++
		if l.acceptable {
			// Accept here if no one is running the engine. (Not acceptable:
			// the engine's EventAcceptable brings the Accept to the engine.)
			d.markDirtyListener(l)
			d.mu.Unlock()
			d.poke(roleApp)
			d.mu.Lock()
		}
		for len(l.ready) == 0 && !l.closed && !d.closing {
			l.cond.Wait()
		}
		l.waiting--
	}
	if l.closed || d.closing {
		d.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: tcpAddr(l.addr), Err: net.ErrClosed}
	}
	c := l.ready[0]
	n := copy(l.ready, l.ready[1:])
	l.ready[n] = nil
	l.ready = l.ready[:n]
	d.mu.Unlock()
	return c, nil
}

// Close stops listening: blocked Accepts return net.ErrClosed, and connections
// the engine holds for Accept are reset. Closing twice returns net.ErrClosed.
func (l *Listener) Close() error {
	d := l.d
	d.mu.Lock()
	if l.closed {
		d.mu.Unlock()
		return &net.OpError{Op: "close", Net: "tcp", Addr: tcpAddr(l.addr), Err: net.ErrClosed}
	}
	l.closed = true
	for i, c := range l.ready {
		c.flags |= cfClosed
		d.markDirty(c)
		l.ready[i] = nil
	}
	l.ready = l.ready[:0]
	if l.id != 0 {
		d.markDirtyListener(l)
	}
	l.cond.Broadcast()
	d.mu.Unlock()
	d.poke(roleApp)
	return nil
}

// Addr returns the address listened on, a *net.TCPAddr.
func (l *Listener) Addr() net.Addr { return net.TCPAddrFromAddrPort(l.addr) }

// AddrPort returns the address listened on.
func (l *Listener) AddrPort() netip.AddrPort { return l.addr }

var _ net.Listener = (*Listener)(nil)

// ListenForward listens on the wildcard of engine.Config.Forward (the
// unspecified address and port 0), which takes connections to every address and
// port no other listener takes; each connection's LocalAddr is the destination
// its peer asked for. The engine must run with Config.Forward.
func (d *Driver) ListenForward() (*Listener, error) {
	return d.listen(netip.AddrPortFrom(netip.IPv4Unspecified(), 0))
}
