package forward

import (
	"net"
	"os"
	"sync/atomic"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// seqLink is a Link over one end of a SOCK_SEQPACKET socket pair, one frame
// per message: a pollable link in one process, with the guest's driver on
// the other end.
type seqLink struct {
	fd     int
	file   *os.File
	rc     syscall.RawConn
	mtu    int
	closed atomic.Bool

	// The system calls under way, one read and one write (the driver reads
	// and writes from two goroutines); bound once: no allocation per call.
	rbuf, wbuf []byte
	rn         int
	rerr, werr error
	wait       bool
	rfn, wfn   func(fd uintptr) bool
}

func seqPair(t testing.TB, mtu int) (a, b *seqLink) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(fd int) *seqLink {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
		l := &seqLink{fd: fd, file: os.NewFile(uintptr(fd), "seqpacket"), mtu: mtu}
		if l.rc, err = l.file.SyscallConn(); err != nil {
			t.Fatal(err)
		}
		l.rfn, l.wfn = l.doRead, l.doWrite
		return l
	}
	return mk(fds[0]), mk(fds[1])
}

func (l *seqLink) doRead(fd uintptr) bool {
	for {
		l.rn, l.rerr = unix.Read(int(fd), l.rbuf)
		if l.rerr != unix.EINTR {
			return l.rerr != unix.EAGAIN || !l.wait
		}
	}
}

func (l *seqLink) doWrite(fd uintptr) bool {
	for {
		_, l.werr = unix.Write(int(fd), l.wbuf)
		if l.werr != unix.EINTR {
			return l.werr != unix.EAGAIN
		}
	}
}

func (l *seqLink) closedErr(err error) error {
	if l.closed.Load() {
		return net.ErrClosed
	}
	return err
}

func (l *seqLink) read(bufs [][]byte, sizes []int, wait bool) (int, error) {
	k := 0
	for k < min(len(bufs), len(sizes)) {
		l.rbuf, l.wait = bufs[k], wait && k == 0
		err := l.rc.Read(l.rfn)
		l.rbuf = nil
		if err != nil {
			return k, l.closedErr(err)
		}
		if l.rerr == unix.EAGAIN {
			break
		}
		if l.rerr != nil {
			return k, l.closedErr(l.rerr)
		}
		sizes[k] = l.rn
		k++
	}
	return k, nil
}

func (l *seqLink) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	return l.read(bufs, sizes, true)
}

func (l *seqLink) TryReadBatch(bufs [][]byte, sizes []int) (int, error) {
	return l.read(bufs, sizes, false)
}

func (l *seqLink) WriteBatch(frames [][]byte) error {
	if l.closed.Load() {
		return net.ErrClosed
	}
	for _, f := range frames {
		l.wbuf = f
		err := l.rc.Write(l.wfn)
		l.wbuf = nil
		if err == nil {
			err = l.werr
		}
		if err != nil {
			return l.closedErr(err)
		}
	}
	return nil
}

func (l *seqLink) MTU() int { return l.mtu }
func (l *seqLink) Fd() int  { return l.fd }

func (l *seqLink) Close() error {
	if l.closed.Swap(true) {
		return net.ErrClosed
	}
	return l.file.Close()
}

var _ Link = (*seqLink)(nil)
