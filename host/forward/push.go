package forward

import (
	"io"
	"sync"
	"syscall"

	"github.com/tcpeng/tcpeng/host"
	"golang.org/x/sys/unix"
)

// pusher carries a splice's engine side (a *host.Conn) to its host side (a
// socket) in the engine connection's push mode (host.Conn.OnRead): the driver
// hands each read to onData on the goroutine that runs the engine, which
// writes it to the host's socket at once, without blocking. A message from the
// namespace thus reaches the host with no goroutine woken in between (the
// relay would otherwise have a goroutine blocked in Read, woken for every
// message). When the data comes in bulk (a read fills the buffer) or the
// host's socket is full, onData pauses the deliveries and a goroutine takes
// over the direction with ordinary blocking reads and writes (copy), for the
// rest of the connection.
type pusher struct {
	s    *splice
	e    *host.Conn
	raw  syscall.RawConn
	buf  *[SmallBuffer]byte
	done chan struct{} // closed when the direction has ended
	once sync.Once

	// The non-blocking write under way (on the engine's goroutine), kept here
	// so that the RawConn callback, bound once, allocates nothing.
	data  []byte
	n     int
	errno error
	write func(fd uintptr) bool
}

// newPusher returns a pusher for s, or nil if its sides are not an engine
// connection and a socket.
func newPusher(s *splice) *pusher {
	e, ok := s.c[0].(*host.Conn)
	if !ok {
		return nil
	}
	sc, ok := s.c[1].(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p := &pusher{s: s, e: e, raw: raw, buf: smallBufs.Get().(*[SmallBuffer]byte), done: make(chan struct{})}
	p.write = p.doWrite
	return p
}

func (p *pusher) free() {
	if p.buf != nil {
		smallBufs.Put(p.buf)
		p.buf = nil
	}
}

// onData takes one delivery of push mode (on the engine's goroutine: it must
// not block).
func (p *pusher) onData(data []byte, err error) bool {
	if err != nil {
		p.end(err)
		return false
	}
	if len(data) < len(p.buf) {
		n, werr := p.tryWrite(data)
		p.s.n[0].Add(int64(n))
		if n == len(data) {
			return true
		}
		if werr != nil && werr != unix.EAGAIN {
			p.end(werr)
			return false
		}
		data = data[n:]
	}
	// Bulk data, or the host's socket is full: a goroutine takes over.
	p.s.spawnOrGo(func() { p.pull(data) })
	return false
}

// tryWrite writes what the host's socket takes now.
func (p *pusher) tryWrite(data []byte) (int, error) {
	p.data, p.n, p.errno = data, 0, nil
	if err := p.raw.Write(p.write); err != nil {
		return 0, err
	}
	p.data = nil
	return p.n, p.errno
}

// doWrite is the RawConn callback: one write(2), whatever it gives.
func (p *pusher) doWrite(fd uintptr) bool {
	for {
		n, err := unix.Write(int(fd), p.data)
		if err == unix.EINTR {
			continue
		}
		p.n, p.errno = max(n, 0), err
		return true
	}
}

// end finishes the direction after the end of the engine's stream (a
// half-close passed on to the host) or a failure (both sides reset).
func (p *pusher) end(err error) {
	if err == io.EOF {
		// RFC 9293 §3.6: the FIN says this side sends no more.
		if cerr := p.s.c[1].CloseWrite(); cerr != nil && !p.s.aborted.Load() {
			p.s.fail(cerr)
		}
	} else {
		p.s.fail(err)
	}
	p.finish(true)
}

// finish marks the direction ended. free gives the buffer back to the pool:
// not when the splice is aborted from another goroutine, since a delivery may
// still be reading it.
func (p *pusher) finish(free bool) {
	p.once.Do(func() {
		if free {
			p.free()
		}
		close(p.done)
	})
}

// pull writes the data push mode handed over, leaves push mode and copies the
// rest of the direction with blocking reads and writes (on a goroutine of its
// own).
func (p *pusher) pull(data []byte) {
	defer p.finish(true)
	if _, err := p.s.c[1].Write(data); err != nil {
		p.s.fail(err)
		return
	}
	p.s.n[0].Add(int64(len(data)))
	if err := p.e.OnRead(nil, nil); err != nil {
		p.s.fail(err)
		return
	}
	p.s.copy(0, 1)
}
