package engine

import (
	"encoding/binary"

	"github.com/tcpeng/tcpeng/engine/tcp"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// PollFrame writes the next frame to send into buf and returns its length, or 0
// when nothing is queued. buf must hold Config.MTU bytes; a shorter buf gets 0
// and the frame stays queued. With Config.SegmentOffload a longer buf may get
// a TCP frame longer than the MTU (up to 65535 bytes), to be cut at the MTU.
func (s *Stack) PollFrame(buf []byte) int {
	if len(buf) < s.cfg.MTU {
		return 0
	}
	end := s.cfg.MTU
	if s.cfg.SegmentOffload {
		end = min(len(buf), wire.IPv4MaxTotalLen)
	}
	if s.ctlLen > 0 {
		c := &s.ctl[s.ctlHead]
		s.ctlHead = (s.ctlHead + 1) % len(s.ctl)
		s.ctlLen--
		n := wire.PutTCP(buf[wire.IPv4MinHeaderLen:], wire.TCPHeader{
			SrcPort: c.src.Port(), DstPort: c.dst.Port(), Seq: c.seq, Ack: c.ack, Flags: wire.Flags(c.flags),
		}, nil)
		s.stats.ResetsSent++
		return s.finishIPv4(buf, &tuple{c.src, c.dst}, n)
	}
	for {
		idx, ok := s.dirty.pop()
		if !ok {
			return 0
		}
		sl := &s.slots[idx]
		sl.flags &^= sfDirty
		if sl.kind != slotConn {
			continue
		}
		n := sl.conn.Output(buf[wire.IPv4MinHeaderLen:end])
		sum := sl.conn.OutputSum()
		tp := sl.tuple       // update may free the slot (a closed connection's last segment)
		s.update(idx, n > 0) // with more to send, back of the queue: connections take turns
		if n > 0 {
			return s.finishIPv4Sum(buf, &tp, n, sum)
		}
		s.maybeFree(idx)
	}
}

// finishIPv4 writes the IPv4 header in front of the n-byte TCP segment at
// buf[20:] and the TCP checksum, and returns the packet length.
func (s *Stack) finishIPv4(buf []byte, tp *tuple, n int) int {
	seg := buf[wire.IPv4MinHeaderLen : wire.IPv4MinHeaderLen+n]
	seg[16], seg[17] = 0, 0
	sum := uint16(0)
	if !s.cfg.PartialChecksums {
		sum = wire.Checksum(seg, 0)
	}
	return s.finishIPv4Sum(buf, tp, n, sum)
}

// finishIPv4Sum is finishIPv4 for a segment whose sum (checksum field zero) is
// known: RFC 9293 §3.1's checksum is the complement of it plus the pseudo-header.
// With Config.PartialChecksums the segment was not summed and the field gets
// the pseudo-header's sum alone, for the link to finish.
//
// A frame longer than the MTU (Config.SegmentOffload) stands for the pieces
// the link cuts it into: its checksum is left partial, it takes the IDs of
// all of them (the cutter gives piece i the frame's ID plus i), and counts as
// that many frames.
func (s *Stack) finishIPv4Sum(buf []byte, tp *tuple, n int, sum uint16) int {
	src, dst := tp.local.Addr(), tp.remote.Addr()
	total := wire.IPv4MinHeaderLen + n
	pieces := 1
	if total > s.cfg.MTU {
		hl := wire.IPv4MinHeaderLen + int(buf[wire.IPv4MinHeaderLen+12]>>4)*4
		room := s.cfg.MTU - hl
		pieces = (total - hl + room - 1) / room
	}
	ck := wire.PseudoHeaderChecksum(wire.ProtoTCP, src, dst, n)
	if !s.cfg.PartialChecksums && pieces == 1 {
		ck = ^wire.ChecksumCombine(sum, ck)
	}
	binary.BigEndian.PutUint16(buf[wire.IPv4MinHeaderLen+16:], ck)
	s.ipID++
	wire.PutIPv4(buf, wire.IPv4Header{
		TotalLen: total, ID: s.ipID, Flags: wire.IPv4DontFragment, TTL: defaultTTL,
		Protocol: wire.ProtoTCP, Src: src, Dst: dst,
	})
	s.ipID += uint16(pieces - 1)
	s.stats.FramesOut += uint64(pieces)
	return total
}

// defaultTTL is the TTL of packets sent (RFC 1700's recommendation, Linux's default).
const defaultTTL = 64

// PollEvent returns the next event, or false when there is none.
func (s *Stack) PollEvent() (Event, bool) {
	if s.traceLen > 0 {
		ev := s.trace[s.traceHead]
		s.traceHead = (s.traceHead + 1) % len(s.trace)
		s.traceLen--
		return ev, true
	}
	for {
		idx, ok := s.evq.peek()
		if !ok {
			return Event{}, false
		}
		sl := &s.slots[idx]
		if ev, ok := s.nextEvent(idx); ok {
			return ev, true
		}
		s.evq.pop()
		sl.flags &^= sfEvents
		if sl.kind == slotListener && sl.flags&sfReleased != 0 {
			s.freeSlot(idx)
		} else {
			s.maybeFree(idx)
		}
	}
}

// eventOrder is the order in which a connection's pending events are reported.
var eventOrder = [...]struct {
	bit  uint8
	kind EventKind
}{
	{tcp.EvConnected, EventConnected},
	{tcp.EvReadable, EventReadable},
	{tcp.EvPeerFin, EventPeerClosed},
	{tcp.EvWritable, EventWritable},
	{tcp.EvReset, EventReset},
	{tcp.EvError, EventError},
	{tcp.EvClosed, EventClosed},
	{evAcceptable, EventAcceptable},
}

// nextEvent takes one pending event of slot idx. A connection waiting in a
// listener's accept queue reports nothing until it is accepted.
func (s *Stack) nextEvent(idx uint32) (Event, bool) {
	sl := &s.slots[idx]
	if sl.flags&sfQueued != 0 {
		return Event{}, false
	}
	for _, e := range eventOrder {
		if sl.pending&e.bit == 0 {
			continue
		}
		sl.pending &^= e.bit
		ev := Event{Kind: e.kind, Conn: s.id(idx)}
		if e.kind == EventReset || e.kind == EventError || e.kind == EventClosed {
			ev.Err = sl.conn.Err() // for EventClosed: OK after a clean close, or what ended it
		}
		return ev, true
	}
	return Event{}, false
}

// PollDeadline returns when HandleTimeout must next be called: the earliest
// timer of any connection, or Never.
func (s *Stack) PollDeadline() Time {
	if s.ctlLen > 0 || s.dirty.size > 0 {
		return s.now
	}
	if len(s.heap.h) == 0 {
		return Never
	}
	return s.slots[s.heap.h[0]].deadline
}
