// Package spin decides whether a goroutine about to block waits a moment on
// the processor first.
//
// Waking a parked goroutine that then runs on another, idle CPU costs the
// time the operating system takes to wake that CPU's thread: on the virtual
// machines this code runs on, 30 to 100 µs, longer than a 64 KiB segment
// takes to cross two engines. A bulk transfer between goroutines that park
// after each handoff then runs on one CPU at a time, whatever GOMAXPROCS is.
// Spinning for a short window instead, yielding the processor to runnable
// goroutines (runtime.Gosched), keeps the handoff cheap. It is the adaptive
// spinning of mutexes (Go's sync.Mutex, glibc's adaptive mutexes) applied to
// the host's waits: a Spinner spins only while waits keep ending soon, so an
// idle connection or an idle link parks at once and costs no CPU.
package spin

import (
	"runtime"
	"time"
)

// Window is how long Until spins before the caller parks.
const Window = 50 * time.Microsecond

// shortWait is the longest wait (spin and park) after which spinning would
// likely have paid: a wait this short makes the Spinner spin again.
const shortWait = 4 * Window

// Spinner is one wait site's policy: whether to spin before parking. The zero
// value spins. It is a byte; its methods need the caller's own exclusion (one
// goroutine, or a lock held).
type Spinner struct {
	long uint8 // waits in a row that lasted longer than shortWait
}

// Spins reports whether the next wait should spin (Until) before it parks:
// not after two long waits in a row, and not when GOMAXPROCS is 1, where what
// the caller waits for needs the caller's processor.
func (s *Spinner) Spins() bool {
	return s.long < 2 && runtime.GOMAXPROCS(0) > 1
}

// Record takes how long a wait lasted, from before the spin to the wake-up.
func (s *Spinner) Record(waited time.Duration) {
	if waited <= shortWait {
		s.long = 0
	} else if s.long < 255 {
		s.long++
	}
}

// Until spins until ready reports true or Window passes, yielding the
// processor between tries, and reports whether ready did. It does not
// allocate (ready must not escape; a closure literal at the call site does
// not).
func Until(ready func() bool) bool { return UntilYield(ready, runtime.Gosched) }

// UntilYield is Until with yield called between tries instead of
// runtime.Gosched: a caller that polls the kernel may yield the OS thread's
// CPU to other processes (sched_yield).
func UntilYield(ready func() bool, yield func()) bool {
	t0 := time.Now()
	for !ready() {
		if time.Since(t0) >= Window {
			return false
		}
		yield()
	}
	return true
}
