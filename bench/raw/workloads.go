package raw

import (
	"fmt"
	"net/netip"
	"runtime"
	"time"

	"github.com/tcpeng/tcpeng/bench/workload"
	"github.com/tcpeng/tcpeng/engine"
)

// Client phases of a W2 lifecycle.
const (
	cDial = iota
	cConnecting
	cWrite
	cWaitEOF
	cClose
)

// srvConn is a server connection of W2: it reads one byte, then closes.
type srvConn struct {
	id       engine.ConnID
	fresh    bool // just accepted: Nagle off with the first read
	readable bool
	done     bool // the byte was read: close
}

// ConnRate is W2 sequential on the raw engine: total lifecycles, one at a time
// (dial, accept, the client writes one byte, the server reads it and closes,
// the client reads EOF and closes). The client closes one connection and dials
// the next in the same Step.
func (p *Pair) ConnRate(total int) (workload.Metrics, error) {
	lis, err := p.Listen(workload.PortConn)
	if err != nil {
		return nil, err
	}
	lat := make([]time.Duration, total)
	srv := make([]srvConn, 0, 16)
	one := []byte{'x'}
	cbuf := make([]byte, 16)
	sbuf := make([]byte, 16)
	remote := netip.AddrPortFrom(ServerAddr, workload.PortConn)
	var cur engine.ConnID
	phase := cDial
	creadable, acceptable := false, false
	var t0 time.Time
	done := 0
	p.start()
	b := workload.Begin()
	for done < total {
		if err := p.tick(); err != nil {
			return nil, err
		}
		switch phase {
		case cDial:
			t0 = time.Now()
			p.cmd(0, engine.Command{Op: engine.OpDial, Addr: remote})
		case cWrite:
			p.cmd(0, noDelay(cur))
			p.cmd(0, engine.Command{Op: engine.OpWrite, Conn: cur, Data: one})
		case cWaitEOF:
			if p.incoming(0) > 0 || creadable {
				p.cmd(0, engine.Command{Op: engine.OpRead, Conn: cur, Data: cbuf})
			}
		case cClose:
			p.cmd(0, engine.Command{Op: engine.OpClose, Conn: cur})
			t1 := time.Now()
			lat[done] = t1.Sub(t0)
			done++
			phase = cDial
			if done < total {
				t0 = t1
				p.cmd(0, engine.Command{Op: engine.OpDial, Addr: remote})
			}
		}
		if p.need(0) {
			cmds := p.cmds[0]
			out := p.step(0)
			drained := false
			for i, r := range out.Results {
				switch cmds[i].Op {
				case engine.OpDial:
					if r.Err != engine.OK {
						return nil, fmt.Errorf("raw W2: dial %d: %w", done, r.Err)
					}
					cur, phase = r.Conn, cConnecting
				case engine.OpWrite:
					if r.N != 1 {
						return nil, fmt.Errorf("raw W2: client write took %d bytes: %w", r.N, r.Err)
					}
					phase = cWaitEOF
				case engine.OpRead:
					switch {
					case r.Err == engine.ErrEOF:
						phase = cClose
					case r.Err == engine.ErrWouldBlock:
						drained = true
					default:
						return nil, fmt.Errorf("raw W2: client read got %d bytes and %v, want EOF", r.N, r.Err)
					}
				default:
					if r.Err != engine.OK {
						return nil, fmt.Errorf("raw W2: client %v: %w", cmds[i].Op, r.Err)
					}
				}
			}
			creadable = creadable && !drained
			for _, ev := range out.Events {
				if ev.Conn != cur {
					continue // a connection closed earlier finishing its close
				}
				if err := fail("client", ev); err != nil {
					return nil, err
				}
				switch ev.Kind {
				case engine.EventConnected:
					if phase == cConnecting {
						phase = cWrite
					}
				case engine.EventReadable, engine.EventPeerClosed:
					creadable = creadable || !drained
				}
			}
		}

		// Server.
		if acceptable {
			p.cmd(1, engine.Command{Op: engine.OpAccept, Conn: lis})
		}
		in := p.incoming(1) > 0
		for i := range srv {
			sc := &srv[i]
			switch {
			case sc.done:
				p.cmd(1, engine.Command{Op: engine.OpClose, Conn: sc.id})
			case in || sc.readable:
				if sc.fresh {
					p.cmd(1, noDelay(sc.id))
					sc.fresh = false
				}
				p.cmd(1, engine.Command{Op: engine.OpRead, Conn: sc.id, Data: sbuf})
			}
		}
		// Closed connections leave the list now; their commands are queued.
		n := 0
		for _, sc := range srv {
			if !sc.done {
				srv[n] = sc
				n++
			}
		}
		srv = srv[:n]
		if p.need(1) {
			cmds := p.cmds[1]
			out := p.step(1)
			for i, r := range out.Results {
				c := &cmds[i]
				switch c.Op {
				case engine.OpAccept:
					switch r.Err {
					case engine.OK:
						srv = append(srv, srvConn{id: r.Conn, fresh: true, readable: true})
					case engine.ErrWouldBlock:
						acceptable = false
					default:
						return nil, fmt.Errorf("raw W2: accept: %w", r.Err)
					}
				case engine.OpRead:
					sc := findSrv(srv, c.Conn)
					switch {
					case sc == nil:
					case r.N == 1:
						sc.done = true
					case r.Err == engine.ErrWouldBlock:
						sc.readable = false
					default:
						return nil, fmt.Errorf("raw W2: server read got %d bytes and %v, want 1 byte", r.N, r.Err)
					}
				default:
					if r.Err != engine.OK {
						return nil, fmt.Errorf("raw W2: server %v: %w", c.Op, r.Err)
					}
				}
			}
			for _, ev := range out.Events {
				if ev.Conn == lis && ev.Kind == engine.EventAcceptable {
					acceptable = true
					continue
				}
				sc := findSrv(srv, ev.Conn)
				if sc == nil {
					continue
				}
				if err := fail("server", ev); err != nil {
					return nil, err
				}
				if ev.Kind == engine.EventReadable {
					sc.readable = true
				}
			}
		}
	}
	e := workload.End()
	return workload.ConnMetrics(workload.Since(b, e), lat), nil
}

func findSrv(srv []srvConn, id engine.ConnID) *srvConn {
	for i := range srv {
		if srv[i].id == id {
			return &srv[i]
		}
	}
	return nil
}

// IdleMem is W3 on the raw engine: count established connections, idle.
func (p *Pair) IdleMem(count int) (workload.Metrics, error) {
	lis, err := p.Listen(workload.PortIdle)
	if err != nil {
		return nil, err
	}
	const batch = 32 // dials per Step, and at most twice that many in flight
	cids := make([]engine.ConnID, 0, count)
	sids := make([]engine.ConnID, 0, count)
	remote := netip.AddrPortFrom(ServerAddr, workload.PortIdle)
	connected := 0
	acceptable := false
	// Both stacks have stepped twice (both output buffers exist) before the
	// baseline: what is measured is the cost of the connections alone.
	for range 2 {
		p.step(0)
		p.step(1)
	}
	h0, s0, g0 := workload.Memory()
	p.start()
	for connected < count || len(sids) < count {
		if err := p.tick(); err != nil {
			return nil, err
		}
		if d := len(cids); d < count && d-connected < 2*batch {
			for range min(batch, count-d) {
				p.cmd(0, engine.Command{Op: engine.OpDial, Addr: remote})
			}
		}
		if p.need(0) {
			cmds := p.cmds[0]
			out := p.step(0)
			if err := checkResults("client", cmds, out); err != nil {
				return nil, err
			}
			for _, r := range out.Results {
				cids = append(cids, r.Conn)
			}
			for _, ev := range out.Events {
				if err := fail("client", ev); err != nil {
					return nil, err
				}
				if ev.Kind == engine.EventConnected {
					connected++
				}
			}
		}
		if acceptable {
			for range min(2*batch, count-len(sids)) {
				p.cmd(1, engine.Command{Op: engine.OpAccept, Conn: lis})
			}
		}
		if p.need(1) {
			cmds := p.cmds[1]
			out := p.step(1)
			if err := checkResults("server", cmds, out, engine.ErrWouldBlock); err != nil {
				return nil, err
			}
			for _, r := range out.Results {
				if r.Err == engine.OK {
					sids = append(sids, r.Conn)
				} else {
					acceptable = false
				}
			}
			for _, ev := range out.Events {
				if err := fail("server", ev); err != nil {
					return nil, err
				}
				if ev.Kind == engine.EventAcceptable {
					acceptable = true
				}
			}
		}
	}
	// Idle: only timers run (delayed ACKs), as they would in a host.
	for settle := time.Now().Add(workload.IdleSleep); time.Now().Before(settle); {
		if err := p.tick(); err != nil {
			return nil, err
		}
		for i := range 2 {
			if p.need(i) {
				out := p.step(i)
				for _, ev := range out.Events {
					if err := fail("idle", ev); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	h1, s1, g1 := workload.Memory()
	runtime.KeepAlive(p) // the stacks hold the connections measured
	runtime.KeepAlive(cids)
	runtime.KeepAlive(sids)
	return workload.IdleMetrics(h0, s0, g0, h1, s1, g1, count), nil
}

// PingPong is W4 on the raw engine: one connection, a 64-byte message echoed.
func (p *Pair) PingPong(warm, rounds int) (workload.Metrics, error) {
	lis, err := p.Listen(workload.PortPing)
	if err != nil {
		return nil, err
	}
	c, s, err := p.Connect(lis, workload.PortPing)
	if err != nil {
		return nil, err
	}
	msg := make([]byte, workload.Message)
	cin := make([]byte, workload.Message)
	sbuf := make([]byte, workload.Message)
	lat := make([]time.Duration, rounds)
	var cgot, sgot int
	cwriting, swriting := true, false
	creadable, sreadable := false, false
	var t0 time.Time
	var b workload.Snapshot
	k := 0
	p.start()
	for k < warm+rounds {
		if err := p.tick(); err != nil {
			return nil, err
		}
		if cwriting {
			if k == warm && b.Wall.IsZero() {
				b = workload.Begin()
			}
			t0 = time.Now()
			p.cmd(0, engine.Command{Op: engine.OpWrite, Conn: c, Data: msg})
		} else if p.incoming(0) > 0 || creadable {
			p.cmd(0, engine.Command{Op: engine.OpRead, Conn: c, Data: cin[cgot:]})
		}
		if p.need(0) {
			cmds := p.cmds[0]
			out := p.step(0)
			if err := checkResults("client", cmds, out, engine.ErrWouldBlock); err != nil {
				return nil, err
			}
			drained := false
			for i, r := range out.Results {
				if cmds[i].Op == engine.OpWrite {
					if r.N != workload.Message {
						return nil, fmt.Errorf("raw W4: client write took %d of %d bytes", r.N, workload.Message)
					}
					cwriting = false
					continue
				}
				drained = r.Err == engine.ErrWouldBlock
				if cgot += r.N; cgot == workload.Message {
					if k >= warm {
						lat[k-warm] = time.Since(t0)
					}
					k++
					cgot, cwriting = 0, true
				}
			}
			creadable = creadable && !drained
			for _, ev := range out.Events {
				if err := fail("client", ev); err != nil {
					return nil, err
				}
				if ev.Kind == engine.EventReadable && !drained {
					creadable = true
				}
			}
		}
		if swriting {
			p.cmd(1, engine.Command{Op: engine.OpWrite, Conn: s, Data: sbuf})
		} else if p.incoming(1) > 0 || sreadable {
			p.cmd(1, engine.Command{Op: engine.OpRead, Conn: s, Data: sbuf[sgot:]})
		}
		if p.need(1) {
			cmds := p.cmds[1]
			out := p.step(1)
			if err := checkResults("server", cmds, out, engine.ErrWouldBlock); err != nil {
				return nil, err
			}
			drained := false
			for i, r := range out.Results {
				if cmds[i].Op == engine.OpWrite {
					if r.N != workload.Message {
						return nil, fmt.Errorf("raw W4: server write took %d of %d bytes", r.N, workload.Message)
					}
					swriting = false
					continue
				}
				drained = r.Err == engine.ErrWouldBlock
				if sgot += r.N; sgot == workload.Message {
					sgot, swriting = 0, true
				}
			}
			sreadable = sreadable && !drained
			for _, ev := range out.Events {
				if err := fail("server", ev); err != nil {
					return nil, err
				}
				if ev.Kind == engine.EventReadable && !drained {
					sreadable = true
				}
			}
		}
	}
	e := workload.End()
	return workload.PingMetrics(workload.Since(b, e), lat), nil
}
