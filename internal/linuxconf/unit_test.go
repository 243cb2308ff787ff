package linuxconf

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
	"github.com/tcpeng/tcpeng/internal/pktscript"
	"golang.org/x/sys/unix"
)

// These tests need neither root nor a TUN device.

func parse(t *testing.T, src string) *pktscript.Script {
	t.Helper()
	s, err := pktscript.Parse("t.pkt", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sysctl(k KernelConfig, key string) string {
	for _, s := range k.Sysctls {
		if s.Key == "net/ipv4/"+key {
			return s.Value
		}
	}
	return "(unset)"
}

func TestConfigureDefaults(t *testing.T) {
	k, err := Configure(parse(t, "# rule: x\n0.000 listen\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"tcp_timestamps": "0", "tcp_ecn": "0", "tcp_congestion_control": "reno", "tcp_syn_linear_timeouts": "0",
		"tcp_rmem": "4096 1048576 1048576", "tcp_rto_min_us": "200000", "tcp_rto_max_ms": "60000",
		"tcp_synack_retries": "6", "tcp_retries2": "15", "tcp_orphan_retries": "15", "tcp_syncookies": "0",
	}
	for key, v := range want {
		if got := sysctl(k, key); got != v {
			t.Errorf("%s = %q, want %q", key, got, v)
		}
	}
	if k.MTU != 1500 || k.Backlog != 128 || k.RcvBuf != 0 || len(k.RouteAttrs) != 0 || len(k.Unmapped) != 0 {
		t.Errorf("defaults: %+v", k)
	}
}

func TestConfigureScriptKeys(t *testing.T) {
	s := parse(t, `# rule: x
config mtu 1000
config rcvbuf 2920
config min-rto 500ms
config syn-retries 3
config max-retries 2
config keepalive-idle 10s
config keepalive-interval 1500ms
config delayed-ack off
config msl 5s
config window-scale off
0.000 listen
`)
	k, err := Configure(s)
	if err != nil {
		t.Fatal(err)
	}
	checks := map[string]string{
		"tcp_rto_min_us": "500000", "tcp_syn_retries": "3", "tcp_synack_retries": "3", "tcp_retries2": "2",
		"tcp_orphan_retries": "2", "tcp_keepalive_time": "10", "tcp_keepalive_intvl": "2", "tcp_window_scaling": "0",
	}
	for key, v := range checks {
		if got := sysctl(k, key); got != v {
			t.Errorf("%s = %q, want %q", key, got, v)
		}
	}
	if k.MTU != 1000 || k.RcvBuf != 2920 || k.KeepIdle != 10 || k.KeepIntvl != 2 {
		t.Errorf("config: %+v", k)
	}
	if !reflect.DeepEqual(k.RouteAttrs, []string{"quickack", "1"}) {
		t.Errorf("route attributes %q, want [quickack 1]", k.RouteAttrs)
	}
	want := []string{
		"keepalive-interval 1500ms: Linux's keepalive timers count whole seconds",
		"msl 5s: Linux's TIME_WAIT is a fixed 60 s (TCP_TIMEWAIT_LEN)",
	}
	if !reflect.DeepEqual(k.Unmapped, want) {
		t.Errorf("unmapped %q, want %q", k.Unmapped, want)
	}
}

func TestNeedCapsTrailingQuiet(t *testing.T) {
	s := parse(t, `# rule: x
0.000 connect
1.000 > none until 20.000
20.000 > S 0:0(0) <...>
20.000 > none until 100.000
@tcpeng 150.000 > none until 200.000
`)
	o := DefaultOptions()
	if got := Need(s, o); got != 23*time.Second {
		t.Errorf("Need = %v, want 23s (the inner quiet period in full, the trailing one capped at 3 s)", got)
	}
	o.QuietCap = 0
	if got := Need(s, o); got != 100*time.Second {
		t.Errorf("Need without a cap = %v, want 100s", got)
	}
}

func TestExplains(t *testing.T) {
	spec := func(from, to string) *pktscript.EventSpec {
		s := parse(t, "# rule: x\n0.000 event state "+from+"->"+to+"\n")
		return s.Lines[0].Event
	}
	cases := []struct {
		x, y     engine.State
		from, to string
		want     bool
	}{
		{engine.StateFinWait1, engine.StateFinWait2, "FIN_WAIT_1", "FIN_WAIT_2", true},
		{engine.StateFinWait1, engine.StateFinWait2, "*", "FIN_WAIT_2", true},
		{engine.StateFinWait1, engine.StateFinWait2, "FIN_WAIT_1", "*", true},
		// SYN_RCVD -> ESTABLISHED -> CLOSE_WAIT within one sampling interval.
		{engine.StateSynReceived, engine.StateCloseWait, "SYN_RCVD", "ESTABLISHED", true},
		{engine.StateSynReceived, engine.StateCloseWait, "ESTABLISHED", "CLOSE_WAIT", true},
		// FIN_WAIT_1 -> FIN_WAIT_2 -> TIME_WAIT (the ACK and the FIN in one segment).
		{engine.StateFinWait1, engine.StateTimeWait, "FIN_WAIT_2", "TIME_WAIT", true},
		{engine.StateFinWait1, engine.StateTimeWait, "FIN_WAIT_1", "FIN_WAIT_2", true},
		// Not on any path.
		{engine.StateFinWait1, engine.StateTimeWait, "CLOSE_WAIT", "LAST_ACK", false},
		{engine.StateEstablished, engine.StateClosed, "FIN_WAIT_2", "TIME_WAIT", false},
		{engine.StateCloseWait, engine.StateLastAck, "LAST_ACK", "CLOSED", false},
	}
	for _, c := range cases {
		if got := explains(c.x, c.y, spec(c.from, c.to)); got != c.want {
			t.Errorf("explains(%v->%v, %s->%s) = %v, want %v", c.x, c.y, c.from, c.to, got, c.want)
		}
	}
}

func TestErrnoMapping(t *testing.T) {
	cases := map[error]engine.Error{
		nil: engine.OK, unix.EINPROGRESS: engine.OK, unix.EAGAIN: engine.ErrWouldBlock, unix.EPIPE: engine.ErrClosed,
		unix.ENOTCONN: engine.ErrNotConnected, unix.ECONNREFUSED: engine.ErrRefused, unix.ECONNRESET: engine.ErrReset,
		unix.ETIMEDOUT: engine.ErrTimedOut, unix.EADDRINUSE: engine.ErrAddrInUse, unix.EBADF: engine.ErrNoConn,
		unix.EHOSTUNREACH: engine.ErrUnreachable, unix.ENOBUFS: engine.ErrLimit, unix.EPROTO: engine.ErrInvalid,
		errors.New("not an errno"): engine.ErrInvalid,
	}
	for err, want := range cases {
		if got := errnoError(err); got != want {
			t.Errorf("errnoError(%v) = %v, want %v", err, got, want)
		}
	}
	events := map[unix.Errno][2]any{
		unix.ECONNRESET:   {engine.EventReset, engine.ErrReset},
		unix.EPIPE:        {engine.EventReset, engine.ErrReset},
		unix.ECONNREFUSED: {engine.EventReset, engine.ErrRefused},
		unix.ETIMEDOUT:    {engine.EventError, engine.ErrTimedOut},
		unix.EHOSTUNREACH: {engine.EventError, engine.ErrUnreachable},
	}
	for errno, want := range events {
		k, e := connError(errno)
		if k != want[0] || e != want[1] {
			t.Errorf("connError(%v) = %v %v, want %v %v", errno, k, e, want[0], want[1])
		}
	}
}

func TestPSHAndAckHelpers(t *testing.T) {
	s := parse(t, "# rule: x\n0.100 > . 1:11(10) ack 1\n0.100 > . 1:1(0) ack 5\n0.100 > P. 1:1(0) ack 5\n")
	data, ack, pshAck := s.Lines[0], s.Lines[1], s.Lines[2]
	withData := &pktscript.Packet{Flags: wire.FlagACK | wire.FlagPSH, Payload: make([]byte, 10)}
	if got := pshNormalized(data, withData); got == data || got.Seg.Flags != withData.Flags || data.Seg.Flags != wire.FlagACK {
		t.Errorf("PSH on data: pattern %v (original %v)", got.Seg.Flags, data.Seg.Flags)
	}
	bare := &pktscript.Packet{Flags: wire.FlagACK | wire.FlagPSH}
	if got := pshNormalized(data, bare); got != data {
		t.Error("PSH without data must still be compared")
	}
	isn := s.PeerISN
	if !expectsAck(ack.Seg, isn+5, isn) || expectsAck(ack.Seg, isn+6, isn) || expectsAck(data.Seg, isn+1, isn) || expectsAck(pshAck.Seg, isn+5, isn) {
		t.Error("expectsAck: wrong answer")
	}
}

func TestParseDiag(t *testing.T) {
	msg := func(typ uint16, body []byte) []byte {
		b := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body)+3)
		binary.NativeEndian.PutUint32(b, uint32(unix.SizeofNlMsghdr+len(body)))
		binary.NativeEndian.PutUint16(b[4:], typ)
		b = append(b, body...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	sockMsg := func(state uint8, sport, dport uint16) []byte {
		m := make([]byte, sizeofDiagMsg)
		m[0], m[1] = unix.AF_INET, state
		binary.BigEndian.PutUint16(m[4:], sport)
		binary.BigEndian.PutUint16(m[6:], dport)
		copy(m[8:], []byte{192, 0, 2, 1})
		copy(m[24:], []byte{192, 0, 2, 2})
		return m
	}
	var b []byte
	b = append(b, msg(unix.SOCK_DIAG_BY_FAMILY, sockMsg(linuxNewSynRecv, 8080, 40000))...)
	b = append(b, msg(unix.SOCK_DIAG_BY_FAMILY, sockMsg(linuxTimeWait, 8080, 40001))...)
	b = append(b, msg(unix.SOCK_DIAG_BY_FAMILY, sockMsg(99, 8080, 40002))...) // unknown state: skipped
	b = append(b, msg(unix.SOCK_DIAG_BY_FAMILY, []byte{unix.AF_INET})...)     // truncated: skipped
	out, done, err := parseDiag(b, nil)
	if err != nil || done {
		t.Fatalf("parseDiag: done %v err %v", done, err)
	}
	local := netip.MustParseAddrPort("192.0.2.1:8080")
	want := []diagSock{
		{local, netip.MustParseAddrPort("192.0.2.2:40000"), engine.StateSynReceived},
		{local, netip.MustParseAddrPort("192.0.2.2:40001"), engine.StateTimeWait},
	}
	if !reflect.DeepEqual(out, want) {
		t.Errorf("parseDiag = %+v, want %+v", out, want)
	}
	if _, done, err := parseDiag(msg(unix.NLMSG_DONE, make([]byte, 4)), nil); !done || err != nil {
		t.Errorf("NLMSG_DONE: done %v err %v", done, err)
	}
	e := make([]byte, 4)
	code := -int32(unix.ENOENT)
	binary.NativeEndian.PutUint32(e, uint32(code))
	if _, done, err := parseDiag(msg(unix.NLMSG_ERROR, e), nil); !done || err != unix.ENOENT {
		t.Errorf("NLMSG_ERROR: done %v err %v", done, err)
	}
	if _, _, err := parseDiag([]byte{200, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, nil); err == nil {
		t.Error("a length past the buffer must be an error")
	}
}

func TestDecide(t *testing.T) {
	agree := parse(t, "# rule: x\n# linux: agree\n0.000 listen\n")
	delib := parse(t, "# rule: x\n# linux: deliberate: because\n0.000 listen\n")
	delibLinux := parse(t, "# rule: x\n# linux: deliberate: because\n0.000 connect\n@tcpeng 0.000 > S 0:0(0) <...>\n@linux 0.000 > S 0:0(0) <...>\n")
	pass := pktscript.Report{Passed: true}
	fail := &pktscript.Failure{Pos: pktscript.Pos{Line: 7}, Msg: "the segment the kernel sent does not match", Diffs: []string{"win 1 (want 2)"}}
	timing := []TimingDiff{{Pos: pktscript.Pos{Line: 9}, Want: time.Second, Got: 1200 * time.Millisecond}}
	cases := []struct {
		name  string
		s     *pktscript.Script
		lin   Result
		tc    pktscript.Report
		want  Verdict
		why   string
		relab bool
	}{
		{"agree", agree, Result{}, pass, Agree, "", false},
		{"timing", agree, Result{Timing: timing}, pass, Timing, "line 9 +200 ms", false},
		{"differ", agree, Result{Report: pktscript.Report{Failure: fail}}, pass, Differ, "line 7: the segment the kernel sent does not match: win 1 (want 2)", false},
		{"deliberate fails", delib, Result{Report: pktscript.Report{Failure: fail}}, pass, Deliberate, "line 7: the segment the kernel sent does not match: win 1 (want 2)", false},
		{"deliberate timing", delib, Result{Timing: timing}, pass, Deliberate, "timing: line 9 +200 ms", false},
		{"deliberate passes", delib, Result{}, pass, Agree, "Linux passes a script labelled deliberate", true},
		{"@linux lines hold", delibLinux, Result{}, pass, Deliberate, "Linux does what the @linux lines say", false},
		{"@linux lines wrong", delibLinux, Result{Report: pktscript.Report{Failure: fail}}, pass, Differ, "Linux does not do what the @linux lines say: line 7: the segment the kernel sent does not match: win 1 (want 2)", false},
		{"skipped", agree, Result{Skipped: "needs 70 s of real time (budget 65 s)"}, pass, Skipped, "needs 70 s of real time (budget 65 s)", false},
		{"runner error", agree, Result{Err: errors.New("no tun\nmore")}, pass, RunnerError, "no tun", false},
		{"tcpeng fails", agree, Result{}, pktscript.Report{Failure: fail}, TcpengFails, "line 7: the segment the kernel sent does not match: win 1 (want 2)", false},
	}
	for _, c := range cases {
		o := &Outcome{Script: c.s, Linux: c.lin, Tcpeng: c.tc}
		Decide(o)
		if o.Verdict != c.want || o.Why != c.why || (o.Proposal != "") != c.relab {
			t.Errorf("%s: verdict %q why %q proposal %q; want %q %q relabel %v", c.name, o.Verdict, o.Why, o.Proposal, c.want, c.why, c.relab)
		}
	}
	out := []*Outcome{{Script: agree, Verdict: Agree}, {Script: agree, Verdict: Differ, Why: "line 3: x"}}
	tab := Table(out)
	if !strings.Contains(tab, "!! t") || !strings.Contains(tab, "agree 1, deliberate 0, differ 1") {
		t.Errorf("table:\n%s", tab)
	}
}
