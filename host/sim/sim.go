// Package sim is a deterministic network of engines on a virtual clock.
//
// A Network holds any number of hosts, each an engine.Engine (the native
// *engine.Stack, or the WebAssembly engine of bindings/wazero: sim drives
// engines only through Step) with an App that issues its commands, and
// point-to-point links between them. Each direction of a link has its own
// Impairments: MTU, a rate limit with a tail-drop queue, loss, duplication,
// reordering, delay with jitter, and corruption.
//
// Time is virtual: Run jumps the clock straight to the earliest engine
// deadline or frame arrival, so minutes of network time cost milliseconds.
// Every random choice is drawn from Config.Seed: the same seed, engines and
// apps give the same run, byte for byte. Nothing runs in the background.
//
// sim reuses host/pipe's parts: pipe.Model draws each frame's loss,
// duplication, reordering and delay, and pipe.Queue holds the frames in flight
// ordered by arrival. What it adds is the topology (many hosts, routing by
// destination address), the bottleneck, the MTU, corruption, capture and the
// watchdogs that turn a stuck or panicking engine into an error.
package sim

import (
	"errors"
	"fmt"
	"net/netip"
	"runtime/debug"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/pcap"
)

// Defaults of the Config limits.
const (
	DefaultMaxBatch    = 256      // frames handed to one Step
	DefaultMaxCommands = 4096     // commands waiting for one host's next Step
	DefaultMaxSpin     = 100_000  // rounds at one instant before ErrStuck
	DefaultMaxIdle     = 10_000   // consecutive Steps that change nothing before ErrStuck
	DefaultMaxInFlight = 1 << 16  // frames on their way in one direction of a link
	maxHosts           = 1 << 12  // hosts of one network
	maxLinks           = 1 << 16  // links of one network
	maxAddrs           = 1 << 8   // addresses of one host
	defaultMaxSteps    = 1 << 62  // Steps of a whole run: no limit unless asked
	stackLen           = 64 << 10 // bytes of a panic's stack trace kept in the error
)

// Config describes a network. Every field is optional.
type Config struct {
	// Seed seeds every impairment draw of every link.
	Seed uint64
	// Start is the virtual time of the first Step.
	Start engine.Time

	// MaxBatch bounds the frames handed to one Step; the rest wait for the next
	// Step at the same instant. Default DefaultMaxBatch.
	MaxBatch int
	// MaxCommands bounds the commands an App may queue before its host's next
	// Step; past it Host.Do returns ErrTooManyCommands. Default DefaultMaxCommands.
	MaxCommands int
	// MaxInFlight bounds the frames on their way in each direction of each link;
	// past it a copy is dropped (DropFlight). Default DefaultMaxInFlight.
	MaxInFlight int
	// MaxSpin bounds the rounds at one instant: engines that keep asking to be
	// called now without the clock moving make Run return ErrStuck. Default
	// DefaultMaxSpin.
	MaxSpin int
	// MaxIdle bounds consecutive Steps, network-wide, that take no frame and no
	// command and give no frame and no event: an engine whose timer keeps
	// firing without doing anything makes Run return ErrStuck. Default DefaultMaxIdle.
	MaxIdle int
	// MaxSteps bounds the Steps of the whole run (all hosts); past it Run returns
	// ErrStuck. Default: no limit.
	MaxSteps uint64

	// Capture, if set, records frames into a capture file (pcap.LinkRaw) at
	// CaptureAt.
	Capture   *pcap.Writer
	CaptureAt CapturePoint

	// Filter, if set, sees every frame an engine sends into a link, before the
	// link's impairments, and drops it by returning true (DropFilter): scripted
	// loss for tests that need one particular frame lost. f.Data is valid only
	// during the call; the fate fields of f are not drawn yet.
	Filter func(f *Frame) bool

	// OnFrame, if set, sees every frame sent into a link (with its fate) and
	// every copy delivered, in the order they happen. f.Data is valid only
	// during the call.
	OnFrame func(f *Frame)
}

// CapturePoint says where Config.Capture records frames.
type CapturePoint uint8

// Capture points.
const (
	// CaptureDelivered records each copy as the receiving engine gets it, at its
	// arrival time: duplicates twice, lost frames not at all, corrupted bytes as
	// they arrive (tshark flags their checksums).
	CaptureDelivered CapturePoint = iota
	// CaptureSent records each frame as its engine sends it, at the send time,
	// whatever then happens to it.
	CaptureSent
)

// FrameKind says whether a Frame was sent or delivered.
type FrameKind uint8

// Frame kinds.
const (
	FrameSent      FrameKind = iota + 1 // an engine sent it into a link (or it had no route)
	FrameDelivered                      // a copy reached the receiving engine
)

// Frame is one frame as Config.OnFrame sees it.
type Frame struct {
	Kind     FrameKind
	Time     engine.Time // when it was sent, or delivered
	From, To *Host       // To is nil for DropNoRoute
	Link     *Link       // nil for DropNoRoute
	Data     []byte      // valid only during the call
	// FrameSent: what the link does with it.
	Drop    DropReason
	Copies  int            // copies that will arrive
	Arrive  [2]engine.Time // their arrival times
	Departs engine.Time    // when its last bit left the bottleneck (the send time without a Rate)
	// FrameDelivered: whether the copy was damaged on arrival.
	Corrupted bool
}

// Stats are a network's counters beyond those of its links.
type Stats struct {
	Steps   uint64 // Step calls, all hosts
	NoRoute uint64 // frames to an address no link of the sender leads to
}

// Errors Run and Host.Do return (wrapped with details).
var (
	// ErrStuck: the engines stopped making progress (see Config.MaxSpin,
	// MaxIdle, MaxSteps).
	ErrStuck = errors.New("sim: no progress")
	// ErrPanic: an engine or an App panicked; the error holds the value and stack.
	ErrPanic = errors.New("sim: panic")
	// ErrTooManyCommands: an App queued Config.MaxCommands commands for one Step.
	ErrTooManyCommands = errors.New("sim: too many commands queued")
	// ErrContract: an engine broke the Step contract.
	ErrContract = errors.New("sim: engine broke the Step contract")
)

// Network is a set of hosts and links on a virtual clock. It is not safe for
// concurrent use (it needs no concurrency).
type Network struct {
	cfg     Config
	now     engine.Time
	hosts   []*Host
	links   []*Link
	stats   Stats
	started bool
	err     error
	spin    int
	idle    int
	current *Host // the host being stepped, for panic reports
}

// New returns an empty network at time cfg.Start.
func New(cfg Config) (*Network, error) {
	for _, f := range []struct {
		p    *int
		def  int
		name string
	}{
		{&cfg.MaxBatch, DefaultMaxBatch, "MaxBatch"},
		{&cfg.MaxCommands, DefaultMaxCommands, "MaxCommands"},
		{&cfg.MaxInFlight, DefaultMaxInFlight, "MaxInFlight"},
		{&cfg.MaxSpin, DefaultMaxSpin, "MaxSpin"},
		{&cfg.MaxIdle, DefaultMaxIdle, "MaxIdle"},
	} {
		if *f.p == 0 {
			*f.p = f.def
		}
		if *f.p < 0 {
			return nil, fmt.Errorf("sim: Config.%s is %d: give a positive number, or 0 for the default", f.name, *f.p)
		}
	}
	if cfg.MaxSteps == 0 {
		cfg.MaxSteps = defaultMaxSteps
	}
	if cfg.CaptureAt > CaptureSent {
		return nil, fmt.Errorf("sim: Config.CaptureAt is %d: use CaptureDelivered or CaptureSent", cfg.CaptureAt)
	}
	return &Network{cfg: cfg, now: cfg.Start}, nil
}

// HostConfig describes a host.
type HostConfig struct {
	// Name names the host in errors; default "h<index>".
	Name string
	// Engine is the host's engine (required).
	Engine engine.Engine
	// Addrs are the addresses frames to this host carry. Default: the Addrs of
	// the engine's Config, for an engine with a Config() engine.Config method
	// (the native *engine.Stack); required for others.
	Addrs []netip.Addr
	// App issues the host's commands; nil issues none.
	App App
}

// AddHost adds a host. Hosts are stepped in the order they were added.
func (n *Network) AddHost(hc HostConfig) (*Host, error) {
	if n.started {
		return nil, errors.New("sim: AddHost after Run: add every host before the first Run")
	}
	if hc.Engine == nil {
		return nil, errors.New("sim: HostConfig.Engine is nil: give the host an engine")
	}
	if len(n.hosts) >= maxHosts {
		return nil, fmt.Errorf("sim: the network has %d hosts, the most it holds", maxHosts)
	}
	if hc.Addrs == nil {
		if c, ok := hc.Engine.(interface{ Config() engine.Config }); ok {
			hc.Addrs = c.Config().Addrs
		}
	}
	if len(hc.Addrs) == 0 || len(hc.Addrs) > maxAddrs {
		return nil, fmt.Errorf("sim: host %q has %d addresses: give 1 to %d in HostConfig.Addrs", hc.Name, len(hc.Addrs), maxAddrs)
	}
	for _, a := range hc.Addrs {
		if !a.IsValid() {
			return nil, fmt.Errorf("sim: host %q has an invalid address in HostConfig.Addrs", hc.Name)
		}
		for _, o := range n.hosts {
			if o.owns(a) {
				return nil, fmt.Errorf("sim: address %v of host %q is already host %q's", a, hc.Name, o.name)
			}
		}
	}
	if hc.Name == "" {
		hc.Name = fmt.Sprintf("h%d", len(n.hosts))
	}
	h := &Host{net: n, index: len(n.hosts), name: hc.Name, eng: hc.Engine, app: hc.App,
		addrs: append([]netip.Addr(nil), hc.Addrs...), deadline: engine.Never}
	n.hosts = append(n.hosts, h)
	return h, nil
}

// Connect joins hosts a and b with a point-to-point link: ab shapes the frames a
// sends to b, ba those b sends to a. A host sends each frame on the link whose
// other end owns the frame's destination address; a host with one link sends
// everything on it.
func (n *Network) Connect(a, b *Host, ab, ba Impairments) (*Link, error) {
	switch {
	case n.started:
		return nil, errors.New("sim: Connect after Run: build the topology before the first Run")
	case a == nil || b == nil || a.net != n || b.net != n:
		return nil, errors.New("sim: Connect needs two hosts of this network")
	case a == b:
		return nil, fmt.Errorf("sim: Connect %q to itself: a link needs two hosts", a.name)
	case len(n.links) >= maxLinks:
		return nil, fmt.Errorf("sim: the network has %d links, the most it holds", maxLinks)
	}
	l := &Link{index: len(n.links)}
	for i, e := range []struct {
		from, to *Host
		im       Impairments
	}{{a, b, ab}, {b, a, ba}} {
		d, err := newDirection(l, e.from, e.to, e.im, mix(n.cfg.Seed, uint64(2*l.index+i+1)), n.cfg.MaxInFlight)
		if err != nil {
			return nil, fmt.Errorf("%w (link %d, %s to %s)", err, l.index, e.from.name, e.to.name)
		}
		l.dirs[i] = d
	}
	a.tx = append(a.tx, l.dirs[0])
	b.rx = append(b.rx, l.dirs[0])
	b.tx = append(b.tx, l.dirs[1])
	a.rx = append(a.rx, l.dirs[1])
	n.links = append(n.links, l)
	return l, nil
}

// Mesh joins every pair of hosts with its own link, each direction shaped by
// im: a star without a router, in which host i reaches host j over the link
// between them. It returns the links in the order (0,1), (0,2), ..., (1,2), ...
func (n *Network) Mesh(hosts []*Host, im Impairments) ([]*Link, error) {
	var ls []*Link
	for i := range hosts {
		for j := i + 1; j < len(hosts); j++ {
			l, err := n.Connect(hosts[i], hosts[j], im, im)
			if err != nil {
				return nil, err
			}
			ls = append(ls, l)
		}
	}
	return ls, nil
}

// Now returns the virtual time.
func (n *Network) Now() engine.Time { return n.now }

// Hosts returns the hosts in the order they were added.
func (n *Network) Hosts() []*Host { return n.hosts }

// Links returns the links in the order they were made.
func (n *Network) Links() []*Link { return n.links }

// Stats returns the network's counters.
func (n *Network) Stats() Stats { return n.stats }

// InFlight returns the frames on their way in every link.
func (n *Network) InFlight() int {
	c := 0
	for _, l := range n.links {
		c += l.dirs[0].wire.Len() + l.dirs[1].wire.Len()
	}
	return c
}

// Err returns the error that stopped the network, or nil.
func (n *Network) Err() error { return n.err }

// Run runs the network until nothing is due at or before limit: every
// deadline and every arrival lies past limit (or there is none) and no command
// waits. The clock stays at the last instant something ran. It returns the
// first error: an App's Host.Fail, ErrStuck, ErrPanic, ErrContract, or a
// capture write error. After an error the network does not run again.
func (n *Network) Run(limit engine.Time) error { return n.RunUntil(nil, limit) }

// RunUntil is Run that also returns, with nil, as soon as done reports true;
// done is checked before each round.
func (n *Network) RunUntil(done func() bool, limit engine.Time) (err error) {
	defer func() {
		if r := recover(); r != nil {
			who := "an App callback or a Config hook"
			if n.current != nil {
				who = "host " + n.current.name
			}
			st := debug.Stack()
			if len(st) > stackLen {
				st = st[:stackLen]
			}
			n.fail(fmt.Errorf("%w in %s at t=%v: %v\n%s", ErrPanic, who, engine.Duration(n.now), r, st))
			err = n.err
		}
	}()
	if !n.started {
		n.started = true
		n.start()
	}
	for n.err == nil {
		if done != nil && done() {
			return nil
		}
		next := n.next()
		if next == engine.Never || next > limit {
			return nil
		}
		if next > n.now {
			n.now = next
			n.spin = 0
		} else if n.spin++; n.spin > n.cfg.MaxSpin {
			n.fail(fmt.Errorf("%w: %d rounds at t=%v with the clock not moving (%s): an engine keeps asking to be called now without making progress",
				ErrStuck, n.spin-1, engine.Duration(n.now), n.describe()))
			break
		}
		for _, h := range n.hosts {
			if n.err != nil {
				break
			}
			if h.due(n.now) {
				n.step(h, true)
			}
		}
	}
	return n.err
}

func (n *Network) fail(err error) {
	if n.err == nil {
		n.err = err
	}
}

// describe summarizes the hosts' deadlines and the frames in flight, for errors.
func (n *Network) describe() string {
	s := ""
	for i, h := range n.hosts {
		if i > 0 {
			s += "; "
		}
		s += fmt.Sprintf("%s deadline %s, %d commands waiting", h.name, fmtTime(h.deadline), len(h.pending))
	}
	return fmt.Sprintf("%s; %d frames in flight", s, n.InFlight())
}

func fmtTime(t engine.Time) string {
	if t == engine.Never {
		return "never"
	}
	return engine.Duration(t).String()
}

// start calls every App's Start, then runs a first Step of every host with the
// commands they issued and no frames: a listener is in place before any SYN
// arrives, whatever the order of the hosts.
func (n *Network) start() {
	for _, h := range n.hosts {
		if h.app != nil {
			n.current = nil
			h.app.Start(h)
		}
	}
	for _, h := range n.hosts {
		if n.err == nil {
			n.step(h, false)
		}
	}
}

// next returns the time of the earliest thing due: a waiting command, an
// engine deadline, a frame arrival.
func (n *Network) next() engine.Time {
	t := engine.Never
	for _, h := range n.hosts {
		if len(h.pending) > 0 {
			return n.now
		}
		t = min(t, h.deadline)
		for _, d := range h.rx {
			t = min(t, d.wire.Next())
		}
	}
	return max(t, n.now)
}

// step runs one Step of host h: the frames that arrived (if frames), the
// commands its App queued; then it sends the frames out and hands the results
// and events to the App.
func (n *Network) step(h *Host, frames bool) {
	if n.stats.Steps >= n.cfg.MaxSteps {
		n.fail(fmt.Errorf("%w: %d Steps (Config.MaxSteps) by t=%v (%s)", ErrStuck, n.stats.Steps, engine.Duration(n.now), n.describe()))
		return
	}
	h.input.Now = n.now
	h.input.Frames = h.input.Frames[:0]
	h.popped = h.popped[:0]
	for _, d := range h.rx {
		for frames && len(h.input.Frames) < n.cfg.MaxBatch {
			b, ok := d.wire.Pop(n.now)
			if !ok {
				break
			}
			n.deliver(d, b)
			h.input.Frames = append(h.input.Frames, b)
			h.popped = append(h.popped, d)
		}
	}
	h.cmds, h.pending = h.pending, h.cmds[:0]
	h.input.Commands = h.cmds
	n.current = h
	h.eng.Step(&h.input, &h.output)
	n.current = nil
	n.stats.Steps++
	h.steps++
	for i, b := range h.input.Frames {
		h.popped[i].wire.Recycle(b)
		h.input.Frames[i] = nil
	}
	h.input.Commands = nil
	h.deadline = h.output.Deadline
	if len(h.input.Frames) == 0 && len(h.cmds) == 0 && len(h.output.Frames) == 0 && len(h.output.Events) == 0 {
		if n.idle++; n.idle > n.cfg.MaxIdle {
			n.fail(fmt.Errorf("%w: %d Steps in a row took and gave nothing, the last of %s at t=%v (%s): an engine keeps asking to be woken without doing anything",
				ErrStuck, n.idle, h.name, engine.Duration(n.now), n.describe()))
			return
		}
	} else {
		n.idle = 0
	}
	for _, f := range h.output.Frames {
		n.send(h, f)
	}
	if len(h.output.Results) != len(h.cmds) {
		n.fail(fmt.Errorf("%w: host %s's engine returned %d results for %d commands (one Result per Command)",
			ErrContract, h.name, len(h.output.Results), len(h.cmds)))
		return
	}
	if h.app == nil {
		return
	}
	for i := range h.cmds {
		h.app.Result(h, &h.cmds[i], h.output.Results[i])
	}
	for _, ev := range h.output.Events {
		h.app.Event(h, ev)
	}
}

// deliver accounts for copy b arriving through d now: the Corrupt draw, the
// counters, the capture and OnFrame.
func (n *Network) deliver(d *direction, b []byte) {
	bad := d.damage(b)
	d.stats.Delivered++
	if n.cfg.Capture != nil && n.cfg.CaptureAt == CaptureDelivered {
		n.capture(b)
	}
	if n.cfg.OnFrame != nil {
		n.cfg.OnFrame(&Frame{Kind: FrameDelivered, Time: n.now, From: d.from, To: d.to, Link: d.link, Data: b, Corrupted: bad})
	}
}

func (n *Network) capture(b []byte) {
	if err := n.cfg.Capture.WritePacket(n.now, b); err != nil {
		n.fail(fmt.Errorf("sim: capture: %w", err))
	}
}

// send puts frame f, sent by host h now, on the link to its destination.
func (n *Network) send(h *Host, f []byte) {
	if n.cfg.Capture != nil && n.cfg.CaptureAt == CaptureSent {
		n.capture(f)
	}
	d := h.route(f)
	fr := Frame{Kind: FrameSent, Time: n.now, From: h, Data: f}
	switch {
	case d == nil:
		n.stats.NoRoute++
		fr.Drop = DropNoRoute
	default:
		fr.To, fr.Link = d.to, d.link
		d.stats.Frames++
		d.stats.Bytes += uint64(len(f))
		if n.cfg.Filter != nil && n.cfg.Filter(&fr) {
			d.stats.Filtered++
			fr.Drop = DropFilter
		} else if fr.Departs, fr.Drop = d.enqueue(n.now, len(f)); fr.Drop == NotDropped {
			d.transmit(&fr)
		}
	}
	if n.cfg.OnFrame != nil {
		n.cfg.OnFrame(&fr)
	}
}
