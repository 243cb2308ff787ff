package tun

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/host/netns"
	"github.com/tcpeng/tcpeng/internal/testkit"
)

// Link is a copy of host.Link (the driver's interface), checked here so the two
// cannot drift apart silently.
type Link interface {
	ReadBatch(bufs [][]byte, sizes []int) (int, error)
	WriteBatch(frames [][]byte) error
	MTU() int
	Close() error
}

var _ Link = (*Device)(nil)

// needKernel skips a test that needs a real TUN device where there is none.
func needKernel(t *testing.T) { t.Helper(); testkit.NeedKernel(t) }

// newNS creates a network namespace for the test and deletes it at cleanup.
func newNS(t *testing.T) string { t.Helper(); return testkit.NewNS(t, "tcpeng-tun-") }

// run runs a command and returns its standard output; failure fails the test.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	return testkit.Run(t, name, args...)
}

// tryRun runs a command and returns its combined output and error.
func tryRun(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	return string(out), err
}

// ipJSON runs `ip -j -n NS ARGS...` and decodes its JSON answer.
func ipJSON(t *testing.T, ns string, args ...string) []map[string]any {
	t.Helper()
	out := run(t, "ip", append([]string{"-j", "-n", ns}, args...)...)
	var v []map[string]any
	if strings.TrimSpace(out) == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("ip -j %v: %v: %q", args, err, out)
	}
	return v
}

// linkNames lists the devices of a namespace.
func linkNames(t *testing.T, ns string) []string {
	t.Helper()
	var names []string
	for _, l := range ipJSON(t, ns, "link", "show") {
		names = append(names, l["ifname"].(string))
	}
	return names
}

// TestMain fails the run if a test left a namespace or a device behind.
func TestMain(m *testing.M) {
	code := m.Run()
	prefix := fmt.Sprintf("tcpeng-tun-%d-", os.Getpid())
	if ents, err := os.ReadDir(netns.Dir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), prefix) {
				fmt.Fprintf(os.Stderr, "namespace %s left behind: remove it with `ip netns del %s`\n", e.Name(), e.Name())
				code = 1
			}
		}
	}
	for _, name := range []string{"tcpt0", "tcpt1", "tcpr0", "tcpnocap0"} {
		if _, err := os.Stat("/sys/class/net/" + name); err == nil {
			fmt.Fprintf(os.Stderr, "device %s left behind in the host namespace\n", name)
			code = 1
		}
	}
	os.Exit(code)
}
