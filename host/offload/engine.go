package offload

import "github.com/tcpeng/tcpeng/engine"

// Engine wraps an engine as a NIC with TCP offloads wraps a kernel's stack:
// the engine receives a flow's consecutive segments joined into one frame
// (Planner.Join), and may send frames longer than the MTU, which Engine cuts
// at the MTU (Super). The link still carries frames of at most MTU bytes, and
// what goes out on it is, byte for byte, what the engine would send without
// segmentation offload. What changes is the engine's work: a 64 KiB burst is
// one segment to process instead of 45, in each direction. That matters most
// for the WebAssembly engine (bindings/wazero), where each segment costs ten
// times what it costs natively, and the cutting, copying and summing happen
// here, in native code.
//
// Make the wrapped engine with engine.Config.SegmentOffload for the sending
// half; receiving works with any engine that takes segments larger than its
// MSS, as tcpeng's does. The receiving half changes what the engine sees, as
// GRO does for Linux: fewer, larger segments, and so fewer ACKs (one per
// joined frame, which carries more than two full-sized segments).
//
// With Verify, Engine also plays a NIC's receive checksum offload: it checks
// the checksums of what arrives in native code, so that an engine made with
// engine.Config.TrustLink need not sum every byte again.
//
// Engine implements engine.Engine. Its Output.Frames stay valid as a Stack's
// do: through the next Step, until the one after it starts. It allocates
// nothing once its buffers have grown to the working size, and they grow no
// further than the wrapped engine's output (Config.OutputBuffer) and the
// host's batches need. Like the engine, it is driven from one goroutine at a
// time.
type Engine struct {
	// Verify makes Step check the IPv4 header checksum of every IPv4 frame
	// that arrives, and the TCP checksum of every TCP segment in one (RFC 791
	// §3.1, RFC 9293 §3.1), and drop the frames that fail (Stats.BadChecksum)
	// before the engine sees them: what the engine checks itself unless made
	// with engine.Config.TrustLink. Set both, before the first Step, to have
	// the sums taken here, in native code, instead of in the engine (which
	// matters for the WebAssembly engine). Frames that do not parse go to the
	// engine as they are: it drops them.
	Verify bool

	inner  engine.Engine
	mtu    int
	plan   Planner
	in     engine.Input
	joined []byte    // the joined frames of one Step's input
	arenas [2][]byte // the cut frames of the last two Steps
	turn   int
	frames [][]byte
	supers []Super // the frames to cut in one Step's output, parsed once
	stats  Stats
}

// Stats counts what Engine did. The counts only grow.
type Stats struct {
	Joined      uint64 // frames that arrived and went to the engine joined to others
	JoinedInto  uint64 // the frames they made
	Cut         uint64 // frames of the engine longer than the MTU, cut
	CutInto     uint64 // the frames they made
	Dropped     uint64 // frames of the engine longer than the MTU that are not TCP segments it could cut (none from tcpeng's engine)
	BadChecksum uint64 // frames that arrived with a wrong IPv4 header or TCP checksum, dropped (Verify)
}

// New returns inner behind offloads, for a link of mtu bytes (inner's
// Config.MTU).
func New(inner engine.Engine, mtu int) *Engine {
	return &Engine{inner: inner, mtu: mtu}
}

// Stats returns the counts so far.
func (e *Engine) Stats() Stats { return e.stats }

// Step joins the frames of in, runs the engine's Step, and cuts the frames it
// returns: see engine.Stack.Step.
func (e *Engine) Step(in *engine.Input, out *engine.Output) {
	e.inner.Step(e.join(in), out)
	e.cut(out)
}

// join returns in, or a copy whose frames are in's with each train of
// segments joined, and without those that failed Verify. A train whose
// frames all verify is checked as it is joined (Planner.Join sums as it
// copies); one with a bad frame goes unjoined, without that frame.
func (e *Engine) join(in *engine.Input) *engine.Input {
	frames := in.Frames
	g := &e.in
	g.Now, g.Commands, g.Frames = in.Now, in.Commands, g.Frames[:0]
	if len(frames) < 2 {
		if !e.Verify || len(frames) == 0 || checksumsOK(frames[0]) {
			return in
		}
		e.stats.BadChecksum++
		return g
	}
	e.plan.Plan(frames)
	defer e.plan.Forget()
	size := 0
	for i := range e.plan.Trains() {
		if t := e.plan.Train(i); t.Count() > 1 {
			size += t.Len()
		}
	}
	if size == 0 && !e.Verify {
		return in
	}
	if cap(e.joined) < size {
		e.joined = make([]byte, size)
	}
	changed, off := false, 0
	for i := range e.plan.Trains() {
		t := e.plan.Train(i)
		if t.Count() > 1 {
			n, valid := e.plan.Join(i, e.joined[off:size])
			if valid || !e.Verify {
				g.Frames = append(g.Frames, e.joined[off:off+n:off+n])
				off += n
				e.stats.Joined += uint64(t.Count())
				e.stats.JoinedInto++
				changed = true
				continue
			}
		}
		// A frame alone, or a train with a bad frame: each goes alone.
		k := len(g.Frames)
		g.Frames = e.plan.AppendFrames(g.Frames, i)
		if !e.Verify {
			continue
		}
		for _, f := range g.Frames[k:] {
			if checksumsOK(f) {
				g.Frames[k] = f
				k++
			} else {
				e.stats.BadChecksum++
				changed = true
			}
		}
		g.Frames = g.Frames[:k]
	}
	if !changed && len(g.Frames) == len(frames) {
		return in // nothing joined or dropped (and no empty frame left out)
	}
	return g
}

// cut replaces each frame of out longer than the MTU by its pieces.
func (e *Engine) cut(out *engine.Output) {
	size, long := 0, false
	e.supers = e.supers[:0]
	for _, f := range out.Frames {
		if len(f) <= e.mtu {
			continue
		}
		long = true
		g, err := NewSuperMTU(f, e.mtu) // a zero Super if it cannot be cut
		if err == nil {
			size += len(f) + (g.Segs()-1)*g.HeaderLen()
		}
		e.supers = append(e.supers, g)
	}
	if !long {
		return
	}
	arena := e.arenas[e.turn]
	if cap(arena) < size {
		arena = make([]byte, size)
		e.arenas[e.turn] = arena
	}
	e.turn ^= 1
	e.frames = e.frames[:0]
	off, k := 0, 0
	for _, f := range out.Frames {
		if len(f) <= e.mtu {
			e.frames = append(e.frames, f)
			continue
		}
		g := &e.supers[k]
		k++
		if g.Segs() == 0 {
			e.stats.Dropped++
			continue
		}
		for i := range g.Segs() {
			n := g.Segment(i, arena[off:size])
			e.frames = append(e.frames, arena[off:off+n:off+n])
			off += n
		}
		e.stats.Cut++
		e.stats.CutInto += uint64(g.Segs())
	}
	out.Frames = append(out.Frames[:0], e.frames...)
}
