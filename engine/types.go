package engine

import (
	"net/netip"

	"github.com/tcpeng/tcpeng/engine/tcp"
	"github.com/tcpeng/tcpeng/engine/tcpip"
)

// Time is a monotonic instant in nanoseconds supplied by the host; see tcpip.Time.
type Time = tcpip.Time

// Duration is a span of Time in nanoseconds.
type Duration = tcpip.Duration

// Never is the deadline of a stack with no timer armed.
const Never = tcpip.Never

// Common durations.
const (
	Microsecond = tcpip.Microsecond
	Millisecond = tcpip.Millisecond
	Second      = tcpip.Second
)

// Error is an error code of a command or event; see tcpip.Error.
type Error = tcpip.Error

// The error codes. Each is also an error value usable with errors.Is.
const (
	OK              = tcpip.OK
	ErrWouldBlock   = tcpip.ErrWouldBlock
	ErrEOF          = tcpip.ErrEOF
	ErrClosed       = tcpip.ErrClosed
	ErrNotConnected = tcpip.ErrNotConnected
	ErrRefused      = tcpip.ErrRefused
	ErrReset        = tcpip.ErrReset
	ErrTimedOut     = tcpip.ErrTimedOut
	ErrAborted      = tcpip.ErrAborted
	ErrInvalid      = tcpip.ErrInvalid
	ErrNoConn       = tcpip.ErrNoConn
	ErrAddrInUse    = tcpip.ErrAddrInUse
	ErrAddrNotAvail = tcpip.ErrAddrNotAvail
	ErrLimit        = tcpip.ErrLimit
	ErrUnreachable  = tcpip.ErrUnreachable
	ErrNotListening = tcpip.ErrNotListening
)

// State is a TCP connection state (RFC 9293 §3.3.2).
type State = tcp.State

// The states.
const (
	StateClosed      = tcp.Closed
	StateListen      = tcp.Listen
	StateSynSent     = tcp.SynSent
	StateSynReceived = tcp.SynReceived
	StateEstablished = tcp.Established
	StateFinWait1    = tcp.FinWait1
	StateFinWait2    = tcp.FinWait2
	StateCloseWait   = tcp.CloseWait
	StateClosing     = tcp.Closing
	StateLastAck     = tcp.LastAck
	StateTimeWait    = tcp.TimeWait
)

// ConnID names a connection or a listener of one Stack. The zero ConnID names
// nothing. An ID is not reused for a long time after its connection is gone
// (a 12-bit generation per table slot), so a stale ID gets ErrNoConn.
type ConnID uint32

const (
	connIndexBits = 20
	connIndexMask = 1<<connIndexBits - 1
	connGenMask   = 1<<(32-connIndexBits) - 1
)

func makeConnID(index uint32, gen uint16) ConnID { return ConnID(uint32(gen)<<connIndexBits | index) }

func (id ConnID) index() uint32 { return uint32(id) & connIndexMask }
func (id ConnID) gen() uint16   { return uint16(uint32(id) >> connIndexBits) }

// IsValid reports whether id is not the zero ConnID.
func (id ConnID) IsValid() bool { return id != 0 }

// EventKind says what an Event reports.
type EventKind uint8

// Event kinds.
const (
	// EventConnected: a Dial reached ESTABLISHED.
	EventConnected EventKind = iota + 1
	// EventAcceptable: a listener holds a connection for Accept.
	EventAcceptable
	// EventReadable: data arrived, or the end of the stream: Read returns
	// something other than ErrWouldBlock.
	EventReadable
	// EventWritable: after a short Write, room appeared in the send buffer.
	EventWritable
	// EventPeerClosed: the peer's FIN arrived; Read returns ErrEOF after the data.
	EventPeerClosed
	// EventClosed: the connection reached CLOSED. Err is OK after a clean
	// close; for a connection already Closed by its application it says what
	// ended it otherwise (ErrReset, ErrTimedOut).
	EventClosed
	// EventReset: the peer reset the connection; Err is ErrReset, or ErrRefused
	// when the reset answered our SYN.
	EventReset
	// EventError: the connection failed; Err says why (ErrTimedOut, ErrUnreachable).
	EventError
	// EventState: a state change, From to To (only with Config.TraceStates).
	EventState
	// EventFault: the engine's host boundary reports a problem not tied to one
	// command: a malformed message (Err ErrInvalid), or an engine restarted after
	// a crash (Err ErrAborted; each connection it held gets EventError with
	// ErrAborted). Conn is 0. The native Stack never raises it.
	EventFault
)

var eventNames = [...]string{"", "connected", "acceptable", "readable", "writable", "peer-closed", "closed", "reset", "error", "state", "fault"}

// String returns the kind's name ("connected", "readable", ...).
func (k EventKind) String() string {
	if int(k) < len(eventNames) && k != 0 {
		return eventNames[k]
	}
	return "invalid"
}

// Event is something that happened to a connection or listener.
type Event struct {
	Kind     EventKind
	Conn     ConnID
	Err      Error // EventReset, EventError
	From, To State // EventState
}

// Op is a command's operation.
type Op uint8

// Operations.
const (
	// OpListen listens on Addr (an address of the stack or the unspecified
	// address, and a port) with backlog N (0: Config.Backlog). Result.Conn is the listener.
	OpListen Op = iota + 1
	// OpDial opens a connection to Addr from Local (its address may be left
	// invalid or unspecified, its port 0 for an ephemeral port). Result.Conn is
	// the new connection; EventConnected or EventReset/EventError follows.
	OpDial
	// OpAccept takes a connection from listener Conn. Result.Conn is it, or Err
	// is ErrWouldBlock.
	OpAccept
	// OpWrite queues Data on Conn. Result.N is how much was taken.
	OpWrite
	// OpRead reads into Data from Conn. Result.N is how much was read.
	OpRead
	// OpShutdown closes the send side of Conn (FIN after the queued data).
	OpShutdown
	// OpClose releases Conn: a connection closes gracefully in the background;
	// a listener stops, resetting the connections it holds.
	OpClose
	// OpAbort resets Conn and releases it.
	OpAbort
	// OpSetOption sets Option to Value on Conn.
	OpSetOption
	numOps
)

var opNames = [...]string{"", "listen", "dial", "accept", "write", "read", "shutdown", "close", "abort", "set-option"}

// String returns the operation's name.
func (o Op) String() string {
	if o > 0 && o < numOps {
		return opNames[o]
	}
	return "invalid"
}

// Option is a per-connection option.
type Option = tcp.Option

// Options.
const (
	OptNoDelay    = tcp.OptNoDelay    // 1: Nagle's algorithm off
	OptKeepalive  = tcp.OptKeepalive  // 1: keepalive probes on
	OptSendBuffer = tcp.OptSendBuffer // bytes
	OptRecvBuffer = tcp.OptRecvBuffer // bytes
)

// Command is an application's request, carried into Step.
type Command struct {
	Op     Op
	Conn   ConnID
	Addr   netip.AddrPort // OpListen: local; OpDial: remote
	Local  netip.AddrPort // OpDial: optional local address and port
	Data   []byte         // OpWrite: bytes to send; OpRead: buffer to fill
	N      int            // OpListen: backlog
	Option Option         // OpSetOption
	Value  int64          // OpSetOption
}

// Result answers the Command at the same index.
type Result struct {
	Conn ConnID // OpListen, OpDial, OpAccept: the new ID
	N    int    // OpWrite, OpRead: bytes
	Err  Error
	// OpListen, OpDial, OpAccept: the new connection's local address (a dial's
	// chosen ephemeral port included) and its peer's (none for a listener).
	Local, Remote netip.AddrPort
}

// Input is what a host hands to Step: the time, the frames that arrived since
// the last call, and the applications' commands. Step does not retain any of it.
type Input struct {
	Now      Time
	Frames   [][]byte
	Commands []Command
}

// Output is what Step returns. Step resets and refills its slices, reusing their
// memory, so a host that keeps one Output allocates nothing in steady state.
type Output struct {
	// Frames to send, in order. They point into the stack's memory and stay valid
	// until the second call to Step after this one (see Step), or the next call
	// to PollFrame.
	Frames [][]byte
	// Results, one per command, in the order of the commands.
	Results []Result
	// Events since the last call.
	Events []Event
	// Deadline is when Step must be called again if nothing arrives before:
	// Never if no timer is armed, Now if output is still queued.
	Deadline Time
}

// Engine is what every host drives: the native *Stack, or the WebAssembly engine
// of bindings/wazero. One call per batch (DESIGN.md, "The narrow waist").
type Engine interface {
	Step(in *Input, out *Output)
}

var _ Engine = (*Stack)(nil)
