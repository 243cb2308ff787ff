package netns

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipped: network namespace tests need root (CAP_SYS_ADMIN)")
	}
}

var seq atomic.Int32

func testName() string { return fmt.Sprintf("tcpeng-netns-%d-%d", os.Getpid(), seq.Add(1)) }

// inode returns the inode of a namespace file: namespaces are the same when
// their inodes are.
func inode(t *testing.T, path string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func ipNetnsList(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if f := strings.Fields(l); len(f) > 0 {
			names = append(names, f[0])
		}
	}
	return names
}

func TestAddDoDelete(t *testing.T) {
	needRoot(t)
	name := testName()
	host := inode(t, "/proc/self/ns/net")
	if err := Add(name); err != nil {
		t.Fatal(err)
	}
	deleted := false
	defer func() {
		if !deleted {
			Delete(name)
		}
	}()
	if !Exists(name) {
		t.Fatalf("Exists(%q) false after Add", name)
	}
	if !slices.Contains(ipNetnsList(t), name) {
		t.Errorf("ip netns list does not show %s", name)
	}
	if l, err := List(); err != nil || !slices.Contains(l, name) {
		t.Errorf("List: %v %v", l, err)
	}
	ns := inode(t, Path(name))
	if ns == host {
		t.Fatalf("the new namespace is the host's")
	}
	// Inside, the thread's namespace is the new one, with only a loopback.
	var inside uint64
	var ifaces []string
	err := Do(name, func() error {
		inside = inode(t, fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		l, err := net.Interfaces()
		for _, i := range l {
			ifaces = append(ifaces, i.Name)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if inside != ns {
		t.Errorf("Do ran in namespace %d, want %d", inside, ns)
	}
	if !slices.Equal(ifaces, []string{"lo"}) {
		t.Errorf("interfaces inside: %q, want [lo]", ifaces)
	}
	// `ip netns exec` finds the same namespace.
	out, err := exec.Command("ip", "netns", "exec", name, "stat", "-L", "-c", "%i", "/proc/self/ns/net").Output()
	if err != nil || strings.TrimSpace(string(out)) != fmt.Sprint(ns) {
		t.Errorf("ip netns exec sees namespace %q (%v), want %d", out, err, ns)
	}
	// Afterwards, every thread is back home: run many Do calls and check a
	// fresh locked goroutine and the process.
	for range 50 {
		if err := Do(name, func() error { return nil }); err != nil {
			t.Fatal(err)
		}
	}
	for range 8 {
		got := make(chan uint64)
		go func() { got <- inode(t, fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid())) }()
		if g := <-got; g != host {
			t.Fatalf("a thread was left in namespace %d", g)
		}
	}
	if err := Delete(name); err != nil {
		t.Fatal(err)
	}
	deleted = true
	if Exists(name) || slices.Contains(ipNetnsList(t), name) {
		t.Errorf("%s still listed after Delete", name)
	}
	if _, err := os.Stat(Path(name)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s still there: %v", Path(name), err)
	}
}

// A socket and a listener opened in a namespace work from anywhere and stay in it.
func TestSocketAndListen(t *testing.T) {
	needRoot(t)
	name := testName()
	if err := Add(name); err != nil {
		t.Fatal(err)
	}
	defer Delete(name)
	if out, err := exec.Command("ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	var ln net.Listener
	if err := Do(name, func() error {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	// A socket made in the namespace reaches it.
	fd, err := Socket(name, unix.AF_INET, unix.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("hi"))
			c.Close()
		}
	}()
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "sock")
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil || string(b) != "hi" {
		t.Fatalf("read %q %v", b, err)
	}
	// OpenFile reads the namespace's own /proc/sys/net values.
	g, err := OpenFile(name, "/proc/sys/net/ipv4/ip_forward", os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	g.WriteString("1")
	g.Close()
	out, _ := exec.Command("ip", "netns", "exec", name, "sysctl", "-n", "net.ipv4.ip_forward").Output()
	if strings.TrimSpace(string(out)) != "1" {
		t.Errorf("ip_forward in the namespace: %q, want 1", out)
	}
	host, _ := os.ReadFile("/proc/sys/net/ipv4/ip_forward")
	t.Logf("host ip_forward %q (untouched)", strings.TrimSpace(string(host)))
}

func TestErrors(t *testing.T) {
	needRoot(t)
	name := testName()
	if err := Add(name); err != nil {
		t.Fatal(err)
	}
	defer Delete(name)
	missing := "tcpeng-netns-missing"
	cases := []struct {
		name string
		err  error
		want string
		is   error
	}{
		{"add twice", Add(name), `netns: add "` + name + `": file exists: it already exists: delete it with ` + "`ip netns del " + name + "`" + ` or choose another name`, fs.ErrExist},
		{"delete missing", Delete(missing), `netns: delete "` + missing + `": no such file or directory: there is no such namespace (see ` + "`ip netns list`)", fs.ErrNotExist},
		{"enter missing", Do(missing, func() error { return nil }), `netns: open "` + missing + `": no such file or directory: create it first with ` + "`ip netns add " + missing + "` (or netns.Add)", fs.ErrNotExist},
		{"bad name", Add("a/b"), `netns: add "a/b": invalid argument: use a name of letters, digits, '-', '_' or '.' with no '/'`, nil},
		{"dot", Delete(".."), `netns: delete "..": invalid argument: use a name of letters, digits, '-', '_' or '.' with no '/'`, nil},
	}
	for _, c := range cases {
		if c.err == nil {
			t.Errorf("%s: no error", c.name)
			continue
		}
		if c.err.Error() != c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.name, c.err, c.want)
		}
		if c.is != nil && !errors.Is(c.err, c.is) {
			t.Errorf("%s: %v is not %v", c.name, c.err, c.is)
		}
	}
	// A file in /run/netns that is not a namespace.
	bogus := testName()
	os.WriteFile(Path(bogus), nil, 0o444)
	defer os.Remove(Path(bogus))
	_, err := Open(bogus)
	want := `netns: open "` + bogus + `": invalid argument: ` + Path(bogus) + " is not a network namespace: delete it and create it with `ip netns add " + bogus + "`"
	if err == nil || err.Error() != want {
		t.Errorf("bogus:\n got %v\nwant %s", err, want)
	}
	// fn's error comes back as it is; its panic is re-raised.
	sentinel := errors.New("sentinel")
	if err := Do(name, func() error { return sentinel }); err != sentinel {
		t.Errorf("Do returned %v", err)
	}
	func() {
		defer func() {
			if r := recover(); r != "boom" {
				t.Errorf("recovered %v", r)
			}
		}()
		Do(name, func() error { panic("boom") })
	}()
}

// Without privileges (as the nobody user), every operation fails with a
// one-line error saying to run as root. The test binary re-runs itself.
func TestUnprivileged(t *testing.T) {
	needRoot(t)
	if os.Getenv("TCPENG_NETNS_CHILD") != "" {
		return
	}
	name := testName()
	if err := Add(name); err != nil {
		t.Fatal(err)
	}
	defer Delete(name)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "tcpeng-netns")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "netns.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run=^TestUnprivilegedChild$", "-test.v")
	cmd.Env = append(os.Environ(), "TCPENG_NETNS_CHILD="+name)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("%s", out)
	if Exists(name + "-child") {
		t.Errorf("the unprivileged Add left a namespace")
		Delete(name + "-child")
	}
}

func TestUnprivilegedChild(t *testing.T) {
	name := os.Getenv("TCPENG_NETNS_CHILD")
	if name == "" {
		t.Skip("run by TestUnprivileged")
	}
	const root = "run as root (network namespaces need CAP_SYS_ADMIN)"
	check := func(what string, err error, want string) {
		t.Helper()
		if err == nil || err.Error() != want {
			t.Errorf("%s:\n got %v\nwant %s", what, err, want)
		}
		if err != nil && !errors.Is(err, fs.ErrPermission) {
			t.Errorf("%s: %v is not fs.ErrPermission", what, err)
		}
	}
	check("add", Add(name+"-child"), `netns: add "`+name+`-child": operation not permitted: `+root)
	check("enter", Do(name, func() error { return nil }), `netns: enter "`+name+`": operation not permitted: `+root)
	check("delete", Delete(name), `netns: delete "`+name+`": operation not permitted: `+root)
}

// A process started inside Do is born in the namespace (fork happens on the
// switched thread): the way to run a command in a namespace without `ip netns
// exec`.
func TestStartProcessInside(t *testing.T) {
	needRoot(t)
	name := testName()
	if err := Add(name); err != nil {
		t.Fatal(err)
	}
	defer Delete(name)
	var out strings.Builder
	cmd := exec.Command("stat", "-L", "-c", "%i", "/proc/self/ns/net")
	cmd.Stdout = &out
	if err := Do(name, cmd.Start); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	if got, want := strings.TrimSpace(out.String()), fmt.Sprint(inode(t, Path(name))); got != want {
		t.Fatalf("child in namespace %s, want %s", got, want)
	}
}
