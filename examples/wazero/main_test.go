package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/internal/readmetest"
	"github.com/tcpeng/tcpeng/wasm/wasmbuild"
)

// TestRun runs the example on a module built for the test.
func TestRun(t *testing.T) {
	wasm := filepath.Join(t.TempDir(), "tcpeng.wasm")
	if err := wasmbuild.Build(context.Background(), "", wasm); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := run(&out, wasm); err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^HTTP/1.1 200 OK\nhello 10\.0\.0\.2:\d+, from an engine inside WebAssembly\n$`)
	if !want.MatchString(out.String()) {
		t.Fatalf("printed %q", out.String())
	}
	err := run(&out, filepath.Join(t.TempDir(), "missing.wasm"))
	if err == nil || !strings.Contains(err.Error(), "go generate ./wasm/guest") {
		t.Fatalf("a missing module: %v", err)
	}
}

// TestREADME keeps the README's example identical to this program.
func TestREADME(t *testing.T) { readmetest.Shown(t, "../../README.md", "main.go") }
