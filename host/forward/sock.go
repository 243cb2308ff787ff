package forward

import (
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The host's side of a relay is a non-blocking socket the loop polls with
// epoll(7) and moves data through with plain system calls: no net.Conn, no
// goroutine per socket.

// sockaddr returns ap as a unix.Sockaddr and its address family.
func sockaddr(ap netip.AddrPort) (unix.Sockaddr, int) {
	a := ap.Addr().Unmap()
	if a.Is4() {
		return &unix.SockaddrInet4{Port: int(ap.Port()), Addr: a.As4()}, unix.AF_INET
	}
	// No zone: the engine's addresses, and so its destinations, have none.
	return &unix.SockaddrInet6{Port: int(ap.Port()), Addr: a.As16()}, unix.AF_INET6
}

// addrPort turns a unix.Sockaddr back into an AddrPort.
func addrPort(sa unix.Sockaddr) netip.AddrPort {
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
	}
	return netip.AddrPort{}
}

// dialHost starts a non-blocking connect to dst and returns the socket; the
// connect completes (or fails) when the socket polls writable (connectErr).
// Like Go's net.Dialer: TCP_NODELAY, and keepalives (15 s idle and interval)
// except to a loopback destination, which cannot go away silently.
func dialHost(dst netip.AddrPort) (int, error) {
	sa, family := sockaddr(dst)
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
	if !dst.Addr().IsLoopback() {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, 1)
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPIDLE, 15)
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_KEEPINTVL, 15)
	}
	for {
		err = unix.Connect(fd, sa)
		if err != unix.EINTR {
			break
		}
	}
	if err != nil && err != unix.EINPROGRESS {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// connectErr returns how a non-blocking connect ended: nil once connected.
func connectErr(fd int) error {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return err
	}
	if v != 0 {
		return unix.Errno(v)
	}
	return nil
}

// listenTCP opens a non-blocking listening socket on addr and returns it with
// the address it got.
func listenTCP(addr netip.AddrPort) (int, netip.AddrPort, error) {
	sa, family := sockaddr(addr)
	fail := func(fd int, step string, err error) (int, netip.AddrPort, error) {
		if fd >= 0 {
			unix.Close(fd)
		}
		return -1, netip.AddrPort{}, fmt.Errorf("listen tcp %v: %s: %w", addr, step, err)
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(-1, "socket", err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	if err = unix.Bind(fd, sa); err != nil {
		return fail(fd, "bind", err)
	}
	if err = unix.Listen(fd, unix.SOMAXCONN); err != nil {
		return fail(fd, "listen", err)
	}
	got, err := unix.Getsockname(fd)
	if err != nil {
		return fail(fd, "getsockname", err)
	}
	return fd, addrPort(got), nil
}

// recv is recvfrom(2) with no address, retried on EINTR: with MSG_PEEK it
// copies what the socket holds without taking it; with MSG_TRUNC it takes n
// bytes without copying them (TCP drops them, tcp_recvmsg). It does not
// allocate (unix.Recvfrom would, for the address).
func recv(fd int, b []byte, flags int) (int, error) {
	var p unsafe.Pointer
	if len(b) > 0 {
		p = unsafe.Pointer(&b[0])
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(p), uintptr(len(b)), uintptr(flags|unix.MSG_DONTWAIT), 0, 0)
		if e == unix.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), nil
	}
}

// peek copies what fd holds into b (up to len(b)) without taking it; 0 and
// no error is the end of the stream.
func peek(fd int, b []byte) (int, error) { return recv(fd, b, unix.MSG_PEEK) }

// discard takes n bytes that peek saw from fd.
func discard(fd int, scratch []byte, n int) error {
	for n > 0 {
		k, err := recv(fd, scratch[:n], unix.MSG_TRUNC)
		if err != nil {
			return err
		}
		if k == 0 {
			return unix.EPIPE // cannot happen: the bytes were there
		}
		n -= k
	}
	return nil
}

// send writes what fd takes of b now; a full socket is no error (0 taken).
func send(fd int, b []byte) (int, error) {
	for {
		n, err := unix.Write(fd, b)
		switch err {
		case nil:
			return n, nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return 0, nil
		}
		return 0, err
	}
}

// resetSocket closes fd with a reset (RST) rather than a FIN: SO_LINGER 0.
func resetSocket(fd int) {
	unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
	unix.Close(fd)
}
