package pipe

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/tcpeng/tcpeng/engine"
)

// Stream drives one connection for an App with the engine's edge-triggered
// events: it keeps one OpRead in flight while there is something to read
// (EventReadable, EventPeerClosed), queues writes and resumes them after a short
// write on EventWritable, and sends Shutdown or Close once everything queued has
// been taken by the engine. The App routes the results and events of the
// connection to Result and Event.
type Stream struct {
	ID engine.ConnID

	// OnData receives what was read; b is valid only during the call.
	OnData func(s *Stream, b []byte)
	// OnEOF is called once the peer's FIN has been read past (Read gave ErrEOF).
	OnEOF func(s *Stream)
	// OnError is called once when a command or an event reports the connection
	// failed (reset, timed out, ...).
	OnError func(s *Stream, err engine.Error)
	// OnClosed is called at EventClosed.
	OnClosed func(s *Stream)
	// OnWritten is called after the engine took bytes of a Write.
	OnWritten func(s *Stream, n int)

	Sent, Received int64 // bytes taken by the engine, bytes read

	// MaxQueued bounds the bytes written to the stream and not yet taken by the
	// engine; past it Write fails with ErrStreamFull. Default DefaultMaxQueued.
	MaxQueued int

	h                    *Host
	sendq                [][]byte
	queued               int
	readBuf              []byte
	writing, blocked     bool
	reading, paused, eof bool
	wantShut, shutSent   bool
	wantClose, closeSent bool
	closed               bool
	err                  engine.Error
}

// NewStream returns a stream for connection id of h's side, reading at most
// readBuf bytes per Read (default 64 KiB when 0).
func NewStream(h *Host, id engine.ConnID, readBuf int) *Stream {
	if readBuf <= 0 {
		readBuf = 64 << 10
	}
	return &Stream{ID: id, h: h, readBuf: make([]byte, readBuf)}
}

// Stream errors.
var (
	ErrStreamClosed = errors.New("pipe: write after Shutdown or Close")
	ErrStreamFull   = errors.New("pipe: the stream holds MaxQueued bytes not yet taken by the engine: wait for OnWritten")
)

// DefaultMaxQueued is the default Stream.MaxQueued.
const DefaultMaxQueued = 1 << 30

// Write queues b to be sent; the stream keeps b (unmodified, please) until the
// engine has taken all of it.
func (s *Stream) Write(b []byte) error {
	if s.wantShut || s.wantClose {
		return ErrStreamClosed
	}
	if len(b) == 0 {
		return nil
	}
	limit := s.MaxQueued
	if limit <= 0 {
		limit = DefaultMaxQueued
	}
	if s.queued+len(b) > limit {
		return ErrStreamFull
	}
	s.sendq = append(s.sendq, b)
	s.queued += len(b)
	s.kick()
	return nil
}

// Queued returns the bytes written to the stream and not yet taken by the engine.
func (s *Stream) Queued() int { return s.queued }

// Shutdown sends a FIN after everything queued (half-close); reading goes on.
func (s *Stream) Shutdown() {
	s.wantShut = true
	s.kick()
}

// Close releases the connection after everything queued has been taken; the
// engine closes it gracefully and EventClosed (OnClosed) follows. Nothing is
// read after Close: unread data makes the engine reset the connection.
func (s *Stream) Close() {
	s.wantClose = true
	s.kick()
}

// Pause stops reading (the receive window closes as data accumulates); Resume
// starts again.
func (s *Stream) Pause() { s.paused = true }

// Resume undoes Pause.
func (s *Stream) Resume() {
	s.paused = false
	s.Read()
}

// Read asks for a read now, if none is in flight; the stream reads on its own
// at EventReadable, so Apps call it only to start early.
func (s *Stream) Read() {
	if s.reading || s.paused || s.eof || s.closeSent || s.err != engine.OK {
		return
	}
	s.do(engine.Command{Op: engine.OpRead, Conn: s.ID, Data: s.readBuf})
	s.reading = true
}

// EOF reports whether the peer's FIN has been read.
func (s *Stream) EOF() bool { return s.eof }

// Closed reports whether EventClosed arrived.
func (s *Stream) Closed() bool { return s.closed }

// Err returns the connection's failure, or engine.OK.
func (s *Stream) Err() engine.Error { return s.err }

func (s *Stream) do(c engine.Command) {
	if err := s.h.Do(c); err != nil {
		s.h.Fail(err)
	}
}

// kick issues the next write, or the Shutdown and Close waiting for the queue
// to drain.
func (s *Stream) kick() {
	if s.closeSent || s.err != engine.OK {
		return
	}
	if len(s.sendq) > 0 {
		if !s.writing && !s.blocked {
			s.do(engine.Command{Op: engine.OpWrite, Conn: s.ID, Data: s.sendq[0]})
			s.writing = true
		}
		return
	}
	if s.writing {
		return
	}
	if s.wantShut && !s.shutSent && !s.wantClose {
		s.do(engine.Command{Op: engine.OpShutdown, Conn: s.ID})
		s.shutSent = true
	}
	if s.wantClose {
		s.do(engine.Command{Op: engine.OpClose, Conn: s.ID})
		s.closeSent = true
	}
}

func (s *Stream) fail(err engine.Error) {
	if s.err != engine.OK {
		return
	}
	s.err = err
	if s.OnError != nil {
		s.OnError(s, err)
	}
}

// Result takes the result of a command of this stream and reports whether it
// was one.
func (s *Stream) Result(c *engine.Command, r engine.Result) bool {
	if c.Conn != s.ID {
		return false
	}
	switch c.Op {
	case engine.OpWrite:
		s.writing = false
		n := r.N
		s.Sent += int64(n)
		s.queued -= n
		if n == len(s.sendq[0]) {
			s.sendq[0] = nil
			s.sendq = s.sendq[1:]
		} else {
			s.sendq[0] = s.sendq[0][n:]
		}
		if n > 0 && s.OnWritten != nil {
			s.OnWritten(s, n)
		}
		switch {
		case r.Err == engine.ErrWouldBlock || (r.Err == engine.OK && n < len(c.Data)):
			s.blocked = true // EventWritable follows when room appears
		case r.Err != engine.OK:
			s.fail(r.Err)
		}
		s.kick()
	case engine.OpRead:
		s.reading = false
		if r.N > 0 {
			s.Received += int64(r.N)
			if s.OnData != nil {
				s.OnData(s, c.Data[:r.N])
			}
		}
		switch r.Err {
		case engine.OK:
			s.Read()
		case engine.ErrWouldBlock:
		case engine.ErrEOF:
			if !s.eof {
				s.eof = true
				if s.OnEOF != nil {
					s.OnEOF(s)
				}
			}
		default:
			s.fail(r.Err)
		}
	case engine.OpShutdown, engine.OpClose:
		if r.Err != engine.OK {
			s.fail(r.Err)
		}
	default:
		return false
	}
	return true
}

// Event takes an event of this stream and reports whether it was one.
func (s *Stream) Event(ev engine.Event) bool {
	if ev.Conn != s.ID {
		return false
	}
	switch ev.Kind {
	case engine.EventReadable, engine.EventPeerClosed:
		s.Read()
	case engine.EventWritable:
		s.blocked = false
		s.kick()
	case engine.EventReset, engine.EventError:
		s.fail(ev.Err)
	case engine.EventClosed:
		s.closed = true
		if s.OnClosed != nil {
			s.OnClosed(s)
		}
	}
	return true
}

// Endpoint is an App with one connection: a client that dials Dial, or a server
// that listens on Listen and accepts the first connection. OnOpen receives the
// connection's Stream as soon as it exists (a client may write from SYN_SENT on).
type Endpoint struct {
	Dial, Listen netip.AddrPort // exactly one of them is set
	ReadBuffer   int            // bytes per Read (0: 64 KiB)

	OnOpen  func(h *Host, s *Stream)
	OnEvent func(h *Host, ev engine.Event) // every event of the side, before the stream sees it

	Listener engine.ConnID // the server's listener
	Stream   *Stream       // the connection, once it exists
}

// Start issues the Dial or the Listen.
func (e *Endpoint) Start(h *Host) {
	var err error
	switch {
	case e.Dial.IsValid() == e.Listen.IsValid():
		err = errors.New("pipe: an Endpoint needs exactly one of Dial and Listen")
	case e.Dial.IsValid():
		err = h.Dial(e.Dial)
	default:
		err = h.Listen(e.Listen)
	}
	if err != nil {
		h.Fail(err)
	}
}

// Result handles the results of the endpoint's commands.
func (e *Endpoint) Result(h *Host, c *engine.Command, r engine.Result) {
	switch c.Op {
	case engine.OpDial, engine.OpListen:
		if r.Err != engine.OK {
			h.Fail(fmt.Errorf("pipe: side %v: %v %v failed: %w", h.Side(), c.Op, c.Addr, r.Err))
			return
		}
		if c.Op == engine.OpListen {
			e.Listener = r.Conn
			return
		}
		e.open(h, r.Conn)
	case engine.OpAccept:
		switch {
		case r.Err == engine.OK && e.Stream == nil:
			e.open(h, r.Conn)
		case r.Err == engine.OK:
			_ = h.Close(r.Conn) // one connection only
		case r.Err != engine.ErrWouldBlock:
			h.Fail(fmt.Errorf("pipe: side %v: accept failed: %w", h.Side(), r.Err))
		}
	default:
		if e.Stream != nil {
			e.Stream.Result(c, r)
		}
	}
}

func (e *Endpoint) open(h *Host, id engine.ConnID) {
	e.Stream = NewStream(h, id, e.ReadBuffer)
	if e.OnOpen != nil {
		e.OnOpen(h, e.Stream)
	}
}

// Event handles the side's events.
func (e *Endpoint) Event(h *Host, ev engine.Event) {
	if e.OnEvent != nil {
		e.OnEvent(h, ev)
	}
	if ev.Kind == engine.EventAcceptable && ev.Conn == e.Listener {
		if err := h.Accept(e.Listener); err != nil {
			h.Fail(err)
		}
		return
	}
	if e.Stream != nil {
		e.Stream.Event(ev)
	}
}
