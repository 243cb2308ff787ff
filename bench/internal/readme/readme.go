// Package readme writes a benchmark's generated tables into a README, between
// the markers "<!-- NAME results begin -->" and "<!-- NAME results end -->",
// leaving the prose around them as it is.
package readme

import (
	"fmt"
	"os"
	"strings"
)

// Markers returns the begin and end markers of section name.
func Markers(name string) (begin, end string) {
	return "<!-- " + name + " results begin -->", "<!-- " + name + " results end -->"
}

// Write replaces what lies between section name's markers in the file at path
// with md. The file must hold both markers, in that order: Write does not add
// them, so that a README says itself where its tables go.
func Write(path, name, md string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(b)
	begin, end := Markers(name)
	i, j := strings.Index(s, begin), strings.Index(s, end)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %q ... %q section to write the tables into: add the two markers where they go", path, begin, end)
	}
	s = s[:i+len(begin)] + "\n" + md + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
