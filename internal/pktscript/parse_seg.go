package pktscript

import (
	"math"
	"strconv"
	"strings"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// segment parses "FLAGS SEQ:END(LEN) [ack N] [win N] [urg N] [<opts>] ["payload"]
// [badsum] [newisn]". inject says the peer sends it (no wildcards; ACK needs
// ack, and win is required).
func (p *parser) segment(toks []token, inject bool) (*Segment, error) {
	what := "an expected segment"
	if inject {
		what = "an injected segment"
	}
	if len(toks) < 2 || toks[0].quoted || toks[0].opts || toks[1].quoted || toks[1].opts {
		return nil, p.errf("%s needs flags and a sequence range, e.g. \"S 0:0(0)\" or \"P. 1:101(100) ack 1 win 1000\"", what)
	}
	g := &Segment{}
	if err := p.flags(g, toks[0].s, inject); err != nil {
		return nil, err
	}
	if err := p.seqRange(g, toks[1].s, inject); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for i := 2; i < len(toks); i++ {
		t := toks[i]
		key := t.s
		switch {
		case t.quoted:
			key = "payload"
		case t.opts:
			key = "options"
		}
		if seen[key] {
			return nil, p.errf("%s given twice", key)
		}
		seen[key] = true
		switch {
		case t.quoted:
			g.Payload = []byte(t.s)
		case t.opts:
			if err := p.options(g, t.s, inject); err != nil {
				return nil, err
			}
		case key == "ack" || key == "win" || key == "urg":
			if i+1 >= len(toks) || toks[i+1].quoted || toks[i+1].opts {
				return nil, p.errf("%s needs a number after it", key)
			}
			i++
			var err error
			switch key {
			case "ack":
				g.Ack, err = p.num(toks[i].s, "ack", inject, math.MaxUint32, true)
			case "win":
				g.Win, err = p.num(toks[i].s, "win", inject, math.MaxUint16, false)
			case "urg":
				g.Urg, err = p.num(toks[i].s, "urg", inject, math.MaxUint16, false)
			}
			if err != nil {
				return nil, err
			}
		case key == "badsum":
			if !inject {
				return nil, p.errf("badsum is for injected segments")
			}
			g.BadSum = true
		case key == "newisn":
			if inject || g.Flags&wire.FlagSYN == 0 || g.AnyFlags {
				return nil, p.errf("newisn is for an expected SYN or SYN-ACK that starts a new incarnation of the connection")
			}
			g.NewISN = true
			if i+1 < len(toks) && toks[i+1].s == "above" && !toks[i+1].quoted {
				g.Above = true
				i++
			}
		default:
			return nil, p.errf("unexpected %q in %s: expected ack N, win N, urg N, <options>, \"payload\"%s",
				t.s, what, map[bool]string{true: " or badsum", false: " or newisn [above]"}[inject])
		}
	}
	if g.Payload != nil && (g.Len.Any || int64(len(g.Payload)) != g.Len.V) {
		return nil, p.errf("the payload is %d bytes but the length in the sequence range is %s: make them agree", len(g.Payload), g.Len)
	}
	if inject {
		if g.Flags&wire.FlagACK != 0 && !g.Ack.Set {
			return nil, p.errf("an injected segment with ACK (\".\") needs \"ack N\"")
		}
		if !g.Win.Set {
			return nil, p.errf("an injected segment needs \"win N\" (the window field as sent)")
		}
		if n := optionsLen(g.Opts); n > wire.TCPMaxOptionLen {
			return nil, p.errf("the options take %d bytes; a TCP header holds at most %d", n, wire.TCPMaxOptionLen)
		}
	}
	return g, nil
}

// flags parses a flag word: letters S F R P U E W, "." for ACK, "-" for none,
// "*" for any (expectations only).
func (p *parser) flags(g *Segment, s string, inject bool) error {
	if s == "*" && !inject {
		g.AnyFlags = true
		return nil
	}
	if s == "-" {
		return nil
	}
	for i := 0; i < len(s); i++ {
		var f wire.Flags
		if s[i] == '.' {
			f = wire.FlagACK
		}
		for _, x := range flagLetters {
			if s[i] == x.c {
				f = x.f
			}
		}
		if f == 0 || g.Flags&f != 0 {
			return p.errf("flags %q: expected letters S F R P U E W (each once) and \".\" for ACK, e.g. \"S.\", \"P.\", \"R\"", s)
		}
		g.Flags |= f
	}
	return nil
}

// seqRange parses "START:END(LEN)".
func (p *parser) seqRange(g *Segment, s string, inject bool) error {
	bad := func() error {
		return p.errf("sequence range %q: expected START:END(LEN), e.g. 1:101(100), with END = START + LEN", s)
	}
	se, rest, ok := strings.Cut(s, ":")
	if !ok || !strings.HasSuffix(rest, ")") {
		return bad()
	}
	e, l, ok := strings.Cut(rest[:len(rest)-1], "(")
	if !ok {
		return bad()
	}
	var err error
	if g.Seq, err = p.num(se, "sequence number", inject, math.MaxUint32, true); err != nil {
		return err
	}
	if g.End, err = p.num(e, "end sequence number", inject, math.MaxUint32, true); err != nil {
		return err
	}
	if g.Len, err = p.num(l, "length", inject, MaxPayload, false); err != nil {
		return err
	}
	if g.Len.Abs {
		return p.errf("length %q cannot be absolute", l)
	}
	switch {
	case g.Seq.Any != g.End.Any:
		return p.errf("sequence range %q: START and END must both be numbers or both be *", s)
	case g.Seq.Any:
	case g.Seq.Abs != g.End.Abs:
		return p.errf("sequence range %q: START and END must both be absolute (=N) or both relative", s)
	case g.Len.Any:
		if g.End.V < g.Seq.V && !g.Seq.Abs {
			return bad()
		}
	case g.Seq.Abs && uint32(g.Seq.V)+uint32(g.Len.V) != uint32(g.End.V), !g.Seq.Abs && g.Seq.V+g.Len.V != g.End.V:
		return bad()
	}
	return nil
}

// num parses a number: "*" (not for injections), "=N" (absolute, if seqLike), or
// N; relative sequence numbers may be negative.
func (p *parser) num(s, what string, inject bool, max int64, seqLike bool) (Num, error) {
	n := Num{Set: true}
	if s == "*" {
		if inject {
			return n, p.errf("%s \"*\": wildcards are for expected segments", what)
		}
		n.Any = true
		return n, nil
	}
	if v, ok := strings.CutPrefix(s, "="); ok {
		if !seqLike {
			return n, p.errf("%s %q: \"=\" (absolute) is for sequence and acknowledgment numbers", what, s)
		}
		n.Abs, s = true, v
	}
	v, err := strconv.ParseInt(s, 10, 64)
	lo := int64(0)
	if seqLike && !n.Abs {
		lo = -max
	}
	if err != nil || v < lo || v > max || strings.HasPrefix(s, "+") {
		return n, p.errf("%s %q: expected a number from %d to %d%s", what, s, lo, max,
			map[bool]string{true: ", =N for an absolute value, or *", false: " or *"}[seqLike])
	}
	n.V = v
	return n, nil
}

// options parses the inside of "<...>".
func (p *parser) options(g *Segment, s string, inject bool) error {
	g.OptsSet = true
	s = strings.TrimSpace(s)
	if s == "..." {
		if inject {
			return p.errf("<...> (any options) is for expected segments")
		}
		g.AnyOpts = true
		return nil
	}
	if s == "" {
		return nil
	}
	for _, item := range strings.Split(s, ",") {
		f := strings.Fields(item)
		if len(f) == 0 {
			return p.errf("empty option in <%s>", s)
		}
		o := Option{}
		var err error
		switch f[0] {
		case "nop", "eol", "sackOK":
			if len(f) != 1 {
				return p.errf("option %q takes no value", f[0])
			}
			o.Kind = map[string]OptKind{"nop": OptNOP, "eol": OptEOL, "sackOK": OptSACKOK}[f[0]]
		case "mss", "wscale":
			if len(f) != 2 {
				return p.errf("option %q takes one value, e.g. \"mss 1460\", \"wscale 7\"", f[0])
			}
			o.Kind, o.A = OptMSS, Num{}
			max := int64(math.MaxUint16)
			if f[0] == "wscale" {
				o.Kind, max = OptWScale, math.MaxUint8
			}
			if o.A, err = p.num(f[1], f[0], inject, max, false); err != nil {
				return err
			}
		case "TS":
			if len(f) != 5 || f[1] != "val" || f[3] != "ecr" {
				return p.errf("option %q: expected \"TS val N ecr N\"", strings.TrimSpace(item))
			}
			o.Kind = OptTS
			if o.A, err = p.num(f[2], "TS val", inject, math.MaxUint32, false); err != nil {
				return err
			}
			if o.B, err = p.num(f[4], "TS ecr", inject, math.MaxUint32, false); err != nil {
				return err
			}
		case "sack":
			if len(f) < 2 || len(f) > 1+wire.MaxSACKBlocks {
				return p.errf("option %q: expected \"sack L:R\" with 1 to %d blocks", strings.TrimSpace(item), wire.MaxSACKBlocks)
			}
			o.Kind = OptSACK
			for _, b := range f[1:] {
				l, r, ok := strings.Cut(b, ":")
				if !ok {
					return p.errf("SACK block %q: expected LEFT:RIGHT", b)
				}
				ln, err := p.num(l, "SACK left edge", inject, math.MaxUint32, true)
				if err != nil {
					return err
				}
				rn, err := p.num(r, "SACK right edge", inject, math.MaxUint32, true)
				if err != nil {
					return err
				}
				o.Blocks = append(o.Blocks, ln, rn)
			}
		default:
			return p.errf("unknown option %q: expected mss N, wscale N, sackOK, TS val N ecr N, sack L:R, nop, eol%s",
				f[0], map[bool]string{true: "", false: ", or <...> for any"}[inject])
		}
		g.Opts = append(g.Opts, o)
	}
	return nil
}

// optionsLen returns the bytes the options take on the wire, padding included.
func optionsLen(opts []Option) int {
	n := 0
	for _, o := range opts {
		n += o.wireLen()
	}
	return (n + 3) &^ 3
}

func (o Option) wireLen() int {
	switch o.Kind {
	case OptNOP, OptEOL:
		return 1
	case OptMSS:
		return 4
	case OptWScale:
		return 3
	case OptSACKOK:
		return 2
	case OptTS:
		return 10
	case OptSACK:
		return 2 + 4*len(o.Blocks)
	}
	return 0
}

// call parses a socket call and its expected result.
func (p *parser) call(toks []token) (*Call, error) {
	c := &Call{}
	args := toks[1:]
	var want []token
	for i, t := range args {
		if t.s == "=" && !t.quoted {
			args, want = args[:i], args[i+1:]
			if len(want) != 1 {
				return nil, p.errf("\"=\" needs one result after it: ok, a count, \"bytes\" or an error name (%s)", errorList())
			}
			break
		}
	}
	name := toks[0].s
	usage := map[string]string{
		"listen": "listen [backlog N]", "write": "write N | write \"text\"", "read": "read N",
		"setopt": "setopt nodelay|keepalive|sndbuf|rcvbuf VALUE",
	}
	nargs := func(n int) error {
		if len(args) != n {
			u := usage[name]
			if u == "" {
				u = name
			}
			return p.errf("%s: expected \"%s\"", name, u)
		}
		return nil
	}
	count := func(t token, min int) (int, error) {
		v, err := strconv.Atoi(t.s)
		if t.quoted || err != nil || v < min || v > MaxIO {
			return 0, p.errf("%s %q: expected a byte count from %d to %d", name, t.s, min, MaxIO)
		}
		return v, nil
	}
	var err error
	switch name {
	case "listen":
		c.Op = OpListen
		if len(args) != 0 {
			if err = nargs(2); err != nil {
				return nil, err
			}
			if args[0].s != "backlog" {
				return nil, p.errf("listen: expected \"listen [backlog N]\"")
			}
			v, err := strconv.Atoi(args[1].s)
			if err != nil || v < 1 || v > 1<<20 {
				return nil, p.errf("listen backlog %q: expected a number from 1 to %d", args[1].s, 1<<20)
			}
			c.N = v
		}
	case "connect", "accept", "shutdown", "close", "abort", "close-listener":
		c.Op = map[string]Op{"connect": OpConnect, "accept": OpAccept, "shutdown": OpShutdown, "close": OpClose,
			"abort": OpAbort, "close-listener": OpCloseListener}[name]
		err = nargs(0)
	case "write":
		c.Op = OpWrite
		if err = nargs(1); err != nil {
			return nil, err
		}
		if args[0].quoted {
			if len(args[0].s) > MaxIO {
				return nil, p.errf("write: the text is longer than %d bytes", MaxIO)
			}
			c.Data, c.N = []byte(args[0].s), len(args[0].s)
		} else {
			c.N, err = count(args[0], 0)
		}
	case "read":
		c.Op = OpRead
		if err = nargs(1); err != nil {
			return nil, err
		}
		c.N, err = count(args[0], 1)
	case "setopt":
		c.Op = OpSetOpt
		if err = nargs(2); err != nil {
			return nil, err
		}
		opt, ok := map[string]SockOpt{"nodelay": SockNoDelay, "keepalive": SockKeepalive, "sndbuf": SockSndBuf, "rcvbuf": SockRcvBuf}[args[0].s]
		if !ok {
			return nil, p.errf("setopt %q: expected nodelay, keepalive, sndbuf or rcvbuf", args[0].s)
		}
		c.Opt = opt
		if c.Value, err = strconv.ParseInt(args[1].s, 10, 64); err != nil || c.Value < 0 || c.Value > 1<<30 {
			return nil, p.errf("setopt %s %q: expected a number from 0 to %d", args[0].s, args[1].s, 1<<30)
		}
	default:
		return nil, p.errf("unknown call %q: expected listen, connect, accept, write, read, shutdown, close, abort, setopt or close-listener (or \"<\", \">\", \"event\")", name)
	}
	if err != nil {
		return nil, err
	}
	if want != nil {
		c.WantSet = true
		if c.Want, err = p.want(c, want[0]); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// want parses the result after "=".
func (p *parser) want(c *Call, t token) (Want, error) {
	w := Want{N: -1}
	if t.quoted {
		if c.Op != OpRead {
			return w, p.errf("a quoted result is for read: the bytes read")
		}
		if len(t.s) > c.N || len(t.s) == 0 {
			return w, p.errf("read %d = %q: the text must be 1 to %d bytes", c.N, t.s, c.N)
		}
		w.Data, w.N = []byte(t.s), len(t.s)
		return w, nil
	}
	if e, ok := errNames[t.s]; ok {
		w.Err = e
		return w, nil
	}
	if c.Op != OpRead && c.Op != OpWrite {
		return w, p.errf("%s = %q: expected ok or an error name (%s)", c.Op, t.s, errorList())
	}
	v, err := strconv.Atoi(t.s)
	if err != nil || v < 0 || v > c.N {
		return w, p.errf("%s %d = %q: expected a count from 0 to %d, \"bytes\", or an error name (%s)", c.Op, c.N, t.s, c.N, errorList())
	}
	w.N = v
	return w, nil
}

func errorList() string {
	return "ok wouldblock eof closed notconn refused reset timedout aborted invalid noconn addrinuse addrnotavail limit unreachable notlistening"
}

// event parses "KIND [ERR]" or "state FROM->TO".
func (p *parser) event(toks []token) (*EventSpec, error) {
	if len(toks) == 0 || toks[0].quoted {
		return nil, p.errf("event: expected connected, acceptable, readable, writable, peer-closed, closed, reset [ERR], error [ERR] or state FROM->TO")
	}
	k, ok := eventNames[toks[0].s]
	if !ok {
		return nil, p.errf("unknown event %q: expected connected, acceptable, readable, writable, peer-closed, closed, reset [ERR], error [ERR] or state FROM->TO", toks[0].s)
	}
	e := &EventSpec{Kind: k}
	switch {
	case k == engine.EventState:
		if len(toks) != 2 {
			return nil, p.errf("event state: expected \"state FROM->TO\", e.g. \"state SYN_SENT->ESTABLISHED\" (* for any)")
		}
		from, to, ok := strings.Cut(toks[1].s, "->")
		if !ok {
			return nil, p.errf("event state %q: expected FROM->TO", toks[1].s)
		}
		var okf, okt bool
		e.From, okf = stateNames[from]
		e.To, okt = stateNames[to]
		e.AnyFrom, e.AnyTo = from == "*", to == "*"
		if !okf && !e.AnyFrom || !okt && !e.AnyTo {
			return nil, p.errf("event state %q: states are CLOSED LISTEN SYN_SENT SYN_RCVD ESTABLISHED FIN_WAIT_1 FIN_WAIT_2 CLOSE_WAIT CLOSING LAST_ACK TIME_WAIT or *", toks[1].s)
		}
	case k == engine.EventReset || k == engine.EventError:
		if len(toks) > 2 {
			return nil, p.errf("event %s takes at most one error name", toks[0].s)
		}
		if len(toks) == 2 {
			err, ok := errNames[toks[1].s]
			if !ok || err == engine.OK {
				return nil, p.errf("event %s %q: expected an error name (%s)", toks[0].s, toks[1].s, errorList())
			}
			e.Err = err
		}
	case len(toks) != 1:
		return nil, p.errf("event %s takes no argument", toks[0].s)
	}
	return e, nil
}
