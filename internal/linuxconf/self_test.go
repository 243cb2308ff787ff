package linuxconf

import (
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/internal/pktscript"
)

// TestRunnerSelf checks the runner on exchanges whose Linux behaviour is
// certain: a pass, a content difference with its exact field, an event and a
// read, and a panic in the middle of a run, after which nothing is left.
func TestRunnerSelf(t *testing.T) {
	if why := Available(); why != "" {
		t.Skip("skipped: " + why)
	}
	scripts := []*pktscript.Script{
		parse(t, `# rule: closed port
0.100 < S 0:0(0) win 65535 <mss 1460>
0.100 > R. =0:=0(0) ack 1
`),
		parse(t, `# rule: closed port, wrong expectation
0.100 < S 0:0(0) win 65535 <mss 1460>
0.100 > R. =0:=0(0) ack 2
`),
		parse(t, `# rule: handshake, event and read
0.000 listen
0.050 < S 0:0(0) win 65535 <mss 1460>
0.050 > S. 0:0(0) ack 1 win 65535 <mss 1460>
0.060 < . 1:1(0) ack 1 win 65535
0.060 event acceptable
0.060 event state SYN_RCVD->ESTABLISHED
0.060 accept
0.070 < P. 1:6(5) ack 1 win 65535 "hello"
0.070 event readable
0.070 read 10 = "hello"
0.070 write 3
0.070 > P. 1:4(3) ack 6
`),
		parse(t, "# rule: panics\n0.000 listen\n"),
	}
	scripts[3].Name = "panics"
	testHookSetUp = func(s *pktscript.Script) {
		if s.Name == "panics" {
			panic("test panic")
		}
	}
	defer func() { testHookSetUp = nil }()
	res := RunAll(scripts, DefaultOptions(), 4)
	if !res[0].Passed() {
		t.Errorf("closed port: %v\n%s", res[0].Err, res[0].Report.String())
	}
	f := res[1].Report.Failure
	if res[1].Err != nil || f == nil || f.Pos.Line != 3 || len(f.Diffs) != 1 || f.Diffs[0] != "ack 1 (want 2)" {
		t.Errorf("wrong expectation: err %v failure %+v", res[1].Err, f)
	}
	if !res[2].Content() {
		t.Errorf("handshake: %v\n%s", res[2].Err, res[2].Report.String())
	}
	if res[3].Err == nil || !strings.Contains(res[3].Err.Error(), "test panic") {
		t.Errorf("panic: err %v, want the panic reported", res[3].Err)
	}
	if left, err := Leftovers(); err != nil || len(left) > 0 {
		t.Errorf("namespaces left behind: %v %v", left, err)
	}
}
