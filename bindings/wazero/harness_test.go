package wazero

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
)

// A world is two engines joined by a virtual link on a virtual clock, driven
// only through engine.Engine's Step, so that the same scenario runs on native
// and WebAssembly engines. Every Step's output is written to a transcript:
// each frame byte for byte, each result and event, each deadline.

var (
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
)

// kind names the engines of a world: "native" or "wasm" for each side.
type kind [2]string

func (k kind) String() string { return k[0] + "-" + k[1] }

var (
	bothNative = kind{"native", "native"}
	bothWasm   = kind{"wasm", "wasm"}
	mixed      = kind{"wasm", "native"}
)

// newEngine makes an engine of kind k.
func newEngine(t testing.TB, k string, cfg engine.Config) engine.Engine {
	t.Helper()
	switch k {
	case "native":
		s, err := engine.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	case "wasm":
		e, err := testModule(t).New(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	t.Fatalf("unknown engine kind %q", k)
	return nil
}

// configs returns the two sides' Configs, changed by mod.
func configs(mod func(*engine.Config)) [2]engine.Config {
	c := [2]engine.Config{
		{Addrs: []netip.Addr{addrA}, Seed: 1, Key: [16]byte{1, 2, 3}, TraceStates: true},
		{Addrs: []netip.Addr{addrB}, Seed: 2, Key: [16]byte{4, 5, 6}, TraceStates: true},
	}
	if mod != nil {
		mod(&c[0])
		mod(&c[1])
	}
	return c
}

type inflight struct {
	at    engine.Time
	frame []byte
}

type world struct {
	t       testing.TB
	eng     [2]engine.Engine
	now     engine.Time
	latency engine.Duration
	loss    float64 // probability a frame is lost, each direction
	rng     *rand.Rand
	wire    [2][]inflight // frames on their way to side i, in order
	dead    [2]engine.Time
	events  [2][]engine.Event
	steps   int

	tr    strings.Builder // the transcript
	out   engine.Output
	stats [2]struct{ sent, lost int }
}

func newWorld(t testing.TB, k kind, cfg [2]engine.Config) *world {
	w := &world{t: t, latency: engine.Millisecond, rng: rand.New(rand.NewPCG(7, 7))}
	for i := range 2 {
		w.eng[i] = newEngine(t, k[i], cfg[i])
		w.dead[i] = engine.Never
	}
	return w
}

// step runs one Step of side i at the current time with the frames due and
// cmds, records everything in the transcript, and returns the results.
func (w *world) step(i int, cmds ...engine.Command) []engine.Result {
	var in engine.Input
	in.Now = w.now
	q := w.wire[i]
	n := 0
	for n < len(q) && q[n].at <= w.now {
		in.Frames = append(in.Frames, q[n].frame)
		n++
	}
	w.wire[i] = q[n:]
	in.Commands = cmds
	out := &w.out
	w.eng[i].Step(&in, out)
	w.steps++
	w.tr.WriteString("step " + strconv.Itoa(i) + " t=" + strconv.FormatInt(int64(w.now), 10) +
		" in=" + strconv.Itoa(len(in.Frames)) + " deadline=" + strconv.FormatInt(int64(out.Deadline), 10) + "\n")
	if len(out.Results) != len(cmds) {
		w.t.Fatalf("step %d side %d: %d results for %d commands", w.steps, i, len(out.Results), len(cmds))
	}
	transcribe(&w.tr, cmds, out)
	res := append([]engine.Result(nil), out.Results...)
	w.events[i] = append(w.events[i], out.Events...)
	for _, f := range out.Frames {
		w.stats[i].sent++
		if w.loss > 0 && w.rng.Float64() < w.loss {
			w.stats[i].lost++
			continue
		}
		w.wire[1-i] = append(w.wire[1-i], inflight{w.now.Add(w.latency), bytes.Clone(f)})
	}
	w.dead[i] = out.Deadline
	return res
}

// transcribe writes what a Step returned: each result (with a digest of the
// bytes a read returned), each event, each frame in hex.
func transcribe(tr *strings.Builder, cmds []engine.Command, out *engine.Output) {
	for j, r := range out.Results {
		tr.WriteString("  result " + cmds[j].Op.String() + " conn=" + strconv.Itoa(int(r.Conn)) + " n=" + strconv.Itoa(r.N) +
			" err=" + strconv.Itoa(int(r.Err)) + " local=" + r.Local.String() + " remote=" + r.Remote.String())
		if cmds[j].Op == engine.OpRead && r.N > 0 && r.N <= len(cmds[j].Data) {
			tr.WriteString(" data=" + digest(cmds[j].Data[:r.N]))
		}
		tr.WriteByte('\n')
	}
	for _, e := range out.Events {
		tr.WriteString("  event " + eventString(e) + "\n")
	}
	for _, f := range out.Frames {
		tr.WriteString("  frame " + hex.EncodeToString(f) + "\n")
	}
}

func digest(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:8])
}

func eventString(e engine.Event) string {
	s := e.Kind.String() + " conn=" + strconv.Itoa(int(e.Conn))
	if e.Err != engine.OK {
		s += " err=" + strconv.Itoa(int(e.Err))
	}
	if e.Kind == engine.EventState {
		s += " " + e.From.String() + "->" + e.To.String()
	}
	return s
}

// do runs one Step of side i with one command and returns its result.
func (w *world) do(i int, c engine.Command) engine.Result { return w.step(i, c)[0] }

// next returns when something next happens: a frame arrives or a deadline.
func (w *world) next() engine.Time {
	t := min(w.dead[0], w.dead[1])
	for i := range 2 {
		if len(w.wire[i]) > 0 {
			t = min(t, w.wire[i][0].at)
		}
	}
	return t
}

// run advances the clock and steps the engines until nothing happens before
// until, calling app (if not nil) after every step to let the applications act.
func (w *world) run(until engine.Time, app func(side int)) {
	for range 10_000_000 {
		t := w.next()
		if t > until {
			if until != engine.Never && until > w.now {
				w.now = until
			}
			return
		}
		if t > w.now {
			w.now = t
		}
		for i := range 2 {
			due := w.dead[i] <= w.now || (len(w.wire[i]) > 0 && w.wire[i][0].at <= w.now)
			if due {
				w.step(i)
				if app != nil {
					app(i)
				}
			}
		}
	}
	w.t.Fatal("the world did not settle")
}

// runFor runs for d of virtual time.
func (w *world) runFor(d engine.Duration, app func(side int)) { w.run(w.now.Add(d), app) }

// takeEvents returns and forgets side i's events.
func (w *world) takeEvents(i int) []engine.Event {
	ev := w.events[i]
	w.events[i] = nil
	return ev
}

// hasEvent reports whether side i saw an event of kind k on conn.
func (w *world) hasEvent(i int, k engine.EventKind, conn engine.ConnID) bool {
	for _, e := range w.events[i] {
		if e.Kind == k && e.Conn == conn {
			return true
		}
	}
	return false
}

// wantResult fails unless r has err and, for OK, is not empty where expected.
func wantErr(t testing.TB, what string, r engine.Result, err engine.Error) {
	t.Helper()
	if r.Err != err {
		t.Fatalf("%s: got %v (%d), want %v (%d)", what, r.Err, r.Err, err, err)
	}
}

// compareTranscripts fails at the first line where two transcripts differ.
func compareTranscripts(t *testing.T, name string, a, b string) {
	t.Helper()
	if a == b {
		return
	}
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(la), len(lb)) {
		if la[i] != lb[i] {
			lo := max(0, i-5)
			t.Fatalf("%s: transcripts differ at line %d:\n--- native\n%s\n--- other\n%s", name, i+1,
				strings.Join(la[lo:min(i+3, len(la))], "\n"), strings.Join(lb[lo:min(i+3, len(lb))], "\n"))
		}
	}
	t.Fatalf("%s: transcripts differ in length: %d and %d lines", name, len(la), len(lb))
}
