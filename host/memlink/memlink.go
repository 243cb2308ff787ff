// Package memlink is an in-memory host.Link pair: what one end writes, the
// other reads. Each direction is a bounded queue of preallocated frame buffers,
// so a frame costs two copies (into the queue, out of it, as a kernel's TUN
// write and read would) and no allocation. A frame written while the queue is
// full is dropped and counted, as a network interface's transmit queue does.
//
// It is meant for tests and examples: two engines in one process, joined by a
// perfect wire. For loss, delay and reordering use host/pipe or host/sim.
package memlink

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tcpeng/tcpeng/host"
	"github.com/tcpeng/tcpeng/host/internal/spin"
)

// Stats counts one end's traffic.
type Stats struct {
	Sent      uint64 // frames written and queued for the peer
	Received  uint64 // frames read
	Dropped   uint64 // frames written while the peer's queue was full or the peer was closed
	Oversized uint64 // frames written longer than the MTU, dropped
}

// End is one end of a pair. It implements host.Link.
type End struct {
	mtu     int
	in, out *queue
	closed  atomic.Bool

	sent, received, dropped, oversized atomic.Uint64
}

var _ host.Link = (*End)(nil)

// queue is one direction: a ring of frames, each in its own preallocated
// buffer of MTU bytes.
type queue struct {
	mu     sync.Mutex
	cond   sync.Cond // signalled when a frame arrives or the reader closes
	bufs   [][]byte  // len(bufs) frames of MTU bytes, carved from one slab
	sizes  []int
	head   int // oldest frame
	n      int // frames queued
	closed bool
	// avail is n, or -1 once closed, for a reader to watch while it spins;
	// written with mu held.
	avail atomic.Int32
	spin  spin.Spinner // the readers' (mu)
}

// wait returns when a frame is queued or the queue is closed (q.mu held, and
// released while waiting). It spins a moment before parking
// (host/internal/spin): in a bulk transfer the peer's next frames are tens of
// µs away, less than waking a parked goroutine on an idle CPU takes.
func (q *queue) wait() {
	start := time.Now()
	if q.spin.Spins() {
		q.mu.Unlock()
		spin.Until(func() bool { return q.avail.Load() != 0 })
		q.mu.Lock()
	}
	for q.n == 0 && !q.closed {
		q.cond.Wait()
	}
	q.spin.Record(time.Since(start))
}

func newQueue(mtu, queueLen int) *queue {
	q := &queue{bufs: make([][]byte, queueLen), sizes: make([]int, queueLen)}
	q.cond.L = &q.mu
	slab := make([]byte, mtu*queueLen)
	for i := range q.bufs {
		q.bufs[i] = slab[i*mtu : (i+1)*mtu : (i+1)*mtu]
	}
	return q
}

// NewPair returns two connected ends. mtu is the largest frame (576 to 65535);
// queueLen is how many frames each direction holds before it drops (at least
// 1). Size queueLen for the largest burst a Step can write: an engine with a
// 1 MiB send window can send about 700 frames of 1500 bytes at once.
// Values out of range are brought into it: mtu to [576, 65535], queueLen to
// [1, 1<<16]. Each direction preallocates mtu*queueLen bytes.
func NewPair(mtu, queueLen int) (a, b host.Link) {
	mtu = min(max(mtu, 576), 65535)
	queueLen = min(max(queueLen, 1), 1<<16)
	ab, ba := newQueue(mtu, queueLen), newQueue(mtu, queueLen)
	return &End{mtu: mtu, in: ba, out: ab}, &End{mtu: mtu, in: ab, out: ba}
}

// MTU returns the largest frame the pair carries.
func (e *End) MTU() int { return e.mtu }

// errClosed is returned after Close; it wraps net.ErrClosed.
var errClosed = fmt.Errorf("memlink: link closed: %w", net.ErrClosed)

// ReadBatch blocks until at least one frame is queued for this end, then moves
// up to len(bufs) of them into bufs, their lengths into sizes, and returns how
// many. It returns net.ErrClosed once this end is closed. A buffer shorter
// than the next frame ends the batch; if it is the first, ReadBatch returns
// io.ErrShortBuffer and the frame stays queued.
func (e *End) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	max := min(len(bufs), len(sizes))
	if max == 0 {
		return 0, errors.New("memlink: ReadBatch needs at least one buffer and one size")
	}
	q := e.in
	q.mu.Lock()
	if q.n == 0 && !q.closed {
		q.wait()
	}
	if q.closed {
		q.mu.Unlock()
		return 0, errClosed
	}
	i := 0
	for ; i < max && q.n > 0; i++ {
		size := q.sizes[q.head]
		if len(bufs[i]) < size {
			break
		}
		if slot := q.bufs[q.head]; len(bufs[i]) == len(slot) && cap(bufs[i]) == cap(slot) {
			// Exchange the buffers (host.Link allows it): the frame is not copied
			// a second time, and this end keeps a buffer of the same size.
			bufs[i], q.bufs[q.head] = slot, bufs[i]
			sizes[i] = size
		} else {
			sizes[i] = copy(bufs[i], slot[:size])
		}
		q.head++
		if q.head == len(q.bufs) {
			q.head = 0
		}
		q.n--
	}
	q.avail.Store(int32(q.n))
	q.mu.Unlock()
	if i == 0 {
		return 0, io.ErrShortBuffer
	}
	e.received.Add(uint64(i))
	return i, nil
}

// WriteBatch copies frames into the peer's queue. Frames that do not fit (the
// queue is full, the peer closed, the frame is over the MTU) are dropped and
// counted; that is not an error. It returns net.ErrClosed once this end is
// closed.
func (e *End) WriteBatch(frames [][]byte) error {
	if e.closed.Load() {
		return errClosed
	}
	q := e.out
	var sent, dropped, oversized uint64
	q.mu.Lock()
	for _, f := range frames {
		switch {
		case len(f) > e.mtu:
			oversized++
		case q.closed || q.n == len(q.bufs):
			dropped++
		default:
			i := q.head + q.n
			if i >= len(q.bufs) {
				i -= len(q.bufs)
			}
			q.sizes[i] = copy(q.bufs[i], f)
			q.n++
			sent++
		}
	}
	if sent > 0 {
		q.avail.Store(int32(q.n))
		q.cond.Signal()
	}
	q.mu.Unlock()
	e.sent.Add(sent)
	e.dropped.Add(dropped)
	e.oversized.Add(oversized)
	return nil
}

// Close closes this end: its ReadBatch and WriteBatch return net.ErrClosed,
// frames queued for it are discarded, and the peer's writes to it are dropped.
// The peer stays open. Closing twice returns net.ErrClosed.
func (e *End) Close() error {
	if e.closed.Swap(true) {
		return errClosed
	}
	q := e.in
	q.mu.Lock()
	q.closed = true
	q.n = 0
	q.avail.Store(-1)
	q.cond.Broadcast()
	q.mu.Unlock()
	return nil
}

// Stats returns this end's counters.
func (e *End) Stats() Stats {
	return Stats{Sent: e.sent.Load(), Received: e.received.Load(), Dropped: e.dropped.Load(), Oversized: e.oversized.Load()}
}
