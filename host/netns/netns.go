// Package netns creates, deletes and enters named Linux network namespaces the
// way iproute2's `ip netns` does: the namespace NAME is kept alive by a bind
// mount of its nsfs file at /run/netns/NAME, so it outlives the process that
// made it and `ip netns exec NAME ...` finds it.
//
// Entering a namespace is per thread (setns(2) changes only the calling
// thread), so Do runs a function on a locked OS thread switched into the
// namespace and switches it back afterwards. A socket or file opened there
// stays in that namespace when used from any other thread: that is how a TUN
// device or a netlink socket of another namespace is used from the host.
//
// Everything here needs CAP_SYS_ADMIN (root); errors without it say so in one
// line.
package netns

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Dir is where named namespaces are mounted, as iproute2 does.
const Dir = "/run/netns"

// Error is the error of every function of the package: one line saying what
// failed and what to do. It unwraps to the system error, so
// errors.Is(err, fs.ErrNotExist) and errors.Is(err, fs.ErrPermission) work.
type Error struct {
	Op   string // "add", "delete", "enter", ...
	Name string // the namespace
	Err  error  // the underlying error (a unix.Errno, usually)
	Hint string // what to do
}

func (e *Error) Error() string {
	s := "netns: " + e.Op + " " + strconv.Quote(e.Name) + ": " + e.Err.Error()
	if e.Hint != "" {
		s += ": " + e.Hint
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }

const (
	hintRoot = "run as root (network namespaces need CAP_SYS_ADMIN)"
)

func hintFor(err error, name string) string {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return hintRoot
	case errors.Is(err, unix.ENOENT):
		return "create it first with `ip netns add " + name + "` (or netns.Add)"
	}
	return ""
}

// ValidName reports whether name can name a namespace: not empty, at most 255
// bytes, no '/', not "." or "..", no NUL, no whitespace.
func ValidName(name string) bool {
	if name == "" || len(name) > 255 || name == "." || name == ".." {
		return false
	}
	return !strings.ContainsAny(name, "/\x00 \t\n\r")
}

func checkName(op, name string) error {
	if !ValidName(name) {
		return &Error{Op: op, Name: name, Err: unix.EINVAL,
			Hint: "use a name of letters, digits, '-', '_' or '.' with no '/'"}
	}
	return nil
}

// Path returns the file that holds the namespace name: Dir/name.
func Path(name string) string { return filepath.Join(Dir, name) }

// Exists reports whether the named namespace exists (its file is an nsfs
// mount).
func Exists(name string) bool {
	if !ValidName(name) {
		return false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(Path(name), &st); err != nil {
		return false
	}
	return st.Type == unix.NSFS_MAGIC
}

// List returns the names of the namespaces in Dir.
func List() ([]string, error) {
	ents, err := os.ReadDir(Dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &Error{Op: "list", Name: Dir, Err: err}
	}
	var names []string
	for _, e := range ents {
		if Exists(e.Name()) {
			names = append(names, e.Name())
		}
	}
	return names, nil
}

// Add creates a new, empty network namespace named name, as `ip netns add`:
// it makes Dir a shared mount point (so the namespace shows in other mount
// namespaces), creates Dir/name, and bind-mounts a fresh namespace on it. The
// namespace starts with only a loopback device, down. If name exists, Add fails
// and changes nothing; on any failure nothing is left behind.
func Add(name string) error {
	if err := checkName("add", name); err != nil {
		return err
	}
	if err := os.MkdirAll(Dir, 0o755); err != nil {
		return &Error{Op: "add", Name: name, Err: unwrapPath(err), Hint: hintFor(err, name)}
	}
	if err := makeShared(); err != nil {
		return &Error{Op: "add", Name: name, Err: err, Hint: hintFor(err, name)}
	}
	path := Path(name)
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		h := hintFor(err, name)
		if err == unix.EEXIST {
			h = "it already exists: delete it with `ip netns del " + name + "` or choose another name"
		}
		return &Error{Op: "add", Name: name, Err: err, Hint: h}
	}
	unix.Close(fd)
	err = OnThread(func() error {
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return err
		}
		self := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
		return unix.Mount(self, path, "none", unix.MS_BIND, "")
	})
	if err != nil {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
		return &Error{Op: "add", Name: name, Err: err, Hint: hintFor(err, name)}
	}
	return nil
}

// makeShared makes Dir a shared mount, bind-mounting it on itself first if it
// is not a mount point (iproute2 does the same, so that namespaces mounted
// later propagate to every mount namespace).
func makeShared() error {
	err := unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
	if err != unix.EINVAL {
		return err
	}
	if err := unix.Mount(Dir, Dir, "none", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	return unix.Mount("", Dir, "none", unix.MS_SHARED|unix.MS_REC, "")
}

// Delete removes the named namespace, as `ip netns del`: it unmounts and removes
// Dir/name. The namespace itself goes away when nothing else holds it (no
// process in it, no open file or socket of it). Deleting a namespace that does
// not exist is an error that says so.
func Delete(name string) error {
	if err := checkName("delete", name); err != nil {
		return err
	}
	path := Path(name)
	if _, err := os.Lstat(path); err != nil {
		err = unwrapPath(err)
		h := hintFor(err, name)
		if errors.Is(err, unix.ENOENT) {
			h = "there is no such namespace (see `ip netns list`)"
		}
		return &Error{Op: "delete", Name: name, Err: err, Hint: h}
	}
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
		return &Error{Op: "delete", Name: name, Err: err, Hint: hintFor(err, name)}
	}
	if err := os.Remove(path); err != nil {
		err = unwrapPath(err)
		return &Error{Op: "delete", Name: name, Err: err, Hint: hintFor(err, name)}
	}
	return nil
}

// Open opens the named namespace's file (for Setns, or to hold the namespace).
func Open(name string) (*os.File, error) {
	if err := checkName("open", name); err != nil {
		return nil, err
	}
	fd, err := unix.Open(Path(name), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &Error{Op: "open", Name: name, Err: err, Hint: hintFor(err, name)}
	}
	if !isNetns(fd) {
		unix.Close(fd)
		return nil, &Error{Op: "open", Name: name, Err: unix.EINVAL,
			Hint: Path(name) + " is not a network namespace: delete it and create it with `ip netns add " + name + "`"}
	}
	return os.NewFile(uintptr(fd), Path(name)), nil
}

func isNetns(fd int) bool {
	var st unix.Statfs_t
	return unix.Fstatfs(fd, &st) == nil && st.Type == unix.NSFS_MAGIC
}

// Do runs fn on an OS thread switched into the named namespace, then switches
// the thread back. With name "" it just calls fn. Sockets and files fn opens
// belong to the namespace and may be used from anywhere afterwards; a process
// fn starts (Do(name, cmd.Start)) is born in the namespace. fn runs on
// its own goroutine (Do waits for it): goroutines it starts do not inherit the
// namespace, and it must not call runtime.Goexit (t.Fatal). A panic in fn is
// re-raised in the caller. If the thread cannot be switched back, it is
// discarded, never reused.
func Do(name string, fn func() error) error {
	if name == "" {
		return fn()
	}
	f, err := Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return DoFile(f, name, fn)
}

// DoFile is Do with the namespace given by an open namespace file (from Open,
// or /proc/PID/ns/net); name is used in errors only.
func DoFile(ns *os.File, name string, fn func() error) error {
	var fnErr error
	var panicked any
	err := OnThread(func() error {
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			return &Error{Op: "enter", Name: name, Err: err, Hint: hintFor(err, name)}
		}
		func() {
			defer func() { panicked = recover() }()
			fnErr = fn()
		}()
		return nil
	})
	if panicked != nil {
		panic(panicked)
	}
	if err != nil {
		return err
	}
	return fnErr
}

// OnThread runs fn on a new goroutine locked to its OS thread and restores the
// thread's network namespace afterwards, whatever fn did to it (setns,
// unshare). fn may use the thread's own namespace as
// /proc/self/task/TID/ns/net (unix.Gettid). If the restore fails, the goroutine
// exits still locked and the runtime ends the thread.
func OnThread(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self := "/proc/self/task/" + strconv.Itoa(unix.Gettid()) + "/ns/net"
		orig, err := unix.Open(self, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		err = fn()
		if rerr := unix.Setns(orig, unix.CLONE_NEWNET); rerr != nil {
			unix.Close(orig)
			if err == nil {
				err = rerr
			}
			done <- err
			return // still locked: the thread dies with the goroutine
		}
		unix.Close(orig)
		runtime.UnlockOSThread()
		done <- err
	}()
	return <-done
}

// Socket opens a socket (unix.Socket's arguments; SOCK_CLOEXEC is added) in the
// named namespace ("" for the current one) and returns its descriptor.
func Socket(name string, domain, typ, proto int) (int, error) {
	fd := -1
	err := Do(name, func() error {
		var err error
		fd, err = unix.Socket(domain, typ|unix.SOCK_CLOEXEC, proto)
		if err != nil {
			return &Error{Op: "socket", Name: name, Err: err, Hint: hintFor(err, name)}
		}
		return nil
	})
	return fd, err
}

// OpenFile opens path inside the named namespace ("" for the current one), so
// that namespace-dependent files (/dev/net/tun's devices, /proc/sys/net/...,
// /proc/thread-self/net/...) refer to it.
func OpenFile(name, path string, flag int, perm os.FileMode) (*os.File, error) {
	var f *os.File
	err := Do(name, func() error {
		var err error
		f, err = os.OpenFile(path, flag, perm)
		return err
	})
	return f, err
}

func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
