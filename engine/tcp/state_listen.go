package tcp

import "github.com/tcpeng/tcpeng/engine/wire"

// ListenAction is what a listener does with a segment.
type ListenAction uint8

// Listen actions (RFC 9293 §3.10.7.2).
const (
	ListenIgnore ListenAction = iota // drop it
	ListenReset                      // answer <SEQ=SEG.ACK><CTL=RST>
	ListenOpen                       // a SYN: open a connection in SYN_RCVD (NewPassive)
)

// ListenInput says what a listener does with a segment (RFC 9293 §3.10.7.2):
// an RST is ignored, an ACK is answered with a reset, a SYN opens a connection,
// anything else is dropped.
func ListenInput(seg *wire.Segment) ListenAction {
	switch f := seg.Flags; {
	case f&wire.FlagRST != 0:
		return ListenIgnore
	case f&wire.FlagACK != 0:
		return ListenReset
	case f&wire.FlagSYN != 0:
		return ListenOpen
	}
	return ListenIgnore
}

// NewPassive returns a connection opened by the SYN seg to a listener, in
// SYN_RCVD, with the stack's handle id, which sends its SYN-ACK at the next Output (RFC 9293 §3.10.7.2, third).
// Text on the SYN is not kept: the peer sends it again once the handshake completes.
func NewPassive(cfg *Config, id uint32, seg *wire.Segment, localPort, remotePort uint16, iss Seq, ourMSS uint16) *Conn {
	c := newConn(cfg, id, localPort, remotePort, iss, ourMSS)
	c.flags |= fPassive
	c.lastRecv = c.now()
	c.irs = seg.Seq
	c.rcvNxt = seg.Seq.Add(1)
	c.takeSynOptions(seg, cfg.WindowScale)
	c.sndWnd, c.sndWl1, c.sndWl2 = uint32(seg.Window), seg.Seq, iss
	c.maxSndWnd = c.sndWnd
	c.state = Listen // so that the first transition reported is LISTEN -> SYN_RCVD
	c.setState(SynReceived)
	return c
}

// ResetFor returns the reset that answers seg when no connection exists
// (RFC 9293 §3.10.7.1): none for a reset; <SEQ=SEG.ACK><CTL=RST> if seg has an
// ACK; otherwise <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
func ResetFor(seg *wire.Segment) (seq, ack Seq, flags wire.Flags, ok bool) {
	switch {
	case seg.Flags&wire.FlagRST != 0:
		return 0, 0, 0, false
	case seg.Flags&wire.FlagACK != 0:
		return seg.Ack, 0, wire.FlagRST, true
	}
	return 0, seg.End(), wire.FlagRST | wire.FlagACK, true
}
