// Package pcaptest checks capture files with tshark, for tests.
package pcaptest

import (
	"bytes"
	"os/exec"
	"strconv"
	"strings"
	"testing"
)

// expertError is Wireshark's PI_ERROR severity (epan/proto.h): bad checksums
// and malformed packets are reported at this level.
const expertError = 0x00800000

// Check reads file with tshark, checksum verification on, and fails t unless
// tshark reads exactly want packets (-1: any number), without complaint, each
// with a good IPv4 header checksum and a good TCP checksum, none malformed and
// none with an expert note of error severity. It returns tshark's one-line
// summaries of the packets. It skips t when tshark is not installed.
func Check(t testing.TB, file string, want int) []string {
	t.Helper()
	if _, err := exec.LookPath("tshark"); err != nil {
		t.Skip("tshark is not installed: `make deps` (scripts/deps.sh) installs it")
	}
	opts := []string{"-r", file, "-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"}
	summary := run(t, opts...)
	lines := splitLines(summary)
	for _, l := range lines {
		if strings.Contains(l, "INCORRECT") || strings.Contains(l, "Malformed") {
			t.Errorf("tshark flags a packet: %s", l)
		}
	}
	fields := run(t, append(opts, "-T", "fields", "-E", "separator=|", "-e", "frame.number",
		"-e", "ip.checksum.status", "-e", "tcp.checksum.status", "-e", "_ws.malformed", "-e", "_ws.expert.severity")...)
	rows := splitLines(fields)
	for _, row := range rows {
		f := strings.Split(row, "|")
		if len(f) != 5 {
			t.Errorf("tshark printed %q: want 5 fields", row)
			continue
		}
		// Status 1 is "Good"; 0 is "Bad", 2 "Unverified", 3 "Not present"
		// (proto_checksum_enum_e in epan/proto.h).
		if f[1] != "1" || f[2] != "1" {
			t.Errorf("packet %s: IP checksum status %q, TCP checksum status %q; want 1 (good) for both", f[0], f[1], f[2])
		}
		if f[3] != "" {
			t.Errorf("packet %s is malformed", f[0])
		}
		for _, s := range strings.Split(f[4], ",") {
			if v, err := strconv.ParseUint(s, 0, 32); err == nil && v >= expertError {
				t.Errorf("packet %s has an expert note of error severity (%s)", f[0], s)
			}
		}
	}
	if want >= 0 && (len(rows) != want || len(lines) != want) {
		t.Errorf("tshark read %d packets (%d summaries), want %d", len(rows), len(lines), want)
	}
	return lines
}

func run(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command("tshark", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var complaints []string
	for _, l := range splitLines(errb.String()) {
		if !strings.HasPrefix(l, "Running as user") {
			complaints = append(complaints, l)
		}
	}
	if err != nil || len(complaints) > 0 {
		t.Fatalf("tshark %s: %v; stderr: %s", strings.Join(args, " "), err, strings.Join(complaints, "\n"))
	}
	return out.String()
}

func splitLines(s string) []string {
	var ls []string
	for _, l := range strings.Split(s, "\n") {
		if strings.TrimSpace(l) != "" {
			ls = append(ls, l)
		}
	}
	return ls
}
