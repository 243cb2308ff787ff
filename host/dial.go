package host

import (
	"context"
	"net"
	"net/netip"
	"strconv"

	"github.com/tcpeng/tcpeng/engine"
)

// Dial connects to address; see DialContext.
func (d *Driver) Dial(network, address string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, address)
}

// DialContext connects to address ("ip:port"; host names are not resolved:
// the driver has no resolver) over network "tcp" or "tcp4". It has the
// signature of net.Dialer.DialContext, so that it can serve as
// http.Transport.DialContext. It returns once the handshake completes, or
// fails with a *net.OpError: ECONNREFUSED (errors.Is) when the peer answers
// with a reset, ETIMEDOUT when the SYN retries run out, ctx's error when ctx
// ends first, net.ErrClosed when the driver closes.
func (d *Driver) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	ap, err := parseAddr(network, address, false)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: network, Err: err}
	}
	c, err := d.DialTCP(ctx, ap)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// DialTCP connects to addr; see DialContext.
func (d *Driver) DialTCP(ctx context.Context, addr netip.AddrPort) (*Conn, error) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	c := d.newConn()
	c.remote = addr
	c.flags |= cfDialing
	if err := ctx.Err(); err != nil {
		return nil, c.opError("dial", err)
	}
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() {
			d.mu.Lock()
			c.wake()
			d.mu.Unlock()
		})
		defer stop()
	}
	d.mu.Lock()
	if !d.closing {
		d.dials = append(d.dials, c)
		d.mu.Unlock()
		d.poke(roleApp)
		d.mu.Lock()
	}
	for c.flags&cfDialing != 0 && !d.closing && ctx.Err() == nil {
		c.wait()
	}
	var err error
	switch {
	case c.flags&cfDialing == 0 && c.code != engine.OK:
		err = codeErr(c.code)
	case c.flags&cfDialing == 0:
	case d.closing:
		err = net.ErrClosed
	default:
		err = ctx.Err()
	}
	if err != nil {
		// Give the connection back: abort it if the engine has it, or keep the
		// engine goroutine from dialing it.
		c.flags |= cfClosed | cfAbort
		if engineHasIt := c.id != 0; engineHasIt {
			d.markDirty(c)
			d.mu.Unlock()
			d.poke(roleApp)
			return nil, c.opError("dial", err)
		}
	}
	d.mu.Unlock()
	if err != nil {
		return nil, c.opError("dial", err)
	}
	return c, nil
}

// parseAddr parses "ip:port" for network tcp or tcp4 (and tcp6, which the
// engine refuses until it has IPv6). An empty host is the unspecified address,
// allowed for Listen only; ports may be numbers or service names.
func parseAddr(network, address string, listen bool) (netip.AddrPort, error) {
	switch network {
	case "tcp", "tcp4", "tcp6":
	default:
		return netip.AddrPort{}, net.UnknownNetworkError(network)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return netip.AddrPort{}, err
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		n, lerr := net.LookupPort(network, port)
		if lerr != nil {
			return netip.AddrPort{}, &net.AddrError{Err: "unknown port", Addr: address}
		}
		p = uint64(n)
	}
	var a netip.Addr
	switch {
	case host == "" && listen:
		a = netip.IPv4Unspecified()
		if network == "tcp6" {
			a = netip.IPv6Unspecified()
		}
	case host == "":
		return netip.AddrPort{}, &net.AddrError{Err: "missing address to dial", Addr: address}
	default:
		if a, err = netip.ParseAddr(host); err != nil {
			return netip.AddrPort{}, &net.AddrError{Err: "not an IP address (the tcpeng driver does not resolve names: resolve it first)", Addr: host}
		}
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}
