// Package pipe joins two engines with an in-memory wire on a virtual clock.
//
// A Pipe owns two engine.Engine values (the native *engine.Stack, or any other
// implementation of the narrow waist), a wire for each direction with optional
// impairments (loss, duplication, reordering, delay, jitter) drawn from a seed,
// and an App on each side: callbacks that receive the engine's results and
// events and issue commands. It drives the engines only through Step.
//
// Time is virtual: Run jumps the clock to the earliest of the engines'
// deadlines and the next frame arrival, so a 2×MSL TIME_WAIT costs nothing, and
// the same Config (seed included) and the same apps give the same run, frame
// for frame. Nothing runs in the background: no goroutines, no real clock.
//
// The building blocks are separate so that a larger simulator can reuse them:
// Model draws each frame's Fate from Impairments, Queue holds the frames in
// flight ordered by arrival, and Pipe is the loop that steps engines and moves
// frames between them.
package pipe

import (
	"errors"
	"fmt"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/internal/app"
)

// Side names one end of a pipe.
type Side uint8

// The two sides.
const (
	A Side = iota
	B
)

// String returns "A" or "B".
func (s Side) String() string {
	if s == A {
		return "A"
	}
	return "B"
}

// Peer returns the other side.
func (s Side) Peer() Side { return 1 - s }

// Dir returns the direction of frames sent by s: "A>B" or "B>A".
func (s Side) Dir() string {
	if s == A {
		return "A>B"
	}
	return "B>A"
}

// Defaults of the Config limits.
const (
	DefaultQueueLimit  = 4096    // frames in flight per direction
	DefaultMaxBatch    = 256     // frames handed to one Step
	DefaultMaxCommands = 4096    // commands waiting for one side's next Step
	DefaultMaxSpin     = 100_000 // rounds at one instant before Run reports ErrStuck
)

// Config describes a pipe. Engines are required; everything else is optional.
type Config struct {
	// Engines are the engines of side A and side B. Each must answer frames
	// addressed to it; the wire carries every frame one side sends to the other
	// side, whatever its address.
	Engines [2]engine.Engine
	// Apps script each side; a nil App issues no commands.
	Apps [2]App
	// Links are the impairments of each direction: Links[A] shapes the frames A
	// sends to B.
	Links [2]Impairments
	// Seed seeds the impairment draws (each direction has its own generator).
	Seed uint64
	// Start is the virtual time of the first Step.
	Start engine.Time

	// QueueLimit bounds the frames in flight in each direction; past it a frame
	// is dropped (DropQueue). Default DefaultQueueLimit.
	QueueLimit int
	// MaxBatch bounds the frames handed to one Step; the rest wait for the next
	// Step at the same instant. Default DefaultMaxBatch.
	MaxBatch int
	// MaxCommands bounds the commands an App may queue before its side's next
	// Step; past it Host.Do returns ErrTooManyCommands. Default DefaultMaxCommands.
	MaxCommands int
	// MaxSpin bounds the rounds run at one instant: an engine that keeps asking
	// to be called now without the clock ever moving makes Run return ErrStuck.
	// Default DefaultMaxSpin.
	MaxSpin int

	// Filter, if set, sees every frame an engine sends before the impairments
	// and drops it by returning true (DropFilter): scripted loss for tests that
	// need one particular segment lost. f.Fate is not yet drawn.
	Filter func(f *Frame) bool
	// OnFrame, if set, sees every frame an engine sends, at the time it is sent,
	// with its fate on the wire (including the frames that are then dropped).
	// f.Data is valid only during the call.
	OnFrame func(f *Frame)
	// OnOutput, if set, sees every Output of each side right after its Step:
	// frames, results and events. out is valid only during the call.
	OnOutput func(side Side, now engine.Time, out *engine.Output)
	// OnAdvance, if set, is called each time the virtual clock moves forward.
	OnAdvance func(from, to engine.Time)
}

// Frame is one frame on the wire, as OnFrame sees it.
type Frame struct {
	Time engine.Time // when it was sent
	From Side
	Data []byte // the raw frame; valid only during the OnFrame call
	Fate Fate
}

// LinkStats count what one direction of the wire carried.
type LinkStats struct {
	Frames     uint64 // frames sent into the wire
	Bytes      uint64 // their bytes
	Lost       uint64 // dropped by the Loss draw
	Filtered   uint64 // dropped by Config.Filter
	QueueDrops uint64 // dropped because QueueLimit frames were in flight
	Duplicated uint64 // delivered twice
	Reordered  uint64 // held back by ReorderDelay
	Delivered  uint64 // copies handed to the receiving engine
}

// Stats are a pipe's counters.
type Stats struct {
	Links [2]LinkStats // indexed by the sending side
	Steps [2]uint64    // Step calls per side
}

// Errors Run and Host.Do return (wrapped with details).
var (
	ErrStuck           = errors.New("pipe: no progress")
	ErrTooManyCommands = errors.New("pipe: too many commands queued")
)

// Pipe is two engines joined by a wire, with their apps, on a virtual clock.
// It is not safe for concurrent use (it needs no concurrency).
type Pipe struct {
	cfg     Config
	now     engine.Time
	started bool
	ends    [2]end
	models  [2]*Model
	wires   [2]*Queue // wires[s] holds the frames s sent, on their way to s.Peer()
	stats   Stats
	err     error
	spin    int
}

type end struct {
	eng      engine.Engine
	app      App
	host     Host
	in       engine.Input
	out      engine.Output
	cmds     []engine.Command // the commands of the Step in progress
	deadline engine.Time
}

// New returns a pipe at time cfg.Start. Nothing runs before the first Run.
func New(cfg Config) (*Pipe, error) {
	if cfg.Engines[A] == nil || cfg.Engines[B] == nil {
		return nil, errors.New("pipe: Config.Engines needs an engine on both sides")
	}
	def := func(p *int, d int, name string) error {
		if *p == 0 {
			*p = d
		}
		if *p < 0 {
			return fmt.Errorf("pipe: Config.%s is %d: give a positive number, or 0 for the default", name, *p)
		}
		return nil
	}
	for _, e := range []error{
		def(&cfg.QueueLimit, DefaultQueueLimit, "QueueLimit"),
		def(&cfg.MaxBatch, DefaultMaxBatch, "MaxBatch"),
		def(&cfg.MaxCommands, DefaultMaxCommands, "MaxCommands"),
		def(&cfg.MaxSpin, DefaultMaxSpin, "MaxSpin"),
	} {
		if e != nil {
			return nil, e
		}
	}
	p := &Pipe{cfg: cfg, now: cfg.Start}
	for s := A; s <= B; s++ {
		m, err := NewModel(cfg.Links[s], cfg.Seed^uint64(s)*0x9e3779b97f4a7c15)
		if err != nil {
			return nil, fmt.Errorf("%w (Config.Links[%v])", err, s)
		}
		q, _ := NewQueue(cfg.QueueLimit)
		p.models[s], p.wires[s] = m, q
		p.ends[s] = end{eng: cfg.Engines[s], app: cfg.Apps[s], host: Host{p: p, side: s}, deadline: engine.Never}
	}
	return p, nil
}

// Now returns the virtual time.
func (p *Pipe) Now() engine.Time { return p.now }

// Stats returns the pipe's counters.
func (p *Pipe) Stats() Stats { return p.stats }

// Host returns the handle of side s, through which code outside an App callback
// may issue commands too; they run at the side's next Step.
func (p *Pipe) Host(s Side) *Host { return &p.ends[s].host }

// Deadline returns the deadline side s's engine gave at its last Step.
func (p *Pipe) Deadline(s Side) engine.Time { return p.ends[s].deadline }

// InFlight returns the frames on their way from side s to its peer.
func (p *Pipe) InFlight(s Side) int { return p.wires[s].Len() }

// Run runs the pipe until nothing is due at or before limit: every engine's
// deadline and every frame arrival lies past limit (or there is none), and no
// command waits. The clock stays at the last instant something ran. It returns
// the first error: an App's Host.Fail, ErrStuck, or an engine that broke the
// Step contract.
func (p *Pipe) Run(limit engine.Time) error { return p.RunUntil(nil, limit) }

// RunUntil is Run that also returns, with nil, as soon as done reports true;
// done is checked before each round.
func (p *Pipe) RunUntil(done func() bool, limit engine.Time) error {
	if !p.started {
		p.started = true
		p.startApps()
	}
	for p.err == nil {
		if done != nil && done() {
			return nil
		}
		next := p.next()
		if next == engine.Never || next > limit {
			return nil
		}
		if next > p.now {
			if p.cfg.OnAdvance != nil {
				p.cfg.OnAdvance(p.now, next)
			}
			p.now = next
			p.spin = 0
		} else if p.spin++; p.spin > p.cfg.MaxSpin {
			p.err = fmt.Errorf("%w: %d rounds at t=%v with the clock not moving (deadlines A %v, B %v; "+
				"frames in flight A>B %d, B>A %d): an engine keeps asking to be called now without making progress",
				ErrStuck, p.spin-1, engine.Duration(p.now), p.fmtTime(p.ends[A].deadline), p.fmtTime(p.ends[B].deadline),
				p.wires[A].Len(), p.wires[B].Len())
			break
		}
		for s := A; s <= B && p.err == nil; s++ {
			if p.due(s) {
				p.step(s, true)
			}
		}
	}
	return p.err
}

func (p *Pipe) fmtTime(t engine.Time) string {
	if t == engine.Never {
		return "never"
	}
	return engine.Duration(t).String()
}

// startApps calls each App's Start and runs a first Step of each side with the
// commands they issued, before any frame moves: a server's Listen is in place
// before a client's SYN arrives, whatever the order of the sides.
func (p *Pipe) startApps() {
	for s := A; s <= B; s++ {
		if e := &p.ends[s]; e.app != nil {
			e.app.Start(&e.host)
		}
	}
	for s := A; s <= B && p.err == nil; s++ {
		p.step(s, false)
	}
}

// next returns the time of the earliest thing due: a waiting command, an
// engine deadline, a frame arrival.
func (p *Pipe) next() engine.Time {
	t := engine.Never
	for s := A; s <= B; s++ {
		e := &p.ends[s]
		if len(e.host.pending) > 0 {
			return p.now
		}
		t = min(t, e.deadline, p.wires[s].Next())
	}
	return max(t, p.now)
}

// due reports whether side s has something to do now.
func (p *Pipe) due(s Side) bool {
	e := &p.ends[s]
	return len(e.host.pending) > 0 || e.deadline <= p.now || p.wires[s.Peer()].Next() <= p.now
}

// step runs one Step of side s: the frames that arrived (if frames), the
// commands its App queued; then it sends the frames out on the wire and hands
// the results and events to the App.
func (p *Pipe) step(s Side, frames bool) {
	e := &p.ends[s]
	in := p.wires[s.Peer()]
	e.in.Now = p.now
	e.in.Frames = e.in.Frames[:0]
	for frames && len(e.in.Frames) < p.cfg.MaxBatch {
		b, ok := in.Pop(p.now)
		if !ok {
			break
		}
		e.in.Frames = append(e.in.Frames, b)
		p.stats.Links[s.Peer()].Delivered++
	}
	e.cmds, e.host.pending = e.host.pending, e.cmds[:0]
	e.in.Commands = e.cmds
	e.eng.Step(&e.in, &e.out)
	p.stats.Steps[s]++
	for i, b := range e.in.Frames {
		in.Recycle(b)
		e.in.Frames[i] = nil
	}
	e.in.Commands = nil
	e.deadline = e.out.Deadline
	for _, f := range e.out.Frames {
		p.send(s, f)
	}
	if p.cfg.OnOutput != nil {
		p.cfg.OnOutput(s, p.now, &e.out)
	}
	if len(e.out.Results) != len(e.cmds) {
		p.err = fmt.Errorf("pipe: engine %v returned %d results for %d commands: it breaks the Step contract (one Result per Command)",
			s, len(e.out.Results), len(e.cmds))
		return
	}
	if e.app == nil {
		return
	}
	for i := range e.cmds {
		e.app.Result(&e.host, &e.cmds[i], e.out.Results[i])
	}
	for _, ev := range e.out.Events {
		e.app.Event(&e.host, ev)
	}
}

// send puts frame f, sent by side s now, on the wire.
func (p *Pipe) send(s Side, f []byte) {
	st := &p.stats.Links[s]
	st.Frames++
	st.Bytes += uint64(len(f))
	var fate Fate
	if p.cfg.Filter != nil && p.cfg.Filter(&Frame{Time: p.now, From: s, Data: f}) {
		fate.Drop = DropFilter
		st.Filtered++
	} else if fate = p.models[s].Fate(p.now); fate.Dropped() {
		st.Lost++
	}
	for i := 0; i < fate.Copies; i++ {
		if !p.wires[s].Push(fate.Arrive[i], f) {
			if i == 0 {
				fate.Drop, fate.Copies = DropQueue, 0
			} else {
				fate.Copies = 1
			}
			st.QueueDrops++
			break
		}
	}
	if fate.Copies == 2 {
		st.Duplicated++
	}
	if fate.Reordered && fate.Copies > 0 {
		st.Reordered++
	}
	if p.cfg.OnFrame != nil {
		p.cfg.OnFrame(&Frame{Time: p.now, From: s, Data: f, Fate: fate})
	}
}

// App scripts one side of a pipe (see app.App: Start, then Result for each
// command a Step ran, then Event for each event). Within one Step the engine
// handles arriving frames before commands.
type App = app.App[*Host]

// Funcs adapts functions to an App; nil fields do nothing.
type Funcs = app.Funcs[*Host]
