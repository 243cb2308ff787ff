package main

import (
	"bytes"
	"regexp"
	"testing"

	"github.com/tcpeng/tcpeng/internal/readmetest"
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

// TestREADME keeps the README's example identical to this program.
func TestREADME(t *testing.T) { readmetest.Shown(t, "../../README.md", "main.go") }
