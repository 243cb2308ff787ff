package wazero

import (
	"context"
	"encoding/hex"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/internal/pktscript"
)

// recorder is an engine that writes down every Step: the frames and commands
// in, and all that comes out (results, read data, events, frames, deadline).
type recorder struct {
	e  engine.Engine
	tr strings.Builder
}

func (r *recorder) Step(in *engine.Input, out *engine.Output) {
	r.e.Step(in, out)
	r.tr.WriteString("step t=" + strconv.FormatInt(int64(in.Now), 10) + " deadline=" + strconv.FormatInt(int64(out.Deadline), 10) + "\n")
	for _, f := range in.Frames {
		r.tr.WriteString("  in " + hex.EncodeToString(f) + "\n")
	}
	transcribe(&r.tr, in.Commands, out)
}

// TestPacketScripts plays every packet script (internal/pktscript) on the
// WebAssembly engine and on the native one: the same outcome, and the same
// transcript byte for byte (every frame the script injects and the engine
// sends, every result, event and deadline). The scripts run unchanged: the
// runner drives any engine.Engine through Step.
func TestPacketScripts(t *testing.T) {
	dir := filepath.Join("..", "..", "internal", "pktscript", "testdata")
	files, err := filepath.Glob(filepath.Join(dir, "scripts", "*.pkt"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no packet scripts in %s (%v)", dir, err)
	}
	known, err := pktscript.ReadKnownFailures(filepath.Join(dir, "known_failures.txt"))
	if err != nil {
		t.Fatal(err)
	}
	m := testModule(t)
	ctx := context.Background()
	steps := 0
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".pkt")
		s, err := pktscript.ParseFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var nat, was recorder
		rn := pktscript.Run(s, func(c engine.Config) (engine.Engine, error) {
			e, err := engine.New(c)
			if err != nil {
				return nil, err
			}
			nat.e = e
			return &nat, nil
		})
		var we *Engine
		rw := pktscript.Run(s, func(c engine.Config) (engine.Engine, error) {
			e, err := m.New(ctx, c)
			if err != nil {
				return nil, err
			}
			we, was.e = e, e
			return &was, nil
		})
		if we != nil {
			we.Close()
		}
		if _, isKnown := known[name]; !rn.Passed && !isKnown {
			t.Errorf("%s fails on the native engine (internal/pktscript's TestScripts says why)", name)
		}
		if rw.Passed != rn.Passed {
			t.Errorf("%s: passed %v on the WebAssembly engine, %v on the native one\n%s", name, rw.Passed, rn.Passed, rw.String())
			continue
		}
		if a, b := nat.tr.String(), was.tr.String(); a != b {
			t.Run(name, func(t *testing.T) { compareTranscripts(t, name, a, b) })
		}
		steps += rn.Steps
	}
	t.Logf("%d scripts, %d steps: the same outcome and transcript on both engines", len(files), steps)
}
