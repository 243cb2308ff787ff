package host

import (
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/internal/spin"
)

// Conn is a TCP connection of a Driver. It implements net.Conn and the
// TCPConn methods that make sense for it (CloseWrite, SetNoDelay,
// SetKeepAlive, SetLinger). Its methods are safe for concurrent use; Reads are
// served one at a time, and so are Writes.
//
// A Conn starts no goroutine and holds no buffer: Read and Write hand the
// caller's slice to the engine (in a Step that the call itself or another
// goroutine runs), which copies straight between it and the engine's
// connection buffers. An idle Conn is 128 bytes of heap (plus its
// entry in the driver's table): the state of a blocked call (a waiter) and of
// deadlines (connExt) is attached only while used.
type Conn struct {
	d     *Driver
	id    engine.ConnID // 0 until the engine has it
	flags uint32
	// rdBuf is the pending Read's buffer; when it is done, rdBuf[:n] is what
	// was read. wrBuf is what the pending Write has still to give the engine.
	rdBuf, wrBuf     []byte
	rdState, wrState uint8
	rdCode, wrCode   engine.Error // results, once done
	code             engine.Error // why the connection failed (EventReset, EventError, a failed OpDial)
	localIdx         uint8        // the local address: d.local(localIdx), or noLocal
	spin             spin.Spinner // whether blocked calls spin before they park (d.mu)
	localPort        uint16
	remote           netip.AddrPort
	w                *waiter  // while calls are blocked
	ext              *connExt // once a deadline is set
}

// Conn flags.
const (
	cfDialing  uint32 = 1 << iota // Dial is waiting for EventConnected
	cfReadable                    // OpRead may return something other than ErrWouldBlock
	cfWritable                    // OpWrite may take something
	cfEOF                         // Read returned io.EOF
	cfShutWr                      // CloseWrite was called
	cfShutSent                    // OpShutdown was issued
	cfClosed                      // Close was called (or a Dial gave up)
	cfAbort                       // close with a reset (SetLinger(0), a Dial that gave up)
	cfReleased                    // OpClose/OpAbort was issued: the ID is gone
	cfDirty                       // in the driver's dirty list
)

// The states of a Read or a Write.
const (
	opIdle    uint8 = iota
	opPending       // waiting for a Step (and for the connection to be readable/writable)
	opInStep        // in the Step under way: the buffer belongs to the stepper
	opDone          // finished: the buffer and the code hold the result
)

// codeClosed is the host's own code for an operation ended by Close.
const codeClosed engine.Error = 0xff

// noLocal marks an unknown local address.
const noLocal = 0xff

// connExt holds a connection's deadlines, in the driver's monotonic
// nanoseconds (time since d.origin; 0 means none), and their timers.
type connExt struct {
	rdDL, wrDL int64
	rdT, wrT   *time.Timer
	// local is the local address when it is not interned (noLocal: in forward
	// mode every destination is a local address). adopt sets it before the
	// application has the connection and it never changes, so LocalAddrPort
	// reads it without the lock.
	local netip.Addr
}

// waiter is what blocked calls of one connection sleep on. Connections take
// one from the driver's free list when a call blocks and give it back when no
// call is blocked any more, so idle connections hold none.
type waiter struct {
	cond sync.Cond     // L is &d.mu
	refs int           // calls blocked on it
	gen  atomic.Uint32 // wakes so far: a spinning call watches it (spin.Until)
}

// maxFreeWaiters bounds the driver's free list of waiters.
const maxFreeWaiters = 4096

func (d *Driver) newConn() *Conn {
	return &Conn{d: d, flags: cfReadable | cfWritable, localIdx: noLocal}
}

// wait blocks until c is woken (d.mu held, and released while blocked).
func (c *Conn) wait() {
	d := c.d
	w := c.w
	if w == nil {
		if n := len(d.waiters); n > 0 {
			w = d.waiters[n-1]
			d.waiters[n-1] = nil
			d.waiters = d.waiters[:n-1]
		} else {
			w = &waiter{}
			w.cond.L = &d.mu
		}
		c.w = w
	}
	w.refs++
	start := time.Now()
	if !d.opts.NoSpin && c.spin.Spins() {
		// Spin a moment before parking (host/internal/spin): in a bulk
		// transfer the Step that wakes this call is tens of µs away, less
		// than waking a parked goroutine on an idle CPU takes.
		g := w.gen.Load()
		d.mu.Unlock()
		spin.Until(func() bool { return w.gen.Load() != g })
		d.mu.Lock()
		if w.gen.Load() == g {
			w.cond.Wait()
		}
	} else {
		w.cond.Wait()
	}
	c.spin.Record(time.Since(start))
	w.refs--
	if w.refs == 0 {
		c.w = nil
		if len(d.waiters) < maxFreeWaiters {
			d.waiters = append(d.waiters, w)
		}
	}
}

// wake wakes c's blocked calls, which look again at what they wait for (d.mu held).
func (c *Conn) wake() {
	if c.w != nil {
		c.w.gen.Add(1)
		c.w.cond.Broadcast()
	}
}

// readResult takes the engine's answer to an OpRead (d.mu held).
func (c *Conn) readResult(r *engine.Result) {
	switch {
	case c.rdState != opInStep:
		return
	case c.flags&cfClosed != 0:
		c.rdState, c.rdCode = opDone, codeClosed
	case r.Err == engine.OK:
		c.rdState, c.rdBuf = opDone, c.rdBuf[:r.N]
	case r.Err == engine.ErrWouldBlock:
		c.flags &^= cfReadable
		c.rdState = opPending
	default:
		if r.Err == engine.ErrEOF {
			c.flags |= cfEOF
		}
		c.rdState, c.rdCode = opDone, r.Err
	}
	c.wake()
}

// writeResult takes the engine's answer to an OpWrite (d.mu held).
func (c *Conn) writeResult(r *engine.Result) {
	if c.wrState != opInStep {
		return
	}
	c.wrBuf = c.wrBuf[r.N:]
	switch {
	case c.flags&cfClosed != 0:
		c.wrState, c.wrCode = opDone, codeClosed
	case len(c.wrBuf) == 0:
		c.wrState = opDone
	case r.Err == engine.OK || r.Err == engine.ErrWouldBlock:
		// Short: the engine raises EventWritable when room appears.
		c.flags &^= cfWritable
		c.wrState = opPending
	default:
		c.wrState, c.wrCode = opDone, r.Err
	}
	c.wake()
}

// event takes one engine event for c (d.mu held).
func (c *Conn) event(ev engine.Event) {
	switch ev.Kind {
	case engine.EventConnected:
		c.flags &^= cfDialing
		c.wake()
	case engine.EventReadable, engine.EventPeerClosed:
		c.flags |= cfReadable
		if c.rdState == opPending {
			c.d.markDirty(c)
		}
	case engine.EventWritable:
		c.flags |= cfWritable
		if c.wrState == opPending {
			c.d.markDirty(c)
		}
	case engine.EventReset, engine.EventError:
		c.code = ev.Err
		c.flags = (c.flags | cfReadable | cfWritable) &^ cfDialing
		if c.rdState == opPending || c.wrState == opPending {
			c.d.markDirty(c)
		}
		c.wake()
	}
}

// blockErr says why a Read (read true) or Write may not wait any longer, or nil.
func (c *Conn) blockErr(read bool) error {
	if c.flags&cfClosed != 0 || c.d.closing {
		return net.ErrClosed
	}
	if x := c.ext; x != nil {
		dl := x.wrDL
		if read {
			dl = x.rdDL
		}
		if dl != 0 && int64(time.Since(c.d.origin)) >= dl {
			return os.ErrDeadlineExceeded
		}
	}
	return nil
}

// Read reads up to len(p) bytes. It blocks until at least one byte is there,
// the peer's FIN (io.EOF, after the data), a failure (ECONNRESET, ETIMEDOUT,
// ...), the read deadline (os.ErrDeadlineExceeded) or Close (net.ErrClosed).
func (c *Conn) Read(p []byte) (int, error) {
	d := c.d
	d.mu.Lock()
	for c.rdState != opIdle { // another Read is under way
		if err := c.blockErr(true); err != nil {
			d.mu.Unlock()
			return 0, c.opError("read", err)
		}
		c.wait()
	}
	if err := c.blockErr(true); err != nil {
		d.mu.Unlock()
		return 0, c.opError("read", err)
	}
	if len(p) == 0 {
		d.mu.Unlock()
		return 0, nil
	}
	if c.flags&cfEOF != 0 {
		d.mu.Unlock()
		return 0, io.EOF
	}
	c.rdBuf, c.rdState = p, opPending
	if c.flags&cfReadable != 0 {
		// Run the engine here if no one else is: the read is done at once
		// when the data is there. (Not readable: the engine's EventReadable
		// brings the read to the engine.)
		d.markDirty(c)
		d.mu.Unlock()
		d.poke(roleApp)
		d.mu.Lock()
	}
	for c.rdState != opDone {
		if c.rdState == opPending {
			if err := c.blockErr(true); err != nil {
				c.rdBuf, c.rdState = nil, opIdle
				c.wake()
				d.mu.Unlock()
				return 0, c.opError("read", err)
			}
		}
		c.wait()
	}
	n, code := len(c.rdBuf), c.rdCode
	c.rdBuf, c.rdState, c.rdCode = nil, opIdle, engine.OK
	c.wake()
	d.mu.Unlock()
	switch code {
	case engine.OK:
		return n, nil
	case engine.ErrEOF:
		return 0, io.EOF
	}
	return 0, c.opError("read", codeErr(code))
}

// Write writes all of p, blocking while the engine's send buffer is full (the
// peer is slow, or its window is closed). It returns early only with an error:
// the write deadline (os.ErrDeadlineExceeded), Close (net.ErrClosed), a
// failure of the connection, or EPIPE after CloseWrite; n says how much was
// taken.
func (c *Conn) Write(p []byte) (int, error) {
	d := c.d
	d.mu.Lock()
	for c.wrState != opIdle { // another Write is under way
		if err := c.blockErr(false); err != nil {
			d.mu.Unlock()
			return 0, c.opError("write", err)
		}
		c.wait()
	}
	if err := c.blockErr(false); err != nil {
		d.mu.Unlock()
		return 0, c.opError("write", err)
	}
	if c.flags&cfShutWr != 0 {
		d.mu.Unlock()
		return 0, c.opError("write", codeErr(engine.ErrClosed))
	}
	if len(p) == 0 {
		d.mu.Unlock()
		return 0, nil
	}
	c.wrBuf, c.wrState = p, opPending
	if c.flags&cfWritable != 0 {
		d.markDirty(c)
		d.mu.Unlock()
		d.poke(roleApp)
		d.mu.Lock()
	}
	for c.wrState != opDone {
		if c.wrState == opPending {
			if err := c.blockErr(false); err != nil {
				n := len(p) - len(c.wrBuf)
				c.wrBuf, c.wrState = nil, opIdle
				c.wake()
				d.mu.Unlock()
				return n, c.opError("write", err)
			}
		}
		c.wait()
	}
	n, code := len(p)-len(c.wrBuf), c.wrCode
	c.wrBuf, c.wrState, c.wrCode = nil, opIdle, engine.OK
	c.wake()
	d.mu.Unlock()
	if code != engine.OK {
		return n, c.opError("write", codeErr(code))
	}
	return n, nil
}

// Close closes the connection. Blocked Reads and Writes return net.ErrClosed.
// The engine closes it gracefully in the background (FIN after the data
// queued), or resets it if received data was left unread or SetLinger(0) was
// called. Closing twice returns net.ErrClosed.
func (c *Conn) Close() error {
	d := c.d
	d.mu.Lock()
	if c.flags&cfClosed != 0 {
		d.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.flags |= cfClosed
	if x := c.ext; x != nil {
		if x.rdT != nil {
			x.rdT.Stop()
		}
		if x.wrT != nil {
			x.wrT.Stop()
		}
	}
	engineHasIt := c.id != 0
	if engineHasIt {
		d.markDirty(c)
	}
	c.wake()
	d.mu.Unlock()
	if engineHasIt {
		d.poke(roleApp)
	}
	return nil
}

// CloseWrite shuts down the sending side: the peer reads io.EOF once it has
// the data written before (a FIN follows it). Reading goes on. Later Writes
// fail with EPIPE.
func (c *Conn) CloseWrite() error {
	d := c.d
	d.mu.Lock()
	if c.flags&cfClosed != 0 || d.closing {
		d.mu.Unlock()
		return c.opError("close", net.ErrClosed)
	}
	c.flags |= cfShutWr
	d.markDirty(c)
	d.mu.Unlock()
	d.poke(roleApp)
	return nil
}

// SetLinger with sec 0 makes Close reset the connection (RST) instead of
// closing it gracefully; any other value restores the graceful close. (The
// engine always finishes a graceful close in the background: there is no
// lingering Close.)
func (c *Conn) SetLinger(sec int) error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.flags&cfClosed != 0 {
		return c.opError("set", net.ErrClosed)
	}
	if sec == 0 {
		c.flags |= cfAbort
	} else {
		c.flags &^= cfAbort
	}
	return nil
}

// SetNoDelay turns Nagle's algorithm off (true, the default, as in Go's net
// package) or on.
func (c *Conn) SetNoDelay(noDelay bool) error {
	return c.setOption(engine.OptNoDelay, noDelay)
}

// SetKeepAlive turns keepalive probes on or off (engine.Config sets their timing).
func (c *Conn) SetKeepAlive(keepalive bool) error {
	return c.setOption(engine.OptKeepalive, keepalive)
}

func (c *Conn) setOption(o engine.Option, on bool) error {
	var v int64
	if on {
		v = 1
	}
	d := c.d
	d.mu.Lock()
	if c.flags&cfClosed != 0 || d.closing {
		d.mu.Unlock()
		return c.opError("set", net.ErrClosed)
	}
	d.options = append(d.options, optReq{c: c, opt: o, value: v})
	d.mu.Unlock()
	d.poke(roleApp)
	return nil
}

// LocalAddr returns the local address, a *net.TCPAddr.
func (c *Conn) LocalAddr() net.Addr { return net.TCPAddrFromAddrPort(c.LocalAddrPort()) }

// RemoteAddr returns the peer's address, a *net.TCPAddr.
func (c *Conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.remote) }

// LocalAddrPort returns the local address without allocating (the zero
// AddrPort if the engine cannot say it).
func (c *Conn) LocalAddrPort() netip.AddrPort {
	if c.localIdx == noLocal {
		if x := c.ext; x != nil && x.local.IsValid() {
			return netip.AddrPortFrom(x.local, c.localPort)
		}
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(c.d.local(c.localIdx), c.localPort)
}

// RemoteAddrPort returns the peer's address without allocating.
func (c *Conn) RemoteAddrPort() netip.AddrPort { return c.remote }

// ID returns the connection's engine ID (0 once closed before the engine knew it).
func (c *Conn) ID() engine.ConnID {
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	return c.id
}

// SetDeadline sets the read and write deadlines; see net.Conn. A deadline
// change wakes blocked calls, which then time out or wait on.
func (c *Conn) SetDeadline(t time.Time) error {
	return c.setDeadline(t, true, true)
}

// SetReadDeadline sets the read deadline; the zero time means none.
func (c *Conn) SetReadDeadline(t time.Time) error { return c.setDeadline(t, true, false) }

// SetWriteDeadline sets the write deadline; the zero time means none. A Write
// that times out may have sent part of its bytes.
func (c *Conn) SetWriteDeadline(t time.Time) error { return c.setDeadline(t, false, true) }

func (c *Conn) setDeadline(t time.Time, read, write bool) error {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if c.flags&cfClosed != 0 || d.closing {
		return c.opError("set", net.ErrClosed)
	}
	x := c.ext
	if x == nil {
		if t.IsZero() {
			return nil
		}
		x = new(connExt)
		c.ext = x
	}
	var dl int64
	if !t.IsZero() {
		if dl = int64(t.Sub(d.origin)); dl == 0 {
			dl = -1 // 0 means none
		}
	}
	wait := time.Duration(dl - int64(time.Since(d.origin)))
	on := dl != 0 && wait > 0
	if read {
		x.rdDL = dl
		armTimer(&x.rdT, on, wait, c.fireRead)
	}
	if write {
		x.wrDL = dl
		armTimer(&x.wrT, on, wait, c.fireWrite)
	}
	c.wake()
	return nil
}

// armTimer sets (on) or stops a deadline timer. The timer is made at the
// first deadline in the future and reused after.
func armTimer(t **time.Timer, on bool, wait time.Duration, fire func()) {
	switch {
	case !on && *t != nil:
		(*t).Stop()
	case on && *t == nil:
		*t = time.AfterFunc(wait, fire)
	case on:
		(*t).Reset(wait)
	}
}

func (c *Conn) fireRead()  { c.fire(true) }
func (c *Conn) fireWrite() { c.fire(false) }

// fire runs when a deadline timer goes off: the blocked call wakes and sees
// the deadline passed. A timer that went off early (a deadline moved) re-arms.
func (c *Conn) fire(read bool) {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	x := c.ext
	dl, t, fire := x.wrDL, &x.wrT, c.fireWrite
	if read {
		dl, t, fire = x.rdDL, &x.rdT, c.fireRead
	}
	if wait := time.Duration(dl - int64(time.Since(d.origin))); dl != 0 && wait > 0 && c.flags&cfClosed == 0 {
		armTimer(t, true, wait, fire)
		return
	}
	c.wake()
}

// opError wraps err the way the net package does.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: tcpAddr(c.LocalAddrPort()), Addr: tcpAddr(c.remote), Err: err}
}

// tcpAddr returns a as a *net.TCPAddr, or nil (not a nil *TCPAddr in an
// interface) when a is unknown.
func tcpAddr(a netip.AddrPort) net.Addr {
	if !a.IsValid() {
		return nil
	}
	return net.TCPAddrFromAddrPort(a)
}

var _ net.Conn = (*Conn)(nil)

// Interfaces of *net.TCPConn that http, tls and friends look for.
var (
	_ interface{ CloseWrite() error }     = (*Conn)(nil)
	_ interface{ SetNoDelay(bool) error } = (*Conn)(nil)
)
