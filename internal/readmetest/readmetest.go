// Package readmetest keeps the README's code blocks true: an example program
// shown in the README must be the file that builds and runs.
package readmetest

import (
	"os"
	"strings"
	"testing"
)

// Shown fails t unless the README at readme shows the file at src verbatim in a
// ```go block.
func Shown(t *testing.T, readme, src string) {
	t.Helper()
	r, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	s, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(r), "```go\n"+string(s)+"```") {
		t.Fatalf("%s does not show %s verbatim: copy the file into its ```go block", readme, src)
	}
}
