package linuxconf

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/internal/pktscript"
	"golang.org/x/sys/unix"
)

// errnoError maps an errno of a socket call onto the script's error names
// (engine errors). EINPROGRESS of a non-blocking connect is success.
func errnoError(err error) engine.Error {
	if err == nil {
		return engine.OK
	}
	var errno unix.Errno
	if !errors.As(err, &errno) {
		return engine.ErrInvalid
	}
	switch errno {
	case unix.EINPROGRESS:
		return engine.OK
	case unix.EAGAIN:
		return engine.ErrWouldBlock
	case unix.EPIPE, unix.ESHUTDOWN:
		return engine.ErrClosed
	case unix.ENOTCONN:
		return engine.ErrNotConnected
	case unix.ECONNREFUSED:
		return engine.ErrRefused
	case unix.ECONNRESET:
		return engine.ErrReset
	case unix.ETIMEDOUT:
		return engine.ErrTimedOut
	case unix.ECONNABORTED:
		return engine.ErrAborted
	case unix.EBADF, unix.ENOTSOCK:
		return engine.ErrNoConn
	case unix.EADDRINUSE:
		return engine.ErrAddrInUse
	case unix.EADDRNOTAVAIL:
		return engine.ErrAddrNotAvail
	case unix.EMFILE, unix.ENFILE, unix.ENOBUFS, unix.ENOMEM:
		return engine.ErrLimit
	case unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENETDOWN:
		return engine.ErrUnreachable
	}
	return engine.ErrInvalid
}

// connectionError reports whether e is a connection's failure (which the
// runner keeps as the socket's sticky error).
func connectionError(e engine.Error) bool {
	switch e {
	case engine.ErrReset, engine.ErrRefused, engine.ErrTimedOut, engine.ErrUnreachable, engine.ErrAborted:
		return true
	}
	return false
}

// callResult is what a socket call returned.
type callResult struct {
	err  engine.Error
	n    int
	data []byte // read: the buffer; write: what was offered
	note string // a normalization applied, for the report
}

// call plays a socket call as real system calls on non-blocking sockets.
func (r *lrun) call(l *pktscript.Line) *pktscript.Failure {
	if f := r.before(l); f != nil {
		return f
	}
	r.acting(l)
	r.sample() // what happened up to now, before the call changes it
	c := l.Call
	res, f := r.do(l)
	r.lastSample = r.lastSample.Add(-r.o.Sample) // sample again soon
	row := pktscript.Row{Pos: l.Pos, At: l.Time.At, Script: l.Body(), Actual: c.Op.String() + " = " + resultString(c, res)}
	if res.note != "" {
		row.Actual += " (" + res.note + ")"
	}
	if f == nil {
		f = checkResult(c, res)
	}
	if f == nil && res.err == engine.OK {
		switch c.Op {
		case pktscript.OpWrite:
			if err := r.peer.Wrote(l.Port, res.data[:res.n]); err != nil {
				f = &pktscript.Failure{Msg: err.Error()}
			}
		case pktscript.OpRead:
			if err := r.peer.CheckRead(l.Port, res.data[:res.n]); err != nil {
				f = &pktscript.Failure{Msg: err.Error()}
			}
		}
	}
	if f != nil {
		f.Expected, f.Actual, row.Failed = l.Body(), row.Actual, true
	}
	r.rep.Rows = append(r.rep.Rows, row)
	return f
}

// checkResult compares a call's result with what the line expects: without
// "= ..." a call must succeed, a write must take every byte and a read must
// fill its buffer (as pktscript's engine runner).
func checkResult(c *pktscript.Call, res callResult) *pktscript.Failure {
	want := c.Want
	if !c.WantSet {
		want = pktscript.Want{N: -1}
		if c.Op == pktscript.OpWrite || c.Op == pktscript.OpRead {
			want.N = c.N
		}
	}
	ok := res.err == want.Err
	if ok && want.Err == engine.OK && want.N >= 0 && (c.Op == pktscript.OpWrite || c.Op == pktscript.OpRead) {
		ok = res.n == want.N
	}
	if ok && want.Data != nil {
		ok = string(res.data[:res.n]) == string(want.Data)
	}
	if ok {
		return nil
	}
	return &pktscript.Failure{Msg: fmt.Sprintf("%s returned %s, the script expects %s", c.Op, resultString(c, res), want)}
}

func resultString(c *pktscript.Call, res callResult) string {
	switch {
	case res.err != engine.OK:
		return pktscript.ErrorName(res.err)
	case c.Op == pktscript.OpRead && res.n > 0:
		b := res.data[:res.n]
		if len(b) > 40 {
			b = b[:40]
		}
		return strconv.Itoa(res.n) + " " + strconv.Quote(string(b))
	case c.Op == pktscript.OpRead || c.Op == pktscript.OpWrite:
		return strconv.Itoa(res.n)
	}
	return "ok"
}

// newSocket makes a socket for listen or connect: SO_REUSEADDR (a closed
// connection's bound port, or one in TIME_WAIT, must not block a new listen
// or connect on it, as in tcpeng), the configured buffers, bound to the
// script's local address and port.
func (r *lrun) newSocket() (int, engine.Error) {
	fd, err := r.e.socket()
	if err != nil {
		r.res.Err = err
		return -1, engine.ErrLimit
	}
	opts := []struct {
		level, opt, v int
	}{{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1}}
	if r.k.RcvBuf > 0 {
		opts = append(opts, struct{ level, opt, v int }{unix.SOL_SOCKET, unix.SO_RCVBUF, r.k.RcvBuf},
			struct{ level, opt, v int }{unix.IPPROTO_TCP, unix.TCP_WINDOW_CLAMP, r.k.RcvBuf})
	}
	if r.k.SndBuf > 0 {
		opts = append(opts, struct{ level, opt, v int }{unix.SOL_SOCKET, unix.SO_SNDBUF, r.k.SndBuf})
	}
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, o.v); err != nil {
			r.e.closeSock(fd)
			return -1, errnoError(err)
		}
	}
	a := r.s.Local.Addr().As4()
	if err := unix.Bind(fd, &unix.SockaddrInet4{Port: int(r.s.Local.Port()), Addr: a}); err != nil {
		r.e.closeSock(fd)
		return -1, errnoError(err)
	}
	return fd, engine.OK
}

// do makes the system calls of a call line.
func (r *lrun) do(l *pktscript.Line) (callResult, *pktscript.Failure) {
	c := l.Call
	var res callResult
	switch c.Op {
	case pktscript.OpListen:
		fd, e := r.newSocket()
		if e != engine.OK {
			return callResult{err: e}, nil
		}
		backlog := c.N
		if backlog == 0 {
			backlog = r.k.Backlog
		}
		if err := unix.Listen(fd, backlog); err != nil {
			r.e.closeSock(fd)
			return callResult{err: errnoError(err)}, nil
		}
		if r.listener != nil {
			r.e.closeSock(r.listener.fd) // tcpeng keeps one listener per script too
		}
		r.listener = &sock{fd: fd, listener: true}
		return res, nil
	case pktscript.OpConnect:
		fd, e := r.newSocket()
		if e != engine.OK {
			return callResult{err: e}, nil
		}
		a := r.s.Remote.Addr().As4()
		err := unix.Connect(fd, &unix.SockaddrInet4{Port: int(l.Port), Addr: a})
		if e := errnoError(err); e != engine.OK {
			r.e.closeSock(fd)
			return callResult{err: e}, nil
		}
		r.socks[l.Port] = &sock{fd: fd, port: l.Port, connecting: true}
		return res, nil
	case pktscript.OpAccept:
		if r.listener == nil {
			return callResult{err: engine.ErrNotListening}, nil
		}
		fd, sa, err := unix.Accept4(r.listener.fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return callResult{err: errnoError(err)}, nil
		}
		r.e.track(fd)
		port := l.Port
		if in, ok := sa.(*unix.SockaddrInet4); ok {
			port = uint16(in.Port)
		}
		r.socks[port] = &sock{fd: fd, port: port}
		if port != l.Port {
			return res, &pktscript.Failure{Msg: fmt.Sprintf("accept returned the connection from port %d; the line names port %d", port, l.Port)}
		}
		return res, nil
	case pktscript.OpCloseListener:
		if r.listener == nil {
			return callResult{err: engine.ErrNoConn}, nil
		}
		r.e.closeSock(r.listener.fd)
		r.listener = nil
		return res, nil
	}
	s := r.socks[l.Port]
	if s == nil {
		// Never connected or accepted, or closed: tcpeng's ID would be invalid.
		return callResult{err: engine.ErrNoConn}, nil
	}
	var err error
	switch c.Op {
	case pktscript.OpWrite:
		res.data = r.peer.WriteData(l)
		res.n, err = unix.SendmsgN(s.fd, res.data, nil, nil, unix.MSG_NOSIGNAL)
	case pktscript.OpRead:
		res.data = make([]byte, c.N)
		res.n, _, err = unix.Recvfrom(s.fd, res.data, 0)
		if err == nil && res.n == 0 && c.N > 0 {
			res.err = engine.ErrEOF
		}
	case pktscript.OpShutdown:
		err = unix.Shutdown(s.fd, unix.SHUT_WR)
	case pktscript.OpClose:
		err = r.e.closeSock(s.fd)
		delete(r.socks, l.Port)
	case pktscript.OpAbort:
		err = unix.SetsockoptLinger(s.fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		if cerr := r.e.closeSock(s.fd); err == nil {
			err = cerr
		}
		delete(r.socks, l.Port)
	case pktscript.OpSetOpt:
		err = r.setopt(s.fd, c)
	}
	if err != nil {
		res.n, res.err = 0, errnoError(err)
	}
	// Sticky errors: tcpeng reports a connection's failure to every later
	// call; Linux reports it once (SO_ERROR or the first call), then EPIPE,
	// ENOTCONN or end of file.
	switch {
	case connectionError(res.err):
		if s.err == engine.OK {
			s.err = res.err
		}
	case s.err != engine.OK && (res.err == engine.ErrClosed || res.err == engine.ErrEOF || res.err == engine.ErrNotConnected):
		res.note = "Linux said " + pktscript.ErrorName(res.err) + "; the connection failed with " + pktscript.ErrorName(s.err) + " before"
		res.err = s.err
	}
	return res, nil
}

// setopt maps "setopt NAME V" onto socket options. keepalive also sets the
// configured keepalive times (TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT).
func (r *lrun) setopt(fd int, c *pktscript.Call) error {
	v := int(c.Value)
	switch c.Opt {
	case pktscript.SockNoDelay:
		return unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, min(v, 1))
	case pktscript.SockKeepalive:
		if v != 0 {
			for _, o := range [][2]int{{unix.TCP_KEEPIDLE, r.k.KeepIdle}, {unix.TCP_KEEPINTVL, r.k.KeepIntvl}, {unix.TCP_KEEPCNT, r.k.KeepCnt}} {
				if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, o[0], o[1]); err != nil {
					return err
				}
			}
		}
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, min(v, 1))
	case pktscript.SockSndBuf:
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, v)
	case pktscript.SockRcvBuf:
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, v)
	}
	return unix.EINVAL
}
