package forward

import "sync"

// pool runs functions on reused goroutines. A relayed connection needs a
// goroutine or two for its lifetime; made afresh for each connection they
// cost an allocation and, more, the growth of their stacks (a relay goroutine
// runs the engine's Steps inline, which needs a deep stack: a fresh 8 KiB
// stack is copied twice on the way). Idle goroutines wait for work, newest
// first, up to maxIdle of them; close ends the idle ones and makes go refuse.
type pool struct {
	mu      sync.Mutex
	idle    []*worker
	maxIdle int
	closed  bool
	wg      *sync.WaitGroup // counts the pool's goroutines
}

type worker struct {
	job chan func() // one job at a time; closed by close
}

func newPool(maxIdle int, wg *sync.WaitGroup) *pool {
	return &pool{maxIdle: maxIdle, wg: wg}
}

// run runs f on an idle goroutine, or on a new one. It reports false (and
// does not run f) once the pool is closed.
func (p *pool) run(f func()) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.job <- f // never blocks: the worker is idle and the channel has room
		return true
	}
	p.wg.Add(1)
	p.mu.Unlock()
	w := &worker{job: make(chan func(), 1)}
	go w.loop(p, f)
	return true
}

func (w *worker) loop(p *pool, f func()) {
	defer p.wg.Done()
	for {
		f()
		f = nil
		if !p.park(w) {
			return
		}
		var ok bool
		if f, ok = <-w.job; !ok {
			return
		}
	}
}

// park puts w on the idle list, unless the list is full or the pool closed.
func (p *pool) park(w *worker) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle) >= p.maxIdle {
		return false
	}
	p.idle = append(p.idle, w)
	return true
}

// close ends the idle goroutines; busy ones end when their job returns.
func (p *pool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for i, w := range p.idle {
		close(w.job)
		p.idle[i] = nil
	}
	p.idle = nil
}
