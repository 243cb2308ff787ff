package host

import (
	"errors"
	"io"
	"net"

	"github.com/tcpeng/tcpeng/engine"
)

// pushState is a connection in push mode (OnRead).
type pushState struct {
	f      func(data []byte, err error) bool
	buf    []byte
	n      int          // bytes read, for the delivery under way
	code   engine.Error // how the read ended, for the delivery under way
	paused bool         // f returned false: no reading until ResumeRead
	ended  bool         // f had the end of the stream or an error: no more deliveries
	inF    bool         // f is running
	resume bool         // ResumeRead came while f ran
}

// OnRead puts the connection in push mode: the driver reads the connection's
// data into buf as it arrives and hands it to f, on the goroutine that runs
// the engine, right after the Step that read it, with no goroutine of the
// application woken in between. It is the receiving half of a relay (host/
// forward): f passes the data on (a non-blocking write to another socket) and
// the next data is read as soon as it comes.
//
// f(data, nil) gets data = buf[:n], n > 0; it returns true to go on reading
// (buf may be reused at once), or false to pause: the driver reads nothing
// more until ResumeRead, and data stays valid until then. f(nil, io.EOF)
// reports the peer's FIN after the last byte, and f(nil, err) a failure
// (ECONNRESET, ETIMEDOUT, ..., or net.ErrClosed when the driver closes); both
// end the deliveries. f must not block: it runs while the engine waits. It may
// call the connection's Close, CloseWrite, SetLinger and ResumeRead, not its
// Read or Write. Read deadlines do not apply in push mode; after Close, f is
// not called again (but for a call under way).
//
// OnRead(nil, nil) leaves push mode while it is paused (a call under way of
// f, which must not make it, is waited for); Read works again. It fails if a
// Read is under way, or if push mode is on and not paused.
func (c *Conn) OnRead(buf []byte, f func(data []byte, err error) bool) error {
	eof, poke, err := c.onRead(buf, f)
	switch {
	case err != nil:
		return err
	case eof:
		f(nil, io.EOF)
	case poke:
		c.d.poke(roleApp)
	}
	return nil
}

// onRead is OnRead's work under d.mu. It reports whether the end of the stream
// is to be delivered to f at once, or the engine poked.
func (c *Conn) onRead(buf []byte, f func(data []byte, err error) bool) (eof, poke bool, err error) {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := c.blockErr(true); err != nil {
		return false, false, c.opError("read", err)
	}
	p := c.pushState()
	for f == nil && p != nil && p.inF {
		c.wait()
		if err := c.blockErr(true); err != nil {
			return false, false, c.opError("read", err)
		}
	}
	switch {
	case f == nil && p != nil && !p.paused && !p.ended:
		return false, false, c.opError("read", errors.New("tcpeng/host: OnRead(nil, nil) while delivering: pause first (return false from the function)"))
	case f == nil:
		if p != nil {
			c.ext.push = nil
			c.rdBuf, c.rdState = nil, opIdle
		}
		return false, false, nil
	case p != nil || c.rdState != opIdle:
		return false, false, c.opError("read", errors.New("tcpeng/host: OnRead while a Read or OnRead is under way"))
	case len(buf) == 0:
		return false, false, c.opError("read", errors.New("tcpeng/host: OnRead needs a buffer"))
	}
	if c.ext == nil {
		c.ext = &connExt{}
	}
	p = &pushState{f: f, buf: buf}
	c.ext.push = p
	if c.flags&cfEOF != 0 {
		// The end was read already: deliver it once, from OnRead.
		p.ended = true
		return true, false, nil
	}
	return false, c.armPush(p), nil
}

// ResumeRead restarts the deliveries of push mode after the function given
// to OnRead returned false. It returns net.ErrClosed after Close (of the
// connection or the driver), io.EOF if the end of the stream was delivered.
func (c *Conn) ResumeRead() error {
	poke, err := c.resumeRead()
	if poke {
		c.d.poke(roleApp)
	}
	return err
}

// resumeRead is ResumeRead's work under d.mu; it reports whether to poke the
// engine.
func (c *Conn) resumeRead() (poke bool, err error) {
	d := c.d
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := c.blockErr(true); err != nil {
		return false, c.opError("read", err)
	}
	p := c.pushState()
	switch {
	case p == nil:
		return false, c.opError("read", errors.New("tcpeng/host: ResumeRead outside push mode (OnRead)"))
	case p.ended:
		return false, io.EOF
	case p.inF:
		p.resume = true // f returning false will not pause
		return false, nil
	case !p.paused:
		return false, nil
	}
	p.paused = false
	return c.armPush(p), nil
}

func (c *Conn) pushState() *pushState {
	if c.ext == nil {
		return nil
	}
	return c.ext.push
}

// armPush makes the next read of push mode pending (d.mu held); it reports
// whether the engine should be poked (the connection may be readable now).
func (c *Conn) armPush(p *pushState) bool {
	c.rdBuf, c.rdState = p.buf, opPending
	if c.flags&cfReadable != 0 {
		c.d.markDirty(c)
		return true
	}
	return false
}

// pushResult takes the engine's answer to a push mode OpRead (d.mu held):
// data, the end or an error is queued for delivery after the Step.
func (c *Conn) pushResult(p *pushState, r *engine.Result) {
	switch {
	case c.flags&cfClosed != 0:
		c.rdBuf, c.rdState = nil, opIdle
		return
	case r.Err == engine.ErrWouldBlock:
		c.flags &^= cfReadable
		c.rdState = opPending
		return
	case r.Err == engine.ErrEOF:
		c.flags |= cfEOF
	}
	p.n, p.code = r.N, r.Err
	c.rdBuf, c.rdState = nil, opIdle
	c.d.pushed = append(c.d.pushed, c)
}

// deliver hands the reads of push mode finished in the last Step to their
// functions (stepping held, d.mu not held).
func (d *Driver) deliver() {
	for i, c := range d.pushed {
		d.pushed[i] = nil
		d.mu.Lock()
		p := c.pushState()
		if p == nil || c.flags&cfClosed != 0 {
			d.mu.Unlock()
			continue
		}
		n, code := p.n, p.code
		if code != engine.OK {
			p.ended = true
		}
		p.inF, p.resume = true, false
		d.mu.Unlock()
		var more bool
		switch code {
		case engine.OK:
			more = p.f(p.buf[:n], nil)
		case engine.ErrEOF:
			p.f(nil, io.EOF)
		default:
			p.f(nil, c.opError("read", codeErr(code)))
		}
		d.mu.Lock()
		p.inF = false
		if code == engine.OK && c.pushState() == p && c.flags&cfClosed == 0 && !d.closing {
			if more || p.resume {
				c.armPush(p)
			} else {
				p.paused = true
			}
		}
		c.wake() // an OnRead(nil, nil) waiting for f
		d.mu.Unlock()
	}
	d.pushed = d.pushed[:0]
}

// endPush ends push mode for the connections waiting for data when the
// driver closes (d.mu held): it returns the calls to make, which give their
// functions net.ErrClosed.
func (d *Driver) endPush() []func() {
	var calls []func()
	for _, c := range d.conns {
		if p := c.pushState(); p != nil && !p.ended && !p.paused && c.flags&cfClosed == 0 {
			p.ended = true
			err := c.opError("read", net.ErrClosed)
			calls = append(calls, func() { p.f(nil, err) })
		}
	}
	return calls
}

var errPushMode = errors.New("tcpeng/host: the connection is in push mode (OnRead): its data goes to the OnRead function")
