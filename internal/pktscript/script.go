// Package pktscript runs packet scripts: small text files, in the spirit of
// packetdrill, that test one TCP endpoint (the local side, under test) against
// a scripted remote peer. A script injects segments from the peer, expects
// segments from the endpoint, makes socket calls on the endpoint and checks
// their results and events, each at an explicit virtual time.
//
// The format is documented in README.md. Parse turns a script into a Script;
// Run plays it against an engine.Engine, driving it only through Step on a
// virtual clock. The parser, the Script types, the frame builder (Peer) and the
// matcher are shared with the Linux differential runner, which plays the same
// scripts against the kernel through a TUN device.
package pktscript

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// Default addresses: the endpoint under test and the scripted peer
// (RFC 5737 documentation addresses).
var (
	DefaultLocal  = netip.MustParseAddrPort("192.0.2.1:8080")
	DefaultRemote = netip.MustParseAddrPort("192.0.2.2:40000")
)

// DefaultPeerISN is the peer's initial sequence number when the script does not
// choose one with peer-isn.
const DefaultPeerISN = 1000000

// Script is a parsed packet script.
type Script struct {
	Name  string // the file name without directory and extension
	Rule  string // the "# rule:" header: the RFC rule the script checks
	Linux string // the "# linux:" header: "agree", "deliberate: <why>", or "" if absent

	Local   netip.AddrPort // the endpoint under test ("local" directive)
	Remote  netip.AddrPort // the peer's default address and port ("remote" directive)
	PeerISN uint32         // the peer's initial sequence number ("peer-isn" directive)
	Config  []Setting      // "config" directives, in order

	Lines []*Line // the timed lines, in order
}

// Deliberate reports whether the script says tcpeng differs from Linux on
// purpose, and why.
func (s *Script) Deliberate() (why string, ok bool) {
	why, ok = strings.CutPrefix(s.Linux, "deliberate:")
	return strings.TrimSpace(why), ok
}

// Setting is one "config KEY VALUE" directive.
type Setting struct {
	Pos   Pos
	Key   string
	Value string
}

// Pos is a position in a script: file and line.
type Pos struct {
	File string
	Line int
}

func (p Pos) String() string { return p.File + ":" + strconv.Itoa(p.Line) }

// Only says which runners play a line.
type Only uint8

// Line markers.
const (
	Both       Only = iota
	TcpengOnly      // "@tcpeng": only the tcpeng runners play the line
	LinuxOnly       // "@linux": only the Linux runner plays the line
)

// Kind is what a timed line does.
type Kind uint8

// Line kinds.
const (
	KindInject Kind = iota + 1 // "<": the peer sends a segment
	KindExpect                 // ">": the endpoint must send a segment matching a pattern
	KindNone                   // "> none until T": the endpoint must send nothing until T
	KindCall                   // a socket call and its expected result
	KindEvent                  // "event ...": the endpoint must raise an event
)

// Time is a line's time: when the line happens, in script time (the start of
// the script is 0).
type Time struct {
	At  time.Duration // resolved absolute time (0 for Any)
	Rel bool          // written relative to the previous line ("+0.040")
	Any bool          // "*": any time (expectations only)
	Tol time.Duration // "~0.005": the tolerance of an expectation
}

// Line is one timed line of a script.
type Line struct {
	Pos  Pos
	Only Only
	Time Time
	Kind Kind
	// Port is the peer's port for this line (":PORT" after the time), or the
	// script's Remote port. It names the flow: a connection is the endpoint's
	// address and port and the peer's address and this port.
	Port uint16
	// PortSet says the line named its port explicitly.
	PortSet bool

	Seg   *Segment   // KindInject, KindExpect
	Until Time       // KindNone: the end of the quiet period (exclusive)
	Call  *Call      // KindCall
	Event *EventSpec // KindEvent
}

// Num is a number in a segment spec: a value, possibly absolute ("=N") rather
// than relative to an initial sequence number, or a wildcard ("*").
type Num struct {
	V   int64
	Abs bool // "=N": the value as it appears on the wire
	Any bool // "*"
	Set bool // the field was given at all
}

func (n Num) String() string {
	switch {
	case n.Any:
		return "*"
	case n.Abs:
		return "=" + strconv.FormatInt(n.V, 10)
	}
	return strconv.FormatInt(n.V, 10)
}

// Segment is a segment to inject or a pattern to match.
type Segment struct {
	Flags    wire.Flags
	AnyFlags bool // "*" (expectations only)

	// Seq is the sequence number (of the SYN, or of the first data byte),
	// relative to the sender's ISN unless Abs; End is Seq+Len (SYN and FIN not
	// counted, as in packetdrill and tcpdump); Len is the payload length.
	Seq, End, Len Num

	Ack Num // relative to the receiver's ISN unless Abs; Set only if given
	Win Num // the window field as sent (not scaled); Set only if given
	Urg Num // the urgent pointer; Set only if given

	// Opts are the TCP options in wire order. OptsSet says an option list was
	// given; AnyOpts says it was "<...>": any options at all (expectations only).
	// An expectation without an option list expects no options.
	Opts    []Option
	OptsSet bool
	AnyOpts bool

	Payload []byte // a quoted payload, or nil for the default pattern

	BadSum bool // "badsum": inject with a wrong TCP checksum
	NewISN bool // "newisn": an expected SYN that starts a new incarnation of the flow
	// Above ("newisn above"): the new ISN must be larger than every sequence
	// number the endpoint used on the previous incarnation (RFC 9293 §3.6.1).
	Above bool
}

// OptKind is a TCP option kind in a script.
type OptKind uint8

// Option kinds.
const (
	OptNOP OptKind = iota + 1
	OptEOL
	OptMSS
	OptWScale
	OptSACKOK
	OptTS
	OptSACK
)

// Option is one TCP option of a segment spec. Numbers may be wildcards.
type Option struct {
	Kind   OptKind
	A, B   Num   // mss value; wscale shift; TS val and ecr
	Blocks []Num // SACK: pairs of left and right edges
}

// Op is a socket call.
type Op uint8

// Socket calls.
const (
	OpListen        Op = iota + 1 // listen [backlog N]
	OpConnect                     // connect
	OpAccept                      // accept
	OpWrite                       // write N | write "text"
	OpRead                        // read N
	OpShutdown                    // shutdown (the send side)
	OpClose                       // close
	OpAbort                       // abort (RST)
	OpSetOpt                      // setopt NAME VALUE
	OpCloseListener               // close-listener
)

var opNames = map[Op]string{
	OpListen: "listen", OpConnect: "connect", OpAccept: "accept", OpWrite: "write", OpRead: "read",
	OpShutdown: "shutdown", OpClose: "close", OpAbort: "abort", OpSetOpt: "setopt", OpCloseListener: "close-listener",
}

func (o Op) String() string { return opNames[o] }

// SockOpt is a socket option of setopt.
type SockOpt uint8

// Socket options.
const (
	SockNoDelay SockOpt = iota + 1
	SockKeepalive
	SockSndBuf
	SockRcvBuf
)

var sockOptNames = map[SockOpt]string{SockNoDelay: "nodelay", SockKeepalive: "keepalive", SockSndBuf: "sndbuf", SockRcvBuf: "rcvbuf"}

func (o SockOpt) String() string { return sockOptNames[o] }

// EngineOption returns the engine option o maps to.
func (o SockOpt) EngineOption() engine.Option {
	switch o {
	case SockNoDelay:
		return engine.OptNoDelay
	case SockKeepalive:
		return engine.OptKeepalive
	case SockSndBuf:
		return engine.OptSendBuffer
	}
	return engine.OptRecvBuffer
}

// Call is a socket call and the result the script expects.
type Call struct {
	Op      Op
	N       int     // listen: backlog (0: default); write, read: byte count
	Data    []byte  // write "text": the bytes
	Opt     SockOpt // setopt
	Value   int64   // setopt
	Want    Want
	WantSet bool // "= ..." was given; otherwise success (and a full write or read) is expected
}

// Want is the expected result of a call: an error, a count, or the bytes read.
type Want struct {
	Err  engine.Error // OK, or the error expected
	N    int          // the count, or -1 when not checked
	Data []byte       // read: the exact bytes, or nil
}

// EventSpec is an expected event.
type EventSpec struct {
	Kind     engine.EventKind
	Err      engine.Error // reset, error: the error, or OK for any
	From, To engine.State // state
	AnyFrom  bool
	AnyTo    bool
}

// Errors by script name. The Linux runner maps them to errno values.
var errNames = map[string]engine.Error{
	"ok": engine.OK, "wouldblock": engine.ErrWouldBlock, "eof": engine.ErrEOF, "closed": engine.ErrClosed,
	"notconn": engine.ErrNotConnected, "refused": engine.ErrRefused, "reset": engine.ErrReset,
	"timedout": engine.ErrTimedOut, "aborted": engine.ErrAborted, "invalid": engine.ErrInvalid,
	"noconn": engine.ErrNoConn, "addrinuse": engine.ErrAddrInUse, "addrnotavail": engine.ErrAddrNotAvail,
	"limit": engine.ErrLimit, "unreachable": engine.ErrUnreachable, "notlistening": engine.ErrNotListening,
}

// ErrorName returns the script name of an engine error ("wouldblock", "reset").
func ErrorName(e engine.Error) string {
	for k, v := range errNames {
		if v == e {
			return k
		}
	}
	return "error" + strconv.Itoa(int(e))
}

// ParseErrorName returns the engine error a script name stands for.
func ParseErrorName(s string) (engine.Error, bool) {
	e, ok := errNames[s]
	return e, ok
}

var eventNames = map[string]engine.EventKind{
	"connected": engine.EventConnected, "acceptable": engine.EventAcceptable, "readable": engine.EventReadable,
	"writable": engine.EventWritable, "peer-closed": engine.EventPeerClosed, "closed": engine.EventClosed,
	"reset": engine.EventReset, "error": engine.EventError, "state": engine.EventState,
}

var stateNames = map[string]engine.State{}

func init() {
	for s := engine.StateClosed; s <= engine.StateTimeWait; s++ {
		stateNames[s.String()] = s
	}
}
