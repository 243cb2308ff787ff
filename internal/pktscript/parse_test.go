package pktscript

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
)

const sample = `# rule: RFC 9293 §3.5 Figure 6
# linux: agree
# an ordinary comment
local 10.0.0.1:80
remote 10.0.0.2:5000
peer-isn 300
config min-rto 500ms
config delayed-ack off
config window-scale off

0.000 listen backlog 4
0.100 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
+0.000 > S. 0:0(0) ack 1 win * <...>
@tcpeng +0.010~0.002 > . 1:1(0) ack 1  # trailing comment
@linux 0.110 :5001 < R. =5:=17(12) ack =9 win 0 urg 3 "hello world!" badsum
0.200 > none until +0.300
* event state SYN_RCVD->*
0.600 write "x\"y"
0.600 read 10 = "ab"
0.600 read 10 = eof
0.600 write 100 = 50
0.600 setopt nodelay 1
0.600 event reset refused
0.600 > FP. 1:11(10) ack 1 <nop,nop,sack 1:2 =3:=4> "0123456789"
0.700 > S. 0:0(0) ack 1 <mss *> newisn above
0.700 close
`

func TestParseSample(t *testing.T) {
	s, err := Parse("sample.pkt", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	if s.Rule != "RFC 9293 §3.5 Figure 6" || s.Linux != "agree" {
		t.Errorf("headers: rule %q linux %q", s.Rule, s.Linux)
	}
	if s.Local != netip.MustParseAddrPort("10.0.0.1:80") || s.Remote != netip.MustParseAddrPort("10.0.0.2:5000") || s.PeerISN != 300 {
		t.Errorf("directives: %v %v %d", s.Local, s.Remote, s.PeerISN)
	}
	if len(s.Lines) != 16 {
		t.Fatalf("got %d lines, want 16", len(s.Lines))
	}
	l := s.Lines[4]
	if l.Only != LinuxOnly || l.Port != 5001 || !l.PortSet || l.Kind != KindInject || l.Time.At != 110*time.Millisecond {
		t.Errorf("line 5: %+v", l)
	}
	g := l.Seg
	if g.Flags != wire.FlagRST|wire.FlagACK || g.Seq != (Num{V: 5, Abs: true, Set: true}) || g.End != (Num{V: 17, Abs: true, Set: true}) ||
		g.Ack != (Num{V: 9, Abs: true, Set: true}) || g.Win.V != 0 || g.Urg.V != 3 || string(g.Payload) != "hello world!" || !g.BadSum {
		t.Errorf("line 4 segment: %+v", g)
	}
	if l := s.Lines[3]; l.Time.At != 110*time.Millisecond || l.Time.Tol != 2*time.Millisecond || !l.Time.Rel || l.Only != TcpengOnly {
		t.Errorf("line 3 time: %+v", l.Time)
	}
	if l := s.Lines[5]; l.Kind != KindNone || l.Time.At != 200*time.Millisecond || l.Until.At != 500*time.Millisecond {
		t.Errorf("none line: %+v %+v", l.Time, l.Until)
	}
	if e := s.Lines[6].Event; !s.Lines[6].Time.Any || e.Kind != engine.EventState || e.From != engine.StateSynReceived || !e.AnyTo {
		t.Errorf("state event: %+v", e)
	}
	if c := s.Lines[7].Call; c.Op != OpWrite || string(c.Data) != `x"y` || c.N != 3 || c.WantSet {
		t.Errorf("write text: %+v", c)
	}
	if c := s.Lines[8].Call; c.Op != OpRead || c.N != 10 || string(c.Want.Data) != "ab" || c.Want.N != 2 {
		t.Errorf("read text: %+v", c)
	}
	if c := s.Lines[9].Call; c.Want.Err != engine.ErrEOF || c.Want.N != -1 {
		t.Errorf("read eof: %+v", c)
	}
	if c := s.Lines[10].Call; c.Want.N != 50 || c.Want.Err != engine.OK {
		t.Errorf("write count: %+v", c)
	}
	if c := s.Lines[11].Call; c.Op != OpSetOpt || c.Opt != SockNoDelay || c.Value != 1 {
		t.Errorf("setopt: %+v", c)
	}
	if e := s.Lines[12].Event; e.Kind != engine.EventReset || e.Err != engine.ErrRefused {
		t.Errorf("reset event: %+v", e)
	}
	if g := s.Lines[13].Seg; len(g.Opts) != 3 || g.Opts[2].Kind != OptSACK || len(g.Opts[2].Blocks) != 4 || !g.Opts[2].Blocks[2].Abs {
		t.Errorf("sack option: %+v", g.Opts)
	}
	if g := s.Lines[14].Seg; !g.NewISN || !g.Above || !g.Opts[0].A.Any {
		t.Errorf("newisn above: %+v", g)
	}
	cfg, err := s.EngineConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinRTO != 500*engine.Millisecond || cfg.DelayedAck != -1 || !cfg.NoWindowScale || !cfg.TraceStates || cfg.Addrs[0] != s.Local.Addr() {
		t.Errorf("config: %+v", cfg)
	}
}

// TestRoundTrip checks that String gives text Parse reads back to the same script.
func TestRoundTrip(t *testing.T) {
	s, err := Parse("sample.pkt", []byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	text := s.String()
	s2, err := Parse("again.pkt", []byte(text))
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if s2.String() != text {
		t.Errorf("round trip differs:\n%s\n---\n%s", text, s2.String())
	}
	want := "@linux 0.110 :5001 < R. =5:=17(12) ack =9 win 0 urg 3 \"hello world!\" badsum"
	if got := s.Lines[4].String(); got != want {
		t.Errorf("line 4 is %q, want %q", got, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"0.1 < S 0:0(0)", `t.pkt:1: an injected segment needs "win N" (the window field as sent)`},
		{"0.1 < S. 0:0(0) win 5", `t.pkt:1: an injected segment with ACK (".") needs "ack N"`},
		{"0.1 < X 0:0(0) win 5", `t.pkt:1: flags "X": expected letters S F R P U E W (each once) and "." for ACK, e.g. "S.", "P.", "R"`},
		{"0.1 < S 0:1(0) win 5", `t.pkt:1: sequence range "0:1(0)": expected START:END(LEN), e.g. 1:101(100), with END = START + LEN`},
		{"0.1 < S 0:0 win 5", `t.pkt:1: sequence range "0:0": expected START:END(LEN), e.g. 1:101(100), with END = START + LEN`},
		{"0.1 < S *:*(0) win 5", `t.pkt:1: sequence number "*": wildcards are for expected segments`},
		{"0.1 < S 0:0(0) win 70000", `t.pkt:1: win "70000": expected a number from 0 to 65535 or *`},
		{"0.1 < S 0:0(0) win 5 <mss 1460", `t.pkt:1: option list <mss 1460 has no closing '>'`},
		{"0.1 < S 0:0(0) win 5 <foo 1>", `t.pkt:1: unknown option "foo": expected mss N, wscale N, sackOK, TS val N ecr N, sack L:R, nop, eol`},
		{"0.1 < S 0:0(0) win 5 <...>", `t.pkt:1: <...> (any options) is for expected segments`},
		{"0.1 < P. 1:3(2) ack 1 win 5 \"abc\"", `t.pkt:1: the payload is 3 bytes but the length in the sequence range is 2: make them agree`},
		{"0.1 > S 0:0(0) badsum", `t.pkt:1: badsum is for injected segments`},
		{"0.1 > . 0:0(0) newisn", `t.pkt:1: newisn is for an expected SYN or SYN-ACK that starts a new incarnation of the connection`},
		{"0.1 > . 0:0(0) ack 1 ack 2", `t.pkt:1: ack given twice`},
		{"0.2 listen\n0.1 listen", `t.pkt:2: time 0.100 is before the previous line's 0.200: keep lines in time order`},
		{"abc listen", `t.pkt:1: time "abc": expected seconds like 0.040`},
		{"0.0000000001 listen", `t.pkt:1: time "0.0000000001": at most nine decimals (nanoseconds)`},
		{"1000001 listen", `t.pkt:1: time "1000001": at most 1000000 seconds`},
		{"-1 listen", `t.pkt:1: time "-1": expected seconds like 0.040`},
		{"* listen", `t.pkt:1: time "*" is for expectations (>, event); an injection or call needs a time`},
		{"0.1~0.01 listen", `t.pkt:1: a tolerance (~) is for expectations (>, event), not for injections and calls`},
		{"* event connected\n+0.1 listen", `t.pkt:2: relative time "+0.1" after a line with time "*": give an absolute time`},
		{"0.1 frobnicate", `t.pkt:1: unknown call "frobnicate": expected listen, connect, accept, write, read, shutdown, close, abort, setopt or close-listener (or "<", ">", "event")`},
		{"0.1 read", `t.pkt:1: read: expected "read N"`},
		{"0.1 read 0", `t.pkt:1: read "0": expected a byte count from 1 to 16777216`},
		{"0.1 read 5 = 6", `t.pkt:1: read 5 = "6": expected a count from 0 to 5, "bytes", or an error name (ok wouldblock eof closed notconn refused reset timedout aborted invalid noconn addrinuse addrnotavail limit unreachable notlistening)`},
		{"0.1 close = 3", `t.pkt:1: close = "3": expected ok or an error name (ok wouldblock eof closed notconn refused reset timedout aborted invalid noconn addrinuse addrnotavail limit unreachable notlistening)`},
		{"0.1 setopt color 1", `t.pkt:1: setopt "color": expected nodelay, keepalive, sndbuf or rcvbuf`},
		{"0.1 event exploded", `t.pkt:1: unknown event "exploded": expected connected, acceptable, readable, writable, peer-closed, closed, reset [ERR], error [ERR] or state FROM->TO`},
		{"0.1 event state OPEN->CLOSED", `t.pkt:1: event state "OPEN->CLOSED": states are CLOSED LISTEN SYN_SENT SYN_RCVD ESTABLISHED FIN_WAIT_1 FIN_WAIT_2 CLOSE_WAIT CLOSING LAST_ACK TIME_WAIT or *`},
		{"0.1 event reset eof2", `t.pkt:1: event reset "eof2": expected an error name (ok wouldblock eof closed notconn refused reset timedout aborted invalid noconn addrinuse addrnotavail limit unreachable notlistening)`},
		{"0.1 > none", `t.pkt:1: expected "> none until TIME" (TIME absolute, or +SECONDS from this line's time)`},
		{"0.1 :0 listen", `t.pkt:1: peer port ":0": expected ":PORT" with PORT from 1 to 65535`},
		{"0.1", `t.pkt:1: nothing after the time: expected "<" (inject), ">" (expect), "event" or a socket call`},
		{"0.1 listen\nconfig mtu 1000", `t.pkt:2: directive "config" after the first timed line: put local, remote, peer-isn and config lines at the top`},
		{"config mtu big", `t.pkt:1: config mtu "big": expected a whole number from 0 to 1073741824`},
		{"config color red", `t.pkt:1: unknown config key "color": expected one of backlog delayed-ack fin-wait2-timeout initial-rto keepalive-count keepalive-idle keepalive-interval max-conns max-out-of-order max-retries max-rto min-rto msl mtu rcvbuf seed sndbuf syn-retries timestamps window-scale`},
		{"config msl 5", `t.pkt:1: config msl "5": expected a positive duration such as 200ms or 30s`},
		{"local 10.0.0.1", `t.pkt:1: local "10.0.0.1": expected a unicast IPv4 address and a non-zero port, e.g. 192.0.2.2:40000`},
		{"peer-isn -1", `t.pkt:1: peer-isn "-1": expected a number from 0 to 4294967295`},
		{"# linux: maybe", `t.pkt:1: "# linux: maybe": expected "agree" or "deliberate: <why tcpeng differs>"`},
		{"# rule:", `t.pkt:1: empty rule: write the RFC rule the script checks, e.g. "# rule: RFC 9293 §3.10.7.4 acceptability, zero window"`},
		{"0.1 write \"abc", `t.pkt:1: unterminated string "abc: close it with "`},
		{"0.1 < S 0:0(0) win 1 <mss 1,mss 1,mss 1,mss 1,mss 1,mss 1,mss 1,mss 1,mss 1,mss 1,nop>", `t.pkt:1: the options take 44 bytes; a TCP header holds at most 40`},
	} {
		_, err := Parse("t.pkt", []byte(tc.src))
		if err == nil || err.Error() != tc.want {
			t.Errorf("Parse(%q):\n got  %v\n want %s", tc.src, err, tc.want)
		}
	}
}

func TestFormatSeconds(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "0.000", 40 * time.Millisecond: "0.040", 1500 * time.Millisecond: "1.500",
		40500 * time.Microsecond: "0.0405", 1: "0.000000001", 60 * time.Second: "60.000",
	} {
		if got := FormatSeconds(d); got != want {
			t.Errorf("FormatSeconds(%d) = %q, want %q", d, got, want)
		}
	}
}

// TestBuildDecodeMatch builds a frame from an injected line, decodes it, and
// formats it back; then matches an expectation against a frame of the endpoint.
func TestBuildDecodeMatch(t *testing.T) {
	s, err := Parse("t.pkt", []byte(`peer-isn 1000
0.0 > S 0:0(0) win 100 <mss 1460,nop,wscale 3>
0.1 < S. 0:0(0) ack 1 win 2000 <mss 536,sackOK,TS val 7 ecr 9,nop,wscale 2>
0.2 > P. 1:6(5) ack 1 win 100
0.3 < P. 1:4(3) ack 6 win 2000 badsum
`))
	if err != nil {
		t.Fatal(err)
	}
	p := NewPeer(s)
	// The endpoint's SYN, ISN 5000, teaches the flow its ISN.
	syn := endpointFrame(t, s, 5000, 0, wire.FlagSYN, 100, []byte{2, 4, 5, 180, 1, 3, 3, 3}, nil)
	pk, err := DecodePacket(syn)
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Match(s.Lines[0], pk); d != nil {
		t.Fatalf("SYN does not match: %v", d)
	}
	p.Observe(pk)
	if f := p.Flow(40000); !f.Known || f.LocalISN != 5000 {
		t.Fatalf("flow after SYN: %+v", f)
	}
	frame, err := p.Build(s.Lines[1])
	if err != nil {
		t.Fatal(err)
	}
	pk, err = DecodePacket(frame)
	if err != nil {
		t.Fatal(err)
	}
	if pk.BadSum || pk.BadIPSum || pk.Seq != 1000 || pk.Ack != 5001 || pk.Win != 2000 || pk.Src != s.Remote || pk.Dst != s.Local {
		t.Errorf("built SYN-ACK: %+v", pk)
	}
	if got, want := p.Format(pk, true), "S. 0:0(0) ack 1 win 2000 <mss 536,sackOK,TS val 7 ecr 9,nop,wscale 2>"; got != want {
		t.Errorf("Format = %q, want %q", got, want)
	}
	// Data from the endpoint must be what the application wrote.
	if err := p.Wrote(40000, []byte("ABCDE")); err != nil {
		t.Fatal(err)
	}
	data := endpointFrame(t, s, 5001, 1001, wire.FlagPSH|wire.FlagACK, 100, nil, []byte("ABCDE"))
	pk, _ = DecodePacket(data)
	if d := p.Match(s.Lines[2], pk); d != nil {
		t.Errorf("data does not match: %v", d)
	}
	wrong := endpointFrame(t, s, 5002, 1001, wire.FlagACK, 99, nil, []byte("ABCDE"))
	pk, _ = DecodePacket(wrong)
	want := []string{"flags . (want P.)", "seq 2 (want 1)", "win 99 (want 100)", "payload byte at seq 2 is 'A'; the application wrote 'B'"}
	if d := p.Match(s.Lines[2], pk); strings.Join(d, "|") != strings.Join(want, "|") {
		t.Errorf("mismatch diffs:\n got  %q\n want %q", d, want)
	}
	frame, err = p.Build(s.Lines[3])
	if err != nil {
		t.Fatal(err)
	}
	pk, _ = DecodePacket(frame)
	if !pk.BadSum || pk.BadIPSum || string(pk.Payload) != "abc" {
		t.Errorf("badsum frame: %+v", pk)
	}
}

// endpointFrame builds a frame as the endpoint would send it.
func endpointFrame(t *testing.T, s *Script, seq, ack uint32, flags wire.Flags, win uint16, opts, payload []byte) []byte {
	t.Helper()
	b := make([]byte, 40+len(opts)+len(payload))
	wire.PutIPv4(b, wire.IPv4Header{TotalLen: len(b), TTL: 64, Protocol: wire.ProtoTCP, Src: s.Local.Addr(), Dst: s.Remote.Addr()})
	tcp := b[20:]
	wire.PutTCP(tcp, wire.TCPHeader{SrcPort: s.Local.Port(), DstPort: s.Remote.Port(), Seq: wire.Seq(seq), Ack: wire.Seq(ack), Flags: flags, Window: win}, nil)
	tcp[12] = uint8((20+len(opts))/4) << 4
	copy(tcp[20:], opts)
	copy(tcp[20+len(opts):], payload)
	wire.SetTCPChecksum(tcp, s.Local.Addr(), s.Remote.Addr())
	return b
}

// TestRunReportsMismatch checks the report of a failing script: where, what
// differs, and the side-by-side table.
func TestRunReportsMismatch(t *testing.T) {
	s, err := Parse("bad.pkt", []byte(`0.000 listen
0.100 < S 0:0(0) win 65535 <mss 1460>
0.100 > S. 0:0(0) ack 2 win 65535 <mss 1460>
`))
	if err != nil {
		t.Fatal(err)
	}
	rep := Run(s, nativeEngine)
	if rep.Passed || rep.Failure == nil {
		t.Fatal("the script passed")
	}
	f := rep.Failure
	if f.Pos.Line != 3 || f.Msg != "the segment the engine sent does not match" || strings.Join(f.Diffs, "|") != "ack 1 (want 2)" {
		t.Errorf("failure: %+v", f)
	}
	out := rep.String()
	for _, want := range []string{
		"FAIL bad\n",
		"bad.pkt:3: the segment the engine sent does not match\n",
		"    expected: 0.100 > S. 0:0(0) ack 2 win 65535 <mss 1460>\n",
		"    actual:   0.100 > S. 0:0(0) ack 1 win 65535 <mss 1460>\n",
		"    differs:  ack 1 (want 2)\n",
		"!     3    0.100  > S. 0:0(0) ack 2 win 65535 <mss 1460> | 0.100 > S. 0:0(0) ack 1 win 65535 <mss 1460>\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}

// TestRunUnexpectedSegment checks that a segment no line expects fails the
// script at the next action.
func TestRunUnexpectedSegment(t *testing.T) {
	s, err := Parse("extra.pkt", []byte(`0.000 listen
0.100 < S 0:0(0) win 65535 <mss 1460>
0.200 accept = wouldblock
`))
	if err != nil {
		t.Fatal(err)
	}
	rep := Run(s, nativeEngine)
	if rep.Passed || rep.Failure.Pos.Line != 3 || rep.Failure.Msg != "the engine sent a segment the script does not expect" ||
		rep.Failure.Actual != "0.100 > S. 0:0(0) ack 1 win 65535 <mss 1460>" || rep.Name != "extra" {
		t.Errorf("report:\n%s", rep)
	}
}
