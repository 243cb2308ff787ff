package main

// The services of `tcpeng serve`: echo (RFC 862), discard (RFC 863), chargen
// (RFC 864) and a static HTTP/1.1 file server, each on a net.Listener of the
// driver. One goroutine per connection (two for chargen); the engine's
// MaxConns bounds the connections.

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpeng/tcpeng/internal/chargen"
)

type services struct {
	mu     sync.Mutex
	lns    []net.Listener
	http   []*http.Server
	idle   []chan func() // idle goroutines, waiting for work
	closed bool
	wg     sync.WaitGroup
}

// start serves name on ln.
func (s *services) start(name string, ln net.Listener, root string) {
	s.mu.Lock()
	s.lns = append(s.lns, ln)
	s.mu.Unlock()
	if name == "http" {
		srv := &http.Server{
			Handler:           http.FileServer(http.Dir(root)),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       60 * time.Second,
			ErrorLog:          log.New(io.Discard, "", 0),
		}
		s.mu.Lock()
		s.http = append(s.http, srv)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			srv.Serve(ln)
		}()
		return
	}
	handle := map[string]func(net.Conn){"echo": echoConn, "discard": discardConn, "chargen": chargenConn}[name]
	s.serve(ln, handle)
}

// serve accepts connections on ln and runs handle for each, on the goroutine
// that accepted it: before handling, an accepting goroutine makes sure
// another one waits in Accept (from the pool of idle goroutines, or a new
// one). Reusing goroutines matters: a connection's Read and Write may run the
// engine's Step on its goroutine, which needs a deep stack, and a fresh
// goroutine's stack is copied as it grows.
func (s *services) serve(ln net.Listener, handle func(net.Conn)) {
	var waiting atomic.Int32
	var loop func()
	loop = func() {
		for {
			waiting.Add(1)
			c, err := ln.Accept()
			left := waiting.Add(-1)
			if err != nil {
				if isClosed(err) {
					return
				}
				if left == 0 {
					continue
				}
				return
			}
			if left == 0 {
				s.run(loop)
			}
			handle(c)
			if waiting.Load() > 0 {
				return
			}
		}
	}
	s.run(loop)
}

// run runs f on an idle goroutine of the services, or a new one.
func (s *services) run(f func()) {
	s.mu.Lock()
	if n := len(s.idle); n > 0 && !s.closed {
		w := s.idle[n-1]
		s.idle[n-1] = nil
		s.idle = s.idle[:n-1]
		s.mu.Unlock()
		w <- f
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		w := make(chan func(), 1)
		for f != nil {
			f()
			s.mu.Lock()
			if s.closed || len(s.idle) >= maxIdle {
				s.mu.Unlock()
				return
			}
			s.idle = append(s.idle, w)
			s.mu.Unlock()
			f = <-w // nil once closed
		}
	}()
}

// maxIdle bounds the idle goroutines kept for new connections.
const maxIdle = 64

// close stops accepting; the connections end when the driver closes.
func (s *services) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for _, w := range s.idle {
		close(w)
	}
	s.idle = nil
	for _, srv := range s.http {
		srv.Close()
	}
	for _, ln := range s.lns {
		ln.Close()
	}
}

func (s *services) wait() { s.wg.Wait() }

// Buffers: a connection reads into a small buffer, and into a large one while
// its reads fill the small one (bulk data); idle connections hold little.
const (
	smallBuf = 4 << 10
	largeBuf = 128 << 10
)

var (
	smallBufs = sync.Pool{New: func() any { return new([smallBuf]byte) }}
	largeBufs = sync.Pool{New: func() any { return new([largeBuf]byte) }}
)

// reader reads with the adaptive buffer.
type reader struct {
	small  *[smallBuf]byte
	large  *[largeBuf]byte
	buf    []byte
	shrink bool // the last read would have fit the small buffer
}

func newReader() *reader {
	r := &reader{small: smallBufs.Get().(*[smallBuf]byte)}
	r.buf = r.small[:]
	return r
}

// read reads from c; the bytes are valid until the next read.
func (r *reader) read(c net.Conn) ([]byte, error) {
	if r.shrink {
		largeBufs.Put(r.large)
		r.large, r.buf, r.shrink = nil, r.small[:], false
	}
	n, err := c.Read(r.buf)
	b := r.buf[:n]
	switch {
	case r.large == nil && n == len(r.buf):
		r.large = largeBufs.Get().(*[largeBuf]byte)
		r.buf = r.large[:]
	case r.large != nil && n < smallBuf:
		r.shrink = true
	}
	return b, err
}

func (r *reader) free() {
	if r.large != nil {
		largeBufs.Put(r.large)
	}
	smallBufs.Put(r.small)
}

// reset closes c with a reset.
func reset(c net.Conn) {
	if l, ok := c.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	c.Close()
}

// echoConn sends back what it reads (RFC 862); the client's FIN is passed on
// after the last byte, and the connection closes when both ends are done.
func echoConn(c net.Conn) {
	r := newReader()
	defer r.free()
	for {
		b, err := r.read(c)
		if len(b) > 0 {
			if _, werr := c.Write(b); werr != nil {
				reset(c)
				return
			}
		}
		if err == io.EOF {
			c.(interface{ CloseWrite() error }).CloseWrite()
			c.Close()
			return
		}
		if err != nil {
			reset(c)
			return
		}
	}
}

// discardConn reads and throws away until the client's FIN (RFC 863).
func discardConn(c net.Conn) {
	r := newReader()
	defer r.free()
	for {
		_, err := r.read(c)
		if err == io.EOF {
			c.Close()
			return
		}
		if err != nil {
			reset(c)
			return
		}
	}
}

// chargenConn sends the pattern until the client closes or resets (RFC 864:
// data received is thrown away).
func chargenConn(c net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		r := newReader()
		defer r.free()
		for {
			if _, err := r.read(c); err != nil {
				break
			}
		}
		// The client is done (FIN, reset or our Close): stop the writer.
		c.Close()
	}()
	for {
		if _, err := c.Write(chargen.Data); err != nil {
			if !errors.Is(err, net.ErrClosed) {
				reset(c)
			}
			break
		}
	}
	<-done
}
