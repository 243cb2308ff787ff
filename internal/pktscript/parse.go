package pktscript

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/tcpeng/tcpeng/engine"
)

// Limits on what a script may ask for, so that no script can make a runner
// allocate without bound.
const (
	MaxTime      = 1_000_000 * time.Second // the latest time a line may name
	MaxIO        = 16 << 20                // the most bytes one write or read may move
	MaxPayload   = 65495                   // the largest injected payload (65535 - 20 - 20)
	MaxLines     = 100000                  // timed lines per script
	maxLineBytes = 64 << 10
)

// Error is a parse error: where, what is wrong, and what was expected.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string { return e.Pos.String() + ": " + e.Msg }

// ParseFile reads and parses the script at path. The script's name is the file
// name without its extension.
func ParseFile(path string) (*Script, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(filepath.Base(path), src)
}

// Parse parses a script. file names it in error messages; the script's Name is
// file without its extension.
func Parse(file string, src []byte) (*Script, error) {
	name := strings.TrimSuffix(file, filepath.Ext(file))
	p := &parser{s: &Script{Name: name, Local: DefaultLocal, Remote: DefaultRemote, PeerISN: DefaultPeerISN}}
	p.pos.File = file
	for n, raw := range strings.Split(string(src), "\n") {
		p.pos.Line = n + 1
		if len(raw) > maxLineBytes {
			return nil, p.errf("the line is %d bytes long; keep lines under %d bytes", len(raw), maxLineBytes)
		}
		if err := p.line(strings.TrimRight(raw, "\r")); err != nil {
			return nil, err
		}
	}
	return p.s, nil
}

type parser struct {
	s       *Script
	pos     Pos
	prev    time.Duration // the time of the previous timed line (its end, for "none until")
	prevAny bool          // the previous timed line had time "*"
	timed   bool          // a timed line was seen: no more directives
}

func (p *parser) errf(format string, args ...any) error {
	return &Error{Pos: p.pos, Msg: fmt.Sprintf(format, args...)}
}

// line parses one line of the script.
func (p *parser) line(raw string) error {
	text := strings.TrimSpace(raw)
	if text == "" {
		return nil
	}
	if text[0] == '#' {
		return p.header(text)
	}
	toks, err := p.tokenize(text)
	if err != nil || len(toks) == 0 {
		return err
	}
	switch toks[0].s {
	case "local", "remote", "peer-isn", "config":
		if toks[0].quoted {
			break
		}
		if p.timed {
			return p.errf("directive %q after the first timed line: put local, remote, peer-isn and config lines at the top", toks[0].s)
		}
		return p.directive(toks)
	}
	p.timed = true
	if len(p.s.Lines) >= MaxLines {
		return p.errf("more than %d timed lines: split the script", MaxLines)
	}
	return p.timedLine(toks)
}

// header reads the "# rule:" and "# linux:" comments; other comments are ignored.
func (p *parser) header(text string) error {
	body := strings.TrimSpace(text[1:])
	if v, ok := strings.CutPrefix(body, "rule:"); ok {
		v = strings.TrimSpace(v)
		if v == "" {
			return p.errf("empty rule: write the RFC rule the script checks, e.g. \"# rule: RFC 9293 §3.10.7.4 acceptability, zero window\"")
		}
		if p.s.Rule != "" {
			p.s.Rule += " "
		}
		p.s.Rule += v
		return nil
	}
	if v, ok := strings.CutPrefix(body, "linux:"); ok {
		v = strings.TrimSpace(v)
		if p.s.Linux != "" {
			return p.errf("a second \"# linux:\" line: give one")
		}
		switch why, deliberate := strings.CutPrefix(v, "deliberate:"); {
		case v == "agree":
		case deliberate && strings.TrimSpace(why) != "":
			v = "deliberate: " + strings.TrimSpace(why)
		default:
			return p.errf("\"# linux: %s\": expected \"agree\" or \"deliberate: <why tcpeng differs>\"", v)
		}
		p.s.Linux = v
	}
	return nil
}

type token struct {
	s      string
	quoted bool // a "..." string, unquoted in s
	opts   bool // an option list "<...>", the inside in s
}

// tokenize splits a line into words, quoted strings and option lists, and drops
// a trailing comment.
func (p *parser) tokenize(text string) ([]token, error) {
	var toks []token
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == ' ' || c == '\t':
			i++
		case c == '#':
			return toks, nil
		case c == '"':
			j := i + 1
			for j < len(text) && text[j] != '"' {
				if text[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(text) {
				return nil, p.errf("unterminated string %s: close it with \"", text[i:])
			}
			s, err := strconv.Unquote(text[i : j+1])
			if err != nil {
				return nil, p.errf("bad string %s: use Go string syntax (\\n, \\x41, \\\")", text[i:j+1])
			}
			toks = append(toks, token{s: s, quoted: true})
			i = j + 1
		case c == '<' && i+1 < len(text) && text[i+1] != ' ' && text[i+1] != '\t':
			j := strings.IndexByte(text[i:], '>')
			if j < 0 {
				return nil, p.errf("option list %s has no closing '>'", text[i:])
			}
			toks = append(toks, token{s: text[i+1 : i+j], opts: true})
			i += j + 1
		default:
			j := i
			for j < len(text) && text[j] != ' ' && text[j] != '\t' && text[j] != '"' {
				j++
			}
			toks = append(toks, token{s: text[i:j]})
			i = j
		}
	}
	return toks, nil
}

// directive parses local, remote, peer-isn and config.
func (p *parser) directive(toks []token) error {
	name := toks[0].s
	args := toks[1:]
	switch name {
	case "local", "remote":
		if len(args) != 1 {
			return p.errf("%s takes one address and port, e.g. \"%s %s\"", name, name, DefaultLocal)
		}
		ap, err := netip.ParseAddrPort(args[0].s)
		if err != nil || !ap.Addr().Is4() || ap.Port() == 0 || !ap.Addr().IsGlobalUnicast() && !ap.Addr().IsPrivate() {
			return p.errf("%s %q: expected a unicast IPv4 address and a non-zero port, e.g. %s", name, args[0].s, DefaultRemote)
		}
		if name == "local" {
			p.s.Local = ap
		} else {
			p.s.Remote = ap
		}
	case "peer-isn":
		if len(args) != 1 {
			return p.errf("peer-isn takes one number (0 to 4294967295)")
		}
		v, err := strconv.ParseUint(args[0].s, 10, 32)
		if err != nil {
			return p.errf("peer-isn %q: expected a number from 0 to 4294967295", args[0].s)
		}
		p.s.PeerISN = uint32(v)
	case "config":
		if len(args) != 2 {
			return p.errf("config takes a key and a value, e.g. \"config min-rto 200ms\"; keys: %s", configKeys())
		}
		set := Setting{Pos: p.pos, Key: args[0].s, Value: args[1].s}
		var c engine.Config
		if err := set.apply(&c); err != nil {
			return p.errf("%v", err)
		}
		p.s.Config = append(p.s.Config, set)
	}
	return nil
}

// timedLine parses "[@tcpeng|@linux] TIME [:PORT] BODY".
func (p *parser) timedLine(toks []token) error {
	l := &Line{Pos: p.pos, Port: p.s.Remote.Port()}
	switch toks[0].s {
	case "@tcpeng":
		l.Only, toks = TcpengOnly, toks[1:]
	case "@linux":
		l.Only, toks = LinuxOnly, toks[1:]
	}
	if len(toks) == 0 || toks[0].quoted || toks[0].opts {
		return p.errf("expected a time (\"0.100\", \"+0.040\" or \"*\") at the start of the line")
	}
	t, err := p.time(toks[0].s, p.prev)
	if err != nil {
		return err
	}
	l.Time = t
	toks = toks[1:]
	if len(toks) > 0 && strings.HasPrefix(toks[0].s, ":") && !toks[0].quoted {
		v, err := strconv.ParseUint(toks[0].s[1:], 10, 16)
		if err != nil || v == 0 {
			return p.errf("peer port %q: expected \":PORT\" with PORT from 1 to 65535", toks[0].s)
		}
		l.Port, l.PortSet = uint16(v), true
		toks = toks[1:]
	}
	if len(toks) == 0 {
		return p.errf("nothing after the time: expected \"<\" (inject), \">\" (expect), \"event\" or a socket call")
	}
	head := toks[0]
	switch {
	case head.quoted || head.opts:
		return p.errf("expected \"<\", \">\", \"event\" or a socket call, found %q", head.s)
	case head.s == "<":
		l.Kind = KindInject
		l.Seg, err = p.segment(toks[1:], true)
	case head.s == ">" && len(toks) > 1 && toks[1].s == "none" && !toks[1].quoted:
		l.Kind = KindNone
		err = p.none(l, toks[2:])
	case head.s == ">":
		l.Kind = KindExpect
		l.Seg, err = p.segment(toks[1:], false)
	case head.s == "event":
		l.Kind = KindEvent
		l.Event, err = p.event(toks[1:])
	default:
		l.Kind = KindCall
		l.Call, err = p.call(toks)
	}
	if err != nil {
		return err
	}
	if l.Kind == KindInject || l.Kind == KindCall {
		if l.Time.Any {
			return p.errf("time \"*\" is for expectations (>, event); an injection or call needs a time")
		}
		if l.Time.Tol != 0 {
			return p.errf("a tolerance (~) is for expectations (>, event), not for injections and calls")
		}
	}
	end := l.Time.At
	if l.Kind == KindNone {
		end = l.Until.At
	}
	if !l.Time.Any {
		p.prev = end
	}
	p.prevAny = l.Time.Any
	p.s.Lines = append(p.s.Lines, l)
	return nil
}

// time parses "1.5", "+0.040", "*", each optionally followed by "~TOL".
func (p *parser) time(s string, base time.Duration) (Time, error) {
	var t Time
	if v, tol, ok := strings.Cut(s, "~"); ok {
		d, err := parseSeconds(tol)
		if err != nil {
			return t, p.errf("tolerance %q: %v", tol, err)
		}
		t.Tol, s = d, v
	}
	switch {
	case s == "*":
		t.Any, t.At = true, base
		return t, nil
	case strings.HasPrefix(s, "+"):
		if p.prevAny {
			return t, p.errf("relative time %q after a line with time \"*\": give an absolute time", s)
		}
		d, err := parseSeconds(s[1:])
		if err != nil {
			return t, p.errf("time %q: %v", s, err)
		}
		t.Rel, t.At = true, base+d
	default:
		d, err := parseSeconds(s)
		if err != nil {
			return t, p.errf("time %q: %v", s, err)
		}
		t.At = d
	}
	if t.At > MaxTime {
		return t, p.errf("time %s is past the limit of %s", FormatSeconds(t.At), FormatSeconds(MaxTime))
	}
	if t.At < base {
		return t, p.errf("time %s is before the previous line's %s: keep lines in time order", FormatSeconds(t.At), FormatSeconds(base))
	}
	return t, nil
}

// parseSeconds parses a non-negative decimal number of seconds ("0.040") exactly.
func parseSeconds(s string) (time.Duration, error) {
	whole, frac, _ := strings.Cut(s, ".")
	if whole == "" && frac == "" || strings.Trim(whole+frac, "0123456789") != "" || strings.Count(s, ".") > 1 {
		return 0, fmt.Errorf("expected seconds like 0.040")
	}
	if len(frac) > 9 {
		return 0, fmt.Errorf("at most nine decimals (nanoseconds)")
	}
	var w, f int64
	var err error
	if whole != "" {
		if w, err = strconv.ParseInt(whole, 10, 64); err != nil || w > int64(MaxTime/time.Second) {
			return 0, fmt.Errorf("at most %d seconds", int64(MaxTime/time.Second))
		}
	}
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	return time.Duration(w)*time.Second + time.Duration(f), nil
}

// none parses "until TIME" of "> none until TIME".
func (p *parser) none(l *Line, toks []token) error {
	if len(toks) != 2 || toks[0].s != "until" {
		return p.errf("expected \"> none until TIME\" (TIME absolute, or +SECONDS from this line's time)")
	}
	if l.Time.Any || l.Time.Tol != 0 {
		return p.errf("\"> none\" needs a start time without \"*\" or \"~\"")
	}
	u, err := p.time(toks[1].s, l.Time.At)
	if err != nil {
		return err
	}
	if u.Any || u.Tol != 0 {
		return p.errf("\"until\" needs a plain time, not %q", toks[1].s)
	}
	l.Until = u
	return nil
}
