package forward

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/internal/spin"
	"github.com/tcpeng/tcpeng/host/internal/wqueue"
)

const (
	// chunk is the most one command moves: an engine read for the host, or
	// a peek of the host's socket for the engine. A bulk transfer moves a
	// chunk per turn of the loop, so it must be well above a turn's worth of
	// frames: with 64 KiB, tunbench's forward moved 14 to 38% less.
	chunk = 256 << 10
	// arenaSize is the scratch memory of one Step's reads and peeks. A relay
	// that finds it used up waits for the next Step.
	arenaSize = 8 * chunk
	// acceptBurst bounds the accepts (engine or port forward) of one turn.
	acceptBurst = 64
	// maxSpare bounds the idle buffers kept for data the host's sockets did
	// not take.
	maxSpare = 16
	// maxStepsAtClose bounds the Steps that drain the engine's resets when
	// the Forwarder closes.
	maxStepsAtClose = 64
)

// loop is the Forwarder's event loop; only its goroutine touches it.
type loop struct {
	f     *Forwarder
	eng   engine.Engine
	link  Link
	ep    int // epoll
	wake  int // eventfd of Forwarder.signal
	tunFd int
	start time.Time

	in, out  engine.Input     // in: the Step's; out.Commands: the next Step's commands, being built
	res      *engine.Output   // the last Step's: one of outs
	outs     [2]engine.Output // the engine's two output buffers' frames, in turn (engine.Output)
	nsteps   int
	w        wqueue.Queue  // frames on their way to the link
	writer   chan struct{} // closed when the writer goroutine returns
	ctx, nxt []*relay      // the relay of each command of in.Commands / out.Commands (nil: none)
	bufs     [][]byte
	sizes    []int
	tunReady bool        // the link may have frames
	deadline engine.Time // the engine's, from the last Step

	listener  engine.ConnID
	accepting bool // the listener reported connections to accept

	conns    map[engine.ConnID]*relay // relays with an engine connection
	held     int                      // relays, dialing or open (MaxConns)
	byFd     []*relay                 // host sockets' relays, by descriptor
	ports    map[int]netip.AddrPort   // port forward listener → the namespace's address
	ready    []*relay                 // relays to pump before the next Step
	work     []*relay                 // the ready list being pumped
	dials    []*relay                 // dials[dialHead:]: relays dialing, oldest first, so their deadlines are in order
	dialHead int
	arena    []byte
	used     int
	spare    [][]byte // buffers for relay.pend

	events  [128]unix.EpollEvent
	spin    spin.Spinner
	polled  int  // events of the last epoll_wait, for the spin's closure
	carried bool // payload crossed the relay since the last wait: an answer may follow (Config.Spin)
	stopped bool // Close, or the link failed
	broken  bool // the link failed: nothing more is written to it
}

// phase is where a relay is in its life.
type phase uint8

const (
	phaseDial   phase = iota // the host's socket is connecting (a connection from the namespace)
	phaseDialNS              // the engine is dialing the namespace (a port forward)
	phaseOpen                // relaying
)

// relay is one relayed connection: the engine's connection id and the host's
// socket fd. Data from the engine goes out through the socket (out), data
// from the socket goes into the engine (in).
type relay struct {
	id    engine.ConnID
	fd    int
	phase phase
	gone  bool // removed; commands under way for it find this

	engIn, engOut   bool // the engine may have data to read / room to write
	hostIn, hostOut bool // the socket may have data / room (edge-triggered)
	engEnd          bool // the engine reported the namespace's FIN: reads go on until they show it
	hostEnd         bool // epoll saw the socket's end (FIN, reset or error): reads go on until they show it
	inDone, outDone bool // the FIN went from the socket to the engine / from the engine to the socket
	queued          bool // on l.ready

	pend []byte // engine data the socket has not taken yet (in buf)
	buf  []byte

	deadline  engine.Time    // while dialing
	src, dst  netip.AddrPort // for the log: who connected, and to what
	target    netip.AddrPort // the host address dialed (phaseDial)
	nIn, nOut uint64
}

// newLoop sets up the loop's descriptors and has the engine listen on the
// wildcard address.
func newLoop(f *Forwarder, e engine.Engine, link Link) (*loop, error) {
	size := max(link.MTU(), min(f.cfg.FrameBuffer, 65535))
	n := min(max((1<<20)/size, 8), 64)
	l := &loop{
		f: f, eng: e, link: link, tunFd: link.Fd(), start: time.Now(),
		bufs: make([][]byte, n), sizes: make([]int, n),
		conns: map[engine.ConnID]*relay{}, ports: map[int]netip.AddrPort{},
		arena: make([]byte, arenaSize), ep: -1, wake: -1, writer: make(chan struct{}),
	}
	l.res = &l.outs[0]
	l.w.Init(link)
	for i := range l.bufs {
		l.bufs[i] = make([]byte, size)
	}
	var err error
	if l.ep, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("forward: epoll: %w", err)
	}
	if l.wake, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		l.wake = -1
		unix.Close(l.ep)
		return nil, fmt.Errorf("forward: eventfd: %w", err)
	}
	if err = l.watch(l.tunFd, unix.EPOLLIN); err == nil {
		err = l.watch(l.wake, unix.EPOLLIN)
	}
	if err != nil {
		l.closeFds()
		return nil, fmt.Errorf("forward: epoll: %w", err)
	}
	l.command(engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(netip.IPv4Unspecified(), 0)}, nil)
	l.step()
	if r := l.res.Results[0]; r.Err != engine.OK {
		l.closeFds()
		if errors.Is(r.Err, engine.ErrInvalid) {
			return nil, fmt.Errorf("forward: the engine refused the wildcard listener: run it with engine.Config.Forward (%v)", r.Err)
		}
		return nil, fmt.Errorf("forward: listen on the wildcard address: %w", r.Err)
	}
	l.listener = l.res.Results[0].Conn
	return l, nil
}

func (l *loop) closeFds() {
	unix.Close(l.ep)
	unix.Close(l.wake)
}

// watch adds fd to the epoll set with events; its data is fd.
func (l *loop) watch(fd int, events uint32) error {
	return unix.EpollCtl(l.ep, unix.EPOLL_CTL_ADD, fd, &unix.EpollEvent{Events: events, Fd: int32(fd)})
}

func (l *loop) now() engine.Time { return engine.Time(time.Since(l.start)) }

// command queues c for the next Step, for relay r (nil: no relay's).
func (l *loop) command(c engine.Command, r *relay) {
	l.out.Commands = append(l.out.Commands, c)
	l.nxt = append(l.nxt, r)
}

// step runs the engine once: the frames read, the commands queued. Its
// results and events are in l.res. Its frames go to the link: a few at once,
// from this goroutine; a larger batch (bulk data) from the writer goroutine,
// while this one goes on with the host's sockets and the next Step (the
// engine's output stays valid until the Step after next; wqueue).
func (l *loop) step() {
	l.in.Commands, l.out.Commands = l.out.Commands, l.in.Commands[:0]
	l.ctx, l.nxt = l.nxt, l.ctx[:0]
	p := l.nsteps & 1
	if err := l.w.WaitFree(p); err != nil {
		l.fail(err)
	}
	l.res = &l.outs[p]
	l.in.Now = l.now()
	l.eng.Step(&l.in, l.res)
	l.nsteps++
	l.in.Frames = l.in.Frames[:0]
	l.deadline = l.res.Deadline
	if len(l.res.Frames) > 0 && !l.broken {
		l.w.Put(p, l.res.Frames)
	}
}

// fail stops the loop after the link failed.
func (l *loop) fail(err error) {
	if !l.broken {
		l.f.logf("forward: the link failed: %v; every relayed connection is reset", err)
		l.stopped, l.broken = true, true
	}
}

// run is the loop: wait, read the link, pump the relays, Step, act on the
// results and events; until Close or a failed link.
func (l *loop) run() {
	defer close(l.f.done)
	go func() {
		l.w.Run()
		close(l.writer)
	}()
	busy := false
	for !l.stopped {
		l.poll(busy)
		if l.stopped {
			break
		}
		now := l.now()
		l.expireDials(now)
		l.used = 0
		l.work, l.ready = l.ready, l.work[:0]
		for _, r := range l.work {
			l.pump(r)
		}
		if l.accepting {
			for range acceptBurst {
				l.command(engine.Command{Op: engine.OpAccept, Conn: l.listener}, nil)
			}
		}
		if l.tunReady {
			n, err := l.link.TryReadBatch(l.bufs, l.sizes)
			if err != nil {
				l.fail(err)
				break
			}
			l.tunReady = n == len(l.bufs) // a full batch: more may wait (a super-packet being cut)
			for i := range n {
				l.in.Frames = append(l.in.Frames, l.bufs[i][:l.sizes[i]])
			}
		}
		if len(l.in.Frames) == 0 && len(l.out.Commands) == 0 && l.deadline > now {
			busy = false
			continue
		}
		l.step()
		l.results()
		l.engineEvents()
		busy = len(l.ready) > 0 || len(l.out.Commands) > 0 || l.tunReady || l.accepting || l.deadline <= l.now()
	}
	l.shutdown()
}

// poll waits for the descriptors (not at all if busy) and takes their events.
func (l *loop) poll(busy bool) {
	timeout := 0
	if !busy {
		timeout = l.timeout()
	}
	n := l.epollWait(timeout)
	for _, ev := range l.events[:n] {
		fd := int(ev.Fd)
		switch {
		case fd == l.tunFd:
			l.tunReady = true
		case fd == l.wake:
			l.control()
		case fd < len(l.byFd) && l.byFd[fd] != nil:
			l.hostEvent(l.byFd[fd], ev.Events)
		default:
			if dst, ok := l.ports[fd]; ok {
				l.acceptHost(fd, dst)
			}
		}
	}
}

// epollWait waits up to timeout milliseconds (-1: no limit). With
// Config.Spin a wait that would sleep, after payload crossed the relay,
// first polls for up to spin.Window.
func (l *loop) epollWait(timeout int) int {
	if timeout == 0 {
		return l.epollOnce(0)
	}
	carried := l.carried
	l.carried = false
	if !l.f.cfg.Spin {
		return l.epollOnce(timeout)
	}
	start := time.Now()
	spun := false
	// Only after payload crossed the relay: a request passed on is what an
	// answer follows within microseconds. Handshakes and closes, spun
	// after, made connect+close slower (0.82x): a loop awake on one CPU
	// keeps the client it wakes off that CPU.
	//
	// Not while the writer goroutine writes a batch: a bulk transfer's ACKs
	// come as the kernel takes it, and the writer needs the CPU.
	if carried && l.spin.Spins() && !l.w.Busy() {
		l.f.spins.Add(1)
		spun = spin.UntilYield(func() bool {
			l.polled = l.epollOnce(0)
			return l.polled > 0
		}, schedYield)
	}
	if !spun {
		l.polled = l.epollOnce(timeout)
	}
	l.spin.Record(time.Since(start))
	return l.polled
}

// schedYield yields the CPU to the kernel's scheduler (sched_yield), not
// only to this process's goroutines as runtime.Gosched does: the namespace's
// clients and the host's servers, which the loop waits for, may need this
// CPU, and a spin that kept it from them made connections slower.
func schedYield() { unix.RawSyscall(unix.SYS_SCHED_YIELD, 0, 0, 0) }

func (l *loop) epollOnce(timeout int) int {
	for {
		n, err := unix.EpollWait(l.ep, l.events[:], timeout)
		if err == unix.EINTR {
			if timeout == 0 {
				return 0
			}
			continue
		}
		if err != nil {
			l.fail(fmt.Errorf("epoll_wait: %w", err))
			return 0
		}
		return n
	}
}

// timeout is how long poll may sleep, in milliseconds rounded up: until the
// engine's deadline or the oldest dial's, whichever comes first.
func (l *loop) timeout() int {
	next := l.deadline
	if l.dialHead < len(l.dials) && l.dials[l.dialHead].deadline < next {
		next = l.dials[l.dialHead].deadline
	}
	if next == engine.Never {
		return -1
	}
	d := next.Sub(l.now())
	if d <= 0 {
		return 0
	}
	return int((d + engine.Millisecond - 1) / engine.Millisecond)
}

// control takes the requests of other goroutines: port forwards to add, and
// Close.
func (l *loop) control() {
	var b [8]byte
	unix.Read(l.wake, b[:])
	f := l.f
	f.mu.Lock()
	ports, closing := f.ports, f.closing
	f.ports = nil
	f.mu.Unlock()
	for _, p := range ports {
		if err := l.watch(p.fd, unix.EPOLLIN|unix.EPOLLET); err != nil {
			f.logf("forward: port forward to port %d: epoll: %v", p.guest, err)
			unix.Close(p.fd)
			continue
		}
		l.ports[p.fd] = netip.AddrPortFrom(f.cfg.Guest, p.guest)
	}
	if closing {
		l.stopped = true
	}
}

// shutdown resets every relay on both sides, closes the listeners, lets the
// engine send its resets, and closes the link.
func (l *loop) shutdown() {
	for _, r := range l.conns {
		l.abort(r)
	}
	for _, r := range l.dials[l.dialHead:] {
		if !r.gone {
			l.abort(r)
		}
	}
	for fd := range l.ports {
		unix.Close(fd)
	}
	clear(l.ports)
	l.command(engine.Command{Op: engine.OpClose, Conn: l.listener}, nil)
	for i := 0; i < maxStepsAtClose && !l.broken; i++ {
		l.step()
		if l.deadline > l.in.Now {
			break
		}
	}
	l.w.Close() // writes what is queued
	<-l.writer
	l.link.Close()
	unix.Close(l.ep)
	l.f.active.Store(0)
}

// abort resets r on both sides and forgets it.
func (l *loop) abort(r *relay) {
	if r.id.IsValid() {
		l.command(engine.Command{Op: engine.OpAbort, Conn: r.id}, nil)
	}
	resetSocket(r.fd)
	l.remove(r)
}

// expireDials gives up the dials older than DialTimeout.
// The queue is compacted once half of it is taken, so its array is reused
// rather than reallocated as dials come and go.
func (l *loop) expireDials(now engine.Time) {
	for ; l.dialHead < len(l.dials); l.dialHead++ {
		r := l.dials[l.dialHead]
		if !r.gone && r.phase != phaseOpen {
			if r.deadline > now {
				break
			}
			l.refuse(r, fmt.Sprintf("no answer within %v", l.f.cfg.DialTimeout))
		}
		l.dials[l.dialHead] = nil
	}
	if l.dialHead > 0 && 2*l.dialHead >= len(l.dials) {
		n := copy(l.dials, l.dials[l.dialHead:])
		clear(l.dials[n:])
		l.dials, l.dialHead = l.dials[:n], 0
	}
}

// results acts on the results of the Step's commands.
func (l *loop) results() {
	for i, res := range l.res.Results {
		c, r := &l.in.Commands[i], l.ctx[i]
		switch c.Op {
		case engine.OpAccept:
			l.accepted(res)
		case engine.OpDial:
			l.dialedNS(r, res)
		case engine.OpRead:
			l.readDone(r, c.Data, res)
		case engine.OpWrite:
			l.writeDone(r, c.Data, res)
		case engine.OpShutdown:
			l.shutDone(r, res)
		case engine.OpListen:
			if res.Err != engine.OK {
				l.fail(fmt.Errorf("the engine lost its wildcard listener and refused a new one: %v", res.Err))
			} else {
				l.listener = res.Conn
			}
		}
	}
	clear(l.ctx)
	clear(l.in.Commands) // the buffers' references

}

// engineEvents acts on the Step's events.
func (l *loop) engineEvents() {
	for _, ev := range l.res.Events {
		if ev.Kind == engine.EventFault {
			if ev.Err == engine.ErrAborted {
				l.relisten() // the engine restarted (WebAssembly trap): it lost its listener
			}
			continue
		}
		if ev.Conn == l.listener {
			switch ev.Kind {
			case engine.EventAcceptable:
				l.accepting = true
			case engine.EventError, engine.EventReset, engine.EventClosed:
				l.relisten()
			}
			continue
		}
		r := l.conns[ev.Conn]
		if r == nil {
			continue
		}
		switch ev.Kind {
		case engine.EventConnected:
			if r.phase == phaseDialNS {
				l.open(r)
			}
		case engine.EventReadable, engine.EventPeerClosed:
			r.engIn = true
			r.engEnd = r.engEnd || ev.Kind == engine.EventPeerClosed
			l.queue(r)
		case engine.EventWritable:
			r.engOut = true
			l.queue(r)
		case engine.EventReset, engine.EventError:
			l.engineFailed(r, ev.Err)
		case engine.EventClosed:
			if ev.Err != engine.OK {
				l.engineFailed(r, ev.Err)
			} else {
				r.engIn, r.engEnd = true, true // what is left to read, and the end
				l.queue(r)
			}
		}
	}
}

// relisten asks the engine for the wildcard listener again.
func (l *loop) relisten() {
	l.listener = 0
	l.accepting = false
	l.command(engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(netip.IPv4Unspecified(), 0)}, nil)
}

// queue puts r on the list of relays to pump before the next Step.
func (l *loop) queue(r *relay) {
	if !r.queued && !r.gone {
		r.queued = true
		l.ready = append(l.ready, r)
	}
}

// take returns n bytes of the Step's scratch memory, or nil if it is used up.
func (l *loop) take(n int) []byte {
	if l.used+n > len(l.arena) {
		return nil
	}
	b := l.arena[l.used : l.used+n : l.used+n]
	l.used += n
	return b
}
