package main

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	var out bytes.Buffer
	if err := run(&out); err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile(`^HTTP/1\.1 200 OK\nhello 10\.0\.0\.2:\d+, this is 10\.0\.0\.1, over tcpeng\n$`)
	if !want.Match(out.Bytes()) {
		t.Fatalf("output:\n%s\nwant it to match %s", out.Bytes(), want)
	}
}

// TestREADME keeps the README's net.Conn example identical to this program.
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
		t.Fatal("README.md does not show examples/http/main.go verbatim: copy the file into its ```go block")
	}
}
