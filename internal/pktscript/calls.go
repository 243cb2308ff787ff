package pktscript

import (
	"fmt"
	"strconv"

	"github.com/tcpeng/tcpeng/engine"
)

// call plays a socket call: one Step with one Command, then the result check.
func (r *runner) call(l *Line) *Failure {
	if f := r.before(l); f != nil {
		return f
	}
	c := l.Call
	cmd := engine.Command{}
	row := Row{Pos: l.Pos, At: l.Time.At, Script: l.Body()}
	needConn := func() *Failure {
		id, ok := r.conns[l.Port]
		if !ok {
			return &Failure{Msg: fmt.Sprintf("%s: no connection on port %d yet: connect or accept first (or name the flow with :PORT)", c.Op, l.Port), Expected: l.Body()}
		}
		cmd.Conn = id
		return nil
	}
	var data []byte
	switch c.Op {
	case OpListen:
		cmd.Op, cmd.Addr, cmd.N = engine.OpListen, r.s.Local, c.N
	case OpConnect:
		cmd.Op, cmd.Addr, cmd.Local = engine.OpDial, r.peer.Remote(l), r.s.Local
	case OpAccept:
		cmd.Op, cmd.Conn = engine.OpAccept, r.listener
	case OpCloseListener:
		cmd.Op, cmd.Conn = engine.OpClose, r.listener
	default:
		if f := needConn(); f != nil {
			return f
		}
		switch c.Op {
		case OpWrite:
			data = r.peer.WriteData(l)
			cmd.Op, cmd.Data = engine.OpWrite, data
		case OpRead:
			data = make([]byte, c.N)
			cmd.Op, cmd.Data = engine.OpRead, data
		case OpShutdown:
			cmd.Op = engine.OpShutdown
		case OpClose:
			cmd.Op = engine.OpClose
		case OpAbort:
			cmd.Op = engine.OpAbort
		case OpSetOpt:
			cmd.Op, cmd.Option, cmd.Value = engine.OpSetOption, c.Opt.EngineOption(), c.Value
		}
	}
	if f := r.step(at(l.Time.At), nil, []engine.Command{cmd}); f != nil {
		return f
	}
	if len(r.out.Results) != 1 {
		return &Failure{Msg: fmt.Sprintf("Step returned %d results for 1 command", len(r.out.Results))}
	}
	res := r.out.Results[0]
	row.Actual = formatResult(c, res, data)
	if res.Err == engine.OK {
		switch c.Op {
		case OpListen:
			r.listener = res.Conn
		case OpConnect, OpAccept:
			r.bind(l.Port, res.Conn)
		}
	}
	f := checkResult(c, res, data)
	if f == nil {
		switch {
		case c.Op == OpWrite && res.Err == engine.OK:
			if err := r.peer.Wrote(l.Port, data[:res.N]); err != nil {
				f = &Failure{Msg: err.Error()}
			}
		case c.Op == OpRead && res.Err == engine.OK:
			if err := r.peer.CheckRead(l.Port, data[:res.N]); err != nil {
				f = &Failure{Msg: err.Error()}
			}
		}
	}
	if f != nil {
		f.Expected, f.Actual, row.Failed = l.Body(), row.Actual, true
	}
	r.rep.Rows = append(r.rep.Rows, row)
	return f
}

// checkResult compares a call's result with what the line expects. Without
// "= ..." a call must succeed, a write must take everything, and a read must
// fill its buffer.
func checkResult(c *Call, res engine.Result, data []byte) *Failure {
	want := c.Want
	if !c.WantSet {
		want = Want{N: -1}
		if c.Op == OpWrite || c.Op == OpRead {
			want.N = c.N
		}
	}
	ok := res.Err == want.Err
	if ok && want.Err == engine.OK && want.N >= 0 && (c.Op == OpWrite || c.Op == OpRead) {
		ok = res.N == want.N
	}
	if ok && want.Data != nil {
		ok = string(data[:res.N]) == string(want.Data)
	}
	if ok {
		return nil
	}
	return &Failure{Msg: fmt.Sprintf("%s returned %s, the script expects %s", c.Op, resultString(c, res, data), want)}
}

func resultString(c *Call, res engine.Result, data []byte) string {
	switch {
	case res.Err != engine.OK:
		return ErrorName(res.Err)
	case c.Op == OpRead && res.N > 0:
		return strconv.Itoa(res.N) + " " + strconv.Quote(string(clip(data[:res.N])))
	case c.Op == OpRead || c.Op == OpWrite:
		return strconv.Itoa(res.N)
	}
	return "ok"
}

func formatResult(c *Call, res engine.Result, data []byte) string {
	return c.Op.String() + " = " + resultString(c, res, data)
}
