// Package enginebug holds minimal reproductions of engine bugs found while
// benchmarking, for the engine's owner. Each test fails while its bug exists.
package enginebug

import (
	"testing"

	"github.com/tcpeng/tcpeng/bench/raw"
	"github.com/tcpeng/tcpeng/engine"
)

// TestAbortEstablished aborts a quiet established connection. PollFrame sends
// the RST, update finds the released connection CLOSED with nothing queued and
// frees its slot, and finishIPv4 then reads the zeroed tuple: "As4 called on
// IP zero value". host.Driver.Close aborts open connections this way.
func TestAbortEstablished(t *testing.T) {
	p, err := raw.New(1500)
	if err != nil {
		t.Fatal(err)
	}
	lis, err := p.Listen(80)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := p.Connect(lis, 80)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Step with OpAbort on an established connection panicked: %v", r)
		}
	}()
	var out engine.Output
	p.Stack(0).Step(&engine.Input{Now: engine.Time(engine.Second), Commands: []engine.Command{{Op: engine.OpAbort, Conn: c}}}, &out)
	if len(out.Frames) != 1 || out.Results[0].Err != engine.OK {
		t.Fatalf("Abort: %d frames, result %v; want one RST and OK", len(out.Frames), out.Results[0].Err)
	}
}
