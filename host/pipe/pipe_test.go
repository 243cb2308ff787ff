package pipe

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
)

func TestModelPerfectWire(t *testing.T) {
	m, err := NewModel(Impairments{}, 1)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		now := engine.Time(i)
		f := m.Fate(now)
		if f != (Fate{Copies: 1, Arrive: [2]engine.Time{now}}) {
			t.Fatalf("perfect wire: fate %+v at %d", f, now)
		}
	}
}

func TestModelLossAll(t *testing.T) {
	m, _ := NewModel(Impairments{Loss: 1}, 1)
	for range 100 {
		if f := m.Fate(0); f.Drop != DropLoss || f.Copies != 0 || !f.Dropped() {
			t.Fatalf("loss 1: fate %+v", f)
		}
	}
}

// TestModelDeterministic: the same seed gives the same fates; another seed
// gives others; the rates are those asked for.
func TestModelDeterministic(t *testing.T) {
	im := Impairments{Loss: 0.1, Duplicate: 0.2, Reorder: 0.3, Delay: 10 * engine.Millisecond, Jitter: 2 * engine.Millisecond}
	draw := func(seed uint64) []Fate {
		m, err := NewModel(im, seed)
		if err != nil {
			t.Fatal(err)
		}
		fs := make([]Fate, 100_000)
		for i := range fs {
			fs[i] = m.Fate(engine.Time(i) * 1000)
		}
		return fs
	}
	a, b, c := draw(7), draw(7), draw(8)
	var lost, dup, reord, differ int
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("seed 7 gave two different fates for frame %d: %+v and %+v", i, a[i], b[i])
		}
		if a[i] != c[i] {
			differ++
		}
		f := a[i]
		now := engine.Time(i) * 1000
		switch {
		case f.Dropped():
			lost++
			continue
		case f.Duplicated():
			dup++
		}
		if f.Reordered {
			reord++
		}
		for k := range f.Copies {
			d := f.Arrive[k].Sub(now)
			if d < im.Delay || d > im.Delay+im.Jitter+DefaultReorderDelay {
				t.Fatalf("frame %d copy %d arrives after %v: outside delay+jitter+reorder", i, k, d)
			}
		}
	}
	// Within 4 standard deviations of the expected counts.
	check := func(name string, got int, p float64, n int) {
		mean := p * float64(n)
		sd := 4 * sqrt(mean*(1-p))
		if float64(got) < mean-sd || float64(got) > mean+sd {
			t.Errorf("%s: %d of %d, want about %.0f", name, got, n, mean)
		}
	}
	check("lost", lost, 0.1, len(a))
	check("duplicated", dup, 0.2, len(a)-lost)
	if differ < len(a)/2 {
		t.Errorf("seeds 7 and 8 agree on %d of %d fates", len(a)-differ, len(a))
	}
	if reord == 0 {
		t.Error("nothing reordered")
	}
}

func sqrt(x float64) float64 {
	z := x
	for range 50 {
		if z == 0 {
			return 0
		}
		z = (z + x/z) / 2
	}
	return z
}

func TestImpairmentsValidate(t *testing.T) {
	for _, tc := range []struct {
		im   Impairments
		want string
	}{
		{Impairments{Loss: -0.1}, "Impairments.Loss is -0.1"},
		{Impairments{Duplicate: 1.5}, "Impairments.Duplicate is 1.5"},
		{Impairments{Delay: -1}, "Impairments.Delay is -1ns"},
		{Impairments{Jitter: 2 * maxDelay}, "Impairments.Jitter is 7200s"},
	} {
		_, err := NewModel(tc.im, 0)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.im, err, tc.want)
		}
		_, err = New(Config{Engines: stacks(t, nil), Links: [2]Impairments{{}, tc.im}})
		if err == nil || !strings.Contains(err.Error(), "Config.Links[B]") {
			t.Errorf("New with %+v on B: error %v", tc.im, err)
		}
	}
}

func TestQueueOrderAndLimit(t *testing.T) {
	q, err := NewQueue(4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewQueue(0); err == nil {
		t.Fatal("NewQueue(0) succeeded")
	}
	for _, f := range []struct {
		at engine.Time
		b  string
	}{{30, "c"}, {10, "a1"}, {10, "a2"}, {20, "b"}} {
		if !q.Push(f.at, []byte(f.b)) {
			t.Fatalf("push %s refused", f.b)
		}
	}
	if q.Push(5, []byte("x")) || q.Len() != 4 {
		t.Fatalf("push past the limit accepted (len %d)", q.Len())
	}
	if q.Next() != 10 {
		t.Fatalf("next %d, want 10", q.Next())
	}
	if _, ok := q.Pop(9); ok {
		t.Fatal("popped a frame before its time")
	}
	var got []string
	for {
		b, ok := q.Pop(100)
		if !ok {
			break
		}
		got = append(got, string(b))
		q.Recycle(b)
	}
	if strings.Join(got, " ") != "a1 a2 b c" || q.Next() != engine.Never {
		t.Fatalf("order %v, next %d; want a1 a2 b c, never", got, q.Next())
	}
}

// echoApps returns a client that sends msg and closes after reading the echo,
// and a server that echoes and closes at EOF.
func echoApps(msg []byte) (client, srv *Endpoint, echo *bytes.Buffer) {
	echo = new(bytes.Buffer)
	client = &Endpoint{Dial: server, OnOpen: func(h *Host, s *Stream) {
		_ = s.Write(msg)
		s.OnData = func(s *Stream, b []byte) {
			echo.Write(b)
			if echo.Len() >= len(msg) {
				s.Close()
			}
		}
	}}
	srv = &Endpoint{Listen: server, OnOpen: func(h *Host, s *Stream) {
		s.OnData = func(s *Stream, b []byte) { _ = s.Write(bytes.Clone(b)) }
		s.OnEOF = func(s *Stream) { s.Close() }
	}}
	return client, srv, echo
}

func TestEchoAndVirtualTime(t *testing.T) {
	msg := []byte("hello, tcpeng")
	client, srv, echo := echoApps(msg)
	var jumps []engine.Duration
	var frames [2]int
	p, err := New(Config{
		Engines:   stacks(t, nil),
		Apps:      [2]App{client, srv},
		Links:     [2]Impairments{{Delay: 10 * engine.Millisecond}, {Delay: 10 * engine.Millisecond}},
		OnAdvance: func(from, to engine.Time) { jumps = append(jumps, to.Sub(from)) },
		OnFrame:   func(f *Frame) { frames[f.From]++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(engine.Never); err != nil {
		t.Fatal(err)
	}
	if echo.String() != string(msg) {
		t.Fatalf("echo %q, want %q", echo, msg)
	}
	if !client.Stream.Closed() || !srv.Stream.Closed() {
		t.Fatalf("closed: client %v server %v", client.Stream.Closed(), srv.Stream.Closed())
	}
	// SYN at 0, SYN-ACK at 10 ms, ACK and data at 20 ms, echo at 30 ms, the
	// client's FIN at 40 ms, the server's FIN at 50 ms, the client's last ACK at
	// 60 ms: the client enters TIME_WAIT when the server's FIN arrives (60 ms) and
	// leaves it 2×MSL (60 s) later; the last jump starts when that ACK reaches the
	// server at 70 ms.
	wantJumps := "[10ms 10ms 10ms 10ms 10ms 10ms 10ms 59990ms]"
	if got := fmt.Sprint(jumps); got != wantJumps {
		t.Errorf("clock jumps %s, want %s", got, wantJumps)
	}
	if want := engine.Time(60*engine.Second + 60*engine.Millisecond); p.Now() != want {
		t.Errorf("finished at %v, want %v", engine.Duration(p.Now()), engine.Duration(want))
	}
	st := p.Stats()
	if st.Links[A].Frames != uint64(frames[A]) || st.Links[B].Frames != uint64(frames[B]) ||
		st.Links[A].Delivered != st.Links[A].Frames || st.Links[B].Delivered != st.Links[B].Frames {
		t.Errorf("stats %+v, frames seen %v", st, frames)
	}
	if p.InFlight(A) != 0 || p.InFlight(B) != 0 || p.Deadline(A) != engine.Never || p.Deadline(B) != engine.Never {
		t.Errorf("not quiet at the end: in flight %d %d, deadlines %d %d", p.InFlight(A), p.InFlight(B), p.Deadline(A), p.Deadline(B))
	}
}

// TestServerOnSideA: the start Step runs every App's first commands before any
// frame moves, so the server may be on either side.
func TestServerOnSideA(t *testing.T) {
	msg := []byte("x")
	client, srv, echo := echoApps(msg)
	srvAddr := netip.AddrPortFrom(addrA, 7)
	client.Dial, srv.Listen = srvAddr, srvAddr
	p, err := New(Config{Engines: stacks(t, nil), Apps: [2]App{srv, client}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(engine.Never); err != nil {
		t.Fatal(err)
	}
	if echo.String() != "x" {
		t.Fatalf("echo %q", echo)
	}
}

// TestDeterministic: the same seed gives the same frames at the same times.
func TestDeterministic(t *testing.T) {
	run := func(seed uint64) [32]byte {
		link := Impairments{Loss: 0.05, Reorder: 0.05, Duplicate: 0.01, Delay: engine.Millisecond, Jitter: 100 * engine.Microsecond}
		h := sha256.New()
		var tb [9]byte
		p, err := New(Config{
			Engines: stacks(t, nil),
			Apps:    [2]App{newPeer(randomBytes(100_000, 1), server, netip.AddrPort{}), newPeer(randomBytes(50_000, 2), netip.AddrPort{}, server)},
			Links:   [2]Impairments{link, link},
			Seed:    seed,
			OnFrame: func(f *Frame) {
				for i := range 8 {
					tb[i] = byte(f.Time >> (8 * i))
				}
				tb[8] = byte(f.From)<<4 | byte(f.Fate.Drop)
				h.Write(tb[:])
				h.Write(f.Data)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Run(engine.Never); err != nil {
			t.Fatal(err)
		}
		return [32]byte(h.Sum(nil))
	}
	if a, b := run(3), run(3); a != b {
		t.Fatalf("seed 3 gave two different runs: %x and %x", a, b)
	}
	if a, b := run(3), run(4); a == b {
		t.Fatal("seeds 3 and 4 gave the same run")
	}
}

func TestQueueFullDrops(t *testing.T) {
	var dropped int
	p, err := New(Config{
		Engines:    stacks(t, nil),
		Apps:       [2]App{newPeer(randomBytes(200_000, 1), server, netip.AddrPort{}), newPeer(nil, netip.AddrPort{}, server)},
		Links:      [2]Impairments{{Delay: engine.Millisecond}, {Delay: engine.Millisecond}},
		QueueLimit: 8,
		OnFrame: func(f *Frame) {
			if f.Fate.Drop == DropQueue {
				dropped++
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(engine.Time(3600 * engine.Second)); err != nil {
		t.Fatal(err)
	}
	st := p.Stats()
	if dropped == 0 || st.Links[A].QueueDrops != uint64(dropped) {
		t.Fatalf("queue drops: seen %d, counted %d; want the same, not 0", dropped, st.Links[A].QueueDrops)
	}
}

// spinner is an engine that always asks to be called again now.
type spinner struct{ calls int }

func (s *spinner) Step(in *engine.Input, out *engine.Output) {
	s.calls++
	out.Frames, out.Events = out.Frames[:0], out.Events[:0]
	out.Results = out.Results[:0]
	for range in.Commands {
		out.Results = append(out.Results, engine.Result{Err: engine.ErrInvalid})
	}
	out.Deadline = in.Now
}

func TestStuckEngine(t *testing.T) {
	sp := &spinner{}
	p, err := New(Config{Engines: [2]engine.Engine{sp, stacks(t, nil)[B]}, MaxSpin: 50})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(engine.Never)
	if !errors.Is(err, ErrStuck) || !strings.Contains(err.Error(), "50 rounds at t=0s") {
		t.Fatalf("error %v, want ErrStuck after 50 rounds", err)
	}
	if sp.calls != 51 { // the start Step, then 50 rounds at t=0
		t.Fatalf("%d calls", sp.calls)
	}
	if err2 := p.Run(engine.Never); err2 != err {
		t.Fatalf("second Run: %v", err2)
	}
}

// mute is an engine that answers no command.
type mute struct{}

func (mute) Step(in *engine.Input, out *engine.Output) {
	out.Frames, out.Results, out.Events, out.Deadline = nil, nil, nil, engine.Never
}

func TestEngineBreaksContract(t *testing.T) {
	app := Funcs{OnStart: func(h *Host) { _ = h.Listen(server) }}
	p, err := New(Config{Engines: [2]engine.Engine{mute{}, mute{}}, Apps: [2]App{app, nil}})
	if err != nil {
		t.Fatal(err)
	}
	err = p.Run(engine.Never)
	if err == nil || !strings.Contains(err.Error(), "engine A returned 0 results for 1 commands") {
		t.Fatalf("error %v", err)
	}
}

func TestTooManyCommands(t *testing.T) {
	var last error
	var errs []engine.Error
	app := Funcs{
		OnStart: func(h *Host) {
			for range 5 {
				last = h.Listen(server)
			}
		},
		OnResult: func(h *Host, c *engine.Command, r engine.Result) { errs = append(errs, r.Err) },
	}
	p, err := New(Config{Engines: stacks(t, nil), Apps: [2]App{nil, app}, MaxCommands: 4})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(engine.Never); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(last, ErrTooManyCommands) || !strings.Contains(last.Error(), "side B has 4 commands waiting") {
		t.Fatalf("fifth command: %v", last)
	}
	// The four accepted ones ran: one listener, then the address is in use.
	want := []engine.Error{engine.OK, engine.ErrAddrInUse, engine.ErrAddrInUse, engine.ErrAddrInUse}
	if fmt.Sprint(errs) != fmt.Sprint(want) {
		t.Fatalf("results %v, want %v", errs, want)
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New(Config{}); err == nil || !strings.Contains(err.Error(), "needs an engine on both sides") {
		t.Errorf("no engines: %v", err)
	}
	if _, err := New(Config{Engines: stacks(t, nil), QueueLimit: -1}); err == nil || !strings.Contains(err.Error(), "QueueLimit is -1") {
		t.Errorf("negative QueueLimit: %v", err)
	}
}

func TestFailStopsRun(t *testing.T) {
	boom := errors.New("boom")
	app := Funcs{OnStart: func(h *Host) { h.Fail(boom); h.Fail(errors.New("second")) }}
	p, _ := New(Config{Engines: stacks(t, nil), Apps: [2]App{app, nil}})
	if err := p.Run(engine.Never); err != boom {
		t.Fatalf("error %v, want boom", err)
	}
}

func TestStreamWriteLimits(t *testing.T) {
	p, err := New(Config{Engines: stacks(t, nil)})
	if err != nil {
		t.Fatal(err)
	}
	s := NewStream(p.Host(A), 1, 0)
	s.MaxQueued = 10
	if err := s.Write(make([]byte, 6)); err != nil {
		t.Fatal(err)
	}
	if err := s.Write(make([]byte, 5)); err != ErrStreamFull || s.Queued() != 6 {
		t.Fatalf("write past MaxQueued: %v, queued %d", err, s.Queued())
	}
	if err := s.Write(nil); err != nil {
		t.Fatalf("empty write: %v", err)
	}
	s.Shutdown()
	if err := s.Write([]byte("x")); err != ErrStreamClosed {
		t.Fatalf("write after Shutdown: %v", err)
	}
	// One OpWrite in flight; Shutdown waits for the queue to drain.
	if got := p.Host(A).pending; len(got) != 1 || got[0].Op != engine.OpWrite || len(got[0].Data) != 6 {
		t.Fatalf("commands queued %+v", got)
	}
}

// TestStreamShortWrite: a write larger than the send buffer is taken in parts,
// resumed at EventWritable, and the FIN follows the last byte.
func TestStreamShortWrite(t *testing.T) {
	data := randomBytes(100_000, 5)
	var writes int
	var got []byte
	a := &Endpoint{Dial: server, OnOpen: func(h *Host, s *Stream) {
		_ = s.Write(data)
		s.OnWritten = func(s *Stream, n int) {
			writes++
			if s.Sent == int64(len(data)) {
				s.Close()
			}
		}
	}}
	b := &Endpoint{Listen: server, OnOpen: func(h *Host, s *Stream) {
		s.OnData = func(s *Stream, p []byte) { got = append(got, p...) }
		s.OnEOF = func(s *Stream) { s.Close() }
	}}
	p, err := New(Config{Engines: stacks(t, func(c *engine.Config) { c.SendBuffer = 16384 }), Apps: [2]App{a, b}})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(engine.Never); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) || writes < 100_000/16384 || !a.Stream.Closed() || !b.Stream.Closed() {
		t.Fatalf("received %d of %d bytes in %d writes; closed %v %v", len(got), len(data), writes, a.Stream.Closed(), b.Stream.Closed())
	}
}
