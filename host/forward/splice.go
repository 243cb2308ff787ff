package forward

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
)

// HalfConn is a stream connection that can be half-closed and reset:
// *net.TCPConn and *host.Conn are.
type HalfConn interface {
	net.Conn
	// CloseWrite sends the end of the stream (a FIN); reading goes on.
	CloseWrite() error
	// SetLinger(0) makes Close reset the connection (RST).
	SetLinger(sec int) error
}

// noHalf adapts a net.Conn without half-close or reset: CloseWrite and
// SetLinger do nothing.
type noHalf struct{ net.Conn }

func (n noHalf) CloseWrite() error {
	if c, ok := n.Conn.(interface{ CloseWrite() error }); ok {
		return c.CloseWrite()
	}
	return nil
}

func (n noHalf) SetLinger(sec int) error {
	if c, ok := n.Conn.(interface{ SetLinger(int) error }); ok {
		return c.SetLinger(sec)
	}
	return nil
}

// Splice copies a to b and b to a until both directions end, and closes both.
// The end of one direction's stream (io.EOF) is passed on as a half-close
// (CloseWrite), so that each side sees the other's FIN when it comes; a failed
// read (a reset, a timeout) or write on either side resets both (SetLinger(0)
// and Close). It returns the bytes copied each way and whether the splice
// ended in resets.
//
// Each direction starts with a buffer of SmallBuffer bytes and, after a read
// that fills it, takes one of BigBuffer bytes from big (when big has one to
// give), giving it back after a read that would have fit the small one. big
// may be nil.
func Splice(a, b HalfConn, big *BufferPool) (ab, ba int64, reset bool) {
	s := newSplice(a, b, big)
	s.run()
	return s.n[0].Load(), s.n[1].Load(), s.aborted.Load()
}

// splice is one relayed connection: c[0] the namespace's side, c[1] the
// host's. n[0] counts bytes from c[0] to c[1], n[1] the other way.
type splice struct {
	spawn   func(func()) // runs the second direction; nil: a goroutine of its own
	push    *pusher      // the first direction in push mode, if it is
	c       [2]HalfConn
	n       [2]atomic.Int64
	big     *BufferPool
	once    sync.Once
	aborted atomic.Bool
	resets  atomic.Int32
}

func newSplice(a, b HalfConn, big *BufferPool) *splice {
	return &splice{c: [2]HalfConn{a, b}, big: big}
}

// run copies both ways and closes both sides.
func (s *splice) run() {
	// The engine's side to the host's in push mode when it can: the data is
	// written to the host's socket by the goroutine that runs the engine, as
	// soon as it arrives (see pusher); the host's side to the engine's on this
	// goroutine.
	if p := newPusher(s); p != nil {
		s.push = p
		if err := p.e.OnRead(p.buf[:], p.onData); err == nil {
			s.copy(1, 0)
			<-p.done
			if !s.aborted.Load() {
				s.c[0].Close()
				s.c[1].Close()
			}
			return
		}
		s.push = nil
		p.free()
	}
	done := make(chan struct{})
	back := func() {
		defer close(done)
		s.copy(1, 0)
	}
	if s.spawn != nil {
		s.spawn(back)
	} else {
		go back()
	}
	s.copy(0, 1)
	<-done
	if !s.aborted.Load() {
		s.c[0].Close()
		s.c[1].Close()
	}
}

// spawnOrGo runs g on the splice's spawn function, or a goroutine.
func (s *splice) spawnOrGo(g func()) {
	if s.spawn != nil {
		s.spawn(g)
	} else {
		go g()
	}
}

// abort resets both sides once.
func (s *splice) abort() {
	s.once.Do(func() {
		s.aborted.Store(true)
		for _, c := range s.c {
			c.SetLinger(0)
			c.Close()
		}
		if s.push != nil {
			// The engine's side is closed: push mode delivers nothing more.
			s.push.finish(false)
		}
	})
}

// fail ends the splice after err on one side: both sides are reset, unless
// the splice was aborted already (the error is then our own Close).
func (s *splice) fail(err error) {
	if s.aborted.Load() {
		return
	}
	if !errors.Is(err, net.ErrClosed) {
		s.resets.Add(1)
	}
	s.abort()
}

// smallBufs recycles the per-direction buffers of finished splices.
var smallBufs = sync.Pool{New: func() any { return new([SmallBuffer]byte) }}

// copy moves bytes from c[from] to c[to] until the end of c[from]'s stream or
// a failure.
func (s *splice) copy(from, to int) {
	src, dst := s.c[from], s.c[to]
	sb := smallBufs.Get().(*[SmallBuffer]byte)
	defer smallBufs.Put(sb)
	small := sb[:]
	buf := small
	var big []byte
	defer func() {
		if big != nil {
			s.big.put(big)
		}
	}()
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				s.fail(werr)
				return
			}
			s.n[from].Add(int64(n))
			switch {
			case big == nil && n == len(buf):
				if b := s.big.get(); b != nil {
					big, buf = b, b
				}
			case big != nil && n < len(small):
				s.big.put(big)
				big, buf = nil, small
			}
		}
		if err == io.EOF {
			// RFC 9293 §3.6: the FIN says this side sends no more; the
			// other side may still send, so only the write half closes.
			if cerr := dst.CloseWrite(); cerr != nil && !s.aborted.Load() {
				s.fail(cerr)
			}
			return
		}
		if err != nil {
			s.fail(err)
			return
		}
	}
}

// BufferPool is a bounded set of large buffers shared by splices.
type BufferPool struct {
	free chan []byte
	made atomic.Int64
	max  int64
	size int
}

// NewBufferPool returns a pool of at most n buffers of size bytes, made as
// they are first needed.
func NewBufferPool(n, size int) *BufferPool {
	return &BufferPool{free: make(chan []byte, n), max: int64(n), size: size}
}

// get returns a buffer, or nil when all of them are taken (or p is nil).
func (p *BufferPool) get() []byte {
	if p == nil {
		return nil
	}
	select {
	case b := <-p.free:
		return b
	default:
	}
	if p.made.Add(1) <= p.max {
		return make([]byte, p.size)
	}
	p.made.Add(-1)
	return nil
}

func (p *BufferPool) put(b []byte) {
	select {
	case p.free <- b:
	default:
	}
}

// InUse returns how many buffers are out of the pool.
func (p *BufferPool) InUse() int {
	if p == nil {
		return 0
	}
	return int(p.made.Load()) - len(p.free)
}
