package engine

import (
	"net/netip"

	"github.com/tcpeng/tcpeng/engine/internal/prng"
	"github.com/tcpeng/tcpeng/engine/internal/siphash"
	"github.com/tcpeng/tcpeng/engine/tcp"
)

// Stack is a TCP/IP stack with no I/O of its own (IPv4 over raw IP frames: the
// TUN mode).
//
// # Contract
//
// A Stack is driven from one goroutine. Its methods fall in three groups, in
// the style of quinn-proto:
//
//   - Handle* feed it inputs: HandleFrame for each frame that arrived,
//     HandleTimeout when the deadline passed. Both take the current time.
//   - Application commands act on connections: Listen, Dial, Accept, Write,
//     Read, Shutdown, Close, Abort, SetOption.
//   - Poll* take its outputs: PollFrame for frames to send, PollEvent for
//     events, PollDeadline for when HandleTimeout must next be called.
//
// After any Handle* call or command, call PollFrame until it returns 0 and
// PollEvent until it returns false, then wait until PollDeadline or the next
// input, whichever comes first. Times passed in must not go backwards (an
// earlier time is taken as the latest one seen). Step does all of this in one
// call and is how hosts across a boundary (WebAssembly) drive the stack.
//
// A Stack never reads a clock, never allocates per segment in steady state, and
// for the same Config and the same sequence of calls produces byte-identical
// frames.
type Stack struct {
	cfg    Config
	tcpCfg tcp.Config
	now    Time
	rng    prng.Rand
	key    siphash.Key
	ipID   uint16

	nextEphemeral uint32 // RFC 6056 §3.3.3's next_ephemeral

	slots []slot
	free  []uint32 // free slot indices
	live  int      // slots in use

	conns     connTable
	listeners map[netip.AddrPort]uint32
	heap      timerHeap
	dirty     queue // slots that may have output
	evq       queue // slots with pending events
	trace     []Event
	traceHead int
	traceLen  int
	ctl       []control // replies outside any connection (resets)
	ctlHead   int
	ctlLen    int

	stats   Stats
	counter tcp.Counters

	arenas [2][]byte // Step's output frames, in two buffers used in turn
	turn   int       // the arena of the next Step
}

type slotKind uint8

const (
	slotFree slotKind = iota
	slotConn
	slotListener
)

// slot is one entry of the connection table: a connection or a listener.
type slot struct {
	conn     *tcp.Conn
	lis      *listener
	tuple    tuple
	deadline Time
	heapIdx  int32
	parent   uint32 // for a passive connection not yet accepted: its listener's index + 1
	gen      uint16
	kind     slotKind
	pending  uint8 // tcp.Ev* bits not yet polled (for a listener: evAcceptable)
	flags    uint8
}

const (
	sfDirty    uint8 = 1 << iota // in the dirty queue
	sfEvents                     // in the event queue
	sfInTable                    // in the 4-tuple table
	sfQueued                     // in its listener's accept queue
	sfReleased                   // the application released the ID
)

const evAcceptable uint8 = 1 << 7 // a listener's pending bit

// listener is a passive open (RFC 9293 §3.10.1 OPEN, passive).
type listener struct {
	addr    netip.AddrPort
	backlog int
	held    int      // connections held: half-open, and established not yet accepted
	ready   []uint32 // slot indices ready for Accept, oldest first
}

// control is a reset to send outside any connection (RFC 9293 §3.10.7.1).
type control struct {
	src, dst netip.AddrPort
	seq, ack tcp.Seq
	flags    uint8
}

const maxControl = 256

// New returns a stack configured by cfg.
func New(cfg Config) (*Stack, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Stack{
		cfg:       cfg,
		rng:       prng.New(cfg.Seed),
		key:       siphash.KeyFrom(cfg.Key),
		listeners: map[netip.AddrPort]uint32{},
		trace:     make([]Event, 0),
		ctl:       make([]control, maxControl),
	}
	s.conns.key = s.key
	s.ipID = uint16(s.rng.Uint64())
	s.nextEphemeral = uint32(s.rng.Uint64())
	s.tcpCfg = tcp.Config{
		MSL: cfg.MSL, InitialRTO: cfg.InitialRTO, MinRTO: cfg.MinRTO, MaxRTO: cfg.MaxRTO,
		DelayedAck: max(cfg.DelayedAck, 0), KeepaliveIdle: cfg.KeepaliveIdle,
		KeepaliveInterval: cfg.KeepaliveInterval, KeepaliveCount: cfg.KeepaliveCount,
		MaxRetries: cfg.MaxRetries, SynRetries: cfg.SynRetries, FinWait2Timeout: cfg.FinWait2Timeout,
		SendBuffer: cfg.SendBuffer, RecvBuffer: cfg.RecvBuffer, WindowScale: !cfg.NoWindowScale, SACK: !cfg.NoSACK, Timestamps: !cfg.NoTimestamps,
		NoSum: cfg.PartialChecksums, TSO: cfg.SegmentOffload,
		MaxOutOfOrder: cfg.MaxOutOfOrder, InvalidAckInterval: cfg.InvalidAckInterval, Pool: tcp.NewPool(cfg.MaxFreeChunks),
		Hooks: (*hooks)(s), Counters: &s.counter,
	}
	if cfg.TraceStates {
		s.trace = make([]Event, maxTrace)
	}
	return s, nil
}

const maxTrace = 4096

// Config returns the configuration in effect, defaults filled in.
func (s *Stack) Config() Config { return s.cfg }

func (s *Stack) setNow(now Time) {
	if now > s.now {
		s.now = now
	}
	s.tcpCfg.SetNow(s.now)
}

// isLocal reports whether a is one of the stack's addresses.
func (s *Stack) isLocal(a netip.Addr) bool {
	for _, b := range s.cfg.Addrs {
		if a == b {
			return true
		}
	}
	return false
}

// allocSlot takes a free slot, or reports ErrLimit.
func (s *Stack) allocSlot(kind slotKind) (uint32, Error) {
	if s.live >= s.cfg.MaxConns {
		return 0, ErrLimit
	}
	var idx uint32
	if n := len(s.free); n > 0 {
		idx = s.free[n-1]
		s.free = s.free[:n-1]
	} else {
		idx = uint32(len(s.slots))
		s.slots = append(s.slots, slot{})
	}
	sl := &s.slots[idx]
	gen := sl.gen
	*sl = slot{gen: gen, kind: kind, heapIdx: -1, deadline: Never}
	if sl.gen == 0 {
		sl.gen = 1
	}
	s.live++
	return idx, OK
}

// freeSlot returns a slot to the free list; its next user gets a new generation.
func (s *Stack) freeSlot(idx uint32) {
	sl := &s.slots[idx]
	s.setDeadline(idx, Never)
	if sl.flags&sfInTable != 0 {
		s.conns.remove(&sl.tuple, idx)
	}
	if sl.conn != nil {
		sl.conn.Free()
	}
	gen := sl.gen + 1
	if gen > connGenMask {
		gen = 1
	}
	*sl = slot{gen: gen, heapIdx: -1, deadline: Never}
	s.free = append(s.free, idx)
	s.live--
}

func (s *Stack) tupleAt(idx uint32) *tuple { return &s.slots[idx].tuple }

// lookup resolves id to its slot index.
func (s *Stack) lookup(id ConnID, kind slotKind) (uint32, Error) {
	idx := id.index()
	if id == 0 || int(idx) >= len(s.slots) {
		return 0, ErrNoConn
	}
	sl := &s.slots[idx]
	if sl.gen != id.gen() || sl.kind == slotFree || sl.flags&sfReleased != 0 {
		return 0, ErrNoConn
	}
	if kind != slotFree && sl.kind != kind {
		if kind == slotListener {
			return 0, ErrNotListening
		}
		return 0, ErrNotConnected
	}
	return idx, OK
}

func (s *Stack) id(idx uint32) ConnID { return makeConnID(idx, s.slots[idx].gen) }

// touch brings the stack's bookkeeping up to date after a connection was called:
// events, output, deadline, and cleanup of a closed connection.
func (s *Stack) touch(idx uint32) { s.update(idx, true) }

// update is touch; requeue false leaves the slot out of the output queue (its
// Output just returned nothing).
func (s *Stack) update(idx uint32, requeue bool) {
	sl := &s.slots[idx]
	c := sl.conn
	if ev := c.TakeEvents(); ev != 0 {
		s.raise(idx, ev)
	}
	if requeue && sl.flags&sfDirty == 0 && c.HasOutput() {
		sl.flags |= sfDirty
		s.dirty.push(idx)
	}
	s.setDeadline(idx, c.Deadline())
	if c.State() == tcp.Closed {
		s.closed(idx)
	}
}

// raise records events for slot idx.
func (s *Stack) raise(idx uint32, ev uint8) {
	sl := &s.slots[idx]
	if sl.flags&sfReleased != 0 {
		// Only its end matters to an application that closed the connection,
		// whatever ended it: a completed close, a reset, a timeout.
		if ev&(tcp.EvReset|tcp.EvError) != 0 {
			ev |= tcp.EvClosed
		}
		ev &= tcp.EvClosed
		if ev == 0 {
			return
		}
	}
	sl.pending |= ev
	if sl.flags&sfEvents == 0 {
		sl.flags |= sfEvents
		s.evq.push(idx)
	}
}

// closed handles a connection that reached CLOSED: it leaves the 4-tuple table
// at once, and its slot is freed once nobody can use it.
func (s *Stack) closed(idx uint32) {
	sl := &s.slots[idx]
	if sl.flags&sfInTable != 0 {
		s.conns.remove(&sl.tuple, idx)
		sl.flags &^= sfInTable
	}
	if sl.parent != 0 && sl.flags&sfQueued == 0 {
		// Half-open and never handed out: the listener forgets it.
		if l := s.slots[sl.parent-1].lis; l != nil {
			l.held--
		}
		sl.parent = 0
		sl.flags |= sfReleased
	}
	s.maybeFree(idx)
}

// maybeFree frees a released, closed slot once its output and events are drained.
func (s *Stack) maybeFree(idx uint32) {
	sl := &s.slots[idx]
	if sl.kind != slotConn || sl.flags&sfReleased == 0 || sl.flags&(sfDirty|sfEvents|sfQueued) != 0 {
		return
	}
	if sl.conn.State() != tcp.Closed {
		return
	}
	s.freeSlot(idx)
}

// hooks receives state changes from connections.
type hooks Stack

func (h *hooks) StateChange(c *tcp.Conn, from, to tcp.State) {
	s := (*Stack)(h)
	id := ConnID(c.ID)
	if s.cfg.TraceStates {
		s.pushTrace(Event{Kind: EventState, Conn: id, From: from, To: to})
	}
	if to != tcp.Established || id == 0 {
		return
	}
	idx := id.index()
	sl := &s.slots[idx]
	if sl.parent == 0 || sl.flags&sfQueued != 0 {
		return
	}
	// A passive connection completed its handshake: it waits for Accept.
	lidx := sl.parent - 1
	l := s.slots[lidx].lis
	sl.flags |= sfQueued
	l.ready = append(l.ready, idx)
	s.raiseListener(lidx)
}

func (s *Stack) raiseListener(lidx uint32) {
	sl := &s.slots[lidx]
	sl.pending |= evAcceptable
	if sl.flags&sfEvents == 0 {
		sl.flags |= sfEvents
		s.evq.push(lidx)
	}
}

func (s *Stack) pushTrace(ev Event) {
	if s.traceLen == len(s.trace) {
		s.stats.TraceDropped++
		return
	}
	s.trace[(s.traceHead+s.traceLen)%len(s.trace)] = ev
	s.traceLen++
}

// Stats returns the stack's counters.
func (s *Stack) Stats() Stats {
	st := s.stats
	st.TCP = s.counter
	st.Conns = s.live
	st.PoolAllocated = s.tcpCfg.Pool.Allocated
	st.PoolFree = s.tcpCfg.Pool.Free()
	return st
}

// Stats are a stack's counters. They only grow, except Conns.
type Stats struct {
	FramesIn, FramesOut uint64
	DropMalformed       uint64 // frames that failed a validation gate
	DropChecksum        uint64 // IP headers or TCP segments with a bad checksum
	DropNotForUs        uint64 // packets to another address
	DropFragment        uint64 // IP fragments (reassembly is not supported yet)
	DropProtocol        uint64 // packets of a protocol the stack does not serve
	DropMartian         uint64 // packets from a multicast, broadcast or unspecified address, or port 0
	DropBacklog         uint64 // SYNs to a listener whose backlog is full
	DropConnLimit       uint64 // SYNs refused because the connection table is full
	DropControl         uint64 // resets not sent because the control queue was full
	ResetsSent          uint64 // resets to segments that matched no connection
	TraceDropped        uint64 // state events lost because the trace queue was full
	Conns               int    // connections and listeners in the table
	PoolAllocated       uint64 // buffer chunks taken from the Go heap
	PoolFree            int    // buffer chunks (16 KiB each) kept for reuse, at most Config.MaxFreeChunks
	TCP                 tcp.Counters
}

// Info returns a snapshot of a connection's variables.
func (s *Stack) Info(id ConnID) (tcp.Info, Error) {
	idx, err := s.lookup(id, slotConn)
	if err != OK {
		return tcp.Info{}, err
	}
	return s.slots[idx].conn.Info(), OK
}

// Addrs returns a connection's local and remote addresses, or a listener's
// local address.
func (s *Stack) Addrs(id ConnID) (local, remote netip.AddrPort, err Error) {
	idx, err := s.lookup(id, slotFree)
	if err != OK {
		return
	}
	sl := &s.slots[idx]
	if sl.kind == slotListener {
		return sl.lis.addr, netip.AddrPort{}, OK
	}
	return sl.tuple.local, sl.tuple.remote, OK
}
