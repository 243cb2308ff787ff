package tun

import (
	"errors"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// addrsOf returns "local/prefixlen" for each address of dev in ns.
func addrsOf(t *testing.T, ns, dev string) []string {
	t.Helper()
	var out []string
	for _, l := range ipJSON(t, ns, "addr", "show", "dev", dev) {
		for _, a := range l["addr_info"].([]any) {
			m := a.(map[string]any)
			if m["scope"] == "link" {
				continue // IPv6 link-local, the kernel's own
			}
			out = append(out, m["local"].(string)+"/"+fmtAny(m["prefixlen"]))
		}
	}
	slices.Sort(out)
	return out
}

func fmtAny(v any) string {
	switch x := v.(type) {
	case float64:
		return strconv.Itoa(int(x))
	case string:
		return x
	}
	return ""
}

// routesOf returns "dst via gw metric M scope S" for each route through dev.
func routesOf(t *testing.T, ns, dev string, v6 bool) []string {
	t.Helper()
	fam := "-4"
	if v6 {
		fam = "-6"
	}
	var out []string
	for _, r := range ipJSON(t, ns, fam, "route", "show", "dev", dev) {
		s := r["dst"].(string)
		if v6 && strings.HasPrefix(s, "fe80::") {
			continue
		}
		if gw, ok := r["gateway"].(string); ok {
			s += " via " + gw
		}
		if p, ok := r["protocol"].(string); ok {
			s += " proto " + p
		}
		if m, ok := r["metric"]; ok {
			s += " metric " + fmtAny(m)
		}
		if sc, ok := r["scope"].(string); ok {
			s += " scope " + sc
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func linkOf(t *testing.T, ns, dev string) (mtu int, up bool) {
	t.Helper()
	l := ipJSON(t, ns, "link", "show", "dev", dev)
	if len(l) != 1 {
		t.Fatalf("link %s: %v", dev, l)
	}
	for _, f := range l[0]["flags"].([]any) {
		up = up || f == "UP"
	}
	return int(l[0]["mtu"].(float64)), up
}

func txqlenOf(t *testing.T, ns, dev string) int {
	t.Helper()
	l := ipJSON(t, ns, "link", "show", "dev", dev)
	if len(l) != 1 {
		t.Fatalf("link %s: %v", dev, l)
	}
	return int(l[0]["txqlen"].(float64))
}

func TestOpenConfiguresAndCloseRemoves(t *testing.T) {
	ns := newNS(t)
	d, err := Open(Config{
		Name: "tcpt0", Netns: ns, MTU: 1400, TxQueueLen: 4000,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.7.0.1/24"), netip.MustParsePrefix("fd07::1/64")},
		Routes: []Route{
			{Dst: netip.MustParsePrefix("10.8.0.0/16")},
			{Dst: netip.MustParsePrefix("10.9.0.0/16"), Gateway: netip.MustParseAddr("10.7.0.2"), Metric: 5},
			{Dst: netip.MustParsePrefix("fd08::/64")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Name() != "tcpt0" || d.MTU() != 1400 || d.Netns() != ns || d.Offload() {
		t.Fatalf("device %q mtu %d ns %q offload %v", d.Name(), d.MTU(), d.Netns(), d.Offload())
	}
	if got, want := addrsOf(t, ns, "tcpt0"), []string{"10.7.0.1/24", "fd07::1/64"}; !slices.Equal(got, want) {
		t.Errorf("addresses %q, want %q", got, want)
	}
	if mtu, up := linkOf(t, ns, "tcpt0"); mtu != 1400 || !up {
		t.Errorf("link mtu %d up %v, want 1400 true", mtu, up)
	}
	if q := txqlenOf(t, ns, "tcpt0"); q != 4000 {
		t.Errorf("txqlen %d, want 4000", q)
	}
	want4 := []string{
		"10.7.0.0/24 proto kernel scope link",
		"10.8.0.0/16 scope link",
		"10.9.0.0/16 via 10.7.0.2 metric 5",
	}
	if got := routesOf(t, ns, "tcpt0", false); !slices.Equal(got, want4) {
		t.Errorf("IPv4 routes %q, want %q", got, want4)
	}
	want6 := []string{"fd07::/64 proto kernel metric 256", "fd08::/64 metric 1024"}
	if got := routesOf(t, ns, "tcpt0", true); !slices.Equal(got, want6) {
		t.Errorf("IPv6 routes %q, want %q", got, want6)
	}
	// The device is not in the host's namespace.
	if _, err := net.InterfaceByName("tcpt0"); err == nil {
		t.Errorf("tcpt0 shows in the host namespace")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if got := linkNames(t, ns); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("links after Close: %q, want [lo]", got)
	}
	if got := ipJSON(t, ns, "route", "show"); len(got) != 0 {
		t.Errorf("routes after Close: %v", got)
	}
}

func TestOpenKernelName(t *testing.T) {
	ns := newNS(t)
	d, err := Open(Config{Netns: ns, Down: true})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if d.Name() != "tun0" || d.MTU() != 1500 {
		t.Fatalf("name %q mtu %d, want tun0 1500", d.Name(), d.MTU())
	}
	if _, up := linkOf(t, ns, "tun0"); up {
		t.Errorf("link up with Down set")
	}
}

func TestOpenErrors(t *testing.T) {
	ns := newNS(t)
	d, err := Open(Config{Name: "tcpt0", Netns: ns, Addrs: []netip.Prefix{netip.MustParsePrefix("10.7.0.1/24")}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	q := `"` + ns + `"`
	cases := []struct {
		name string
		cfg  Config
		want string
		is   error
	}{
		{"busy name", Config{Name: "tcpt0", Netns: ns},
			`tun: device "tcpt0" in namespace ` + q + `: create: file exists: the name is taken: choose another name, or remove it with ` +
				"`ip link del tcpt0` in `ip netns exec " + ns + "`, or attach to it (Attach)", unix.EEXIST},
		{"attach in use", Config{Name: "tcpt0", Netns: ns, Attach: true},
			`tun: device "tcpt0" in namespace ` + q + `: attach: device or resource busy: another process has it open (a TUN device has one reader): stop it or choose another name`,
			unix.EBUSY},
		{"not a tun", Config{Name: "lo", Netns: ns, Attach: true},
			`tun: device "lo" in namespace ` + q + `: attach: invalid argument: it exists and is not a TUN device (a physical or loopback device): choose another name`,
			unix.EINVAL},
		{"missing namespace", Config{Name: "tcpt1", Netns: "tcpeng-no-such-ns"},
			`tun: open "tcpeng-no-such-ns": no such file or directory: create it first with ` + "`ip netns add tcpeng-no-such-ns` (or netns.Add)",
			fs.ErrNotExist},
		{"address taken", Config{Name: "tcpt1", Netns: ns, Addrs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/24"), netip.MustParsePrefix("10.9.0.1/24")}},
			`tun: device "tcpt1" in namespace ` + q + `: add address 10.9.0.1/24: file exists (ipv4: Address already assigned): the device already has it: remove it with ` + "`ip addr del 10.9.0.1/24 dev tcpt1`",
			unix.EEXIST},
		{"long name", Config{Name: "a-name-too-long-for-linux"}, `tun: device name "a-name-too-long-for-linux" is too long: use at most 15 bytes`, nil},
		{"bad mtu", Config{MTU: 40}, `tun: MTU 40 is out of range: use 68 to 65535`, nil},
		{"bad queue", Config{TxQueueLen: -1}, `tun: TxQueueLen -1 is out of range: use 1 to 1048576, or 0 to leave it`, nil},
		{"attach no name", Config{Attach: true}, `tun: Attach needs a device name: set Name to the device to attach to`, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d2, err := Open(c.cfg)
			if err == nil {
				d2.Close()
				t.Fatal("Open succeeded")
			}
			if err.Error() != c.want {
				t.Errorf("error\n got %s\nwant %s", err, c.want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error has more than one line")
			}
		})
	}
	// Nothing was left behind, and the first device is untouched.
	if got := linkNames(t, ns); !slices.Equal(got, []string{"lo", "tcpt0"}) {
		t.Errorf("links: %q, want [lo tcpt0]", got)
	}
	if got := addrsOf(t, ns, "tcpt0"); !slices.Equal(got, []string{"10.7.0.1/24"}) {
		t.Errorf("addresses of tcpt0: %q", got)
	}
}

// A step that fails undoes the earlier ones: a created device is gone.
func TestOpenUndoCreated(t *testing.T) {
	ns := newNS(t)
	run(t, "ip", "-n", ns, "route", "add", "10.8.0.0/16", "dev", "lo")
	_, err := Open(Config{Name: "tcpt0", Netns: ns, MTU: 1400,
		Addrs:  []netip.Prefix{netip.MustParsePrefix("10.7.0.1/24")},
		Routes: []Route{{Dst: netip.MustParsePrefix("10.8.0.0/16")}}})
	want := `tun: device "tcpt0" in namespace "` + ns + `": add route to 10.8.0.0/16: file exists: a route to 10.8.0.0/16 exists: remove it with ` +
		"`ip route del 10.8.0.0/16` in `ip netns exec " + ns + "`"
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
	if got := linkNames(t, ns); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("links: %q, want [lo]", got)
	}
}

// Attaching to a persistent device configures it, and a failure or Close undoes
// exactly that, leaving the device as it was.
func TestAttachUndo(t *testing.T) {
	ns := newNS(t)
	run(t, "ip", "-n", ns, "tuntap", "add", "mode", "tun", "name", "tcpp0")
	run(t, "ip", "-n", ns, "addr", "add", "10.6.0.1/24", "dev", "tcpp0")
	run(t, "ip", "-n", ns, "route", "add", "10.8.0.0/16", "dev", "lo")
	cfg := Config{Name: "tcpp0", Netns: ns, Attach: true, MTU: 1300, TxQueueLen: 2000,
		Addrs:  []netip.Prefix{netip.MustParsePrefix("10.7.0.1/24")},
		Routes: []Route{{Dst: netip.MustParsePrefix("10.10.0.0/16")}, {Dst: netip.MustParsePrefix("10.8.0.0/16")}}}
	check := func(when string) {
		t.Helper()
		if mtu, up := linkOf(t, ns, "tcpp0"); mtu != 1500 || up {
			t.Errorf("%s: mtu %d up %v, want 1500 false", when, mtu, up)
		}
		if q := txqlenOf(t, ns, "tcpp0"); q != 500 {
			t.Errorf("%s: txqlen %d, want 500", when, q)
		}
		if got := addrsOf(t, ns, "tcpp0"); !slices.Equal(got, []string{"10.6.0.1/24"}) {
			t.Errorf("%s: addresses %q, want [10.6.0.1/24]", when, got)
		}
		if got := routesOf(t, ns, "tcpp0", false); len(got) != 0 {
			t.Errorf("%s: routes %q, want none (the link is down)", when, got)
		}
	}
	if _, err := Open(cfg); err == nil || !errors.Is(err, unix.EEXIST) {
		t.Fatalf("Open: %v, want EEXIST on the second route", err)
	}
	check("after a failed attach")
	cfg.Routes = cfg.Routes[:1]
	d, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if mtu, up := linkOf(t, ns, "tcpp0"); mtu != 1300 || !up || txqlenOf(t, ns, "tcpp0") != 2000 {
		t.Errorf("attached: mtu %d up %v txqlen %d", mtu, up, txqlenOf(t, ns, "tcpp0"))
	}
	if got := addrsOf(t, ns, "tcpp0"); !slices.Equal(got, []string{"10.6.0.1/24", "10.7.0.1/24"}) {
		t.Errorf("attached: addresses %q", got)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	check("after Close")
	// Attaching with offloads, then without: the second attach must not get
	// super-packets it cannot take (Close turns the offloads off again).
	for _, off := range []bool{true, false} {
		d, err := Open(Config{Name: "tcpp0", Netns: ns, Attach: true, Offload: off})
		if err != nil {
			t.Fatal(err)
		}
		tso := "tcp-segmentation-offload: off"
		if off {
			tso = "tcp-segmentation-offload: on"
		}
		if feat := run(t, "ip", "netns", "exec", ns, "ethtool", "-k", "tcpp0"); !strings.Contains(feat, tso+"\n") {
			t.Errorf("offload %v: ethtool -k does not say %q:\n%s", off, tso, feat)
		}
		d.Close()
	}
	check("after attaching with and without offloads")
	// A TAP device cannot be attached as TUN.
	run(t, "ip", "-n", ns, "tuntap", "add", "mode", "tap", "name", "tcpp1")
	_, err = Open(Config{Name: "tcpp1", Netns: ns, Attach: true})
	want := `tun: device "tcpp1" in namespace "` + ns + `": attach: invalid argument: it is a TAP device, or was made with other flags (multi-queue): use a TUN device made with ` + "`ip tuntap add mode tun`"
	if err == nil || err.Error() != want {
		t.Errorf("error\n got %v\nwant %s", err, want)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	for _, offload := range []bool{false, true} {
		ns := newNS(t)
		d, err := Open(Config{Netns: ns, Offload: offload})
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() {
			bufs, sizes := [][]byte{make([]byte, 1500)}, []int{0}
			for {
				// The kernel may send something first (IPv6 router solicitations).
				if _, err := d.ReadBatch(bufs, sizes); err != nil {
					done <- err
					return
				}
			}
		}()
		time.Sleep(50 * time.Millisecond) // let the reader block
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("offload %v: ReadBatch after Close: %v, want net.ErrClosed", offload, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("offload %v: ReadBatch still blocked after Close", offload)
		}
		if err := d.WriteBatch([][]byte{{0x45}}); !errors.Is(err, net.ErrClosed) {
			t.Errorf("WriteBatch after Close: %v", err)
		}
		if got := linkNames(t, ns); !slices.Equal(got, []string{"lo"}) {
			t.Errorf("links after Close: %q", got)
		}
	}
}

// Without CAP_NET_ADMIN, Open says so. Capabilities are per thread, so the
// test drops them on a locked thread that then dies with its goroutine.
func TestOpenWithoutCapability(t *testing.T) {
	needKernel(t)
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread ends with the goroutine
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		data[0].Effective &^= 1<<unix.CAP_NET_ADMIN | 1<<unix.CAP_SYS_ADMIN
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			done <- err
			return
		}
		d, err := Open(Config{Name: "tcpnocap0"})
		if err == nil {
			d.Close()
		}
		done <- err
	}()
	err := <-done
	want := `tun: device "tcpnocap0": create: operation not permitted: this needs CAP_NET_ADMIN: run as root (or grant the program cap_net_admin)`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
	if !errors.Is(err, fs.ErrPermission) {
		t.Errorf("%v is not fs.ErrPermission", err)
	}
	if _, err := net.InterfaceByName("tcpnocap0"); err == nil {
		t.Errorf("tcpnocap0 was created")
	}
}

// As an unprivileged user (nobody), Open fails with a one-line error saying
// what is missing, for the current namespace and for a named one. The test
// binary re-runs itself.
func TestOpenUnprivileged(t *testing.T) {
	if os.Getenv("TCPENG_TUN_CHILD") != "" {
		return
	}
	ns := newNS(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tcpeng-tun")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "tun.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestOpenUnprivilegedChild$", "-test.v")
	cmd.Env = append(os.Environ(), "TCPENG_TUN_CHILD="+ns)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if got := linkNames(t, ns); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("links: %q, want [lo]", got)
	}
}

func TestOpenUnprivilegedChild(t *testing.T) {
	ns := os.Getenv("TCPENG_TUN_CHILD")
	if ns == "" {
		t.Skip("run by TestOpenUnprivileged")
	}
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Name: "tcpt0"}, `tun: device "tcpt0": open /dev/net/tun: permission denied: this needs CAP_NET_ADMIN: run as root (or grant the program cap_net_admin)`},
		{Config{Name: "tcpt0", Netns: ns}, `tun: enter "` + ns + `": operation not permitted: run as root (network namespaces need CAP_SYS_ADMIN)`},
	} {
		d, err := Open(c.cfg)
		if err == nil {
			d.Close()
		}
		if err == nil || err.Error() != c.want {
			t.Errorf("error\n got %v\nwant %s", err, c.want)
		}
		if err != nil && !errors.Is(err, fs.ErrPermission) {
			t.Errorf("%v is not fs.ErrPermission", err)
		}
	}
}
