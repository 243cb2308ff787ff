// Package tcp is the transmission control block of RFC 9293: one connection's
// state machine, its send and receive buffers, its timers, retransmission
// (RFC 6298), and congestion control (RFC 5681, RFC 6582). It knows nothing of IP
// addresses or of the other connections: the stack demultiplexes segments to a
// Conn, calls Input, Output and Timeout on it, and reads the events it raises.
package tcp

import "github.com/tcpeng/tcpeng/engine/tcpip"

// Config holds the TCP parameters of a stack, shared by all its connections. The
// engine's Config documents the defaults.
type Config struct {
	MSL                tcpip.Duration // TIME_WAIT lasts 2×MSL (RFC 9293 §3.4.2)
	InitialRTO         tcpip.Duration // RFC 6298 §2.1
	MinRTO             tcpip.Duration // RFC 6298 §2.4 (the RFC says 1 s; Linux and tcpeng use 200 ms)
	MaxRTO             tcpip.Duration // RFC 6298 §2.5
	DelayedAck         tcpip.Duration // RFC 9293 §3.8.6.3, at most 500 ms
	KeepaliveIdle      tcpip.Duration // RFC 9293 §3.8.4: at least two hours by default
	KeepaliveInterval  tcpip.Duration
	KeepaliveCount     int
	MaxRetries         int            // retransmissions of one segment before ErrTimedOut (RFC 9293 §3.8.3's R2)
	SynRetries         int            // retransmissions of a SYN before ErrTimedOut
	FinWait2Timeout    tcpip.Duration // how long a closed connection waits in FIN_WAIT_2 for the peer's FIN
	SendBuffer         int            // default send buffer of a connection, bytes
	RecvBuffer         int            // default receive buffer of a connection, bytes
	WindowScale        bool           // offer the window scale option (RFC 7323)
	SACK               bool           // offer selective acknowledgments (RFC 2018)
	Timestamps         bool           // offer the timestamps option (RFC 7323 §3)
	MaxOutOfOrder      int            // out-of-order ranges a receive buffer tracks; past it, segments are dropped
	InvalidAckInterval tcpip.Duration // at most one ACK per interval answers unacceptable segments (RFC 5961 §7)
	NoSum              bool           // Output leaves segments unsummed (OutputSum 0): the link finishes the checksum
	TSO                bool           // Output may write several full-sized segments of new data as one, unsummed (engine.Config.SegmentOffload)

	Pool     *Pool     // chunks for every buffer
	Hooks    Hooks     // told of every state change
	Counters *Counters // where connections count what they drop and send

	now tcpip.Time // the time of the call in progress; see SetNow
}

// SetNow sets the time that the next calls into connections run at. The stack
// sets it before every Input, Output, Timeout and application call.
func (c *Config) SetNow(t tcpip.Time) { c.now = t }

// Counters are the TCP events a stack counts. They only grow.
type Counters struct {
	SegsIn           uint64 // segments given to connections
	SegsOut          uint64 // segments sent by connections
	Retransmits      uint64 // segments sent again (timeout, fast retransmit, probes)
	FastRetransmits  uint64 // fast retransmits after three duplicate ACKs (RFC 5681 §3.2)
	Timeouts         uint64 // retransmission timer expirations
	DropUnacceptable uint64 // segments failing the acceptability test (RFC 9293 §3.10.7.4)
	DropBadAck       uint64 // segments with an unacceptable ACK
	DropOutOfOrder   uint64 // out-of-order segments dropped because the range table was full
	DropNoAck        uint64 // segments without ACK in a synchronized state
	ChallengeACKs    uint64 // challenge ACKs (RFC 5961)
	AcksRateLimited  uint64 // ACKs to unacceptable segments not sent, by the RFC 5961 §7 rate limit
	DropPAWS         uint64 // segments with a timestamp older than TS.Recent (RFC 7323 §5, PAWS)
	RSTsIn           uint64 // resets that closed a connection
	RSTsOut          uint64 // resets sent by connections
	DupAcks          uint64 // duplicate ACKs received
	LostRetransmits  uint64 // retransmissions found lost in SACK recovery and made again (lostrxt.go)
	WindowProbes     uint64 // zero-window probes sent
	KeepaliveProbes  uint64 // keepalive probes sent
}

// Hooks receives a connection's state changes, synchronously, from inside Input,
// Timeout and the application calls. The stack uses them to maintain its accept
// queues and tables and to trace; an implementation must not call back into c.
type Hooks interface {
	StateChange(c *Conn, from, to State)
}

// Options that may be set per connection (SetOption).
type Option uint8

// The per-connection options.
const (
	OptNoDelay    Option = iota + 1 // 1 turns Nagle's algorithm off (RFC 9293 §3.7.4)
	OptKeepalive                    // 1 turns keepalive probes on (RFC 9293 §3.8.4)
	OptSendBuffer                   // send buffer size in bytes
	OptRecvBuffer                   // receive buffer size in bytes
)
