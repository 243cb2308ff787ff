package pktscript

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// ReadKnownFailures reads a list of scripts that fail because of an engine
// bug waiting for its fix: "script-name  one-line reason" per line, "#"
// comments. A name without a reason is an error.
func ReadKnownFailures(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
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
			return nil, fmt.Errorf("%s:%d: %q has no reason: write \"script-name  one-line reason\"", path, n, name)
		}
		m[name] = reason
	}
	return m, sc.Err()
}
