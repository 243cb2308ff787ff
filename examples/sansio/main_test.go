package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestREADME keeps the README's embedding example identical to this program.
func TestREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("main.go")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(readme), "```go\n"+string(src)+"```") {
		t.Fatal("README.md does not show examples/sansio/main.go verbatim: copy the file into its ```go block")
	}
}

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
