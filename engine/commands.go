package engine

import (
	"net/netip"

	"github.com/tcpeng/tcpeng/engine/internal/siphash"
	"github.com/tcpeng/tcpeng/engine/tcp"
)

// Listen starts listening on local (RFC 9293 §3.10.1, passive OPEN). The address
// must be one of the stack's or unspecified (all of them); the port must not be
// 0, except with Config.Forward, where the unspecified address and port 0 make a
// listener for every connection no other listener takes. backlog bounds the
// connections held for Accept, half-open ones included (0: Config.Backlog).
// EventAcceptable follows when a connection is ready.
func (s *Stack) Listen(local netip.AddrPort, backlog int) (ConnID, Error) {
	a := local.Addr()
	switch {
	case backlog < 0 || local.Port() == 0 && !(s.cfg.Forward && a.IsUnspecified()):
		return 0, ErrInvalid
	case !a.IsValid() || (!a.IsUnspecified() && !s.isLocal(a)):
		return 0, ErrAddrNotAvail
	case !a.Is4():
		return 0, ErrAddrNotAvail // IPv6 comes with the IPv6 layer
	}
	if _, dup := s.listeners[local]; dup {
		return 0, ErrAddrInUse
	}
	if backlog == 0 {
		backlog = s.cfg.Backlog
	}
	idx, err := s.allocSlot(slotListener)
	if err != OK {
		return 0, err
	}
	s.slots[idx].lis = &listener{addr: local, backlog: backlog}
	s.listeners[local] = idx
	return s.id(idx), OK
}

// Dial opens a connection to remote (RFC 9293 §3.10.1, active OPEN). local may
// be the zero AddrPort: the address is then the stack's first IPv4 address and
// the port an ephemeral one chosen at random (RFC 6056 §3.3.1). The SYN goes
// out at the next PollFrame; EventConnected, or EventReset/EventError, follows.
func (s *Stack) Dial(now Time, local, remote netip.AddrPort) (ConnID, Error) {
	s.setNow(now)
	ra := remote.Addr()
	if !ra.Is4() || remote.Port() == 0 || ra.IsUnspecified() || ra.IsMulticast() || ra == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return 0, ErrInvalid
	}
	la := local.Addr()
	if !la.IsValid() || la.IsUnspecified() {
		la = s.firstIPv4()
	} else if !s.isLocal(la) || !la.Is4() {
		return 0, ErrAddrNotAvail
	}
	tp := tuple{netip.AddrPortFrom(la, local.Port()), remote}
	if local.Port() == 0 {
		port, ok := s.ephemeralPort(la, remote)
		if !ok {
			return 0, ErrAddrNotAvail
		}
		tp.local = netip.AddrPortFrom(la, port)
	} else if _, busy := s.conns.lookup(&tp, s.tupleAt); busy {
		return 0, ErrAddrInUse
	}
	idx, err := s.allocSlot(slotConn)
	if err != OK {
		return 0, err
	}
	sl := &s.slots[idx]
	sl.tuple = tp
	iss, tsOff := s.isn(&tp)
	c := tcp.NewActive(&s.tcpCfg, uint32(s.id(idx)), tp.local.Port(), remote.Port(), iss, s.ourMSS())
	c.SetTimestampOffset(tsOff)
	sl.conn = c
	s.conns.insert(&tp, idx, s.tupleAt)
	sl.flags |= sfInTable
	s.touch(idx)
	return s.id(idx), OK
}

func (s *Stack) firstIPv4() netip.Addr {
	for _, a := range s.cfg.Addrs {
		if a.Is4() {
			return a
		}
	}
	return netip.Addr{}
}

// ourMSS is the MSS offered: the MTU less the IPv4 and TCP headers (RFC 9293 §3.7.1).
func (s *Stack) ourMSS() uint16 { return uint16(s.cfg.MTU - 40) }

// isn returns an initial sequence number by RFC 6528 §3: ISN = M + F(localip,
// localport, remoteip, remoteport, secretkey), with M a timer ticking every 4
// microseconds and F keyed SipHash-2-4; and the connection's TSval offset
// (RFC 7323 §7.1), the other half of the same hash.
func (s *Stack) isn(tp *tuple) (tcp.Seq, uint32) {
	var b [36]byte
	l, r := tp.local.Addr().As16(), tp.remote.Addr().As16()
	copy(b[0:16], l[:])
	copy(b[16:32], r[:])
	b[32], b[33] = byte(tp.local.Port()>>8), byte(tp.local.Port())
	b[34], b[35] = byte(tp.remote.Port()>>8), byte(tp.remote.Port())
	f := siphash.Sum64(s.key, b[:])
	m := uint32(s.now / 4000)
	return tcp.Seq(m + uint32(f)), uint32(f >> 32)
}

// ephemeralPort picks a free local port for a connection to remote by RFC 6056
// §3.3.3 (Algorithm 3, simple hash-based): the search starts at a keyed hash of
// the addresses plus a counter that every Dial advances, so ports to one
// destination are unpredictable to others, and one destination sees its ports
// again only after the whole range. (Algorithm 1, a fresh random start each
// time, soon picks the port of a connection that closed a moment ago, whose
// 4-tuple the peer still holds in TIME_WAIT, and the new SYN is refused.) A
// port is free if the 4-tuple is unused and no listener holds the port.
func (s *Stack) ephemeralPort(la netip.Addr, remote netip.AddrPort) (uint16, bool) {
	lo, hi := uint32(s.cfg.EphemeralLow), uint32(s.cfg.EphemeralHigh)
	n := hi - lo + 1
	var b [34]byte
	l, r := la.As16(), remote.Addr().As16()
	copy(b[0:16], l[:])
	copy(b[16:32], r[:])
	b[32], b[33] = byte(remote.Port()>>8), byte(remote.Port())
	start := uint32(siphash.Sum64(s.key, b[:])) + s.nextEphemeral
	for i := range n {
		port := uint16(lo + (start+i)%n)
		tp := tuple{netip.AddrPortFrom(la, port), remote}
		if _, busy := s.conns.lookup(&tp, s.tupleAt); busy {
			continue
		}
		if _, l := s.listeners[tp.local]; l {
			continue
		}
		if _, l := s.listeners[netip.AddrPortFrom(netip.IPv4Unspecified(), port)]; l {
			continue
		}
		s.nextEphemeral += i + 1 // RFC 6056 §3.3.3: next_ephemeral advances past the port taken
		return port, true
	}
	return 0, false
}

// Accept takes the oldest established connection from listener id, or returns
// ErrWouldBlock.
func (s *Stack) Accept(id ConnID) (ConnID, Error) {
	lidx, err := s.lookup(id, slotListener)
	if err != OK {
		return 0, err
	}
	l := s.slots[lidx].lis
	if len(l.ready) == 0 {
		return 0, ErrWouldBlock
	}
	idx := l.ready[0]
	copy(l.ready, l.ready[1:])
	l.ready = l.ready[:len(l.ready)-1]
	l.held--
	sl := &s.slots[idx]
	sl.parent = 0
	sl.flags &^= sfQueued
	if len(l.ready) > 0 {
		s.raiseListener(lidx)
	}
	// Events raised before Accept (data, FIN) are reported now.
	if sl.pending != 0 && sl.flags&sfEvents == 0 {
		sl.flags |= sfEvents
		s.evq.push(idx)
	}
	return s.id(idx), OK
}

// Write queues data on connection id and returns how much was taken. A short
// count is not an error; with no room at all it returns ErrWouldBlock, and
// EventWritable follows when room appears.
func (s *Stack) Write(id ConnID, data []byte) (int, Error) {
	idx, err := s.lookup(id, slotConn)
	if err != OK {
		return 0, err
	}
	n, err := s.slots[idx].conn.Write(data)
	s.touch(idx)
	return n, err
}

// Read copies received data of connection id into buf. With nothing to read it
// returns ErrWouldBlock (EventReadable follows), ErrEOF after the peer's FIN, or
// the connection's error.
func (s *Stack) Read(id ConnID, buf []byte) (int, Error) {
	idx, err := s.lookup(id, slotConn)
	if err != OK {
		return 0, err
	}
	n, err := s.slots[idx].conn.Read(buf)
	s.touch(idx)
	return n, err
}

// Shutdown closes the send side of connection id: a FIN follows the queued data;
// the connection keeps receiving (half-close).
func (s *Stack) Shutdown(id ConnID) Error {
	idx, err := s.lookup(id, slotConn)
	if err != OK {
		return err
	}
	err = s.slots[idx].conn.Shutdown()
	s.touch(idx)
	return err
}

// Close releases id. A connection closes gracefully in the background (a reset
// if received data was left unread); EventClosed reports its end. A listener
// stops and resets the connections it holds. The ID is invalid afterwards.
func (s *Stack) Close(id ConnID) Error { return s.release(id, false) }

// Abort resets connection id (RFC 9293 §3.10.5) and releases it.
func (s *Stack) Abort(id ConnID) Error { return s.release(id, true) }

// release is Close, or Abort when abort is set. The application's pending
// events are dropped (a closed connection may still report EventClosed).
func (s *Stack) release(id ConnID, abort bool) Error {
	idx, err := s.lookup(id, slotFree)
	if err != OK {
		return err
	}
	sl := &s.slots[idx]
	if sl.kind == slotListener {
		s.closeListener(idx)
		return OK
	}
	sl.flags |= sfReleased
	if abort {
		sl.pending = 0
		sl.conn.Abort()
	} else {
		sl.pending &= tcp.EvClosed
		sl.conn.Close()
	}
	s.touch(idx)
	s.maybeFree(idx)
	return OK
}

// closeListener removes a listener and resets every connection it holds
// (half-open or waiting for Accept), as Linux does.
func (s *Stack) closeListener(lidx uint32) {
	l := s.slots[lidx].lis
	delete(s.listeners, l.addr)
	for i := range s.slots {
		sl := &s.slots[i]
		if sl.kind == slotConn && sl.parent == lidx+1 {
			sl.parent = 0
			sl.flags = (sl.flags | sfReleased) &^ sfQueued
			sl.pending = 0
			sl.conn.Abort()
			s.touch(uint32(i))
			s.maybeFree(uint32(i))
		}
	}
	s.slots[lidx].flags |= sfReleased
	if s.slots[lidx].flags&sfEvents == 0 {
		s.freeSlot(lidx)
	}
}

// SetOption sets a per-connection option.
func (s *Stack) SetOption(id ConnID, o Option, v int64) Error {
	idx, err := s.lookup(id, slotConn)
	if err != OK {
		return err
	}
	err = s.slots[idx].conn.SetOption(o, v)
	s.touch(idx)
	return err
}
