package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/host/pcap/pcaptest"
)

var update = flag.Bool("update", false, "rewrite testdata/demo.golden from the current output")

// tcpeng runs the command line in-process.
func tcpeng(args ...string) (code int, stdout, stderr string) {
	var o, e bytes.Buffer
	code = run(args, &o, &e)
	return code, o.String(), e.String()
}

// TestDemoGolden: the default demo prints exactly testdata/demo.golden. The run
// is deterministic (virtual time, fixed seeds and keys); after a deliberate
// change of the engine or of the format, run
// `go test ./cmd/tcpeng -run TestDemoGolden -update` and review the diff.
func TestDemoGolden(t *testing.T) {
	code, out, errs := tcpeng("demo")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	golden := filepath.Join("testdata", "demo.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Fatalf("demo output differs from %s (rerun with -update after a deliberate change):\n%s", golden, lineDiff(string(want), out))
	}
	// The story the demo exists to tell, whatever the golden file says.
	for _, s := range []string{
		"A>B  SYN                  0          -",
		"B>A  SYN,ACK              0          1",
		"A    state       CLOSED -> SYN_SENT",
		"B    state       LISTEN -> SYN_RCVD",
		"A    state       ESTABLISHED -> FIN_WAIT_1",
		"B    state       ESTABLISHED -> CLOSE_WAIT",
		"A    state       FIN_WAIT_1 -> FIN_WAIT_2",
		"B    state       CLOSE_WAIT -> LAST_ACK",
		"A    state       FIN_WAIT_2 -> TIME_WAIT",
		"B    state       LAST_ACK -> CLOSED",
		"the virtual clock jumps to 60.060000, when A's TIME_WAIT ends (2×MSL = 60s)",
		"60.060000  A    state       TIME_WAIT -> CLOSED",
		"OK        the echo of \"hello, tcpeng\" came back intact and both ends reached CLOSED",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("the demo does not show %q", s)
		}
	}
	// The ACK completing the handshake acknowledges the SYN-ACK: ack 1.
	if !regexp.MustCompile(`(?m)^ +0\.020000  A>B  \S*ACK +1 +1 `).MatchString(out) {
		t.Error("the third segment of the handshake is not A>B with seq 1 ack 1")
	}
}

// lineDiff shows the first lines that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want " + wl + "\n  got  " + gl + "\n")
			shown++
		}
	}
	return b.String()
}

func TestDemoAbsolute(t *testing.T) {
	code, out, _ := tcpeng("demo", "--absolute")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	// The JSON trace gives the absolute numbers to expect.
	_, js, _ := tcpeng("demo", "--json")
	var syn struct {
		SeqAbs uint32 `json:"seq_abs"`
	}
	for _, l := range strings.Split(js, "\n") {
		if strings.Contains(l, `"flags":"SYN"`) {
			if err := json.Unmarshal([]byte(l), &syn); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if syn.SeqAbs == 0 || !strings.Contains(out, "A>B  SYN         "+strconv.FormatUint(uint64(syn.SeqAbs), 10)+"          -") {
		t.Fatalf("--absolute does not show the SYN's sequence number %d:\n%s", syn.SeqAbs, out)
	}
	if !strings.Contains(out, "SEQ and ACK are the raw 32-bit") {
		t.Error("the header does not say the numbers are absolute")
	}
}

// record is any line of the JSON trace.
type record struct {
	Type     string `json:"type"`
	Time     *int64 `json:"time_ns"`
	Dir      string `json:"dir"`
	Flags    string `json:"flags"`
	Seq      uint32 `json:"seq"`
	Ack      *uint32
	Side     string `json:"side"`
	From, To string
	Retrans  int    `json:"retransmission"`
	Since    int64  `json:"since_first_ns"`
	Drop     string `json:"drop"`
	OK       bool   `json:"ok"`
	AtoB     struct {
		Segments, Retransmissions int
	} `json:"a_to_b"`
	BtoA struct {
		Segments, Retransmissions int
	} `json:"b_to_a"`
	Data []struct {
		Dir      string
		Sent     int64
		Received int64
		SHASent  string `json:"sha256_sent"`
		SHARecv  string `json:"sha256_received"`
		Equal    bool
	}
	Problems []string
}

// parseJSON parses every line of a --json trace.
func parseJSON(t *testing.T, out string) []record {
	t.Helper()
	var recs []record
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for i, l := range lines {
		var r record
		var raw map[string]any
		if err := json.Unmarshal([]byte(l), &raw); err != nil {
			t.Fatalf("line %d is not one JSON object: %v\n%s", i+1, err, l)
		}
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("line %d: %v\n%s", i+1, err, l)
		}
		recs = append(recs, r)
	}
	return recs
}

func TestDemoJSON(t *testing.T) {
	code, out, errs := tcpeng("demo", "--json")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	recs := parseJSON(t, out)
	if recs[0].Type != "start" || recs[len(recs)-1].Type != "summary" {
		t.Fatalf("first record %q, last %q; want start and summary", recs[0].Type, recs[len(recs)-1].Type)
	}
	counts := map[string]int{}
	var segs [2]int
	var states []string
	var last int64
	for _, r := range recs {
		counts[r.Type]++
		if r.Time != nil {
			if *r.Time < last {
				t.Errorf("time goes back: %d after %d", *r.Time, last)
			}
			last = *r.Time
		}
		switch r.Type {
		case "segment":
			if r.Dir == "A>B" {
				segs[0]++
			} else {
				segs[1]++
			}
		case "state":
			states = append(states, r.Side+":"+r.From+">"+r.To)
		}
	}
	sum := recs[len(recs)-1]
	if !sum.OK || len(sum.Problems) != 0 || sum.AtoB.Segments != segs[0] || sum.BtoA.Segments != segs[1] {
		t.Errorf("summary %+v; segments counted A>B %d B>A %d", sum, segs[0], segs[1])
	}
	for _, d := range sum.Data {
		if !d.Equal || d.Sent != 13 || d.Received != 13 || d.SHASent != d.SHARecv || len(d.SHASent) != 64 {
			t.Errorf("data check %+v", d)
		}
	}
	want := "A:CLOSED>SYN_SENT B:LISTEN>SYN_RCVD A:SYN_SENT>ESTABLISHED B:SYN_RCVD>ESTABLISHED A:ESTABLISHED>FIN_WAIT_1 " +
		"B:ESTABLISHED>CLOSE_WAIT B:CLOSE_WAIT>LAST_ACK A:FIN_WAIT_1>FIN_WAIT_2 A:FIN_WAIT_2>TIME_WAIT B:LAST_ACK>CLOSED A:TIME_WAIT>CLOSED"
	if got := strings.Join(states, " "); got != want {
		t.Errorf("states\n got %s\nwant %s", got, want)
	}
	if counts["event"] == 0 || counts["app"] == 0 || counts["clock"] != 1 {
		t.Errorf("record counts %v: want events, app notes and one clock jump", counts)
	}
}

func TestDemoPcap(t *testing.T) {
	file := filepath.Join(t.TempDir(), "demo.pcap")
	code, out, errs := tcpeng("demo", "--json", "--loss", "0.2", "--seed", "6", "--pcap", file)
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	segs := 0
	for _, r := range parseJSON(t, out) {
		if r.Type == "segment" {
			segs++
		}
	}
	lines := pcaptest.Check(t, file, segs)
	if !strings.Contains(strings.Join(lines, "\n"), "Retransmission") {
		t.Errorf("tshark sees no retransmission:\n%s", strings.Join(lines, "\n"))
	}
}

// TestDemoLoss: seed 6 with 20% loss loses the SYN-ACK; A's SYN goes again
// after the initial retransmission timeout (1 s, RFC 6298 §2.1), marked as a
// retransmission with its delay; the echo still comes back.
func TestDemoLoss(t *testing.T) {
	code, out, errs := tcpeng("demo", "--loss", "0.2", "--seed", "6")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	for _, re := range []string{
		`(?m)^  0\.010000  B>A  SYN,ACK +0 +1 .* \[lost\]$`,
		`(?m)^  1\.000000  A>B  SYN +0 +- .* \[retransmission, 1s after the original\]`,
		`(?m)^ +\d+\.\d{6}  [AB]>[AB]  .* \[retransmission #2, \S+ after the original, \S+ after #1\]`,
		`(?m)^  segments  A>B  \d+, \d+ with data \(\d+ bytes\), [1-9]\d* retransmitted, [1-9]\d* lost; resent \S+ to \S+ after the previous send$`,
		`wire: 10ms each way, 20% of frames lost in each direction \(seed 6\)`,
		`OK        the echo of "hello, tcpeng" came back intact`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s:\n%s", re, out)
		}
	}
}

// TestDemoLossyFastLink: 8 MiB echoed over a 50 µs wire that loses 5% of
// frames. The server stops reading while its echo waits, so its window fills
// and closes again and again; a retransmission from it then carries a new ACK
// with a closing window. The window update rule once kept the older, larger
// window for it (RFC 9293's SND.WL1 test), the client sent past the server's
// window, and the ACKs it sent from there were dropped: this run stalled for
// an hour of virtual time, retransmission timers backed off to 60 s. It takes
// 2 to 9 s now, depending on the seed (and the 60 s of TIME_WAIT).
func TestDemoLossyFastLink(t *testing.T) {
	code, out, errs := tcpeng("demo", "--bytes", "8388608", "--loss", "0.05", "--seed", "3", "--delay", "50us")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	m := regexp.MustCompile(`Summary after (\d+)\.\d+ s of virtual time`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no summary:\n%s", out)
	}
	if s, _ := strconv.Atoi(m[1]); s > 90 {
		t.Errorf("the echo took %s s of virtual time, want at most 90 (60 of them TIME_WAIT)", m[1])
	}
}

// TestDemoFailure: a wire that loses 90% of frames makes A's SYN time out; the
// demo says so and exits 1.
func TestDemoFailure(t *testing.T) {
	code, out, errs := tcpeng("demo", "--loss", "0.9", "--seed", "3")
	want := "tcpeng demo: A's connection failed at 123.000000 s: tcpeng: connection timed out: the peer stopped acknowledging\n"
	if code != exitFail || errs != want {
		t.Fatalf("exit %d, stderr %q; want exit 1 and %q", code, errs, want)
	}
	if !strings.Contains(out, "  PROBLEM   A's connection failed") || strings.Contains(out, "  OK  ") {
		t.Errorf("the summary does not report the failure:\n%s", out)
	}
}

// TestDemoBytesWithLoss: 1 MiB echoed over a lossy wire comes back intact, both
// hashes printed and equal.
func TestDemoBytesWithLoss(t *testing.T) {
	code, out, errs := tcpeng("demo", "--bytes", "1048576", "--loss", "0.05", "--seed", "2")
	if code != 0 || errs != "" {
		t.Fatalf("exit %d, stderr %q\n%s", code, errs, out)
	}
	re := regexp.MustCompile(`(\d+) bytes (sent|received), +sha256 ([0-9a-f]{64})`)
	m := re.FindAllStringSubmatch(out, -1)
	if len(m) != 4 {
		t.Fatalf("%d hash lines, want 4:\n%s", len(m), out)
	}
	for _, x := range m {
		if x[1] != "1048576" || x[3] != m[0][3] {
			t.Errorf("hash line %q: want 1048576 bytes and sha256 %s", x[0], m[0][3])
		}
	}
	if strings.Count(out, "  equal") != 2 || !strings.Contains(out, "OK        all 1048576 bytes, both ways, came back intact") {
		t.Errorf("summary:\n%s", out)
	}
	if !regexp.MustCompile(`A>B  \d+, \d+ with data \(\d+ bytes\), [1-9]\d* retransmitted, [1-9]\d* lost`).MatchString(out) {
		t.Errorf("no retransmission counted A>B:\n%s", out)
	}
	if strings.Contains(out, "PSH,ACK") {
		t.Error("--bytes printed data segments one by one")
	}
}

func TestBadUsage(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, ""}, // the usage, on stderr
		{[]string{"bogus"}, `tcpeng: unknown command "bogus": the commands are demo, serve, forward (tcpeng -h)`},
		{[]string{"--loss", "0.1"}, "tcpeng: --loss comes before a command: give a command first (demo, serve, forward), e.g. tcpeng demo --loss"},
		{[]string{"demo", "--nope"}, "tcpeng demo: flag provided but not defined: -nope (tcpeng demo -h lists the flags)"},
		{[]string{"demo", "--loss", "x"}, `tcpeng demo: invalid value "x" for flag -loss: parse error (tcpeng demo -h lists the flags)`},
		{[]string{"demo", "--loss", "1.5"}, "tcpeng demo: --loss 1.5 is out of range: give a probability from 0 up to (not including) 1"},
		{[]string{"demo", "--bytes", "-1"}, "tcpeng demo: --bytes -1 is out of range: give 0 to 1073741824"},
		{[]string{"demo", "--delay", "-1s"}, "tcpeng demo: --delay -1s is out of range: give 0 to 1m"},
		{[]string{"demo", "--message", ""}, "tcpeng demo: --message is empty: give some text, or --bytes N"},
		{[]string{"demo", "--engine", "wasm2"}, `tcpeng demo: --engine "wasm2" is not known: give one of native, wasm`},
		{[]string{"demo", "extra"}, `tcpeng demo: unexpected argument "extra": it takes only flags (tcpeng demo -h)`},
		{[]string{"demo", "--pcap", "/nonexistent/dir/x.pcap"}, "tcpeng demo: cannot write the pcap file: open /nonexistent/dir/x.pcap: no such file or directory"},
	} {
		code, out, errs := tcpeng(tc.args...)
		wantCode := exitUsage
		if strings.Contains(tc.want, "pcap file") {
			wantCode = exitFail
		}
		if code != wantCode || out != "" {
			t.Errorf("%q: exit %d, stdout %q; want exit %d and nothing on stdout", tc.args, code, out, wantCode)
		}
		if tc.want == "" {
			if !strings.Contains(errs, "Usage:") {
				t.Errorf("%q: stderr %q, want the usage", tc.args, errs)
			}
			continue
		}
		if errs != tc.want+"\n" {
			t.Errorf("%q: stderr\n got %q\nwant %q", tc.args, errs, tc.want+"\n")
		}
	}
}

func TestHelp(t *testing.T) {
	for _, args := range [][]string{{"-h"}, {"--help"}, {"help"}} {
		code, out, errs := tcpeng(args...)
		if code != 0 || errs != "" || !strings.Contains(out, "tcpeng demo") || !strings.Contains(out, "Commands:") {
			t.Errorf("%q: exit %d, stderr %q, stdout %q", args, code, errs, out)
		}
	}
	for _, args := range [][]string{{"demo", "-h"}, {"demo", "--help"}, {"help", "demo"}} {
		code, out, errs := tcpeng(args...)
		if code != 0 || errs != "" {
			t.Errorf("%q: exit %d, stderr %q", args, code, errs)
		}
		for _, f := range []string{"-loss", "-seed", "-bytes", "-message", "-delay", "-pcap", "-json", "-absolute", "-engine", "Exit status", "Examples"} {
			if !strings.Contains(out, f) {
				t.Errorf("%q: the help does not mention %s", args, f)
			}
		}
	}
}
