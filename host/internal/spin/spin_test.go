package spin

import (
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

func TestUntil(t *testing.T) {
	if !Until(func() bool { return true }) {
		t.Fatal("Until(true) = false")
	}
	t0 := time.Now()
	if Until(func() bool { return false }) {
		t.Fatal("Until(false) = true")
	}
	if d := time.Since(t0); d < Window {
		t.Fatalf("Until gave up after %v, before the window of %v", d, Window)
	}
	var flag atomic.Bool
	go flag.Store(true)
	for !Until(flag.Load) {
	}
}

func TestSpins(t *testing.T) {
	if runtime.GOMAXPROCS(0) == 1 {
		t.Skip("GOMAXPROCS is 1: a Spinner never spins")
	}
	var s Spinner
	if !s.Spins() {
		t.Fatal("the zero Spinner does not spin")
	}
	s.Record(time.Second)
	if !s.Spins() {
		t.Fatal("one long wait stopped the spinning")
	}
	s.Record(time.Second)
	if s.Spins() {
		t.Fatal("two long waits in a row did not stop the spinning")
	}
	for range 300 {
		s.Record(time.Second) // saturates, does not wrap
	}
	if s.Spins() {
		t.Fatal("300 long waits: spinning again")
	}
	s.Record(shortWait)
	if !s.Spins() {
		t.Fatal("a short wait did not bring the spinning back")
	}
}

func TestGOMAXPROCS1(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var s Spinner
	if s.Spins() {
		t.Fatal("a Spinner spins with GOMAXPROCS 1")
	}
}

func TestNoAlloc(t *testing.T) {
	var s Spinner
	var flag atomic.Bool
	flag.Store(true)
	n := testing.AllocsPerRun(100, func() {
		x := &flag
		if s.Spins() {
			Until(func() bool { return x.Load() })
		}
		s.Record(time.Microsecond)
	})
	if n != 0 {
		t.Fatalf("%v allocations per wait", n)
	}
}
