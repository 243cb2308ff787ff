package host

import (
	"net"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/internal/spin"
)

// Who steps the engine. Any goroutine that brings work (an application's
// call, the link reader with frames, the timer, Close) runs the engine itself
// if no other goroutine is running it, and leaves the work to the one that is
// otherwise (poke). The role says how much of others' work it takes on.
type role uint8

const (
	// roleApp: an application's call (Read, Write, Dial, Close, ...). It
	// steps a few rounds, then leaves what remains to the engine goroutine.
	roleApp role = iota
	// roleReader: the link reader with a batch that did not fill up (light
	// traffic). As roleApp.
	roleReader
	// roleEngine: the engine goroutine (leftovers, timers, bulk frames) and
	// Close. It steps until no work is left.
	roleEngine
)

// inlineRounds bounds the rounds an application or the reader runs for
// others' work before the engine goroutine takes over: their callers are
// waiting.
const inlineRounds = 3

// poke records that the engine has work, and runs the engine on the calling
// goroutine unless another goroutine is running it (which then finds the work
// when its round ends). It must be called without d.mu held.
//
// want and stepping form a handshake (both sequentially consistent atomics):
// a goroutine sets want, then tries to take stepping; the stepper releases
// stepping, then looks at want. At least one of the two sees the other, so
// no work is left behind with nobody to run it.
func (d *Driver) poke(r role) {
	d.want.Store(true)
	for d.want.Load() && d.stepping.CompareAndSwap(false, true) {
		left := d.rounds(r)
		if d.finished {
			return // the driver is closed: stepping stays taken
		}
		d.stepping.Store(false)
		if left {
			if !d.isClosing() {
				// The caller has waited long enough: the engine goroutine goes on.
				d.kick()
				return
			}
			// Closing: the engine goroutine may be gone, and the last Step
			// (finish) must run; this caller runs it.
			r = roleEngine
		}
	}
}

// isClosing reports whether Close has begun (d.done is closed).
func (d *Driver) isClosing() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// kick wakes the engine goroutine.
func (d *Driver) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run is the engine goroutine: it steps what others left (the work of busy
// callers, full read batches) and the engine's timers.
func (d *Driver) run() {
	defer d.wg.Done()
	var sp spin.Spinner
	for {
		start := time.Now()
		if !d.opts.NoSpin && sp.Spins() {
			// A moment's spin before parking (host/internal/spin): in a bulk
			// transfer the reader's next full batch is tens of µs away. A
			// timer that fires meanwhile is seen after the spin.
			spin.Until(func() bool { return len(d.wake) > 0 })
		}
		select {
		case <-d.wake:
		case <-d.timer.C:
		case <-d.done:
			return // Close (or the reader) runs the last Step: see shutdown
		}
		sp.Record(time.Since(start))
		d.poke(roleEngine)
	}
}

// rounds runs Steps while there is work (stepping held). It reports whether
// it stopped with work left (roleApp and roleReader stop after inlineRounds).
func (d *Driver) rounds(r role) (left bool) {
	for n := 0; ; n++ {
		if r != roleEngine && n == inlineRounds {
			return true
		}
		d.want.Store(false)
		d.mu.Lock()
		if d.closing {
			d.mu.Unlock()
			d.finish()
			return false
		}
		d.collect()
		d.mu.Unlock()
		d.takeFrames()
		now := d.now()
		if len(d.in.Commands) > 0 || d.held != nil || len(d.running) > 0 || now >= d.deadline {
			d.step(now, r)
			if r != roleEngine {
				d.inlineSt++
			}
		}
		d.arm(now)
		if !d.want.Load() && d.deadline > d.now() {
			return false
		}
	}
}

// takeFrames takes a batch the reader has filled, if there is one, without
// waiting. One batch per Step, not every one there is: the engine's ACKs for
// a batch go to the link before it works through the next, so the peer's
// sender makes its next frames while this engine takes in the rest. A Step
// over every frame held answers them all at its end, and the two engines of a
// bulk transfer take turns instead of working at once.
func (d *Driver) takeFrames() {
	// d.held is nil here: rounds steps whenever a batch is held, and step
	// gives it back.
	select {
	case d.held = <-d.full:
	default:
	}
	if len(d.full) > 0 {
		d.want.Store(true) // the next round takes the next batch
	}
}

// arm sets the timer for the engine's deadline when it moved earlier than
// the timer (or the timer is not running). A deadline that moves later leaves
// the timer as it is: it goes off early, and the round it starts finds nothing
// due and sets it again. Engines move their deadline later all the time (every
// ACK restarts a retransmission timer), and that costs nothing here.
func (d *Driver) arm(now engine.Time) {
	dl := d.deadline
	if dl == engine.Never || dl <= now {
		return // nothing to wait for, or the caller steps again at once
	}
	if d.armed <= now || dl < d.armed {
		d.timer.Reset(time.Duration(dl - now))
		d.armed = dl
	}
}

// step gives the engine the frames held and the commands collected, queues
// its frames for the link and dispatches its results and events.
func (d *Driver) step(now engine.Time, r role) {
	p := d.nsteps & 1
	out := &d.outs[p]
	// The engine reuses the output buffer of the Step before last: its frames
	// must be on the link first.
	d.w.WaitFree(int(p))
	d.in.Now = now
	d.in.Frames = d.in.Frames[:0]
	if b := d.held; b != nil {
		for i := range b.n {
			d.in.Frames = append(d.in.Frames, b.bufs[i][:b.sizes[i]])
		}
	}
	d.eng.Step(&d.in, out)
	d.nsteps++
	framesIn := len(d.in.Frames)
	clear(d.in.Frames)
	if b := d.held; b != nil {
		b.n = 0
		d.empty <- b // never blocks: the channel holds every batch
		d.held = nil
	}
	if len(out.Frames) > 0 {
		d.w.Put(int(p), out.Frames)
	}
	d.deadline = out.Deadline
	for i, q := range d.running {
		q.f(d.eng)
		close(q.done)
		d.running[i] = nil
	}
	d.running = d.running[:0]

	d.mu.Lock()
	d.stats.Steps++
	d.stats.FramesIn += uint64(framesIn)
	d.stats.FramesOut += uint64(len(out.Frames))
	d.stats.Commands += uint64(len(d.in.Commands))
	d.stats.InlineSteps = d.inlineSt
	d.dispatch(out)
	d.mu.Unlock()
	// Let go of the applications' buffers.
	clear(d.in.Commands)
	clear(d.owners)
}

// finish is the last work of the driver, run by the stepper that finds it
// closing: reset what is open, write the frames made, close the link, wake
// everyone. stepping stays taken: no Step runs after it.
func (d *Driver) finish() {
	d.finished = true
	d.mu.Lock()
	d.in.Commands = d.in.Commands[:0]
	for id, c := range d.conns {
		if c.flags&cfReleased == 0 {
			// What the application closed closes as it asked; the rest is reset.
			op := engine.OpAbort
			if c.flags&(cfClosed|cfAbort) == cfClosed {
				op = engine.OpClose
			}
			d.in.Commands = append(d.in.Commands, engine.Command{Op: op, Conn: id})
			c.flags |= cfReleased
		}
	}
	for id, l := range d.lis {
		if !l.released {
			d.in.Commands = append(d.in.Commands, engine.Command{Op: engine.OpClose, Conn: id})
			l.released = true
		}
	}
	d.mu.Unlock()
	if len(d.in.Commands) > 0 {
		p := d.nsteps & 1
		d.w.WaitFree(int(p))
		d.in.Now = d.now()
		d.in.Frames = d.in.Frames[:0]
		d.eng.Step(&d.in, &d.outs[p])
		d.nsteps++
		if len(d.outs[p].Frames) > 0 {
			d.w.Put(int(p), d.outs[p].Frames)
		}
	}
	d.w.Close() // writes what is queued, stops the writer goroutine
	_ = d.link.Close()
	d.timer.Stop()
	if d.held != nil {
		d.empty <- d.held
		d.held = nil
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	for _, c := range d.conns {
		c.wake()
	}
	for _, c := range d.dials {
		c.wake()
	}
	for _, l := range d.lis {
		l.cond.Broadcast()
	}
	for _, l := range d.listens {
		l.cond.Broadcast()
	}
	for _, r := range append(d.inspects, d.running...) {
		r.err = net.ErrClosed
		close(r.done)
	}
	d.inspects, d.running = nil, nil
}
