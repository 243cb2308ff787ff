package engine

import (
	"net/netip"

	"github.com/tcpeng/tcpeng/engine/tcp"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// HandleFrame processes one frame that arrived at time now: in this mode an IPv4
// packet with no link-layer header. Malformed, misaddressed and corrupted frames
// are dropped and counted (Stats); nothing a frame holds can make the stack
// panic. The frame is not retained.
func (s *Stack) HandleFrame(now Time, frame []byte) {
	s.setNow(now)
	s.stats.FramesIn++
	if len(frame) == 0 {
		s.stats.DropMalformed++
		return
	}
	switch frame[0] >> 4 {
	case 4:
		s.ipv4Input(frame)
	case 6:
		s.stats.DropProtocol++ // IPv6 comes with the IPv6 layer
	default:
		s.stats.DropMalformed++
	}
}

func (s *Stack) ipv4Input(b []byte) {
	ip, err := wire.ParseIPv4(b)
	if err != nil {
		s.stats.DropMalformed++
		return
	}
	if !s.cfg.TrustLink && !ip.ChecksumValid() {
		s.stats.DropChecksum++
		return
	}
	src, dst := ip.Src(), ip.Dst()
	if s.cfg.Forward && martian(dst) || !s.cfg.Forward && !s.isLocal(dst) {
		s.stats.DropNotForUs++
		return
	}
	if martian(src) {
		s.stats.DropMartian++
		return
	}
	if ip.IsFragment() {
		s.stats.DropFragment++
		return
	}
	switch ip.Protocol() {
	case wire.ProtoTCP:
		s.tcpInput(src, dst, ip.Payload())
	default:
		s.stats.DropProtocol++
	}
}

// martian reports a source address no host may send from (RFC 1122 §3.2.1.3,
// RFC 9293 §3.9.2.1): unspecified, broadcast, multicast.
func martian(a netip.Addr) bool {
	return a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255})
}

func (s *Stack) tcpInput(src, dst netip.Addr, b []byte) {
	t, err := wire.ParseTCP(b)
	if err != nil {
		s.stats.DropMalformed++
		return
	}
	if !s.cfg.TrustLink && !t.ChecksumValid(src, dst) {
		s.stats.DropChecksum++
		return
	}
	if t.SrcPort() == 0 || t.DstPort() == 0 {
		s.stats.DropMartian++
		return
	}
	seg := t.Segment()
	tp := tuple{netip.AddrPortFrom(dst, t.DstPort()), netip.AddrPortFrom(src, t.SrcPort())}
	if idx, ok := s.conns.lookup(&tp, s.tupleAt); ok {
		c := s.slots[idx].conn
		v := c.Input(&seg, t.Payload())
		s.touch(idx)
		switch v {
		case tcp.NoConnection:
			s.resetFor(&tp, &seg)
			return
		case tcp.Reopen:
			// RFC 9293 §3.10.7.4: a new SYN ends TIME_WAIT; the listener takes it.
			c.Abort()
			s.touch(idx)
		default:
			return
		}
	}
	lidx, ok := s.listeners[tp.local]
	if !ok {
		lidx, ok = s.listeners[netip.AddrPortFrom(netip.IPv4Unspecified(), tp.local.Port())]
	}
	if !ok && s.cfg.Forward {
		lidx, ok = s.listeners[netip.AddrPortFrom(netip.IPv4Unspecified(), 0)]
	}
	if !ok {
		s.resetFor(&tp, &seg) // RFC 9293 §3.10.7.1: CLOSED
		return
	}
	switch tcp.ListenInput(&seg) {
	case tcp.ListenReset:
		s.queueControl(&tp, seg.Ack, 0, wire.FlagRST)
	case tcp.ListenOpen:
		s.passiveOpen(lidx, &tp, &seg)
	}
}

// passiveOpen creates a connection in SYN_RCVD for a SYN to listener lidx
// (RFC 9293 §3.10.7.2, third), unless the backlog or the table is full.
func (s *Stack) passiveOpen(lidx uint32, tp *tuple, seg *wire.Segment) {
	l := s.slots[lidx].lis
	if l.held >= l.backlog {
		s.stats.DropBacklog++
		return
	}
	idx, err := s.allocSlot(slotConn)
	if err != OK {
		s.stats.DropConnLimit++
		return
	}
	sl := &s.slots[idx]
	sl.tuple = *tp
	sl.parent = lidx + 1
	l.held++
	iss, tsOff := s.isn(tp)
	c := tcp.NewPassive(&s.tcpCfg, uint32(s.id(idx)), seg, tp.local.Port(), tp.remote.Port(), iss, s.ourMSS())
	c.SetTimestampOffset(tsOff)
	sl.conn = c
	s.conns.insert(tp, idx, s.tupleAt)
	sl.flags |= sfInTable
	s.touch(idx)
}

// resetFor queues the reset that answers seg when no connection takes it.
func (s *Stack) resetFor(tp *tuple, seg *wire.Segment) {
	if seq, ack, flags, ok := tcp.ResetFor(seg); ok {
		s.queueControl(tp, seq, ack, flags)
	}
}

func (s *Stack) queueControl(tp *tuple, seq, ack tcp.Seq, flags wire.Flags) {
	if s.ctlLen == len(s.ctl) {
		s.stats.DropControl++
		return
	}
	s.ctl[(s.ctlHead+s.ctlLen)%len(s.ctl)] = control{src: tp.local, dst: tp.remote, seq: seq, ack: ack, flags: uint8(flags)}
	s.ctlLen++
}

// HandleTimeout runs every timer due at now.
func (s *Stack) HandleTimeout(now Time) {
	s.setNow(now)
	// Each connection due is run once per call: its timers re-arm in the future.
	for n := len(s.heap.h); n > 0 && len(s.heap.h) > 0; n-- {
		idx := s.heap.h[0]
		if s.slots[idx].deadline > s.now {
			return
		}
		s.slots[idx].conn.Timeout()
		before := s.slots[idx].deadline
		s.touch(idx)
		if s.slots[idx].kind == slotConn && s.slots[idx].deadline == before && before <= s.now {
			s.setDeadline(idx, s.now+1) // a timer that did not move: never spin
		}
	}
}
