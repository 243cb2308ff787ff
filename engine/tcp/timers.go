package tcp

import "github.com/tcpeng/tcpeng/engine/tcpip"

// Timeout runs every timer of the connection that is due at the current time.
// Call Output afterwards.
func (c *Conn) Timeout() {
	now := c.now()
	for t := range numTimers {
		if c.state == Closed {
			return
		}
		if d := c.timers[t]; d != 0 && d <= now {
			c.timers[t] = 0
			c.fire(t)
		}
	}
	c.updateTimers()
}

func (c *Conn) fire(t int) {
	switch t {
	case timerRTO:
		c.retransmitTimeout()
	case timerPersist:
		// RFC 9293 §3.8.6.1: probe the zero window with one octet. The backoff
		// grows with each probe; unanswered probes count toward MaxRetries.
		if int(c.probes) >= c.cfg.MaxRetries {
			c.fail(tcpip.ErrTimedOut)
			return
		}
		c.probes++
		c.persistN = min(c.persistN+1, 16)
		c.sndNxt = c.sndUna
		c.flags |= fProbe
	case timerDelAck:
		c.flags |= fAckNow
	case timerKeepalive:
		if c.sndUna != c.sndMax || c.unsent() > 0 {
			c.arm(timerKeepalive, c.cfg.KeepaliveIdle) // retransmission covers a busy connection
			return
		}
		if int(c.probes) >= c.cfg.KeepaliveCount {
			c.fail(tcpip.ErrTimedOut)
			return
		}
		c.probes++
		c.flags |= fKeepaliveProbe
		c.arm(timerKeepalive, c.cfg.KeepaliveInterval)
	case timerClose:
		// TIME_WAIT's 2×MSL is over, or a closed connection waited long enough in
		// FIN_WAIT_2 (Linux's tcp_fin_timeout; RFC 9293 leaves FIN-WAIT-2 open).
		c.events |= EvClosed
		c.setState(Closed)
	}
}

// retransmitTimeout is the expiry of the retransmission timer (RFC 6298 §5.4-5.6):
// back off, collapse the congestion window (RFC 5681 §3.1), and send again from
// SND.UNA. After MaxRetries (SynRetries for a SYN) the connection fails.
func (c *Conn) retransmitTimeout() {
	if c.sndUna == c.sndMax {
		return
	}
	if c.state.Synchronized() && c.sndWnd == 0 {
		// The peer closed its window with our data in flight (it may have dropped
		// it). The retransmission is then a window probe (RFC 9293 §3.8.6.1): the
		// connection stays open while the peer answers, and fails only after
		// MaxRetries unanswered probes, as Linux's tcp_retransmit_timer does.
		if int(c.probes) >= c.cfg.MaxRetries {
			c.fail(tcpip.ErrTimedOut)
			return
		}
		c.probes++
		c.persistN = min(c.persistN+1, 16)
		c.sndNxt = c.sndUna
		c.flags |= fProbe
		c.timers[timerRTO] = 0 // the persist timer takes over (updateTimers)
		return
	}
	limit := c.cfg.MaxRetries
	if c.state == SynSent || c.state == SynReceived {
		limit = c.cfg.SynRetries
	}
	if int(c.retries) >= limit {
		if c.state == SynReceived && c.flags&fPassive != 0 {
			c.err = tcpip.ErrTimedOut // a half-open connection the listener never handed out
			c.setState(Closed)
			return
		}
		c.fail(tcpip.ErrTimedOut)
		return
	}
	c.retries++
	if c.state == SynSent || c.state == SynReceived {
		c.flags |= fSynLost
	}
	c.count(&c.cfg.Counters.Timeouts)
	c.rto = min(2*c.rto, c.cfg.MaxRTO)
	if c.state.Synchronized() {
		mss := uint32(c.mss)
		c.ssthresh = max(c.sndMax.Size(c.sndUna)/2, 2*mss)
		c.cwnd = mss
		c.recover = c.sndMax // RFC 6582 §3.2 step 1: recover is set after a retransmission timeout
	}
	c.flags &^= fInRecovery | fRetransmitOne | fRTTPending
	c.dupAcks = 0
	c.sndNxt = c.sndUna
	c.highRxt = c.sndUna
	c.resetRxtLog()
	c.arm(timerRTO, c.rto)
}

// updateTimers keeps the persist and keepalive timers consistent with the
// connection's state after any event.
func (c *Conn) updateTimers() {
	// Persist (RFC 9293 §3.8.6.1): data waits, the window is zero, and no
	// retransmission timer runs. The same timer is the override timeout of
	// sender SWS avoidance (RFC 9293 §3.8.6.2.1 (4), RFC 1122 §4.2.3.4): data
	// waits behind a window too small to use with nothing in flight, and no ACK
	// will come if the peer's window update was lost.
	waiting, inFlight := c.unsent() > 0, c.sndUna != c.sndMax
	if c.state.Synchronized() && c.timers[timerRTO] == 0 && (c.sndWnd == 0 && (waiting || inFlight) || waiting && !inFlight) {
		if c.timers[timerPersist] == 0 {
			d := min(max(c.rto<<c.persistN, c.cfg.MinRTO), c.cfg.MaxRTO)
			c.arm(timerPersist, d)
		}
	} else {
		c.timers[timerPersist] = 0
		if c.state.Synchronized() && c.sndUna != c.sndMax && c.timers[timerRTO] == 0 {
			// RFC 6298 §5.1: data in flight always has a retransmission timer.
			c.arm(timerRTO, c.rto)
		}
	}
	// Keepalive (RFC 9293 §3.8.4): only when asked for, in ESTABLISHED and CLOSE_WAIT.
	if c.flags&fKeepalive != 0 && (c.state == Established || c.state == CloseWait) {
		if c.timers[timerKeepalive] == 0 {
			c.timers[timerKeepalive] = c.lastRecv.Add(c.cfg.KeepaliveIdle)
		}
	} else {
		c.timers[timerKeepalive] = 0
	}
}
