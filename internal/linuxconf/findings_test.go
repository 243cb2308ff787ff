package linuxconf

import (
	"path/filepath"
	"testing"

	"github.com/tcpeng/tcpeng/internal/pktscript"
)

// TestEngineFindings runs the scripts of testdata/findings on tcpeng. Each
// shows an engine behaviour the Linux comparison found to contradict the
// RFC, and fails on tcpeng until the engine is fixed: the test logs the
// failure and skips while it fails, and fails as soon as the script passes
// (then move it to internal/pktscript/testdata/scripts, replacing the script
// that asserted the old behaviour). The same scripts pass on Linux:
//
//	go test ./internal/linuxconf/ -run TestLinuxDifferential -linuxconf.scripts testdata/findings
func TestEngineFindings(t *testing.T) {
	files, err := filepath.Glob("testdata/findings/*.pkt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Skip("no open engine findings in testdata/findings")
	}
	for _, f := range files {
		s, err := pktscript.ParseFile(f)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(s.Name, func(t *testing.T) {
			rep := pktscript.Run(s, nativeEngine)
			if rep.Passed {
				t.Fatalf("%s passes on tcpeng now: the engine was fixed; move it to internal/pktscript/testdata/scripts", f)
			}
			t.Log("\n" + rep.String())
			t.Skip("engine finding, not fixed yet: " + f)
		})
	}
}
