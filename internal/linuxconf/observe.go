package linuxconf

import (
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"golang.org/x/sys/unix"
)

// maxEvents bounds the events one run records.
const maxEvents = 100000

func (r *lrun) addEvent(at time.Time, ev engine.Event, port uint16, listener bool) {
	if len(r.events) < maxEvents {
		r.events = append(r.events, obsEvent{at: at, st: r.scriptTime(at), ev: ev, port: port, listener: listener})
	}
}

// sample turns what the kernel shows into the script's events:
//
//   - poll(2) on every socket the application holds: the listener's POLLIN
//     rising is "acceptable"; a connecting socket's POLLOUT is "connected";
//     POLLIN rising is "readable", POLLRDHUP rising (without POLLERR)
//     "peer-closed", POLLOUT rising after it was clear "writable"; POLLERR
//     makes the runner read SO_ERROR, which gives "reset" (ECONNRESET,
//     ECONNREFUSED, and EPIPE, Linux's error for a reset in CLOSE-WAIT) or
//     "error" (ETIMEDOUT, EHOSTUNREACH, ...), and becomes the socket's sticky
//     error;
//   - sock_diag: every TCP socket of the namespace with its state, also after
//     close(2) (orphans, TIME_WAIT) and before accept(2) (request sockets):
//     a change of a flow's state is "state FROM->TO", a flow that disappears
//     went to CLOSED ("closed").
func (r *lrun) sample() {
	now := time.Now()
	r.lastSample = now
	r.pollSockets(now)
	r.diagStates(now)
}

func (r *lrun) pollSockets(now time.Time) {
	var all []*sock
	if r.listener != nil {
		all = append(all, r.listener)
	}
	for _, s := range r.socks {
		all = append(all, s)
	}
	if len(all) == 0 {
		return
	}
	fds := make([]unix.PollFd, len(all))
	for i, s := range all {
		fds[i] = unix.PollFd{Fd: int32(s.fd), Events: unix.POLLIN | unix.POLLOUT | unix.POLLRDHUP}
	}
	for {
		if _, err := unix.Poll(fds, 0); err != unix.EINTR {
			break
		}
	}
	for i, s := range all {
		rev := fds[i].Revents
		if rev&unix.POLLNVAL != 0 {
			continue
		}
		rising := rev
		if s.sampled {
			rising = rev &^ s.prev
		}
		if s.listener {
			if rising&unix.POLLIN != 0 {
				r.addEvent(now, engine.Event{Kind: engine.EventAcceptable}, 0, true)
			}
			s.prev, s.sampled = rev, true
			continue
		}
		justConnected := false
		if rev&unix.POLLERR != 0 {
			r.socketError(now, s)
			s.connecting = false
		} else if s.connecting && rev&unix.POLLOUT != 0 {
			s.connecting, justConnected = false, true
			r.addEvent(now, engine.Event{Kind: engine.EventConnected}, s.port, false)
		}
		if rising&unix.POLLIN != 0 {
			r.addEvent(now, engine.Event{Kind: engine.EventReadable}, s.port, false)
		}
		if rising&unix.POLLRDHUP != 0 && rev&unix.POLLERR == 0 {
			r.addEvent(now, engine.Event{Kind: engine.EventPeerClosed}, s.port, false)
		}
		if s.sampled && !justConnected && !s.connecting && rising&unix.POLLOUT != 0 {
			r.addEvent(now, engine.Event{Kind: engine.EventWritable}, s.port, false)
		}
		s.prev, s.sampled = rev, true
	}
}

// socketError reads (and so clears) a socket's pending error and records it
// as an event and as the socket's sticky error.
func (r *lrun) socketError(now time.Time, s *sock) {
	v, err := unix.GetsockoptInt(s.fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil || v == 0 {
		return
	}
	kind, e := connError(unix.Errno(v))
	if s.err == engine.OK {
		s.err = e
	}
	r.addEvent(now, engine.Event{Kind: kind, Err: e}, s.port, false)
}

// connError maps a connection's SO_ERROR onto the script's event and error.
func connError(errno unix.Errno) (engine.EventKind, engine.Error) {
	switch errno {
	case unix.ECONNRESET, unix.EPIPE:
		return engine.EventReset, engine.ErrReset
	case unix.ECONNREFUSED:
		return engine.EventReset, engine.ErrRefused
	case unix.ETIMEDOUT:
		return engine.EventError, engine.ErrTimedOut
	case unix.EHOSTUNREACH, unix.ENETUNREACH, unix.EHOSTDOWN, unix.ENETDOWN:
		return engine.EventError, engine.ErrUnreachable
	case unix.ECONNABORTED:
		return engine.EventError, engine.ErrAborted
	}
	return engine.EventError, errnoError(errno)
}

func (r *lrun) diagStates(now time.Time) {
	if r.e.diag < 0 {
		return
	}
	socks, err := dumpTCP(r.e.diag, r.diagBuf, r.diagOut)
	r.diagOut = socks
	if err != nil {
		return // a failed dump is a missed sample, not a state change
	}
	cur := map[uint16]engine.State{}
	for _, d := range socks {
		if d.local != r.s.Local || d.remote.Addr() != r.s.Remote.Addr() || d.remote.Port() == 0 {
			continue
		}
		p := d.remote.Port()
		// A TIME_WAIT socket and the request socket of a new incarnation may
		// both be there for a moment: the new one counts.
		if old, ok := cur[p]; ok && d.state == engine.StateTimeWait && old != engine.StateTimeWait {
			continue
		}
		cur[p] = d.state
	}
	for p, st := range cur {
		prev, seen := r.states[p]
		if !seen {
			prev = engine.StateClosed
			if st == engine.StateSynReceived && r.listener != nil {
				prev = engine.StateListen
			}
		}
		if prev != st {
			r.addEvent(now, engine.Event{Kind: engine.EventState, From: prev, To: st}, p, false)
			if st == engine.StateClosed {
				r.addEvent(now, engine.Event{Kind: engine.EventClosed}, p, false)
			}
		}
		r.states[p] = st
	}
	for p, prev := range r.states {
		if _, ok := cur[p]; ok || prev == engine.StateClosed {
			continue
		}
		r.addEvent(now, engine.Event{Kind: engine.EventState, From: prev, To: engine.StateClosed}, p, false)
		r.addEvent(now, engine.Event{Kind: engine.EventClosed}, p, false)
		r.states[p] = engine.StateClosed
	}
}
