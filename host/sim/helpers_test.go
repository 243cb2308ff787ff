package sim

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
	"github.com/tcpeng/tcpeng/host/offload"
	"github.com/tcpeng/tcpeng/host/pcap"
)

// newEngine makes each host's engine. It is the one place that names the
// native stack: the WebAssembly engine of bindings/wazero plugs in here.
var newEngine = func(cfg engine.Config) (engine.Engine, error) { return engine.New(cfg) }

// statser is the native stack's counters; other engines may not have them.
type statser interface{ Stats() engine.Stats }

const mib = 1 << 20

func hostAddr(i int) netip.Addr { return netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}) }

// randomBytes returns n bytes drawn from seed.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, mix(seed, 7)))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := i; j < min(n, i+8); j++ {
			b[j] = byte(v)
			v >>= 8
		}
	}
	return b
}

// scenario is a run of the integrity workload: hosts joined by links, a
// transfer of size bytes each way between pairs of hosts.
type scenario struct {
	seed uint64
	// hosts is 2 (one link, links[0] from host 0 to 1, links[1] back) or more
	// (a mesh, every direction shaped by links[0]; host i dials host j for
	// every i < j).
	hosts int
	links [2]Impairments
	size  int
	// oneWay, if set, makes the dialers send nothing (they shut down at once)
	// and the listeners size bytes.
	oneWay bool
	engine func(c *engine.Config) // adjusts each host's engine config
	bound  engine.Duration        // the run must finish within it
	// offload wraps each engine in host/offload.Engine, made with
	// Config.SegmentOffload and Config.TrustLink: the wrapper checks the
	// checksums (Verify).
	offload bool
	// Optional.
	newEngine func(engine.Config) (engine.Engine, error) // default: the package's newEngine
	capture   io.Writer
	captureAt CapturePoint
	onFrame   func(f *Frame)
	maxSteps  uint64
}

// pair is one connection of a scenario: host d dials host l.
type pair struct {
	d, l               int
	dialer, listener   *Transfer
	dialData, listData []byte
}

// outcome is what a scenario did.
type outcome struct {
	net   *Network
	hosts []*Host
	apps  []*Transfers
	pairs []pair
	err   error // Run's error
	done  bool  // every transfer finished
}

// suiteMSL is the MSL of the suite's engines; see engineConfig.
const suiteMSL = 5 * 60 * engine.Second

// engineConfig is the engine configuration of host i in a run of seed.
//
// MSL is 5 minutes, not the engine's 30 s default (nor RFC 9293 §3.4.2's
// 2 minutes): the end in TIME_WAIT must outlive the peer's retransmissions.
// When the last ACK is lost, the peer in LAST_ACK retransmits from SND.UNA,
// which may be data, not its FIN, so TIME_WAIT is not restarted (§3.10.7.4),
// and over a 20%-loss link whose RTO has backed off to MaxRTO (60 s) each try
// fails with 1-0.8² = 0.36: a 4-minute TIME_WAIT covers four tries and ended
// with a reset once in 10000 runs; ten tries fail together once in 3×10^4 of
// the runs that get there. SynRetries 15 and MaxRetries 30 (§3.8.3's R2, for
// SYN and for data) make giving up negligible the same way: 0.36^16 ≈ 8e-8
// per connection. Virtual time makes the long timers free.
func engineConfig(seed uint64, i int) engine.Config {
	cfg := engine.Config{
		Addrs:       []netip.Addr{hostAddr(i)},
		Seed:        mix(seed, 100+uint64(i)),
		TraceStates: true,
		MSL:         suiteMSL,
		SynRetries:  15,
		MaxRetries:  30,
	}
	k := mix(seed, 200+uint64(i))
	for j := range 8 {
		cfg.Key[j] = byte(k >> (8 * j))
		cfg.Key[8+j] = byte(k >> (8 * j) >> 3)
	}
	return cfg
}

// build makes the network of sc without running it.
func (sc *scenario) build() (*outcome, error) {
	cfg := Config{Seed: sc.seed, OnFrame: sc.onFrame, CaptureAt: sc.captureAt, MaxSteps: sc.maxSteps}
	if sc.capture != nil {
		w, err := pcap.NewWriter(sc.capture, pcap.LinkRaw, 0)
		if err != nil {
			return nil, err
		}
		cfg.Capture = w
	}
	n, err := New(cfg)
	if err != nil {
		return nil, err
	}
	o := &outcome{net: n}
	for i := range sc.hosts {
		ec := engineConfig(sc.seed, i)
		if sc.engine != nil {
			sc.engine(&ec)
		}
		mk := newEngine
		if sc.newEngine != nil {
			mk = sc.newEngine
		}
		if sc.offload {
			ec.SegmentOffload, ec.TrustLink = true, true
		}
		e, err := mk(ec)
		if err != nil {
			return nil, err
		}
		if sc.offload {
			w := offload.New(e, cmp.Or(ec.MTU, engine.DefaultMTU))
			w.Verify = true
			e = w
		}
		app := &Transfers{}
		h, err := n.AddHost(HostConfig{Name: string(rune('A' + i)), Engine: e, Addrs: ec.Addrs, App: app})
		if err != nil {
			return nil, err
		}
		o.hosts = append(o.hosts, h)
		o.apps = append(o.apps, app)
	}
	if sc.hosts == 2 {
		if _, err := n.Connect(o.hosts[0], o.hosts[1], sc.links[0], sc.links[1]); err != nil {
			return nil, err
		}
	} else if _, err := n.Mesh(o.hosts, sc.links[0]); err != nil {
		return nil, err
	}
	k := uint64(0)
	dialSize := sc.size
	if sc.oneWay {
		dialSize = 0
	}
	for d := range sc.hosts {
		for l := d + 1; l < sc.hosts; l++ {
			// Host l listens on a port of its own for each dialer, so that each
			// accepted connection is known to be d's.
			addr := netip.AddrPortFrom(hostAddr(l), uint16(1000+d))
			p := pair{d: d, l: l,
				dialData: randomBytes(dialSize, mix(sc.seed, 300+k)),
				listData: randomBytes(sc.size, mix(sc.seed, 301+k))}
			k += 2
			p.dialer = &Transfer{Dial: addr, Data: p.dialData}
			p.listener = &Transfer{Listen: addr, Data: p.listData}
			o.apps[d].List = append(o.apps[d].List, p.dialer)
			o.apps[l].List = append(o.apps[l].List, p.listener)
			o.pairs = append(o.pairs, p)
		}
	}
	return o, nil
}

// run builds and runs sc until every transfer is done or the bound passes.
// runClean runs sc and fails t unless every transfer completed as it must
// (outcome.problems); the outcome is closed when the test ends.
func (sc *scenario) runClean(t *testing.T) *outcome {
	t.Helper()
	o, err := sc.run()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.close)
	if ps := o.problems(sc); len(ps) > 0 {
		t.Fatalf("seed %d: the transfer failed:\n%s", sc.seed, strings.Join(ps, "\n"))
	}
	return o
}

func (sc *scenario) run() (*outcome, error) {
	o, err := sc.build()
	if err != nil {
		return nil, err
	}
	done := func() bool {
		for _, a := range o.apps {
			if !a.Done() {
				return false
			}
		}
		return true
	}
	o.err = o.net.RunUntil(done, engine.Time(sc.bound))
	o.done = done()
	return o, nil
}

// close releases engines that hold resources (the WebAssembly engine).
func (o *outcome) close() {
	for _, h := range o.hosts {
		if c, ok := h.Engine().(io.Closer); ok {
			_ = c.Close()
		}
	}
}

// problems lists everything wrong with the outcome; nil means the run passed.
func (o *outcome) problems(sc *scenario) []string {
	var ps []string
	add := func(format string, args ...any) { ps = append(ps, fmt.Sprintf(format, args...)) }
	n := o.net
	if o.err != nil {
		add("the run stopped: %v", o.err)
	}
	if o.err == nil && !o.done {
		if n.InFlight() == 0 && allNever(o.hosts) {
			add("stuck at t=%v: nothing armed and nothing in flight, and the transfers are not done", engine.Duration(n.Now()))
		} else {
			add("not finished within the bound of %v (%s)", sc.bound, n.describe())
		}
	}
	for _, p := range o.pairs {
		for _, e := range []struct {
			t    *Transfer
			who  string
			want []byte
		}{{p.dialer, o.hosts[p.d].Name() + " (dialer)", p.listData}, {p.listener, o.hosts[p.l].Name() + " (listener)", p.dialData}} {
			t := e.t
			if t.Err != engine.OK {
				add("%s: connection failed: %v (%s)", e.who, t.Err, t.ErrWhat)
			}
			if want := sha256.Sum256(e.want); !t.EOF || t.Received != int64(len(e.want)) || t.Sum != want {
				add("%s: received %d bytes, EOF %v, sha256 %x; want %d bytes, sha256 %x",
					e.who, t.Received, t.EOF, t.Sum[:8], len(e.want), want[:8])
			}
			if t.Written != len(t.Data) || !t.ShutDown {
				add("%s: the engine took %d of %d bytes, shutdown done %v", e.who, t.Written, len(t.Data), t.ShutDown)
			}
			if !t.Closed || !t.StateClosed {
				add("%s: EventClosed %v, EventState to CLOSED %v (want both); states %v", e.who, t.Closed, t.StateClosed, t.States)
			}
			if t.Extra != 0 {
				add("%s: %d unexpected extra connections accepted", e.who, t.Extra)
			}
		}
	}
	if st := n.Stats(); st.NoRoute != 0 {
		add("%d frames had no route", st.NoRoute)
	}
	for _, l := range n.Links() {
		for _, d := range l.dirs {
			if d.stats.FlightDrop != 0 || d.stats.MTUDrops != 0 {
				add("%s>%s: %d frames dropped at the in-flight limit, %d over the MTU %d (the engines must respect it)",
					d.from.Name(), d.to.Name(), d.stats.FlightDrop, d.stats.MTUDrops, d.im.MTU)
			}
		}
	}
	// Every corrupted copy delivered to a native stack must have been dropped
	// by one of its validation gates, and nothing else dropped: one damaged
	// byte always breaks a checksum (see Impairments).
	for _, h := range o.hosts {
		s, ok := h.Engine().(statser)
		if !ok {
			continue
		}
		st := s.Stats()
		var corrupted uint64
		for _, d := range h.rx {
			corrupted += d.stats.Corrupted
		}
		drops := st.DropMalformed + st.DropChecksum + st.DropNotForUs + st.DropMartian + st.DropFragment + st.DropProtocol
		if drops != corrupted {
			add("%s: %d corrupted frames delivered, but the engine dropped %d (malformed %d, checksum %d, not for us %d, martian %d, fragment %d, protocol %d)",
				h.Name(), corrupted, drops, st.DropMalformed, st.DropChecksum, st.DropNotForUs, st.DropMartian, st.DropFragment, st.DropProtocol)
		}
		if o.done {
			listeners := 0
			for _, t := range o.apps[h.index].List {
				if t.Listen.IsValid() {
					listeners++
				}
			}
			if st.Conns != listeners {
				add("%s: %d connections and listeners left in the engine after every connection closed; want its %d listeners",
					h.Name(), st.Conns, listeners)
			}
		}
	}
	return ps
}

func allNever(hs []*Host) bool {
	for _, h := range hs {
		if h.Deadline() != engine.Never {
			return false
		}
	}
	return true
}

// linkTotals adds up the counters of every direction of every link.
func linkTotals(n *Network) LinkStats {
	var t LinkStats
	for _, l := range n.Links() {
		for _, d := range l.dirs {
			s := d.stats
			t.Frames += s.Frames
			t.Bytes += s.Bytes
			t.MTUDrops += s.MTUDrops
			t.QueueDrops += s.QueueDrops
			t.Lost += s.Lost
			t.Duplicated += s.Duplicated
			t.Reordered += s.Reordered
			t.Corrupted += s.Corrupted
			t.Delivered += s.Delivered
			t.FlightDrop += s.FlightDrop
			t.MaxQueue = max(t.MaxQueue, s.MaxQueue)
		}
	}
	return t
}

// summary is a one-line account of a run, for -v logs.
func (o *outcome) summary() string {
	var b strings.Builder
	fmt.Fprintf(&b, "t=%v steps %d", engine.Duration(o.net.Now()), o.net.Stats().Steps)
	for _, l := range o.net.Links() {
		for _, d := range l.dirs {
			s := d.stats
			fmt.Fprintf(&b, "; %s>%s frames %d lost %d dup %d reord %d corrupt %d qdrop %d maxq %d",
				d.from.Name(), d.to.Name(), s.Frames, s.Lost, s.Duplicated, s.Reordered, s.Corrupted, s.QueueDrops, s.MaxQueue)
		}
	}
	return b.String()
}

// frameLine formats a frame event for -sim.trace: time, direction, what the
// link did, and the TCP segment (flags, seq, ack, window, payload length).
func frameLine(f *Frame) string {
	var b strings.Builder
	to := "?"
	if f.To != nil {
		to = f.To.Name()
	}
	fmt.Fprintf(&b, "%14v %s>%s ", engine.Duration(f.Time), f.From.Name(), to)
	switch {
	case f.Kind == FrameDelivered && f.Corrupted:
		b.WriteString("deliver CORRUPTED ")
	case f.Kind == FrameDelivered:
		b.WriteString("deliver ")
	case f.Drop != NotDropped:
		fmt.Fprintf(&b, "send DROP(%v) ", f.Drop)
	case f.Copies == 2:
		b.WriteString("send DUP ")
	default:
		b.WriteString("send ")
	}
	ip, err := wire.ParseIPv4(f.Data)
	if err != nil {
		fmt.Fprintf(&b, "unparsable IPv4 (%v), %d bytes", err, len(f.Data))
		return b.String()
	}
	seg, err := wire.ParseTCP(ip.Payload())
	if err != nil {
		fmt.Fprintf(&b, "unparsable TCP (%v)", err)
		return b.String()
	}
	fmt.Fprintf(&b, "%d>%d [%v] seq %d ack %d win %d len %d", seg.SrcPort(), seg.DstPort(), seg.Flags(),
		uint32(seg.Seq()), uint32(seg.Ack()), seg.Window(), len(seg.Payload()))
	return b.String()
}
