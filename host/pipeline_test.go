package host_test

import (
	"encoding/binary"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
)

// stampEngine is an engine that answers every frame with one frame of its
// own, filled with the number of the Step that made it, in two output buffers
// used in turn: the promise of engine.Output (a Step's frames stay valid until
// the second Step after it starts), and no more.
type stampEngine struct {
	size   int
	arenas [2][]byte
	turn   int
	steps  uint32
	made   atomic.Int64 // frames made
	maxIn  atomic.Int64 // the most frames one Step was given
}

func newStampEngine(size, perStep int) *stampEngine {
	e := &stampEngine{size: size}
	for i := range e.arenas {
		e.arenas[i] = make([]byte, size*perStep)
	}
	return e
}

func (e *stampEngine) Step(in *engine.Input, out *engine.Output) {
	out.Frames, out.Results, out.Events = out.Frames[:0], out.Results[:0], out.Events[:0]
	e.steps++
	a := e.arenas[e.turn]
	e.turn ^= 1
	// Fill the whole buffer, as a Step reusing it would: a batch still being
	// written from it would be torn.
	for i := 0; i+4 <= len(a); i += 4 {
		binary.BigEndian.PutUint32(a[i:], e.steps)
	}
	for i := range min(len(in.Frames), len(a)/e.size) {
		out.Frames = append(out.Frames, a[i*e.size:(i+1)*e.size:(i+1)*e.size])
	}
	e.made.Add(int64(len(out.Frames)))
	if n := int64(len(in.Frames)); n > e.maxIn.Load() {
		e.maxIn.Store(n)
	}
	for range in.Commands {
		out.Results = append(out.Results, engine.Result{Err: engine.ErrInvalid})
	}
	out.Deadline = engine.Never
}

// checkLink is a Link fed by the test, whose WriteBatch takes its time and
// checks that every frame it was given is intact when it is done with it,
// and that frames come in the order of the Steps that made them.
type checkLink struct {
	mtu    int
	in     chan []byte
	closed chan struct{}
	once   sync.Once
	delay  time.Duration
	mu     sync.Mutex
	last   uint32
	got    int64
	errs   []string
	busy   atomic.Bool
}

func (l *checkLink) MTU() int { return l.mtu }

func (l *checkLink) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	var f []byte
	select {
	case f = <-l.in:
	case <-l.closed:
		return 0, net.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n], f)
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case f = <-l.in:
		default:
			return n, nil
		}
	}
}

func (l *checkLink) WriteBatch(frames [][]byte) error {
	if l.busy.Swap(true) {
		l.fail("WriteBatch calls overlap")
	}
	defer l.busy.Store(false)
	stamps := make([]uint32, len(frames))
	for i, f := range frames {
		stamps[i] = binary.BigEndian.Uint32(f)
	}
	time.Sleep(l.delay)
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, f := range frames {
		for j := 0; j+4 <= len(f); j += 4 {
			if s := binary.BigEndian.Uint32(f[j:]); s != stamps[i] {
				l.errs = append(l.errs, "frame of Step "+itoa(stamps[i])+" overwritten by Step "+itoa(s)+" while being written")
				return nil
			}
		}
		if stamps[i] < l.last {
			l.errs = append(l.errs, "frame of Step "+itoa(stamps[i])+" after one of Step "+itoa(l.last))
		}
		l.last = stamps[i]
		l.got++
	}
	return nil
}

func (l *checkLink) fail(s string) {
	l.mu.Lock()
	l.errs = append(l.errs, s)
	l.mu.Unlock()
}

func (l *checkLink) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func itoa(v uint32) string {
	b := []byte{}
	for {
		b = append([]byte{byte('0' + v%10)}, b...)
		if v /= 10; v == 0 {
			return string(b)
		}
	}
}

// The driver writes a batch while the engine makes the next (the writer
// goroutine), never a batch the engine may be overwriting (the Step after
// next waits for it), in order, without overlapping WriteBatch calls, and
// Close writes everything made before it closes the link.
func TestPipelinedWrites(t *testing.T) {
	for _, tc := range []struct {
		name   string
		size   int           // frame size: 16 per batch of 2 KiB frames go to the writer goroutine
		delay  time.Duration // per WriteBatch
		bursts int
	}{
		{"large-batches", 2048, 200 * time.Microsecond, 300},
		{"small-batches", 64, 50 * time.Microsecond, 300},
		{"slow-link", 2048, 2 * time.Millisecond, 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			eng := newStampEngine(tc.size, 64)
			l := &checkLink{mtu: tc.size, in: make(chan []byte, 4096), closed: make(chan struct{}), delay: tc.delay}
			d, err := host.NewDriver(eng, l, &host.Options{BatchFrames: 16})
			if err != nil {
				t.Fatal(err)
			}
			frame := make([]byte, tc.size)
			sent := 0
			for i := range tc.bursts {
				for range 1 + i%40 {
					l.in <- frame
					sent++
				}
				if i%7 == 0 {
					time.Sleep(100 * time.Microsecond)
				}
			}
			// Let the reader take everything, then close.
			for deadline := time.Now().Add(10 * time.Second); len(l.in) > 0 && time.Now().Before(deadline); {
				time.Sleep(time.Millisecond)
			}
			time.Sleep(20 * time.Millisecond)
			st := d.Stats()
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
			l.mu.Lock()
			defer l.mu.Unlock()
			for _, e := range l.errs {
				t.Error(e)
			}
			if made := eng.made.Load(); l.got != made || made != int64(sent) {
				t.Errorf("%d frames in, %d made by the engine, %d written", sent, made, l.got)
			}
			t.Logf("%d frames, %d steps (%d inline), %d batches written inline", sent, st.Steps, st.InlineSteps, st.InlineWrites)
		})
	}
}

// A Step takes one read batch, not every batch the reader has filled, so that
// the engine's answers to it reach the link before it works through the
// next; and a batch left behind that way is taken by the next round, with no
// other work (a timer, a command) to start it.
func TestOneBatchPerStep(t *testing.T) {
	checkGoroutines(t)
	const frames, perBatch = 64, 8
	eng := newStampEngine(128, frames)
	l := &checkLink{mtu: 128, in: make(chan []byte, frames), closed: make(chan struct{})}
	frame := make([]byte, 128)
	for range frames {
		l.in <- frame
	}
	d, err := host.NewDriver(eng, l, &host.Options{BatchFrames: perBatch, Batches: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	// The stamp engine has no timer: a batch nobody takes stays untaken.
	for deadline := time.Now().Add(5 * time.Second); eng.made.Load() < frames && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := eng.made.Load(); got != frames {
		t.Fatalf("the engine was given %d of %d frames", got, frames)
	}
	if m := eng.maxIn.Load(); m > perBatch {
		t.Errorf("a Step was given %d frames, more than one batch of %d", m, perBatch)
	}
	if st := d.Stats(); st.Steps < frames/perBatch || st.FramesIn != frames {
		t.Errorf("%d frames in %d Steps, want %d in at least %d", st.FramesIn, st.Steps, frames, frames/perBatch)
	}
}

// Small batches are written by the goroutine that made them, large ones by
// the writer goroutine.
func TestInlineWrites(t *testing.T) {
	for _, tc := range []struct {
		size       int
		wantInline bool
	}{{64, true}, {20000, false}} { // 20000: one frame is more than wqueue.InlineBytes
		checkGoroutines(t)
		eng := newStampEngine(tc.size, 64)
		l := &checkLink{mtu: tc.size, in: make(chan []byte, 64), closed: make(chan struct{})}
		d, err := host.NewDriver(eng, l, &host.Options{BatchFrames: 16})
		if err != nil {
			t.Fatal(err)
		}
		frame := make([]byte, tc.size)
		for range 20 {
			for range 4 {
				l.in <- frame
			}
			time.Sleep(2 * time.Millisecond)
		}
		st := d.Stats()
		d.Close()
		if tc.wantInline != (st.InlineWrites > 0) {
			t.Errorf("frames of %d bytes: %d batches written inline", tc.size, st.InlineWrites)
		}
	}
}

// Close, while applications hammer the driver from many goroutines, returns,
// fails every call with net.ErrClosed and leaves no goroutine behind.
func TestCloseUnderLoad(t *testing.T) {
	for round := range 20 {
		e := newEnv(t, nil)
		var wg sync.WaitGroup
		for range 4 {
			client, server := e.pair(t)
			wg.Add(2)
			go func() {
				defer wg.Done()
				buf := make([]byte, 4096)
				for {
					if _, err := client.Write(buf); err != nil {
						return
					}
				}
			}()
			go func() {
				defer wg.Done()
				buf := make([]byte, 1000)
				for {
					if _, err := server.Read(buf); err != nil {
						return
					}
				}
			}()
		}
		time.Sleep(time.Duration(round%5) * time.Millisecond)
		done := make(chan struct{})
		go func() {
			e.a.Close()
			e.b.Close()
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Close did not return")
		}
		wg.Wait()
		if _, err := e.a.Dial("tcp", "10.0.0.2:1"); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Dial after Close: %v", err)
		}
	}
}
