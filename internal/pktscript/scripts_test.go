package pktscript

import (
	"flag"
	"path/filepath"
	"strings"
	"testing"
)

var (
	runKnown = flag.Bool("pktscript.known", false, "run the scripts of testdata/known_failures.txt as ordinary tests (fail instead of skip)")
	verbose  = flag.Bool("pktscript.trace", false, "log the side-by-side trace of passing scripts too")
)

var nativeEngine = Native

// knownFailures reads testdata/known_failures.txt: "script-name  reason" per
// line, "#" comments.
func knownFailures(t *testing.T) map[string]string {
	m, err := ReadKnownFailures("testdata/known_failures.txt")
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestScripts runs every script of testdata/scripts against the native engine.
// A script listed in testdata/known_failures.txt is skipped when it fails (an
// engine bug waiting for its fix) and fails when it passes (the list is stale).
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/scripts/*.pkt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no scripts in testdata/scripts")
	}
	known := knownFailures(t)
	names := map[string]bool{}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".pkt")
		names[name] = true
		t.Run(name, func(t *testing.T) {
			s, err := ParseFile(file)
			if err != nil {
				t.Fatal(err)
			}
			if s.Rule == "" || s.Linux == "" {
				t.Fatalf("%s: every script needs a \"# rule:\" and a \"# linux:\" header", file)
			}
			rep := Run(s, nativeEngine)
			reason, isKnown := known[name]
			switch {
			case rep.Passed && isKnown && !*runKnown:
				t.Fatalf("%s passes but is listed in testdata/known_failures.txt (%s): remove it from the list", name, reason)
			case rep.Passed:
				if *verbose {
					t.Log("\n" + rep.String())
				}
			case isKnown && !*runKnown:
				t.Log("\n" + rep.String())
				t.Skip("known engine bug: " + reason)
			default:
				t.Fatal("\n" + rep.String())
			}
		})
	}
	for name := range known {
		if !names[name] {
			t.Errorf("testdata/known_failures.txt names %q, which is not a script in testdata/scripts", name)
		}
	}
}
