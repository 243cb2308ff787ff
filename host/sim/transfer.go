package sim

import (
	"crypto/sha256"
	"fmt"
	"hash"
	"net/netip"

	"github.com/tcpeng/tcpeng/engine"
)

// Transfer is one end of a bulk transfer with a half-close, the integrity
// suite's workload: it writes Data, shuts its send side down once the engine
// has taken all of it (RFC 9293 §3.6: the FIN follows the data), keeps reading
// until the peer's FIN (ErrEOF), hashing every byte with SHA-256, then closes,
// and waits for the connection to reach CLOSED.
//
// It uses the engine's edge-triggered events as every host must: it reads
// after EventReadable or EventPeerClosed until ErrWouldBlock, and after a short
// write waits for EventWritable.
type Transfer struct {
	// Exactly one of Dial (the peer to connect to) and Listen (the address to
	// listen on; the first connection accepted is the transfer's) is set.
	Dial, Listen netip.AddrPort
	// Data is sent, then the send side is shut down.
	Data []byte
	// WriteSize and ReadSize are the bytes per OpWrite and OpRead (default 64 KiB).
	WriteSize, ReadSize int

	// What happened, filled in as the run goes.
	Listener    engine.ConnID
	Conn        engine.ConnID
	Written     int            // bytes of Data the engine took
	Received    int64          // bytes read
	Sum         [32]byte       // SHA-256 of the bytes read, set at EOF
	EOF         bool           // Read returned ErrEOF
	ShutDown    bool           // the Shutdown succeeded
	CloseSent   bool           // Close was issued
	Closed      bool           // EventClosed arrived
	StateClosed bool           // EventState to CLOSED arrived
	States      []engine.State // every state the connection entered, in order
	StateAt     []engine.Time  // when it entered each of States
	Err         engine.Error   // the first failure: a command's error, EventReset, EventError
	ErrWhat     string         // what reported Err
	EOFAt       engine.Time    // when Read returned ErrEOF
	ClosedAt    engine.Time    // when EventClosed arrived
	Extra       int            // connections accepted past the first (closed at once)

	h                  hash.Hash
	rbuf               []byte
	writing, blocked   bool
	reading, shutIssue bool
}

// Done reports whether the transfer finished: closed (EventClosed and the state
// CLOSED), or failed.
func (t *Transfer) Done() bool { return t.Err != engine.OK || t.Closed && t.StateClosed }

func (t *Transfer) chunk() []byte {
	n := t.WriteSize
	if n <= 0 {
		n = 64 << 10
	}
	return t.Data[t.Written:min(len(t.Data), t.Written+n)]
}

func (t *Transfer) fail(h *Host, err engine.Error, what string) {
	if t.Err == engine.OK {
		t.Err, t.ErrWhat = err, fmt.Sprintf("%s at t=%v", what, engine.Duration(h.Now()))
	}
}

func (t *Transfer) do(h *Host, c engine.Command) {
	if err := h.Do(c); err != nil {
		h.Fail(err)
	}
}

// open starts the transfer on connection id.
func (t *Transfer) open(h *Host, id engine.ConnID) {
	t.Conn = id
	n := t.ReadSize
	if n <= 0 {
		n = 64 << 10
	}
	t.rbuf = make([]byte, n)
	t.h = sha256.New()
	t.write(h)
}

// write issues the next write, or the Shutdown once all of Data is taken.
func (t *Transfer) write(h *Host) {
	if t.writing || t.blocked || t.shutIssue || t.Err != engine.OK {
		return
	}
	if t.Written < len(t.Data) {
		t.do(h, engine.Command{Op: engine.OpWrite, Conn: t.Conn, Data: t.chunk()})
		t.writing = true
		return
	}
	t.do(h, engine.Command{Op: engine.OpShutdown, Conn: t.Conn})
	t.shutIssue = true
}

func (t *Transfer) read(h *Host) {
	if t.reading || t.EOF || t.CloseSent || t.Err != engine.OK || t.Conn == 0 {
		return
	}
	t.do(h, engine.Command{Op: engine.OpRead, Conn: t.Conn, Data: t.rbuf})
	t.reading = true
}

// maybeClose closes the connection once both directions are done.
func (t *Transfer) maybeClose(h *Host) {
	if t.EOF && t.ShutDown && !t.CloseSent && t.Err == engine.OK {
		t.do(h, engine.Command{Op: engine.OpClose, Conn: t.Conn})
		t.CloseSent = true
	}
}

func (t *Transfer) result(h *Host, c *engine.Command, r engine.Result) {
	switch c.Op {
	case engine.OpDial:
		if r.Err != engine.OK {
			t.fail(h, r.Err, "dial "+c.Addr.String())
			return
		}
		t.open(h, r.Conn)
	case engine.OpWrite:
		t.writing = false
		t.Written += r.N
		switch {
		case r.Err == engine.ErrWouldBlock || r.Err == engine.OK && r.N < len(c.Data):
			t.blocked = true // EventWritable follows when room appears
		case r.Err != engine.OK:
			t.fail(h, r.Err, "write")
		default:
			t.write(h)
		}
	case engine.OpShutdown:
		if r.Err != engine.OK {
			t.fail(h, r.Err, "shutdown")
			return
		}
		t.ShutDown = true
		t.maybeClose(h)
	case engine.OpRead:
		t.reading = false
		if r.N > 0 {
			t.Received += int64(r.N)
			t.h.Write(c.Data[:r.N])
		}
		switch r.Err {
		case engine.OK:
			t.read(h)
		case engine.ErrWouldBlock:
		case engine.ErrEOF:
			t.EOF = true
			t.EOFAt = h.Now()
			t.h.Sum(t.Sum[:0])
			t.maybeClose(h)
		default:
			t.fail(h, r.Err, "read")
		}
	case engine.OpClose:
		if r.Err != engine.OK {
			t.fail(h, r.Err, "close")
		}
	}
}

func (t *Transfer) event(h *Host, ev engine.Event) {
	switch ev.Kind {
	case engine.EventReadable, engine.EventPeerClosed:
		t.read(h)
	case engine.EventWritable:
		t.blocked = false
		t.write(h)
	case engine.EventReset, engine.EventError:
		t.fail(h, ev.Err, "event "+ev.Kind.String())
	case engine.EventClosed:
		t.Closed = true
		t.ClosedAt = h.Now()
		if ev.Err != engine.OK {
			t.fail(h, ev.Err, "event closed")
		}
	case engine.EventState:
		t.States = append(t.States, ev.To)
		t.StateAt = append(t.StateAt, h.Now())
		t.StateClosed = t.StateClosed || ev.To == engine.StateClosed
	}
}

// maxEarly bounds the not yet accepted connections whose states Transfers keeps.
const maxEarly = 1024

// Transfers is an App that runs several Transfers on one host: it issues their
// Dials and Listens, accepts one connection per listener, and routes every
// result and event to its Transfer.
type Transfers struct {
	List []*Transfer
	// early holds the states of accepted connections not yet taken by Accept.
	early map[engine.ConnID][]earlyState
}

type earlyState struct {
	to engine.State
	at engine.Time
}

// Done reports whether every transfer finished.
func (ts *Transfers) Done() bool {
	for _, t := range ts.List {
		if !t.Done() {
			return false
		}
	}
	return true
}

// Start issues the Dials and Listens.
func (ts *Transfers) Start(h *Host) {
	for _, t := range ts.List {
		switch {
		case t.Dial.IsValid() == t.Listen.IsValid():
			h.Fail(fmt.Errorf("sim: host %s: a Transfer needs exactly one of Dial and Listen", h.Name()))
		case t.Dial.IsValid():
			t.do(h, engine.Command{Op: engine.OpDial, Addr: t.Dial})
		default:
			t.do(h, engine.Command{Op: engine.OpListen, Addr: t.Listen})
		}
	}
}

// Result routes a command's result to its Transfer.
func (ts *Transfers) Result(h *Host, c *engine.Command, r engine.Result) {
	switch c.Op {
	case engine.OpListen:
		for _, t := range ts.List {
			if t.Listen == c.Addr && t.Listener == 0 {
				if r.Err != engine.OK {
					t.fail(h, r.Err, "listen "+c.Addr.String())
				}
				t.Listener = r.Conn
				return
			}
		}
	case engine.OpDial:
		for _, t := range ts.List {
			if t.Dial == c.Addr && t.Conn == 0 && t.Err == engine.OK {
				t.result(h, c, r)
				return
			}
		}
	case engine.OpAccept:
		t := ts.byListener(c.Conn)
		switch {
		case t == nil || r.Err == engine.ErrWouldBlock:
		case r.Err != engine.OK:
			t.fail(h, r.Err, "accept")
		case t.Conn == 0:
			for _, e := range ts.early[r.Conn] {
				t.States = append(t.States, e.to)
				t.StateAt = append(t.StateAt, e.at)
			}
			delete(ts.early, r.Conn)
			t.open(h, r.Conn)
			for _, s := range t.States {
				t.StateClosed = t.StateClosed || s == engine.StateClosed
			}
		default:
			t.Extra++
			delete(ts.early, r.Conn)
			t.do(h, engine.Command{Op: engine.OpClose, Conn: r.Conn})
		}
		if t != nil && r.Err == engine.OK {
			// Accept until ErrWouldBlock: EventAcceptable is an edge.
			t.do(h, engine.Command{Op: engine.OpAccept, Conn: c.Conn})
		}
	default:
		if t := ts.byConn(c.Conn); t != nil {
			t.result(h, c, r)
		}
	}
}

// Event routes an event to its Transfer, and accepts on EventAcceptable.
func (ts *Transfers) Event(h *Host, ev engine.Event) {
	if ev.Kind == engine.EventAcceptable {
		if t := ts.byListener(ev.Conn); t != nil {
			t.do(h, engine.Command{Op: engine.OpAccept, Conn: ev.Conn})
		}
		return
	}
	if t := ts.byConn(ev.Conn); t != nil {
		t.event(h, ev)
		return
	}
	if ev.Kind == engine.EventState && ts.byListener(ev.Conn) == nil {
		// A connection a listener holds, not yet accepted: keep its states
		// (bounded: at most the few a handshake goes through, per connection).
		if ts.early == nil {
			ts.early = map[engine.ConnID][]earlyState{}
		}
		if _, ok := ts.early[ev.Conn]; !ok && len(ts.early) >= maxEarly {
			return
		}
		if len(ts.early[ev.Conn]) < 16 {
			ts.early[ev.Conn] = append(ts.early[ev.Conn], earlyState{ev.To, h.Now()})
		}
	}
}

func (ts *Transfers) byListener(id engine.ConnID) *Transfer {
	for _, t := range ts.List {
		if t.Listener == id && id != 0 {
			return t
		}
	}
	return nil
}

func (ts *Transfers) byConn(id engine.ConnID) *Transfer {
	for _, t := range ts.List {
		if t.Conn == id && id != 0 {
			return t
		}
	}
	return nil
}

// EnteredAt returns when the connection last entered state s, if it did.
func (t *Transfer) EnteredAt(s engine.State) (engine.Time, bool) {
	for i := len(t.States) - 1; i >= 0; i-- {
		if t.States[i] == s {
			return t.StateAt[i], true
		}
	}
	return 0, false
}
