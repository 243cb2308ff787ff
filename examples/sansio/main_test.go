package main

import (
	"os/exec"
	"testing"

	"github.com/tcpeng/tcpeng/internal/readmetest"
)

// TestREADME keeps the README's example identical to this program.
func TestREADME(t *testing.T) { readmetest.Shown(t, "../../README.md", "main.go") }

// TestRun runs the example and checks what it prints.
func TestRun(t *testing.T) {
	out, err := exec.Command("go", "run", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got, want := string(out), "B read \"hello over tcpeng\\n\"\n"; got != want {
		t.Fatalf("printed %q, want %q", got, want)
	}
}
