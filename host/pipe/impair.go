package pipe

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/tcpeng/tcpeng/engine"
)

// Impairments shape one direction of a wire. The zero value is a perfect wire:
// no loss, no delay, frames arrive in the order they were sent.
type Impairments struct {
	// Loss is the probability, 0 to 1, that a frame is lost.
	Loss float64
	// Duplicate is the probability, 0 to 1, that a frame that is not lost is
	// delivered twice (each copy gets its own jitter and reordering draw).
	Duplicate float64
	// Reorder is the probability, 0 to 1, that a copy is held back by
	// ReorderDelay, so that frames sent after it overtake it.
	Reorder float64
	// ReorderDelay is how long a reordered copy is held back. Default 1 ms.
	ReorderDelay engine.Duration
	// Delay is the fixed one-way delay of every frame (propagation).
	Delay engine.Duration
	// Jitter adds a delay drawn uniformly from [0, Jitter] to each copy. A jitter
	// larger than the gap between two frames reorders them.
	Jitter engine.Duration
}

// DefaultReorderDelay is the ReorderDelay used when it is left 0.
const DefaultReorderDelay = engine.Millisecond

// maxDelay bounds Delay, Jitter and ReorderDelay (one hour): enough for any
// test, small enough that no sum of them overflows a Time.
const maxDelay = engine.Duration(3600) * engine.Second

// Validate says which field is out of range, if any.
func (im Impairments) Validate() error {
	for _, p := range []struct {
		name string
		v    float64
	}{{"Loss", im.Loss}, {"Duplicate", im.Duplicate}, {"Reorder", im.Reorder}} {
		if math.IsNaN(p.v) || p.v < 0 || p.v > 1 {
			return fmt.Errorf("pipe: Impairments.%s is %v: give a probability from 0 to 1", p.name, p.v)
		}
	}
	for _, d := range []struct {
		name string
		v    engine.Duration
	}{{"Delay", im.Delay}, {"Jitter", im.Jitter}, {"ReorderDelay", im.ReorderDelay}} {
		if d.v < 0 || d.v > maxDelay {
			return fmt.Errorf("pipe: Impairments.%s is %v: give a duration from 0 to 1h", d.name, d.v)
		}
	}
	return nil
}

// DropReason says why a frame never arrived.
type DropReason uint8

// Drop reasons.
const (
	NotDropped DropReason = iota
	DropLoss              // the Loss draw
	DropQueue             // the wire held QueueLimit frames already (tail drop)
	DropFilter            // Config.Filter asked for it
)

// String returns "", "loss", "queue-full" or "filter".
func (r DropReason) String() string {
	switch r {
	case NotDropped:
		return ""
	case DropLoss:
		return "loss"
	case DropQueue:
		return "queue-full"
	case DropFilter:
		return "filter"
	}
	return "invalid"
}

// Fate is what the wire does with one frame.
type Fate struct {
	Drop      DropReason     // why the frame is lost, or NotDropped
	Copies    int            // copies delivered: 0 if dropped, 2 if duplicated, else 1
	Arrive    [2]engine.Time // arrival time of each copy
	Reordered bool           // some copy was held back by ReorderDelay
}

// Dropped reports whether no copy of the frame arrives.
func (f *Fate) Dropped() bool { return f.Drop != NotDropped }

// Duplicated reports whether the frame arrives twice.
func (f *Fate) Duplicated() bool { return f.Copies == 2 }

// Model draws the fate of each frame crossing one direction of a wire from its
// Impairments and a seeded generator: the same seed and the same sequence of
// calls give the same fates. It holds no frames; a Queue does.
type Model struct {
	im  Impairments
	rng *rand.Rand
}

// NewModel returns a model of im whose draws come from seed.
func NewModel(im Impairments, seed uint64) (*Model, error) {
	if err := im.Validate(); err != nil {
		return nil, err
	}
	if im.ReorderDelay == 0 {
		im.ReorderDelay = DefaultReorderDelay
	}
	return &Model{im: im, rng: rand.New(rand.NewPCG(seed, 0x7463_7065_6e67))}, nil
}

// Impairments returns the model's impairments, defaults filled in.
func (m *Model) Impairments() Impairments { return m.im }

// Fate draws what happens to a frame sent at now. A draw is made only for the
// impairments that are on, in this order: loss, duplication, then for each copy
// reordering and jitter.
func (m *Model) Fate(now engine.Time) Fate {
	var f Fate
	if m.im.Loss > 0 && m.rng.Float64() < m.im.Loss {
		f.Drop = DropLoss
		return f
	}
	f.Copies = 1
	if m.im.Duplicate > 0 && m.rng.Float64() < m.im.Duplicate {
		f.Copies = 2
	}
	for i := range f.Copies {
		d := m.im.Delay
		if m.im.Reorder > 0 && m.rng.Float64() < m.im.Reorder {
			d += m.im.ReorderDelay
			f.Reordered = true
		}
		if m.im.Jitter > 0 {
			d += engine.Duration(m.rng.Int64N(int64(m.im.Jitter) + 1))
		}
		f.Arrive[i] = now.Add(d)
	}
	return f
}

// errQueueLimit is returned by NewQueue for a non-positive limit.
var errQueueLimit = errors.New("pipe: a queue limit must be positive")
