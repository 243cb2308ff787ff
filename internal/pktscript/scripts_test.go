package pktscript

import (
	"bufio"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
)

var (
	runKnown = flag.Bool("pktscript.known", false, "run the scripts of testdata/known_failures.txt as ordinary tests (fail instead of skip)")
	verbose  = flag.Bool("pktscript.trace", false, "log the side-by-side trace of passing scripts too")
)

func nativeEngine(c engine.Config) (engine.Engine, error) {
	s, err := engine.New(c)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// knownFailures reads testdata/known_failures.txt: "script-name  reason" per
// line, "#" comments.
func knownFailures(t *testing.T) map[string]string {
	f, err := os.Open("testdata/known_failures.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		name, reason, _ := strings.Cut(line, " ")
		reason = strings.TrimSpace(reason)
		if reason == "" {
			t.Fatalf("testdata/known_failures.txt:%d: %q has no reason: write \"script-name  one-line reason\"", n, name)
		}
		m[name] = reason
	}
	if err := sc.Err(); err != nil {
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
