package readme

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	in := "# title\n\nprose\n\n<!-- tun results begin -->\nold table\n<!-- tun results end -->\n\nmore prose\n"
	if err := os.WriteFile(path, []byte(in), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, "tun", "| a | b |\n"); err != nil {
		t.Fatal(err)
	}
	got, _ := os.ReadFile(path)
	want := "# title\n\nprose\n\n<!-- tun results begin -->\n| a | b |\n<!-- tun results end -->\n\nmore prose\n"
	if string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	// Another section's markers are not this one's.
	err := Write(path, "bench", "x\n")
	if err == nil || !strings.Contains(err.Error(), "<!-- bench results begin -->") {
		t.Fatalf("Write to a missing section: %v", err)
	}
	if after, _ := os.ReadFile(path); string(after) != want {
		t.Fatalf("a failed Write changed the file: %q", after)
	}
}
