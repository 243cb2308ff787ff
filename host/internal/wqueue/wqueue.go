// Package wqueue carries an engine's batches of frames to a link from a writer
// goroutine, so that the link's writes (a TUN device's, inside which the
// receiving kernel's TCP runs) overlap the next Step. host.Driver and
// host/forward's loop use it.
package wqueue

import (
	"sync"
	"sync/atomic"
)

// InlineBytes is the largest batch the goroutine that made it writes to the
// link itself (when no other write is under way): a few segments, as a
// request, a response or a handshake makes. Larger batches go to the writer
// goroutine, which writes them while the engine goes on to the next Step.
const InlineBytes = 16 << 10

// Writer is the link's side: host.Link and host/forward.Link have it.
type Writer interface {
	WriteBatch(frames [][]byte) error
}

// Queue carries the engine's batches of frames to the link, in the order the
// Steps made them, without copying them: a batch points into the engine's
// output buffer, which stays valid until the second Step after the one that
// filled it starts (engine.Output). So at most two batches are on their way,
// one per buffer, and before Step n the stepper waits until the batch of Step
// n-2 is written (WaitFree).
//
// Writing is a role, held by one goroutine at a time (writing): the writer
// goroutine, or the goroutine that made a small batch and finds the link idle
// (an application's Write, the reader answering a frame), which then writes
// it at once instead of waking the writer. Link.WriteBatch calls never
// overlap.
type Queue struct {
	link Writer

	mu      sync.Mutex
	wcond   sync.Cond // the writer goroutine waits for a batch (L is &mu)
	scond   sync.Cond // steppers wait for a batch to be written (L is &mu)
	q       [2]wbatch // a ring of the batches not yet taken by a writer
	qh, qn  int
	busy    [2]bool // the batch of this output buffer is queued or being written
	writing bool    // a goroutine is writing batches
	idle    bool    // the writer goroutine waits on wcond
	waiters int     // steppers waiting on scond
	closed  bool

	err    error         // the first WriteBatch error
	errors atomic.Uint64 // failed WriteBatch calls
	inline atomic.Uint64 // batches written by the goroutine that made them
}

// wbatch is one Step's frames; p is the engine output buffer they live in.
type wbatch struct {
	frames [][]byte
	p      int
}

// Init sets the link; call it before anything else.
func (w *Queue) Init(link Writer) {
	w.link = link
	w.wcond.L = &w.mu
	w.scond.L = &w.mu
}

// Put queues the frames of the Step that used output buffer p. The caller
// writes them itself when they are few and no write is under way; otherwise
// the writer goroutine writes them.
func (w *Queue) Put(p int, frames [][]byte) {
	w.mu.Lock()
	w.q[(w.qh+w.qn)&1] = wbatch{frames: frames, p: p}
	w.qn++
	w.busy[p] = true
	switch {
	case w.writing:
		// The goroutine writing takes it after the batch before.
	case size(frames) <= InlineBytes:
		w.inline.Add(1)
		w.drain()
	case w.idle:
		w.wcond.Signal()
	}
	w.mu.Unlock()
}

func size(frames [][]byte) int {
	n := 0
	for _, f := range frames {
		n += len(f)
	}
	return n
}

// drain takes the writing role and writes every queued batch, in order (w.mu
// held, and released while writing).
func (w *Queue) drain() {
	w.writing = true
	for w.qn > 0 {
		b := w.q[w.qh]
		w.q[w.qh] = wbatch{}
		w.qh ^= 1
		w.qn--
		w.mu.Unlock()
		err := w.link.WriteBatch(b.frames)
		w.mu.Lock()
		if err != nil {
			w.errors.Add(1)
			if w.err == nil {
				w.err = err
			}
		}
		w.busy[b.p] = false
		if w.waiters > 0 {
			w.scond.Broadcast()
		}
	}
	w.writing = false
}

// WaitFree returns when the batch of output buffer p is written, with the
// first error of a WriteBatch call so far (nil if none). A stepper that finds
// the batch queued with nobody writing writes it itself rather than wait for
// the writer goroutine to wake.
func (w *Queue) WaitFree(p int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeWhile(func() bool { return w.busy[p] })
	return w.err
}

// writeWhile writes queued batches itself while cond holds and nobody else
// is writing, and waits for the goroutine writing otherwise (w.mu held).
func (w *Queue) writeWhile(cond func() bool) {
	for cond() {
		if !w.writing {
			w.drain()
			continue
		}
		w.waiters++
		w.scond.Wait()
		w.waiters--
	}
}

// Run is the writer goroutine: it returns after Close.
func (w *Queue) Run() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if w.qn > 0 && !w.writing {
			w.drain()
			continue
		}
		if w.closed {
			return
		}
		w.idle = true
		w.wcond.Wait()
		w.idle = false
	}
}

// Close writes what is queued (waiting for a write under way), then stops the
// writer goroutine. Nothing may be put after it.
func (w *Queue) Close() {
	w.mu.Lock()
	w.writeWhile(func() bool { return w.qn > 0 || w.writing })
	w.closed = true
	w.wcond.Broadcast()
	w.mu.Unlock()
}

// Busy reports whether a batch is queued or being written.
func (w *Queue) Busy() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.qn > 0 || w.writing
}

// Errors returns how many WriteBatch calls failed.
func (w *Queue) Errors() uint64 { return w.errors.Load() }

// Inline returns how many batches the goroutine that made them wrote itself.
func (w *Queue) Inline() uint64 { return w.inline.Load() }
