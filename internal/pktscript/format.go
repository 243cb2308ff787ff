package pktscript

import (
	"strconv"
	"strings"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
)

// String returns the script in canonical form: every time absolute, every
// line in the syntax Parse reads, so that Parse(s.String()) gives an equal
// script. Comments other than the rule and linux headers are not kept.
func (s *Script) String() string {
	var b strings.Builder
	if s.Rule != "" {
		b.WriteString("# rule: " + s.Rule + "\n")
	}
	if s.Linux != "" {
		b.WriteString("# linux: " + s.Linux + "\n")
	}
	if s.Local != DefaultLocal {
		b.WriteString("local " + s.Local.String() + "\n")
	}
	if s.Remote != DefaultRemote {
		b.WriteString("remote " + s.Remote.String() + "\n")
	}
	if s.PeerISN != DefaultPeerISN {
		b.WriteString("peer-isn " + strconv.FormatUint(uint64(s.PeerISN), 10) + "\n")
	}
	for _, c := range s.Config {
		b.WriteString("config " + c.Key + " " + c.Value + "\n")
	}
	for _, l := range s.Lines {
		b.WriteString(l.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// String returns the line in canonical form (absolute time).
func (l *Line) String() string {
	var b strings.Builder
	switch l.Only {
	case TcpengOnly:
		b.WriteString("@tcpeng ")
	case LinuxOnly:
		b.WriteString("@linux ")
	}
	b.WriteString(l.Time.String())
	if l.PortSet {
		b.WriteString(" :" + strconv.Itoa(int(l.Port)))
	}
	b.WriteByte(' ')
	b.WriteString(l.Body())
	return b.String()
}

// Body returns the line without its marker, time and port.
func (l *Line) Body() string {
	switch l.Kind {
	case KindInject:
		return "< " + l.Seg.String()
	case KindExpect:
		return "> " + l.Seg.String()
	case KindNone:
		return "> none until " + l.Until.String()
	case KindCall:
		return l.Call.String()
	case KindEvent:
		return "event " + l.Event.String()
	}
	return "?"
}

// String formats a time as the script writes it: seconds with at least three
// decimals, "*" for any time, "~TOL" for a tolerance.
func (t Time) String() string {
	s := "*"
	if !t.Any {
		s = FormatSeconds(t.At)
	}
	if t.Tol != 0 {
		s += "~" + FormatSeconds(t.Tol)
	}
	return s
}

// FormatSeconds formats d as seconds with at least three decimals ("0.040",
// "1.000", "0.0405").
func FormatSeconds(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	sec := int64(d / time.Second)
	frac := strconv.FormatInt(int64(d%time.Second)+1e9, 10)[1:] // nine digits
	frac = strings.TrimRight(frac, "0")
	for len(frac) < 3 {
		frac += "0"
	}
	s := strconv.FormatInt(sec, 10) + "." + frac
	if neg {
		s = "-" + s
	}
	return s
}

// FlagString formats TCP flags as the script writes them: S F R P U E W, then
// "." for ACK; "-" for none.
func FlagString(f wire.Flags) string {
	if f == 0 {
		return "-"
	}
	var b []byte
	for _, x := range flagLetters {
		if f&x.f != 0 {
			b = append(b, x.c)
		}
	}
	if f&wire.FlagACK != 0 {
		b = append(b, '.')
	}
	return string(b)
}

var flagLetters = [...]struct {
	c byte
	f wire.Flags
}{
	{'S', wire.FlagSYN}, {'F', wire.FlagFIN}, {'R', wire.FlagRST}, {'P', wire.FlagPSH},
	{'U', wire.FlagURG}, {'E', wire.FlagECE}, {'W', wire.FlagCWR},
}

// String returns the segment in script syntax.
func (g *Segment) String() string {
	var b strings.Builder
	if g.AnyFlags {
		b.WriteString("*")
	} else {
		b.WriteString(FlagString(g.Flags))
	}
	b.WriteString(" " + g.Seq.String() + ":" + g.End.String() + "(" + g.Len.String() + ")")
	if g.Ack.Set {
		b.WriteString(" ack " + g.Ack.String())
	}
	if g.Win.Set {
		b.WriteString(" win " + g.Win.String())
	}
	if g.Urg.Set {
		b.WriteString(" urg " + g.Urg.String())
	}
	if g.OptsSet {
		b.WriteString(" " + OptionsString(g.Opts, g.AnyOpts))
	}
	if g.Payload != nil {
		b.WriteString(" " + strconv.Quote(string(g.Payload)))
	}
	if g.BadSum {
		b.WriteString(" badsum")
	}
	if g.NewISN {
		b.WriteString(" newisn")
		if g.Above {
			b.WriteString(" above")
		}
	}
	return b.String()
}

// OptionsString formats an option list: "<mss 1460,nop,wscale 7>", "<...>".
func OptionsString(opts []Option, any bool) string {
	if any {
		return "<...>"
	}
	parts := make([]string, len(opts))
	for i, o := range opts {
		parts[i] = o.String()
	}
	return "<" + strings.Join(parts, ",") + ">"
}

func (o Option) String() string {
	switch o.Kind {
	case OptNOP:
		return "nop"
	case OptEOL:
		return "eol"
	case OptMSS:
		return "mss " + o.A.String()
	case OptWScale:
		return "wscale " + o.A.String()
	case OptSACKOK:
		return "sackOK"
	case OptTS:
		return "TS val " + o.A.String() + " ecr " + o.B.String()
	case OptSACK:
		s := "sack"
		for i := 0; i+1 < len(o.Blocks); i += 2 {
			s += " " + o.Blocks[i].String() + ":" + o.Blocks[i+1].String()
		}
		return s
	}
	return "?"
}

// String returns the call in script syntax.
func (c *Call) String() string {
	s := c.Op.String()
	switch c.Op {
	case OpListen:
		if c.N != 0 {
			s += " backlog " + strconv.Itoa(c.N)
		}
	case OpWrite:
		if c.Data != nil {
			s += " " + strconv.Quote(string(c.Data))
		} else {
			s += " " + strconv.Itoa(c.N)
		}
	case OpRead:
		s += " " + strconv.Itoa(c.N)
	case OpSetOpt:
		s += " " + c.Opt.String() + " " + strconv.FormatInt(c.Value, 10)
	}
	if c.WantSet {
		s += " = " + c.Want.String()
	}
	return s
}

// String returns the expected result in script syntax.
func (w Want) String() string {
	switch {
	case w.Data != nil:
		return strconv.Quote(string(w.Data))
	case w.Err != engine.OK:
		return ErrorName(w.Err)
	case w.N >= 0:
		return strconv.Itoa(w.N)
	}
	return "ok"
}

// String returns the event in script syntax.
func (e *EventSpec) String() string {
	switch e.Kind {
	case engine.EventReset, engine.EventError:
		if e.Err != engine.OK {
			return e.Kind.String() + " " + ErrorName(e.Err)
		}
	case engine.EventState:
		from, to := "*", "*"
		if !e.AnyFrom {
			from = e.From.String()
		}
		if !e.AnyTo {
			to = e.To.String()
		}
		return "state " + from + "->" + to
	}
	return e.Kind.String()
}
