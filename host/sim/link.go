package sim

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/pipe"
)

// Impairments shape one direction of a link. The zero value is a perfect
// link: no loss, no delay, no rate limit, no MTU, frames in the order sent.
//
// A frame an engine sends meets them in this order:
//
//  1. MTU: a frame longer than MTU bytes is dropped (DropMTU).
//  2. Rate: the frame waits in a tail-drop queue of QueueLimit frames for the
//     transmitter, then takes len×8/Rate seconds to serialize; a frame that
//     finds the queue full is dropped (DropQueue). Without a Rate it leaves at once.
//  3. Loss, Duplicate, Reorder, Delay and Jitter, drawn by a pipe.Model at the
//     time the frame's last bit leaves: the frame is lost, or arrives once or
//     twice, each copy after Delay, plus ReorderDelay if it is held back, plus
//     a uniform draw from [0, Jitter].
//  4. Corrupt, drawn for each copy as it arrives: one random byte of the copy
//     is XORed with a random non-zero mask (one to eight bit flips).
//
// Why one byte: a change confined to one byte changes the Internet checksum
// (RFC 1071) of every header and segment that covers it by d or d×256 with
// 0 < |d| < 256, never a multiple of 0xffff, so an IPv4 header checksum
// (RFC 791) or a TCP checksum (RFC 9293 §3.1) always catches it; changes to two
// bytes can cancel out and pass every checksum, which no TCP can be blamed for.
type Impairments struct {
	// Loss, Duplicate and Reorder are probabilities from 0 to 1; see
	// pipe.Impairments.
	Loss, Duplicate, Reorder float64
	// ReorderDelay is how long a reordered copy is held back (default 1 ms).
	ReorderDelay engine.Duration
	// Delay is the one-way propagation delay; Jitter adds a uniform draw from
	// [0, Jitter] to each copy (a jitter above the gap between frames reorders them).
	Delay, Jitter engine.Duration
	// Corrupt is the probability, 0 to 1, that a copy arrives with one byte damaged.
	Corrupt float64
	// Rate is the link's bandwidth in bits per second; 0 means unlimited.
	Rate int64
	// QueueLimit is how many frames the rate-limited link holds, the one being
	// serialized included; a frame past it is dropped (tail drop). Default
	// DefaultQueueLimit. Only with Rate.
	QueueLimit int
	// MTU is the largest frame the link carries, in bytes; 0 means no limit.
	MTU int
}

// DefaultQueueLimit is the bottleneck queue of a rate-limited link when
// Impairments.QueueLimit is 0 (netem's default limit).
const DefaultQueueLimit = 1000

// maxQueueLimit bounds Impairments.QueueLimit: the queue keeps one Time per frame.
const maxQueueLimit = 1 << 20

// model returns the part of im that a pipe.Model draws.
func (im Impairments) model() pipe.Impairments {
	return pipe.Impairments{Loss: im.Loss, Duplicate: im.Duplicate, Reorder: im.Reorder,
		ReorderDelay: im.ReorderDelay, Delay: im.Delay, Jitter: im.Jitter}
}

// Validate says which field is out of range, if any.
func (im Impairments) Validate() error {
	if err := im.model().Validate(); err != nil {
		return err
	}
	switch {
	case math.IsNaN(im.Corrupt) || im.Corrupt < 0 || im.Corrupt > 1:
		return fmt.Errorf("sim: Impairments.Corrupt is %v: give a probability from 0 to 1", im.Corrupt)
	case im.Rate < 0:
		return fmt.Errorf("sim: Impairments.Rate is %d: give bits per second, or 0 for no limit", im.Rate)
	case im.QueueLimit < 0 || im.QueueLimit > maxQueueLimit:
		return fmt.Errorf("sim: Impairments.QueueLimit is %d: give 1 to %d frames, or 0 for %d", im.QueueLimit, maxQueueLimit, DefaultQueueLimit)
	case im.MTU < 0:
		return fmt.Errorf("sim: Impairments.MTU is %d: give a size in bytes, or 0 for no limit", im.MTU)
	}
	return nil
}

// DropReason says why a frame never arrived.
type DropReason uint8

// Drop reasons.
const (
	NotDropped  DropReason = iota
	DropMTU                // longer than the link's MTU
	DropQueue              // the rate-limited link's queue was full (tail drop)
	DropLoss               // the Loss draw
	DropFlight             // Config.MaxInFlight frames were already on their way
	DropNoRoute            // no link leads to the destination address
	DropFilter             // Config.Filter asked for it
)

// String returns the reason's name.
func (r DropReason) String() string {
	switch r {
	case NotDropped:
		return ""
	case DropMTU:
		return "mtu"
	case DropQueue:
		return "queue-full"
	case DropLoss:
		return "loss"
	case DropFlight:
		return "in-flight-limit"
	case DropNoRoute:
		return "no-route"
	case DropFilter:
		return "filter"
	}
	return "invalid"
}

// LinkStats count what one direction of a link carried.
type LinkStats struct {
	Frames     uint64 // frames sent into the link
	Bytes      uint64 // their bytes
	Filtered   uint64 // dropped by Config.Filter
	MTUDrops   uint64 // dropped for exceeding the MTU
	QueueDrops uint64 // dropped by the full bottleneck queue
	Lost       uint64 // dropped by the Loss draw
	Duplicated uint64 // frames sent twice
	Reordered  uint64 // frames with a copy held back by ReorderDelay
	Corrupted  uint64 // copies delivered with a damaged byte
	Delivered  uint64 // copies handed to the receiving engine
	FlightDrop uint64 // copies dropped because MaxInFlight frames were on their way
	MaxQueue   int    // the most frames the bottleneck queue held
}

// Link is a point-to-point link between two hosts: one direction each way,
// each with its own impairments and random draws.
type Link struct {
	index int
	dirs  [2]*direction // dirs[0] carries Hosts()[0]'s frames to Hosts()[1]
}

// Hosts returns the two ends, in the order given to Connect.
func (l *Link) Hosts() [2]*Host { return [2]*Host{l.dirs[0].from, l.dirs[1].from} }

// Stats returns the counters of the direction from host from; from must be an
// end of the link (the other end's counters are returned otherwise).
func (l *Link) Stats(from *Host) LinkStats {
	if l.dirs[0].from == from {
		return l.dirs[0].stats
	}
	return l.dirs[1].stats
}

// direction is one direction of a link.
type direction struct {
	link     *Link
	from, to *Host
	im       Impairments
	model    *pipe.Model
	corrupt  *rand.Rand // the Corrupt draws, separate from the model's
	wire     *pipe.Queue
	stats    LinkStats

	// The bottleneck: departs[head:head+n] (a ring) are the times the frames in
	// the queue finish serializing, in order; the last is when the transmitter
	// is next free.
	departs []engine.Time
	head, n int
}

func newDirection(l *Link, from, to *Host, im Impairments, seed uint64, inFlight int) (*direction, error) {
	if err := im.Validate(); err != nil {
		return nil, err
	}
	if im.Rate > 0 && im.QueueLimit == 0 {
		im.QueueLimit = DefaultQueueLimit
	}
	m, err := pipe.NewModel(im.model(), mix(seed, 1))
	if err != nil {
		return nil, err
	}
	q, err := pipe.NewQueue(inFlight)
	if err != nil {
		return nil, err
	}
	d := &direction{link: l, from: from, to: to, im: im, model: m, wire: q,
		corrupt: rand.New(rand.NewPCG(mix(seed, 2), mix(seed, 3)))}
	if im.Rate > 0 {
		d.departs = make([]engine.Time, im.QueueLimit)
	}
	return d, nil
}

// serialization returns how long size bytes take to leave at the link's rate,
// rounded up to the nanosecond.
func (d *direction) serialization(size int) engine.Duration {
	bits := int64(size) * 8
	// bits×1e9 overflows only past 1 GB frames; the engine's MTU is at most 65535.
	return engine.Duration((bits*int64(engine.Second) + d.im.Rate - 1) / d.im.Rate)
}

// enqueue passes a frame of size bytes sent at now through the MTU check and
// the bottleneck, and returns when its last bit leaves, or why it is dropped.
func (d *direction) enqueue(now engine.Time, size int) (engine.Time, DropReason) {
	if d.im.MTU > 0 && size > d.im.MTU {
		d.stats.MTUDrops++
		return 0, DropMTU
	}
	if d.im.Rate == 0 {
		return now, NotDropped
	}
	// Frames whose last bit left by now are gone from the queue.
	for d.n > 0 && d.departs[d.head] <= now {
		d.head = (d.head + 1) % len(d.departs)
		d.n--
	}
	if d.n == len(d.departs) {
		d.stats.QueueDrops++
		return 0, DropQueue
	}
	start := now
	if d.n > 0 {
		start = max(start, d.departs[(d.head+d.n-1)%len(d.departs)])
	}
	dep := start.Add(d.serialization(size))
	d.departs[(d.head+d.n)%len(d.departs)] = dep
	d.n++
	d.stats.MaxQueue = max(d.stats.MaxQueue, d.n)
	return dep, NotDropped
}

// transmit draws the fate of frame f, whose last bit leaves at f.Departs, and
// puts its copies on the wire.
func (d *direction) transmit(f *Frame) {
	fate := d.model.Fate(f.Departs)
	if fate.Dropped() {
		d.stats.Lost++
		f.Drop = DropLoss
		return
	}
	f.Arrive = fate.Arrive
	for i := 0; i < fate.Copies; i++ {
		if !d.wire.Push(fate.Arrive[i], f.Data) {
			d.stats.FlightDrop++
			if i == 0 {
				f.Drop = DropFlight
			}
			break
		}
		f.Copies++
	}
	if f.Copies == 2 {
		d.stats.Duplicated++
	}
	if fate.Reordered && f.Copies > 0 {
		d.stats.Reordered++
	}
}

// damage draws whether the arriving copy b is corrupted and, if so, XORs one
// random byte of it with a random non-zero mask. It reports whether it did.
func (d *direction) damage(b []byte) bool {
	if d.im.Corrupt == 0 || len(b) == 0 || d.corrupt.Float64() >= d.im.Corrupt {
		return false
	}
	i := d.corrupt.IntN(len(b))
	b[i] ^= byte(1 + d.corrupt.IntN(255))
	d.stats.Corrupted++
	return true
}

// mix derives an independent 64-bit seed from seed and a salt (SplitMix64's
// finalizer over their combination), so that every generator of a run has its
// own stream and all of them follow from the run's one seed.
func mix(seed, salt uint64) uint64 {
	z := seed + salt*0x9e3779b97f4a7c15
	z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
	z = (z ^ z>>27) * 0x94d049bb133111eb
	return z ^ z>>31
}
