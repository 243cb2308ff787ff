package forward

import (
	"fmt"
	"net/netip"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/tcpeng/tcpeng/engine"
)

// A relay's life: a connection from the namespace is accepted by the engine
// (accepted), its host socket connects (phaseDial, then open); a port
// forward's host connection is accepted (acceptHost) and the engine dials the
// namespace (phaseDialNS, then open). Open, pump moves what each side has
// ready whenever a flag says it may: the engine's events set engIn and
// engOut, the socket's epoll events hostIn and hostOut, and a command or
// system call that finds nothing clears its flag. A FIN is carried across
// once a side's data is all through; both FINs through, the relay is done
// (finish). A failure on one side resets the other (engineFailed,
// hostFailed).

// accepted takes a connection the engine accepted from the namespace: maps
// its destination and starts the host's connect.
func (l *loop) accepted(res engine.Result) {
	if res.Err != engine.OK {
		l.accepting = false // ErrWouldBlock: all taken
		return
	}
	f := l.f
	f.accepted.Add(1)
	src, dst := res.Remote, res.Local
	if l.held >= f.cfg.MaxConns {
		l.turnAway(res.Conn, &f.limited, src, dst, fmt.Sprintf("%d connections are relayed already (MaxConns)", f.cfg.MaxConns))
		return
	}
	target, err := f.cfg.Target(dst)
	if err != nil {
		l.turnAway(res.Conn, &f.rejected, src, dst, err.Error())
		return
	}
	if f.cfg.Redirect != nil {
		target = f.cfg.Redirect(target)
	}
	fd, err := dialHost(target)
	if err != nil {
		l.turnAway(res.Conn, &f.refused, src, dst, fmt.Sprintf("dial %v: connect: %v", target, err))
		return
	}
	r := &relay{id: res.Conn, fd: fd, phase: phaseDial, src: src, dst: dst, target: target,
		deadline: l.now().Add(engine.Duration(f.cfg.DialTimeout))}
	l.adopt(r)
}

// turnAway resets a connection from the namespace that is not relayed, and
// counts and logs why.
func (l *loop) turnAway(id engine.ConnID, counter *atomic.Uint64, src, dst netip.AddrPort, why string) {
	counter.Add(1)
	l.f.logf("forward: %v -> %v: reset: %s", src, dst, why)
	l.command(engine.Command{Op: engine.OpAbort, Conn: id}, nil)
}

// adopt makes r one of the loop's relays, dialing, and registers its socket
// with epoll; if epoll refuses, r is refused.
func (l *loop) adopt(r *relay) bool {
	for r.fd >= len(l.byFd) {
		l.byFd = append(l.byFd, nil)
	}
	l.byFd[r.fd] = r
	if r.id.IsValid() {
		l.conns[r.id] = r
	}
	l.dials = append(l.dials, r)
	l.held++
	l.f.active.Add(1)
	if err := l.watch(r.fd, unix.EPOLLIN|unix.EPOLLOUT|unix.EPOLLRDHUP|unix.EPOLLET); err != nil {
		l.refuse(r, fmt.Sprintf("epoll: %v", err))
		return false
	}
	return true
}

// acceptHost takes the host's connections to a port forward's listener; the
// engine dials the namespace for each.
func (l *loop) acceptHost(lfd int, dst netip.AddrPort) {
	f := l.f
	for range acceptBurst {
		fd, sa, err := unix.Accept4(lfd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err == unix.EINTR || err == unix.ECONNABORTED {
			continue
		}
		if err == unix.EAGAIN {
			return
		}
		if err != nil {
			// EMFILE and friends: the connection waits in the backlog until
			// the next one wakes the listener (edge-triggered).
			f.logf("forward: port forward to %v: accept: %v", dst, err)
			return
		}
		f.ported.Add(1)
		src := addrPort(sa)
		if l.held >= f.cfg.MaxConns {
			f.limited.Add(1)
			f.logf("forward: %v -> %v: reset: %d connections are relayed already (MaxConns)", src, dst, f.cfg.MaxConns)
			resetSocket(fd)
			continue
		}
		unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1)
		r := &relay{fd: fd, phase: phaseDialNS, src: src, dst: dst, deadline: l.now().Add(engine.Duration(f.cfg.DialTimeout))}
		if l.adopt(r) {
			l.command(engine.Command{Op: engine.OpDial, Addr: dst}, r)
		}
	}
}

// dialedNS takes the engine's answer to a port forward's dial.
func (l *loop) dialedNS(r *relay, res engine.Result) {
	if r == nil || r.gone {
		if res.Err == engine.OK {
			l.command(engine.Command{Op: engine.OpAbort, Conn: res.Conn}, nil)
		}
		return
	}
	if res.Err != engine.OK {
		l.refuse(r, fmt.Sprintf("dial: %v", res.Err))
		return
	}
	r.id = res.Conn
	l.conns[r.id] = r
}

// hostEvent takes the epoll events of r's socket.
func (l *loop) hostEvent(r *relay, ev uint32) {
	if ev&(unix.EPOLLIN|unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		r.hostIn = true
	}
	if ev&(unix.EPOLLRDHUP|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		r.hostEnd = true
	}
	if ev&(unix.EPOLLOUT|unix.EPOLLHUP|unix.EPOLLERR) != 0 {
		r.hostOut = true
	}
	switch r.phase {
	case phaseDial:
		// Writable with no error or hang-up: connected (tcp_poll reports no
		// EPOLLOUT before the handshake ends, and EPOLLERR once it failed),
		// so SO_ERROR is asked only when epoll reports trouble.
		if ev&(unix.EPOLLERR|unix.EPOLLHUP) != 0 {
			if err := connectErr(r.fd); err != nil {
				l.refuse(r, fmt.Sprintf("dial %v: connect: %v", r.target, err))
				return
			}
		}
		if r.hostOut {
			l.open(r)
		}
	case phaseOpen:
		l.queue(r)
	}
}

// open starts relaying r: both sides are connected.
func (l *loop) open(r *relay) {
	r.phase = phaseOpen
	r.engIn, r.engOut = true, true
	l.f.relayed.Add(1)
	l.queue(r)
}

// refuse resets r, whose destination (host or namespace) did not answer.
func (l *loop) refuse(r *relay, why string) {
	l.f.refused.Add(1)
	l.f.logf("forward: %v -> %v: reset: %s", r.src, r.dst, why)
	l.abort(r)
}

// engineFailed resets the host's side of r after its engine connection was
// reset or failed, and releases the engine's.
func (l *loop) engineFailed(r *relay, err engine.Error) {
	switch r.phase {
	case phaseDialNS:
		l.refuse(r, fmt.Sprintf("dial: %v", err))
		return
	case phaseOpen:
		l.f.resets.Add(1)
	}
	l.command(engine.Command{Op: engine.OpClose, Conn: r.id}, nil)
	resetSocket(r.fd)
	l.remove(r)
}

// hostFailed resets the engine's side of r after its socket failed.
func (l *loop) hostFailed(r *relay) {
	l.f.resets.Add(1)
	l.command(engine.Command{Op: engine.OpAbort, Conn: r.id}, nil)
	unix.Close(r.fd)
	l.remove(r)
}

// remove forgets r; its descriptor is closed by the caller.
func (l *loop) remove(r *relay) {
	r.gone = true
	if r.id.IsValid() && l.conns[r.id] == r {
		delete(l.conns, r.id)
	}
	if r.fd < len(l.byFd) && l.byFd[r.fd] == r {
		l.byFd[r.fd] = nil
	}
	l.putBuf(r)
	l.f.bytesOut.Add(r.nOut)
	l.f.bytesIn.Add(r.nIn)
	l.held--
	l.f.active.Add(-1)
}

// finish ends r once both FINs went through and its data is delivered.
func (l *loop) finish(r *relay) {
	if !r.inDone || !r.outDone || len(r.pend) > 0 {
		return
	}
	l.command(engine.Command{Op: engine.OpClose, Conn: r.id}, nil)
	unix.Close(r.fd)
	l.remove(r)
}

// pump queues the commands that move r's data as far as its flags allow.
func (l *loop) pump(r *relay) {
	r.queued = false
	if r.gone || r.phase != phaseOpen {
		return
	}
	// Engine to host.
	if !r.outDone && r.hostOut {
		if len(r.pend) > 0 && !l.flush(r) {
			return
		}
		if len(r.pend) == 0 && r.engIn {
			if b := l.take(chunk); b != nil {
				l.command(engine.Command{Op: engine.OpRead, Conn: r.id, Data: b}, r)
			} else {
				l.queue(r) // the scratch is used up: next Step
			}
		}
	}
	// Host to engine: peek now, take from the socket what the engine queued.
	if !r.inDone && r.hostIn && r.engOut {
		b := l.take(chunk)
		if b == nil {
			l.queue(r)
			return
		}
		n, err := peek(r.fd, b)
		l.used -= len(b) - n
		switch {
		case err == unix.EAGAIN:
			r.hostIn = false
		case err != nil:
			l.hostFailed(r)
		case n == 0:
			l.command(engine.Command{Op: engine.OpShutdown, Conn: r.id}, r)
		default:
			l.command(engine.Command{Op: engine.OpWrite, Conn: r.id, Data: b[:n]}, r)
		}
	}
}

// flush writes r's pending data to its socket; false if the socket failed
// (and r is gone).
func (l *loop) flush(r *relay) bool {
	n, err := send(r.fd, r.pend)
	if err != nil {
		l.hostFailed(r)
		return false
	}
	r.pend = r.pend[n:]
	if len(r.pend) > 0 {
		r.hostOut = false
		return true
	}
	l.putBuf(r)
	if r.outDone {
		l.finish(r)
	}
	return true
}

// readDone takes the engine's answer to a read for the host: writes it to
// the socket, keeping what the socket does not take.
func (l *loop) readDone(r *relay, b []byte, res engine.Result) {
	if !r.gone && res.Err == engine.ErrEOF {
		// RFC 9293 §3.6: the namespace closed its side; pass the FIN on.
		if err := unix.Shutdown(r.fd, unix.SHUT_WR); err != nil && err != unix.ENOTCONN {
			l.hostFailed(r)
			return
		}
		r.outDone = true
		l.finish(r)
		return
	}
	if !l.moved(r, res, &r.engIn) {
		return
	}
	data := b[:res.N]
	r.nOut += uint64(len(data))
	l.carried = true
	if len(data) < len(b) && !r.engEnd {
		r.engIn = false // drained; EventReadable comes with more
	}
	n, err := send(r.fd, data)
	if err != nil {
		l.hostFailed(r)
		return
	}
	if n < len(data) {
		r.hostOut = false
		r.buf = l.getBuf()
		r.pend = append(r.buf[:0], data[n:]...)
	}
	l.queue(r)
}

// writeDone takes the engine's answer to a write of peeked data: takes from
// the socket what the engine queued.
func (l *loop) writeDone(r *relay, b []byte, res engine.Result) {
	if !l.moved(r, res, &r.engOut) {
		return
	}
	if err := discard(r.fd, b, res.N); err != nil {
		l.hostFailed(r)
		return
	}
	r.nIn += uint64(res.N)
	l.carried = true
	switch {
	case res.N < len(b):
		r.engOut = false // full; EventWritable comes with room
	case len(b) < chunk && !r.hostEnd:
		// The peek emptied the socket; epoll tells of more. (After the
		// socket's end the next peek shows it: the end came with no edge
		// of its own since the data's.)
		r.hostIn = false
	}
	l.queue(r)
}

// moved reports whether an engine read or write for r moved data. If not, r
// is gone, or the engine had nothing (room) for it and *ready (engIn or
// engOut) is cleared until its event, or the connection failed and r is reset.
func (l *loop) moved(r *relay, res engine.Result, ready *bool) bool {
	switch {
	case r.gone:
	case res.Err == engine.OK:
		return true
	case res.Err == engine.ErrWouldBlock:
		*ready = false
	default:
		l.engineFailed(r, res.Err)
	}
	return false
}

// shutDone takes the engine's answer to the FIN passed on from the host.
func (l *loop) shutDone(r *relay, res engine.Result) {
	if r.gone {
		return
	}
	if res.Err != engine.OK {
		l.engineFailed(r, res.Err)
		return
	}
	r.inDone = true
	l.finish(r)
}

// getBuf returns a buffer of chunk bytes for pending data.
func (l *loop) getBuf() []byte {
	if n := len(l.spare); n > 0 {
		b := l.spare[n-1]
		l.spare = l.spare[:n-1]
		return b
	}
	return make([]byte, chunk)
}

// putBuf gives r's pending buffer back.
func (l *loop) putBuf(r *relay) {
	if r.buf != nil && len(l.spare) < maxSpare {
		l.spare = append(l.spare, r.buf)
	}
	r.buf, r.pend = nil, nil
}
