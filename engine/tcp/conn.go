package tcp

import (
	"github.com/tcpeng/tcpeng/engine/tcpip"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// Seq is the sequence number type; see wire.Seq.
type Seq = wire.Seq

// Connection flags.
const (
	fPassive        uint32 = 1 << iota // opened by a SYN to a listener
	fNoDelay                           // Nagle's algorithm off
	fKeepalive                         // keepalive probes on
	fShutWr                            // the application shut the send side: FIN after the queued data
	fFinRcvd                           // the peer's FIN was received in order
	fFinPending                        // the peer's FIN arrived out of order, at rcvFin
	fReleased                          // the application closed its handle
	fAckNow                            // send an ACK at the next Output
	fWantWrite                         // a Write was short: raise EvWritable when room appears
	fRetransmitOne                     // fast retransmit: resend one segment at SND.UNA
	fInRecovery                        // NewReno fast recovery (RFC 6582)
	fRTTPending                        // a segment is being timed (rttSeq, rttStart)
	fWindowScale                       // both sides sent the window scale option
	fProbe                             // the persist timer fired: send one octet past the window
	fKeepaliveProbe                    // the keepalive timer fired: send a probe
	fWindowUpdate                      // the application read: consider a window update
	fSynAckResend                      // a duplicate SYN arrived in SYN_RCVD: resend the SYN-ACK
	fFinSent                           // our FIN has been sent (it is the last sequence number below sndMax)
	fSACK                              // both SYNs carried SACK-permitted (RFC 2018)
	fSynLost                           // the retransmission timer expired awaiting the ACK of our SYN or SYN-ACK
	fTS                                // both SYNs carried timestamps (RFC 7323 §3.2)
)

// Events a connection raises for the application; the stack collects them with
// TakeEvents.
const (
	EvConnected uint8 = 1 << iota // an active open reached ESTABLISHED
	EvReadable                    // data, or the end of the stream, can be read
	EvWritable                    // room appeared in the send buffer after a short Write
	EvPeerFin                     // the peer's FIN arrived (Read returns ErrEOF once the data is read)
	EvClosed                      // the connection reached CLOSED by the normal close
	EvReset                       // the peer reset the connection (Err: ErrReset or ErrRefused)
	EvError                       // the connection failed (Err: ErrTimedOut, ErrUnreachable, ...)
)

// Timers in a connection's timer table.
const (
	timerRTO       = iota // retransmission (RFC 6298)
	timerPersist          // zero-window probe (RFC 9293 §3.8.6.1)
	timerDelAck           // delayed acknowledgment (RFC 9293 §3.8.6.3)
	timerKeepalive        // keepalive (RFC 9293 §3.8.4)
	timerClose            // TIME_WAIT's 2×MSL, or the FIN_WAIT_2 timeout of a closed connection
	numTimers
)

// Conn is one TCP connection: the TCB of RFC 9293 §3.3.1. The stack owns it and
// calls it from one goroutine.
//
// Sequence space: SND.UNA..sndMax is in flight (the SYN and FIN included);
// SND.NXT is where the next segment starts, which is below sndMax while
// retransmitting after a timeout (BSD's snd_nxt and snd_max). The send buffer
// holds the data from the first unacknowledged data byte; the receive buffer holds
// the unread data followed by the window, out-of-order data written in place.
type Conn struct {
	cfg    *Config
	flags  uint32
	state  State
	events uint8
	err    tcpip.Error // why the connection failed, once it has

	// ID is the stack's handle for the connection; the tcp package does not use it.
	ID uint32

	localPort, remotePort uint16

	// Send sequence variables (RFC 9293 §3.3.1).
	iss       Seq
	sndUna    Seq
	sndNxt    Seq
	sndMax    Seq
	sndWl1    Seq
	sndWl2    Seq
	sndWnd    uint32 // scaled
	maxSndWnd uint32 // the largest window the peer offered (RFC 9293 §3.8.6.2.1, RFC 5961 §5.2)
	sndShift  uint8
	rcvShift  uint8
	mss       uint16 // Eff.snd.MSS: payload bytes per segment (RFC 9293 §3.7.1)
	ourMSS    uint16 // the MSS we advertise

	// Receive sequence variables.
	irs    Seq
	rcvNxt Seq
	rcvAdv Seq // RCV.NXT+RCV.WND as last advertised: the right edge never moves left
	rcvFin Seq // sequence number of an out-of-order FIN (fFinPending)

	snd     ring
	sndLen  int // bytes in the send buffer (unacknowledged and unsent)
	rcv     ring
	rcvLen  int         // in-order bytes waiting for Read
	ooo     *reassembly // out-of-order ranges held (the SACK blocks we report)
	sacked  *reassembly // the scoreboard: ranges the peer SACKed (RFC 6675)
	rxt     *rxtLog     // this recovery's retransmissions, to find those lost again (lostrxt.go)
	lastOOO Seq         // start of the most recent out-of-order segment (RFC 2018 §4's first block)
	highRxt Seq         // HighRxt: the end of the highest retransmission in this recovery

	// Retransmission (RFC 6298).
	srtt, rttvar, rto tcpip.Duration
	rttSeq            Seq
	rttStart          tcpip.Time
	retries           uint8 // consecutive timeouts of the same data
	probes            uint8 // unanswered zero-window or keepalive probes
	persistN          uint8 // zero-window probes in this episode (the persist backoff)

	// Congestion control (RFC 5681, RFC 6582).
	cwnd, ssthresh uint32
	recover        Seq
	dupAcks        uint8
	unackedSegs    uint8 // full-sized segments received since our last ACK
	dupAcksOwed    uint8 // duplicate ACKs still to send, one per out-of-order segment
	cwndAcc        uint32

	timers   [numTimers]tcpip.Time // 0: not armed
	lastRecv tcpip.Time            // when the last segment arrived (keepalive idle)

	// A reset to send in answer to one segment, outside the connection's own flow
	// (RFC 9293 §3.10.7.3 SYN_RCVD unacceptable ACK).
	rstSeq, rstAck Seq
	rstFlags       wire.Flags
	outSum         uint16     // the sum of the last segment Output wrote (OutputSum)
	tsRecent       uint32     // TS.Recent (RFC 7323 §4.3): the timestamp to echo
	tsOffset       uint32     // this connection's offset of TSval (RFC 7323 §7.1)
	lastAckSent    Seq        // Last.ACK.sent (RFC 7323 §4.3)
	oowAckAt       tcpip.Time // the earliest the next out-of-window ACK may go (oowAck)
}

// State returns the connection's state.
func (c *Conn) State() State { return c.state }

// Err returns why the connection failed, or OK.
func (c *Conn) Err() tcpip.Error { return c.err }

// Ports returns the local and remote ports.
func (c *Conn) Ports() (local, remote uint16) { return c.localPort, c.remotePort }

// Released reports whether the application has closed its handle.
func (c *Conn) Released() bool { return c.flags&fReleased != 0 }

// Passive reports whether the connection was opened by a SYN to a listener.
func (c *Conn) Passive() bool { return c.flags&fPassive != 0 }

// TakeEvents returns the events raised since the last call and clears them.
func (c *Conn) TakeEvents() uint8 {
	e := c.events
	c.events = 0
	return e
}

// Deadline returns the earliest armed timer, or tcpip.Never.
func (c *Conn) Deadline() tcpip.Time {
	d := tcpip.Never
	for _, t := range c.timers {
		if t != 0 && t < d {
			d = t
		}
	}
	return d
}

// Info is a snapshot of a connection's variables, for tracing and tests.
type Info struct {
	State                 State
	ISS, IRS              Seq
	SndUna, SndNxt        Seq
	RcvNxt                Seq
	SndWnd, RcvWnd        uint32
	MSS                   uint16
	SndShift, RcvShift    uint8
	SRTT, RTTVar, RTO     tcpip.Duration
	Cwnd, Ssthresh        uint32
	SendQueued, RecvReady int
}

// Info returns a snapshot of the connection's variables.
func (c *Conn) Info() Info {
	return Info{
		State: c.state, ISS: c.iss, IRS: c.irs, SndUna: c.sndUna, SndNxt: c.sndNxt, RcvNxt: c.rcvNxt,
		SndWnd: c.sndWnd, RcvWnd: uint32(c.rcv.cap - c.rcvLen), MSS: c.mss, SndShift: c.sndShift, RcvShift: c.rcvShift,
		SRTT: c.srtt, RTTVar: c.rttvar, RTO: c.rto, Cwnd: c.cwnd, Ssthresh: c.ssthresh,
		SendQueued: c.sndLen, RecvReady: c.rcvLen,
	}
}

func (c *Conn) setState(s State) {
	if s == c.state {
		return
	}
	from := c.state
	c.state = s
	if s == Closed {
		c.timers = [numTimers]tcpip.Time{}
		c.snd.release(c.cfg.Pool)
		c.sndLen = 0
		if c.err != tcpip.OK {
			c.rcv.release(c.cfg.Pool)
			c.rcvLen = 0
			c.ooo = nil
		}
	}
	if c.cfg.Hooks != nil {
		c.cfg.Hooks.StateChange(c, from, s)
	}
}

// fail ends the connection with err: a reset from the peer (EvReset) or a local
// failure (EvError). No segment is sent.
func (c *Conn) fail(err tcpip.Error) {
	c.err = err
	if err == tcpip.ErrReset || err == tcpip.ErrRefused {
		c.events |= EvReset
	} else {
		c.events |= EvError
	}
	c.setState(Closed)
}

// newConn returns a connection with the stack's defaults.
func newConn(cfg *Config, id uint32, localPort, remotePort uint16, iss Seq, ourMSS uint16) *Conn {
	if cfg.Counters == nil {
		cfg.Counters = new(Counters)
	}
	if cfg.Pool == nil {
		cfg.Pool = NewPool(0)
	}
	c := &Conn{cfg: cfg, ID: id, localPort: localPort, remotePort: remotePort, iss: iss, ourMSS: ourMSS}
	c.sndUna, c.sndNxt, c.sndMax = iss, iss, iss
	c.mss = min(DefaultMSS, ourMSS)
	c.rto = cfg.InitialRTO
	c.ssthresh = 1<<31 - 1 // RFC 5681 §3.1: arbitrarily high
	c.snd.setCap(cfg.SendBuffer)
	c.rcv.setCap(cfg.RecvBuffer)
	c.rcvShift = c.wantShift()
	return c
}

// DefaultMSS is the MSS assumed of a peer that sends no MSS option: 536 for IPv4
// (RFC 9293 §3.7.1).
const DefaultMSS = 536

// wantShift returns the window scale shift that lets the receive buffer be
// advertised in full (RFC 7323 §2.2), or 0 without window scaling.
func (c *Conn) wantShift() uint8 {
	if !c.cfg.WindowScale {
		return 0
	}
	var s uint8
	for s < wire.MaxWindowShift && c.rcv.cap>>s > 0xffff {
		s++
	}
	return s
}

// NewActive returns a connection in SYN_SENT, with the stack's handle id, that will send its SYN at the next
// Output (RFC 9293 §3.10.1, OPEN call in CLOSED state, active).
func NewActive(cfg *Config, id uint32, localPort, remotePort uint16, iss Seq, ourMSS uint16) *Conn {
	c := newConn(cfg, id, localPort, remotePort, iss, ourMSS)
	c.lastRecv = c.now()
	c.setState(SynSent)
	return c
}

// Write queues bytes from p for sending and returns how many fit in the send
// buffer. A short count comes with OK; nothing fits: ErrWouldBlock, and
// EvWritable is raised when room appears. Data may be queued from SYN_SENT on
// (RFC 9293 §3.10.2).
func (c *Conn) Write(p []byte) (int, tcpip.Error) {
	switch {
	case c.err != tcpip.OK:
		return 0, c.err
	case c.flags&(fShutWr|fReleased) != 0:
		return 0, tcpip.ErrClosed
	case c.state == Closed || c.state == Listen:
		return 0, tcpip.ErrNotConnected
	}
	n := min(len(p), c.snd.cap-c.sndLen)
	if n < len(p) {
		c.flags |= fWantWrite
	}
	if n == 0 {
		if len(p) == 0 {
			return 0, tcpip.OK
		}
		return 0, tcpip.ErrWouldBlock
	}
	c.snd.write(c.cfg.Pool, c.sndLen, p[:n])
	c.sndLen += n
	return n, tcpip.OK
}

// Read copies received bytes into p. With nothing to read it returns ErrEOF after
// the peer's FIN, the connection's error after a failure, or ErrWouldBlock
// (EvReadable follows when data arrives).
func (c *Conn) Read(p []byte) (int, tcpip.Error) {
	if c.rcvLen == 0 || len(p) == 0 {
		switch {
		case c.err != tcpip.OK:
			return 0, c.err
		case c.rcvLen > 0:
			return 0, tcpip.OK
		case c.flags&fFinRcvd != 0:
			return 0, tcpip.ErrEOF
		case c.state == Closed:
			return 0, tcpip.ErrClosed
		case c.state == Listen:
			return 0, tcpip.ErrNotConnected
		}
		return 0, tcpip.ErrWouldBlock
	}
	n := min(len(p), c.rcvLen)
	c.rcv.read(0, p[:n])
	c.rcv.consume(c.cfg.Pool, n)
	c.rcvLen -= n
	if c.rcvLen == 0 && c.ooo.empty() {
		c.rcv.release(c.cfg.Pool)
	}
	c.flags |= fWindowUpdate
	return n, tcpip.OK
}

// SetTimestampOffset sets the random offset of this connection's TSval clock
// (RFC 7323 §7.1), before its first Output.
func (c *Conn) SetTimestampOffset(off uint32) { c.tsOffset = off }

// tsNow is the TSval clock: milliseconds (RFC 7323 §5.4: between 1 ms and 1 s
// per tick) from the host's time, plus the connection's offset.
func (c *Conn) tsNow() uint32 { return uint32(c.now()/1_000_000) + c.tsOffset }

// Free returns the connection's buffers to the pool. The stack calls it when it
// forgets a connection; the Conn must not be used afterwards.
func (c *Conn) Free() {
	c.snd.release(c.cfg.Pool)
	c.rcv.release(c.cfg.Pool)
	c.sndLen, c.rcvLen = 0, 0
	c.ooo, c.sacked, c.rxt = nil, nil, nil
}

// Readable returns how many bytes Read would return now.
func (c *Conn) Readable() int { return c.rcvLen }

// Writable returns how many bytes Write would accept now.
func (c *Conn) Writable() int {
	if c.flags&(fShutWr|fReleased) != 0 || c.err != tcpip.OK || c.state == Closed {
		return 0
	}
	return c.snd.cap - c.sndLen
}

// Shutdown closes the send side: a FIN follows the queued data, and the
// connection keeps receiving (RFC 9293 §3.10.4, CLOSE as a half-close).
func (c *Conn) Shutdown() tcpip.Error {
	if c.err != tcpip.OK {
		return c.err
	}
	if c.flags&fShutWr != 0 {
		return tcpip.OK
	}
	switch c.state {
	case SynSent, SynReceived:
		// RFC 9293 §3.10.4 SYN-RECEIVED: "queue for processing after entering
		// ESTABLISHED state". tcpeng does the same in SYN-SENT, where the RFC
		// deletes the TCB, so that Dial, Write, Shutdown before the handshake
		// completes still delivers the data; Close with nothing queued does delete it.
		c.flags |= fShutWr
	case Established:
		// RFC 9293 §3.10.4: queue the FIN after the data; enter FIN-WAIT-1 now.
		c.flags |= fShutWr
		c.setState(FinWait1)
	case CloseWait:
		c.flags |= fShutWr
		c.setState(LastAck)
	case Closed, Listen:
		return tcpip.ErrNotConnected
	}
	return tcpip.OK
}

// Close releases the application's handle: the connection closes in the
// background (FIN, FIN_WAIT_2 with a timeout, TIME_WAIT). If received data was
// never read, or data arrives after Close, the connection is reset instead to show
// that data was lost (RFC 1122 §4.2.2.13, RFC 2525 §2.17).
func (c *Conn) Close() {
	c.flags = (c.flags | fReleased) &^ fWantWrite
	switch {
	case c.state == Closed:
		return
	case c.rcvLen > 0 || !c.ooo.empty():
		c.Abort()
		return
	case c.state == SynSent && c.sndLen == 0:
		// RFC 9293 §3.10.4 SYN-SENT: delete the TCB.
		c.setState(Closed)
		return
	}
	if c.Shutdown() != tcpip.OK {
		return
	}
	if c.state == FinWait2 {
		c.arm(timerClose, c.cfg.FinWait2Timeout)
	}
}

// Abort resets the connection (RFC 9293 §3.10.5): in a synchronized state or
// SYN_RCVD a RST with SEQ=SND.NXT is sent, and the connection is CLOSED.
func (c *Conn) Abort() {
	c.flags |= fReleased
	switch c.state {
	case SynReceived, Established, FinWait1, FinWait2, CloseWait:
		c.sendReset(c.sndMax, 0, wire.FlagRST)
	}
	if c.state != Closed {
		c.err = tcpip.ErrAborted
		c.setState(Closed)
	}
}

// SetOption sets a per-connection option.
func (c *Conn) SetOption(o Option, v int64) tcpip.Error {
	switch o {
	case OptNoDelay:
		c.setFlag(fNoDelay, v != 0)
	case OptKeepalive:
		c.setFlag(fKeepalive, v != 0)
		c.timers[timerKeepalive] = 0
	case OptSendBuffer:
		if v < 1 || v > 1<<30 || int(v) < c.sndLen {
			return tcpip.ErrInvalid
		}
		if c.sndLen == 0 {
			c.snd.release(c.cfg.Pool)
			c.snd.setCap(int(v))
		} else if int(v) <= c.snd.size()-ChunkSize {
			c.snd.cap = int(v)
		} else {
			return tcpip.ErrInvalid
		}
	case OptRecvBuffer:
		// The window scale is fixed by the SYN; a larger buffer than it can
		// advertise is allowed but only 65535<<shift of it is offered.
		if v < 1 || v > 1<<30 || c.rcvLen > 0 || !c.ooo.empty() || c.state.Synchronized() && int(v) < int(c.rcvAdv.Size(c.rcvNxt)) {
			return tcpip.ErrInvalid
		}
		c.rcv.release(c.cfg.Pool)
		c.rcv.setCap(int(v))
		if c.state == Closed || c.state == SynSent && c.sndMax == c.iss {
			c.rcvShift = c.wantShift()
		}
	default:
		return tcpip.ErrInvalid
	}
	c.updateTimers()
	return tcpip.OK
}

func (c *Conn) setFlag(f uint32, on bool) {
	if on {
		c.flags |= f
	} else {
		c.flags &^= f
	}
}

func (c *Conn) arm(t int, d tcpip.Duration) { c.timers[t] = c.now().Add(d) }

// now is the time of the call in progress (Input, Output, Timeout).
func (c *Conn) now() tcpip.Time { return c.cfg.now }

// sendReset queues a RST to be sent by the next Output.
func (c *Conn) sendReset(seq, ack Seq, flags wire.Flags) {
	c.rstSeq, c.rstAck, c.rstFlags = seq, ack, flags
	c.cfg.Counters.RSTsOut++
}
