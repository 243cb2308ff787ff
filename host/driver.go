package host

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/internal/wqueue"
)

// Options tune a Driver. The zero value gives the defaults.
type Options struct {
	// BatchFrames is the most frames one Link.ReadBatch takes. Default 64, fewer
	// for large MTUs (or FrameBuffer) so that a batch's buffers stay near 256 KiB.
	BatchFrames int
	// FrameBuffer is the size of each buffer handed to Link.ReadBatch, if more
	// than the link's MTU: for a link that delivers frames longer than its MTU
	// (a TUN device with tun.Config.Whole: 65535).
	FrameBuffer int
	// Batches is how many read batches circulate between the link reader and the
	// goroutines that step the engine: while one batch is in a Step, the reader
	// fills the next. Default 2.
	Batches int
	// Nagle leaves Nagle's algorithm on for new connections. Go's net package
	// turns it off (TCP_NODELAY), and so does the Driver unless this is set.
	Nagle bool
	// NoSpin has blocked calls and the engine goroutine park at once instead
	// of spinning up to 50 µs first (see the package comment). Set it where
	// the traffic depends on other busy processes that need the same CPUs:
	// `tcpeng forward`, whose relayed connections end in the host's own
	// servers, connected 18% fewer times a second with the spinning, and
	// `tcpeng serve`, whose peer is the kernel on the same machine, moved 6
	// to 13% less.
	NoSpin bool
}

// Stats are a driver's counters.
type Stats struct {
	Steps      uint64 // calls to Step
	FramesIn   uint64 // frames read from the link and given to the engine
	FramesOut  uint64 // frames the engine produced, handed to Link.WriteBatch
	Commands   uint64 // commands given to the engine
	LinkErrors uint64 // errors of ReadBatch and WriteBatch, the link's close excepted
	// InlineSteps counts the rounds of Steps run by the goroutine that brought
	// the work (an application's call, or the link reader), not by the
	// driver's engine goroutine; InlineWrites the batches written to the link
	// by the goroutine that made them, not by the writer goroutine.
	InlineSteps  uint64
	InlineWrites uint64
}

// configer is implemented by *engine.Stack; the driver checks its MTU against
// the link's.
type configer interface{ Config() engine.Config }

// A Driver runs one engine on one link in real time; see the package comment.
// Its methods are safe for concurrent use.
type Driver struct {
	eng    engine.Engine
	link   Link
	opts   Options
	origin time.Time

	// mu guards everything below up to the stepper's state, and every Conn's and
	// Listener's fields that applications and the stepper share.
	mu       sync.Mutex
	closing  bool
	conns    map[engine.ConnID]*Conn
	lis      map[engine.ConnID]*Listener
	dirty    []*Conn     // connections with something for the engine (cfDirty)
	dirtyLis []*Listener // listeners with Accepts or a Close to pass on
	dials    []*Conn     // Dials not yet given to the engine
	listens  []*Listener // Listens not yet given to the engine
	options  []optReq    // SetOption commands waiting for their connection's ID
	inspects []*inspectReq
	waiters  []*waiter                    // free waiters, for connections whose calls block
	locals   atomic.Pointer[[]netip.Addr] // local addresses, interned (see localIndex); copied on write
	stats    Stats

	// want says the engine has work: commands, frames, a timer, Close. It is
	// set after the work is recorded and cleared by the stepper when a round
	// starts; stepping is the right to call the engine (see poke).
	want     atomic.Bool
	stepping atomic.Bool

	// The stepper's own state: only the goroutine holding stepping touches it.
	in       engine.Input
	outs     [2]engine.Output // Step n fills outs[n&1] (the engine's frames of Step n live until Step n+2)
	nsteps   uint64
	owners   []owner // owners[i] issued in.Commands[i]
	work     []*Conn // the dirty list being collected (swapped with dirty)
	workLis  []*Listener
	running  []*inspectReq
	held     *batch // the read batch taken for the next Step, or nil
	deadline engine.Time
	armed    engine.Time // what the timer is set for (Never: stopped, or fired)
	finished bool        // finish ran: the stepper keeps stepping forever
	inlineSt uint64

	w wqueue.Queue // frames on their way to the link

	timer     *time.Timer
	wake      chan struct{} // a token: work was left for the engine goroutine
	full      chan *batch   // read batches holding frames, from the reader
	empty     chan *batch   // read batches to fill, to the reader
	done      chan struct{} // closed when the driver starts closing
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// batch is one Link.ReadBatch worth of frame buffers.
type batch struct {
	bufs  [][]byte
	sizes []int
	n     int
}

// What a command was issued for, so that its Result finds its way back.
const (
	kDial uint8 = iota + 1
	kListen
	kAccept
	kRead
	kWrite
	kShutdown
	kClose
	kOption
)

type owner struct {
	c    *Conn
	l    *Listener
	kind uint8
}

type optReq struct {
	c     *Conn
	opt   engine.Option
	value int64
}

type inspectReq struct {
	f    func(engine.Engine)
	done chan struct{}
	err  error
}

// NewDriver starts a driver for e on link. The driver owns both from now on:
// only the driver calls e, and Close closes link. o may be nil.
//
// The engine's MTU must not exceed the link's (a frame larger than the link's
// MTU is dropped); NewDriver checks it when e is an *engine.Stack. The driver
// relies on engine.Output's promise that a Step's frames stay valid until the
// second Step after it starts (it writes one batch while the next Step runs).
func NewDriver(e engine.Engine, link Link, o *Options) (*Driver, error) {
	if e == nil || link == nil {
		return nil, errors.New("tcpeng/host: NewDriver needs an engine and a link")
	}
	var opts Options
	if o != nil {
		opts = *o
	}
	mtu := link.MTU()
	if mtu <= 0 {
		return nil, fmt.Errorf("tcpeng/host: the link's MTU is %d: a link must carry frames of at least 576 bytes", mtu)
	}
	if c, ok := e.(configer); ok && c.Config().MTU > mtu {
		return nil, fmt.Errorf("tcpeng/host: the engine's MTU %d exceeds the link's %d: set engine.Config.MTU to at most %d", c.Config().MTU, mtu, mtu)
	}
	bufSize := max(mtu, min(opts.FrameBuffer, 65535))
	if opts.BatchFrames <= 0 {
		opts.BatchFrames = min(64, max(4, (256<<10)/bufSize))
	}
	opts.BatchFrames = min(opts.BatchFrames, 1024)
	if opts.Batches <= 0 {
		opts.Batches = 2
	}
	opts.Batches = min(opts.Batches, 64)

	d := &Driver{
		eng:      e,
		link:     link,
		opts:     opts,
		origin:   time.Now(),
		conns:    map[engine.ConnID]*Conn{},
		lis:      map[engine.ConnID]*Listener{},
		deadline: engine.Never,
		armed:    engine.Never,
		timer:    time.NewTimer(time.Hour),
		wake:     make(chan struct{}, 1),
		full:     make(chan *batch, opts.Batches),
		empty:    make(chan *batch, opts.Batches),
		done:     make(chan struct{}),
	}
	d.timer.Stop()
	d.w.Init(link)
	for range opts.Batches {
		b := &batch{bufs: make([][]byte, opts.BatchFrames), sizes: make([]int, opts.BatchFrames)}
		slab := make([]byte, bufSize*opts.BatchFrames)
		for i := range b.bufs {
			b.bufs[i] = slab[i*bufSize : (i+1)*bufSize : (i+1)*bufSize]
		}
		d.empty <- b
	}
	d.wg.Add(3)
	go d.run()
	go d.readLoop()
	go func() { defer d.wg.Done(); d.w.Run() }()
	return d, nil
}

// Close stops the driver: the connections still open are reset (one last Step
// sends their RSTs; those closed but not yet passed on to the engine send
// their FIN), the frames already made are written, the link is closed, every
// blocked call returns net.ErrClosed, and the driver's goroutines have exited
// when Close returns. Closing twice returns net.ErrClosed.
func (d *Driver) Close() error {
	first := d.shutdown()
	d.wg.Wait()
	if !first {
		return net.ErrClosed
	}
	return nil
}

// shutdown starts closing; it reports whether this call did. Whoever steps
// next sees closing and runs finish.
func (d *Driver) shutdown() bool {
	first := false
	d.closeOnce.Do(func() {
		first = true
		d.mu.Lock()
		d.closing = true
		d.mu.Unlock()
		close(d.done)
		d.poke(roleEngine)
	})
	return first
}

// Stats returns the driver's counters.
func (d *Driver) Stats() Stats {
	d.mu.Lock()
	st := d.stats
	d.mu.Unlock()
	st.LinkErrors += d.w.Errors()
	st.InlineWrites = d.w.Inline()
	return st
}

// Inspect runs f between two Steps, with the engine to itself, and waits for
// it: the way to read an engine's state (for example (*engine.Stack).Stats)
// while a driver runs it. f must not call the Driver or block. It returns
// net.ErrClosed if the driver closed before f could run.
func (d *Driver) Inspect(f func(engine.Engine)) error {
	r := &inspectReq{f: f, done: make(chan struct{})}
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return net.ErrClosed
	}
	d.inspects = append(d.inspects, r)
	d.mu.Unlock()
	d.poke(roleApp)
	<-r.done
	return r.err
}

// now is the engine's clock: monotonic nanoseconds since the driver started.
func (d *Driver) now() engine.Time { return engine.Time(time.Since(d.origin)) }

// readLoop is the link reader. A batch that did not fill up (the link had no
// more to give: light traffic) is stepped at once on this goroutine, so an
// arriving frame reaches the engine, and the application waiting for it,
// without a goroutine handoff; a full batch (bulk traffic) goes to the engine
// goroutine, and the reader reads on while it steps.
func (d *Driver) readLoop() {
	defer d.wg.Done()
	for {
		var b *batch
		select {
		case b = <-d.empty:
		case <-d.done:
			return
		}
		n, err := d.link.ReadBatch(b.bufs, b.sizes)
		if n > 0 {
			b.n = n
			d.full <- b // never blocks: the channel holds every batch
			if n < len(b.bufs) {
				d.poke(roleReader)
			} else {
				d.want.Store(true)
				d.kick()
			}
		} else {
			d.empty <- b
		}
		if err == nil {
			continue
		}
		if errors.Is(err, net.ErrClosed) {
			// Closed under us (or by Close): the driver cannot go on without it.
			d.shutdown()
			return
		}
		d.mu.Lock()
		d.stats.LinkErrors++
		d.mu.Unlock()
		if n == 0 {
			// Do not spin on a link that keeps failing.
			select {
			case <-time.After(time.Millisecond):
			case <-d.done:
				return
			}
		}
	}
}

// issue appends a command and its owner.
func (d *Driver) issue(cmd engine.Command, o owner) {
	d.in.Commands = append(d.in.Commands, cmd)
	d.owners = append(d.owners, o)
}

// collect turns the applications' pending work into commands (d.mu held).
func (d *Driver) collect() {
	d.in.Commands = d.in.Commands[:0]
	d.owners = d.owners[:0]
	// Listeners first: a Listener.Close that returned before the engine ran
	// its OpClose must free the address for a Listen made after it, which
	// may come in this same batch (commands run in order).
	d.workLis, d.dirtyLis = d.dirtyLis, d.workLis[:0]
	for i, l := range d.workLis {
		l.dirty = false
		d.collectListener(l)
		d.workLis[i] = nil
	}
	for i, l := range d.listens {
		d.issue(engine.Command{Op: engine.OpListen, Addr: l.addr}, owner{l: l, kind: kListen})
		d.listens[i] = nil
	}
	d.listens = d.listens[:0]
	for i, c := range d.dials {
		d.dials[i] = nil
		if c.flags&cfClosed != 0 {
			c.flags &^= cfDialing
			c.wake()
			continue
		}
		d.issue(engine.Command{Op: engine.OpDial, Addr: c.remote}, owner{c: c, kind: kDial})
	}
	d.dials = d.dials[:0]
	if len(d.options) > 0 {
		kept := d.options[:0]
		for _, o := range d.options {
			switch {
			case o.c.flags&(cfClosed|cfReleased) != 0:
			case o.c.id == 0:
				kept = append(kept, o)
			default:
				d.issue(engine.Command{Op: engine.OpSetOption, Conn: o.c.id, Option: o.opt, Value: o.value}, owner{c: o.c, kind: kOption})
			}
		}
		clear(d.options[len(kept):])
		d.options = kept
	}
	d.work, d.dirty = d.dirty, d.work[:0]
	for i, c := range d.work {
		c.flags &^= cfDirty
		d.collectConn(c)
		d.work[i] = nil
	}
	d.running, d.inspects = d.inspects, d.running[:0]
}

// collectConn issues what connection c has pending.
func (d *Driver) collectConn(c *Conn) {
	if c.id == 0 || c.flags&cfReleased != 0 {
		return
	}
	if c.flags&cfClosed != 0 {
		op := engine.OpClose
		if c.flags&cfAbort != 0 {
			op = engine.OpAbort
		}
		d.issue(engine.Command{Op: op, Conn: c.id}, owner{c: c, kind: kClose})
		c.flags |= cfReleased
		delete(d.conns, c.id)
		return
	}
	if c.rdState == opPending && c.flags&cfReadable != 0 {
		c.rdState = opInStep
		d.issue(engine.Command{Op: engine.OpRead, Conn: c.id, Data: c.rdBuf}, owner{c: c, kind: kRead})
	}
	if c.wrState == opPending && c.flags&cfWritable != 0 {
		c.wrState = opInStep
		d.issue(engine.Command{Op: engine.OpWrite, Conn: c.id, Data: c.wrBuf}, owner{c: c, kind: kWrite})
	}
	if c.flags&(cfShutWr|cfShutSent) == cfShutWr {
		c.flags |= cfShutSent
		d.issue(engine.Command{Op: engine.OpShutdown, Conn: c.id}, owner{c: c, kind: kShutdown})
	}
}

// collectListener issues Accepts for the callers waiting, or the Close.
func (d *Driver) collectListener(l *Listener) {
	if l.id == 0 || l.released {
		return
	}
	if l.closed {
		d.issue(engine.Command{Op: engine.OpClose, Conn: l.id}, owner{l: l, kind: kClose})
		l.released = true
		delete(d.lis, l.id)
		return
	}
	for want := l.waiting - len(l.ready) - l.inflight; want > 0 && l.acceptable; want-- {
		l.inflight++
		d.issue(engine.Command{Op: engine.OpAccept, Conn: l.id}, owner{l: l, kind: kAccept})
	}
}

// markDirty queues c for the next collect (d.mu held). The caller pokes the
// engine after letting go of d.mu (the stepper, which calls it from dispatch,
// sees want at the end of its round).
func (d *Driver) markDirty(c *Conn) {
	if c.flags&cfDirty == 0 {
		c.flags |= cfDirty
		d.dirty = append(d.dirty, c)
		d.want.Store(true)
	}
}

func (d *Driver) markDirtyListener(l *Listener) {
	if !l.dirty {
		l.dirty = true
		d.dirtyLis = append(d.dirtyLis, l)
		d.want.Store(true)
	}
}

// dispatch hands results and events to the connections and listeners (d.mu held).
// Results come first: a Read that would block clears cfReadable, and an
// EventReadable of the same Step sets it again.
func (d *Driver) dispatch(out *engine.Output) {
	for i := range out.Results {
		r := &out.Results[i]
		o := d.owners[i]
		switch o.kind {
		case kListen:
			d.listenResult(o.l, r)
		case kDial:
			d.dialResult(o.c, r)
		case kAccept:
			d.acceptResult(o.l, r)
		case kRead:
			o.c.readResult(r)
		case kWrite:
			o.c.writeResult(r)
		}
	}
	for _, ev := range out.Events {
		if c := d.conns[ev.Conn]; c != nil {
			c.event(ev)
		} else if l := d.lis[ev.Conn]; l != nil && ev.Kind == engine.EventAcceptable {
			l.acceptable = true
			if l.waiting > len(l.ready)+l.inflight {
				d.markDirtyListener(l)
			}
		}
	}
}

func (d *Driver) listenResult(l *Listener, r *engine.Result) {
	defer l.cond.Broadcast()
	if r.Err != engine.OK {
		l.state, l.code = lsFailed, r.Err
		return
	}
	l.id, l.state, l.acceptable = r.Conn, lsOpen, true
	d.lis[l.id] = l
	if l.closed {
		d.markDirtyListener(l)
	}
}

func (d *Driver) dialResult(c *Conn, r *engine.Result) {
	if r.Err != engine.OK {
		c.code = r.Err
		c.flags &^= cfDialing
		c.wake()
		return
	}
	d.adopt(c, r)
	if c.flags&cfClosed != 0 {
		d.markDirty(c)
	}
}

func (d *Driver) acceptResult(l *Listener, r *engine.Result) {
	l.inflight--
	switch r.Err {
	case engine.OK:
	case engine.ErrWouldBlock:
		l.acceptable = false
		return
	default:
		return
	}
	c := d.newConn()
	d.adopt(c, r)
	if l.closed {
		c.flags |= cfClosed
		d.markDirty(c)
		return
	}
	l.ready = append(l.ready, c)
	l.cond.Signal() // one connection, one Accept
}

// adopt gives c its engine ID and addresses from the result of its dial or
// accept (d.mu held, engine goroutine).
func (d *Driver) adopt(c *Conn, r *engine.Result) {
	c.id = r.Conn
	d.conns[r.Conn] = c
	c.localIdx, c.localPort, c.remote = d.localIndex(r.Local.Addr()), r.Local.Port(), r.Remote
	if a := r.Local.Addr(); c.localIdx == noLocal && a.IsValid() {
		if c.ext == nil {
			c.ext = &connExt{}
		}
		c.ext.local = a
	}
	if !d.opts.Nagle {
		d.options = append(d.options, optReq{c: c, opt: engine.OptNoDelay, value: 1})
		d.want.Store(true)
	}
}

// localIndex interns a local address: connections keep its index, not the
// address (d.mu held). An engine has a few addresses; past 255 of them the
// connection's local address is unknown.
func (d *Driver) localIndex(a netip.Addr) uint8 {
	var locals []netip.Addr
	if p := d.locals.Load(); p != nil {
		locals = *p
	}
	for i, b := range locals {
		if a == b {
			return uint8(i)
		}
	}
	if len(locals) == maxInterned {
		return noLocal // the connection keeps its own copy (connExt.local)
	}
	grown := append(locals[:len(locals):len(locals)], a)
	d.locals.Store(&grown)
	return uint8(len(grown) - 1)
}

// maxInterned bounds the interned local addresses: an engine has a few of its
// own; in forward mode every destination is a local address, and those are kept
// by their connections instead of growing the table.
const maxInterned = 16

// local returns the address interned at index i.
func (d *Driver) local(i uint8) netip.Addr { return (*d.locals.Load())[i] }
