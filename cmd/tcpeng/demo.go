package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"hash"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/pcap"
	"github.com/tcpeng/tcpeng/host/pipe"
)

// The demo's fixed setup.
var (
	demoAddrs  = [2]netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	demoServer = netip.AddrPortFrom(demoAddrs[pipe.B], 7)
)

const (
	demoMSL      = 30 * engine.Second   // TIME_WAIT lasts 2×MSL
	demoLimit    = 3600 * engine.Second // virtual time allowed for the whole run
	maxDemoBytes = 1 << 30
	echoHigh     = 256 << 10 // the server stops reading with this much echo unsent...
	echoLow      = 64 << 10  // ...and reads again below this
)

type demoOptions struct {
	loss     float64
	seed     uint64
	bytes    int
	message  string
	delay    time.Duration
	pcapFile string
	json     bool
	absolute bool
	engine   string
}

func demoFlags(o *demoOptions) *flag.FlagSet {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.Float64Var(&o.loss, "loss", 0, "probability `P` (0 to below 1) that the wire loses a frame, in each direction")
	fs.Uint64Var(&o.seed, "seed", 1, "seed `N` of the wire's random draws (and of the --bytes data)")
	fs.IntVar(&o.bytes, "bytes", 0, "send `N` bytes of random data instead of the message, and summarize")
	fs.StringVar(&o.message, "message", "hello, tcpeng", "the `text` the client sends")
	fs.DurationVar(&o.delay, "delay", 10*time.Millisecond, "one-way delay `D` of the wire (10ms, 1.5s, ...)")
	fs.StringVar(&o.pcapFile, "pcap", "", "write every frame to `FILE` (pcap, raw IPv4, virtual time)")
	fs.BoolVar(&o.json, "json", false, "print the trace as JSON, one object per line")
	fs.BoolVar(&o.absolute, "absolute", false, "show absolute sequence numbers instead of relative ones")
	fs.StringVar(&o.engine, "engine", "native", "the engine `kind`: "+engineHelp())
	fs.Usage = func() {
		w := fs.Output()
		fmt.Fprintf(w, `Usage: tcpeng demo [flags]

Runs two tcpeng engines joined by an in-memory wire, on a virtual clock, and
prints the life of one TCP connection. A (10.0.0.1) is a client: it connects to
B (10.0.0.2, port 7), sends a message, reads the echo and closes. B is an echo
server: it sends back what it reads, and closes when A has closed. Every
segment is one line (virtual time, direction, flags, sequence and
acknowledgment numbers, window, payload length, options), and every state
change of both ends is shown: the three-way handshake, the data, and the close
through FIN_WAIT_1, CLOSE_WAIT, FIN_WAIT_2, LAST_ACK and TIME_WAIT to CLOSED.
The clock jumps over idle time, so TIME_WAIT's 2×MSL (60s) costs nothing.

Everything is deterministic: the same flags print the same trace.

Flags (-flag and --flag are the same):
`)
		fs.PrintDefaults()
		fmt.Fprintf(w, `
Details:
  Sequence numbers are relative to the sender's initial sequence number (ISN)
  and acknowledgment numbers to the receiver's, as Wireshark shows them: the
  SYN has seq 0, the SYN-ACK seq 0 ack 1. WIN is in bytes, scaled once both
  SYNs offered window scaling.
  --loss drops frames at random in both directions; a segment that repeats
  sequence space already sent is marked as a retransmission, with the time
  since the original send (for a timeout, the retransmission timeout).
  --bytes N sends N random bytes that B echoes; the trace keeps only the
  segments with SYN, FIN or RST, and the summary counts the rest and checks
  both directions by SHA-256.
  --pcap records each frame as it leaves its sender (lost ones included), with
  the virtual time since 1970-01-01; Wireshark and tshark read it.
  --json prints one object per line with a "type": "start", "segment",
  "state", "event", "app", "clock" and, last, "summary".

Exit status: 0 when the echo came back intact and both ends reached CLOSED,
1 when not, 2 for bad flags.

Examples:
  tcpeng demo
  tcpeng demo --loss 0.2 --seed 6
  tcpeng demo --bytes 1048576 --loss 0.05 --pcap demo.pcap
  tcpeng demo --json | jq -c 'select(.type == "state")'
`)
	}
	return fs
}

// check returns a one-line reason if the options cannot run.
func (o *demoOptions) check() string {
	switch {
	case math.IsNaN(o.loss) || o.loss < 0 || o.loss >= 1:
		return fmt.Sprintf("--loss %v is out of range: give a probability from 0 up to (not including) 1", o.loss)
	case o.bytes < 0 || o.bytes > maxDemoBytes:
		return fmt.Sprintf("--bytes %d is out of range: give 0 to %d", o.bytes, maxDemoBytes)
	case o.bytes == 0 && o.message == "":
		return "--message is empty: give some text, or --bytes N"
	case o.delay < 0 || o.delay > time.Minute:
		return fmt.Sprintf("--delay %v is out of range: give 0 to 1m", o.delay)
	}
	if _, ok := engineKinds[o.engine]; !ok {
		return fmt.Sprintf("--engine %q is not known: give one of %s", o.engine, engineNames())
	}
	return ""
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	var o demoOptions
	fs := demoFlags(&o)
	if code, stop := parseFlags(fs, args, stdout, stderr); stop {
		return code
	}
	if msg := o.check(); msg != "" {
		fmt.Fprintf(stderr, "tcpeng demo: %s\n", msg)
		return exitUsage
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	code, err := demo(&o, w)
	if err != nil {
		w.Flush()
		fmt.Fprintf(stderr, "tcpeng demo: %v\n", err)
	}
	return code
}

// demo runs the demo and writes its trace to w. A non-nil error is the one line
// for stderr.
func demo(o *demoOptions, w *bufio.Writer) (int, error) {
	payload := []byte(o.message)
	if o.bytes > 0 {
		payload = randomData(o.bytes, o.seed)
	}
	var engines [2]engine.Engine
	for s := pipe.A; s <= pipe.B; s++ {
		cfg := engine.Config{Addrs: []netip.Addr{demoAddrs[s]}, Seed: uint64(s) + 1, TraceStates: true, MSL: demoMSL}
		copy(cfg.Key[:], "tcpeng demo key"+s.String())
		e, err := engineKinds[o.engine].new(cfg)
		if err != nil {
			return exitFail, fmt.Errorf("starting the %s engine of %v: %v", o.engine, s, err)
		}
		engines[s] = e
	}

	tr := newTracer(w, o)
	var pw *pcap.Writer
	var pf *os.File
	var pbuf *bufio.Writer
	if o.pcapFile != "" {
		f, err := os.Create(o.pcapFile)
		if err != nil {
			return exitFail, fmt.Errorf("cannot write the pcap file: %v", err)
		}
		pf, pbuf = f, bufio.NewWriter(f)
		pw, _ = pcap.NewWriter(pbuf, pcap.LinkRaw, 0) // the header goes to memory: no error
	}

	d := &demoRun{o: o, tr: tr, payload: payload}
	for i := range d.hashes {
		d.hashes[i] = sha256.New()
	}
	link := pipe.Impairments{Loss: o.loss, Delay: engine.Duration(o.delay)}
	p, err := pipe.New(pipe.Config{
		Engines: engines,
		Apps:    [2]pipe.App{d.client(), d.server()},
		Links:   [2]pipe.Impairments{link, link},
		Seed:    o.seed,
		OnFrame: func(f *pipe.Frame) {
			tr.frame(f)
			if pw != nil {
				_ = pw.WritePacket(f.Time, f.Data) // a write error is sticky and reported below
			}
		},
		OnOutput:  tr.output,
		OnAdvance: tr.advance,
	})
	if err != nil {
		return exitFail, err
	}
	d.p = p
	d.intro()
	runErr := p.Run(engine.Time(demoLimit))
	problems := d.check(runErr)
	if pw != nil {
		werr := pw.Err()
		if werr == nil {
			werr = pbuf.Flush()
		}
		if cerr := pf.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			problems = append(problems, "the pcap file is incomplete: "+werr.Error())
		}
	}
	d.summary(problems)
	if len(problems) > 0 {
		return exitFail, fmt.Errorf("%s", problems[0])
	}
	return exitOK, nil
}

// randomData returns n bytes drawn from seed.
func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 0x64656d6f))
	b := make([]byte, n)
	for i := range b {
		if i%8 == 0 {
			v := r.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
	}
	return b
}

// demoRun holds the apps' view of one run.
type demoRun struct {
	o       *demoOptions
	tr      *tracer
	p       *pipe.Pipe
	payload []byte
	// hashes of: A sent, B received, B sent, A received.
	hashes   [4]hash.Hash
	counts   [4]int64
	echo     []byte // what A received, in message mode
	failures []string
	cli, srv *pipe.Endpoint
}

const (
	aSent = iota
	bRecv
	bSent
	aRecv
)

// startApp adds a note at Start to an Endpoint.
type startApp struct {
	*pipe.Endpoint
	onStart func(h *pipe.Host)
}

func (a startApp) Start(h *pipe.Host) {
	a.onStart(h)
	a.Endpoint.Start(h)
}

func (d *demoRun) quote(b []byte) string {
	const max = 40
	if len(b) > max {
		return strconv.Quote(string(b[:max-3])) + "..."
	}
	return strconv.Quote(string(b))
}

// client connects, writes the payload, reads the echo, and closes once it has
// all of it.
func (d *demoRun) client() pipe.App {
	e := &pipe.Endpoint{Dial: demoServer}
	d.cli = e
	e.OnOpen = func(h *pipe.Host, s *pipe.Stream) {
		what := fmt.Sprintf("%d bytes", len(d.payload))
		if d.o.bytes == 0 {
			what += ": " + d.quote(d.payload)
		}
		d.tr.note(h.Side(), h.Now(), false, "write "+what)
		_ = s.Write(d.payload)
		s.OnWritten = func(s *pipe.Stream, n int) {
			d.hashes[aSent].Write(d.payload[d.counts[aSent] : d.counts[aSent]+int64(n)])
			d.counts[aSent] += int64(n)
		}
		s.OnData = func(s *pipe.Stream, b []byte) {
			d.hashes[aRecv].Write(b)
			d.counts[aRecv] += int64(len(b))
			if d.o.bytes == 0 {
				d.echo = append(d.echo, b...)
				d.tr.note(h.Side(), h.Now(), true, fmt.Sprintf("read %d bytes: %s", len(b), d.quote(b)))
			}
			if d.counts[aRecv] >= int64(len(d.payload)) {
				d.tr.note(h.Side(), h.Now(), false, "the echo is complete: close")
				s.Close()
			}
		}
		d.onTrouble(h, s)
	}
	return startApp{e, func(h *pipe.Host) {
		d.tr.note(h.Side(), h.Now(), false, "connect to "+demoServer.String())
	}}
}

// server listens, echoes what it reads (pausing while too much echo waits),
// and closes at the end of the stream.
func (d *demoRun) server() pipe.App {
	e := &pipe.Endpoint{Listen: demoServer}
	d.srv = e
	e.OnOpen = func(h *pipe.Host, s *pipe.Stream) {
		from := demoAddrs[pipe.A].String()
		if port := d.tr.ports[pipe.A]; port != 0 {
			from = netip.AddrPortFrom(demoAddrs[pipe.A], port).String()
		}
		d.tr.note(h.Side(), h.Now(), false, "accept the connection from "+from)
		s.OnData = func(s *pipe.Stream, b []byte) {
			d.hashes[bRecv].Write(b)
			d.counts[bRecv] += int64(len(b))
			d.tr.note(h.Side(), h.Now(), true, fmt.Sprintf("read %d bytes: %s; write them back", len(b), d.quote(b)))
			d.hashes[bSent].Write(b)
			_ = s.Write(bytes.Clone(b))
			if s.Queued() > echoHigh {
				s.Pause()
			}
		}
		s.OnWritten = func(s *pipe.Stream, n int) {
			d.counts[bSent] += int64(n)
			if s.Queued() < echoLow {
				s.Resume()
			}
		}
		s.OnEOF = func(s *pipe.Stream) {
			d.tr.note(h.Side(), h.Now(), false, "end of stream (A closed): close")
			s.Close()
		}
		d.onTrouble(h, s)
	}
	return startApp{e, func(h *pipe.Host) {
		d.tr.note(h.Side(), h.Now(), false, "listen on "+demoServer.String())
	}}
}

func (d *demoRun) onTrouble(h *pipe.Host, s *pipe.Stream) {
	s.OnError = func(s *pipe.Stream, err engine.Error) {
		d.tr.note(h.Side(), h.Now(), false, fmt.Sprintf("the connection failed: %v", err))
		d.failures = append(d.failures, fmt.Sprintf("%v's connection failed at %s s: %v", h.Side(), fmtTime(h.Now()), err))
	}
}

// intro prints what the demo is about to show.
func (d *demoRun) intro() {
	o := d.o
	if o.json {
		d.tr.emit(struct {
			Type    string  `json:"type"`
			Engine  string  `json:"engine"`
			Client  string  `json:"client"`
			Server  string  `json:"server"`
			Bytes   int     `json:"bytes"`
			Loss    float64 `json:"loss"`
			Seed    uint64  `json:"seed"`
			DelayNS int64   `json:"delay_ns"`
		}{"start", o.engine, demoAddrs[pipe.A].String(), demoServer.String(), len(d.payload), o.loss, o.seed, int64(o.delay)})
		return
	}
	w := d.tr.w
	what := d.quote(d.payload)
	if o.bytes > 0 {
		what = fmt.Sprintf("%d random bytes", o.bytes)
	}
	wire := fmt.Sprintf("%v each way", engine.Duration(o.delay))
	if o.loss > 0 {
		wire += fmt.Sprintf(", %g%% of frames lost in each direction (seed %d)", 100*o.loss, o.seed)
	} else {
		wire += ", nothing lost"
	}
	fmt.Fprintf(w, "tcpeng demo: one TCP connection between two %s engines on an in-memory wire\n", o.engine)
	fmt.Fprintf(w, "  A  %-11s client: connects to B, sends %s, reads the echo, closes\n", demoAddrs[pipe.A], what)
	fmt.Fprintf(w, "  B  %-11s server: echoes what it reads; closes when A has closed\n", demoServer)
	fmt.Fprintf(w, "  wire: %s; the clock is virtual and starts at 0\n\n", wire)
	d.tr.header()
}

// check lists what went wrong, if anything.
func (d *demoRun) check(runErr error) []string {
	var problems []string
	if runErr != nil {
		problems = append(problems, runErr.Error())
	}
	problems = append(problems, d.failures...)
	sums := d.sums()
	n := int64(len(d.payload))
	for _, c := range []struct {
		dir        string
		sent, recv int
	}{{"A>B", aSent, bRecv}, {"B>A", bSent, aRecv}} {
		if d.counts[c.sent] != n || d.counts[c.recv] != n || sums[c.sent] != sums[c.recv] || sums[c.sent] != sums[aSent] {
			problems = append(problems, fmt.Sprintf("data %s: %d bytes written and %d received of %d, sha256 %s... and %s...",
				c.dir, d.counts[c.sent], d.counts[c.recv], n, sums[c.sent][:16], sums[c.recv][:16]))
		}
	}
	if d.o.bytes == 0 && !bytes.Equal(d.echo, d.payload) {
		problems = append(problems, fmt.Sprintf("the echo %s differs from the message %s", d.quote(d.echo), d.quote(d.payload)))
	}
	for s := pipe.A; s <= pipe.B; s++ {
		if st := d.tr.states[s]; len(st) == 0 || d.tr.state[s] != engine.StateClosed {
			problems = append(problems, fmt.Sprintf("%v did not reach CLOSED (states %s)", s, statePath(st)))
		}
	}
	return problems
}

func (d *demoRun) sums() [4]string {
	var s [4]string
	for i, h := range d.hashes {
		s[i] = hex.EncodeToString(h.Sum(nil))
	}
	return s
}

func statePath(st []engine.State) string {
	if len(st) == 0 {
		return "none"
	}
	names := make([]string, len(st))
	for i, s := range st {
		names[i] = s.String()
	}
	return strings.Join(names, " > ")
}

// summary prints the end of the trace.
func (d *demoRun) summary(problems []string) {
	sums := d.sums()
	t := d.tr
	now := d.p.Now()
	if d.o.json {
		type dataCheck struct {
			Dir      string `json:"dir"`
			Sent     int64  `json:"sent"`
			Received int64  `json:"received"`
			SHASent  string `json:"sha256_sent"`
			SHARecv  string `json:"sha256_received"`
			Equal    bool   `json:"equal"`
		}
		states := map[string][]string{}
		for s := pipe.A; s <= pipe.B; s++ {
			states[s.String()] = []string{}
			for _, st := range t.states[s] {
				states[s.String()] = append(states[s.String()], st.String())
			}
		}
		if problems == nil {
			problems = []string{}
		}
		t.emit(struct {
			Type     string              `json:"type"`
			OK       bool                `json:"ok"`
			Time     int64               `json:"time_ns"`
			AtoB     dirStats            `json:"a_to_b"`
			BtoA     dirStats            `json:"b_to_a"`
			Data     []dataCheck         `json:"data"`
			States   map[string][]string `json:"states"`
			Problems []string            `json:"problems"`
		}{"summary", len(problems) == 0, int64(now), t.dirs[pipe.A], t.dirs[pipe.B], []dataCheck{
			{"A>B", d.counts[aSent], d.counts[bRecv], sums[aSent], sums[bRecv], sums[aSent] == sums[bRecv]},
			{"B>A", d.counts[bSent], d.counts[aRecv], sums[bSent], sums[aRecv], sums[bSent] == sums[aRecv]},
		}, states, problems})
		return
	}
	w := t.w
	fmt.Fprintf(w, "\nSummary after %s s of virtual time\n", fmtTime(now))
	for s := pipe.A; s <= pipe.B; s++ {
		ds := &t.dirs[s]
		label := ""
		if s == pipe.A {
			label = "segments"
		}
		line := fmt.Sprintf("  %-9s %s  %d, %d with data (%d bytes), %d retransmitted, %d lost",
			label, s.Dir(), ds.Segments, ds.Data, ds.Bytes, ds.Retransmits, ds.Lost)
		if ds.MaxResend > 0 {
			line += fmt.Sprintf("; resent %s to %s after the previous send", fmtDur(ds.MinResend), fmtDur(ds.MaxResend))
		}
		fmt.Fprintln(w, line)
	}
	for s := pipe.A; s <= pipe.B; s++ {
		label := ""
		if s == pipe.A {
			label = "states"
		}
		fmt.Fprintf(w, "  %-9s %-3s  %s\n", label, s, statePath(t.states[s]))
	}
	if d.o.bytes > 0 {
		for _, c := range []struct {
			dir        string
			sent, recv int
		}{{"A>B", aSent, bRecv}, {"B>A", bSent, aRecv}} {
			verdict := "equal"
			if sums[c.sent] != sums[c.recv] {
				verdict = "DIFFERENT"
			}
			label := ""
			if c.dir == "A>B" {
				label = "data"
			}
			fmt.Fprintf(w, "  %-9s %s  %d bytes sent,     sha256 %s\n", label, c.dir, d.counts[c.sent], sums[c.sent])
			fmt.Fprintf(w, "  %-9s %s  %d bytes received, sha256 %s  %s\n", "", "   ", d.counts[c.recv], sums[c.recv], verdict)
		}
	}
	if len(problems) == 0 {
		what := "the echo of " + d.quote(d.payload)
		if d.o.bytes > 0 {
			what = fmt.Sprintf("all %d bytes, both ways,", len(d.payload))
		}
		fmt.Fprintf(w, "  %-9s %s came back intact and both ends reached CLOSED\n", "OK", what)
		return
	}
	for _, p := range problems {
		fmt.Fprintf(w, "  %-9s %s\n", "PROBLEM", p)
	}
}
