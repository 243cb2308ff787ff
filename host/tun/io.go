package tun

import (
	"errors"
	"net"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tcpeng/tcpeng/engine/wire"
	"github.com/tcpeng/tcpeng/host/internal/spin"
	"github.com/tcpeng/tcpeng/host/offload"
)

// errNothing: a non-blocking read found no packet.
var errNothing = errors.New("tun: nothing to read")

// ReadBatch reads frames (IP packets) into bufs and their lengths into sizes,
// and returns how many it filled (at most min(len(bufs), len(sizes))). It blocks
// until at least one frame is there, then takes what is ready without blocking.
// Each buffer should hold MTU() bytes; a frame larger than its buffer is dropped
// and counted. A super-packet from the kernel may fill the batch and carry over
// to the next call. After Close it returns net.ErrClosed. Malformed packets are
// dropped and counted (Stats.RxDropped), never returned as errors.
func (d *Device) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	return d.readBatch(bufs, sizes, true)
}

// TryReadBatch is ReadBatch without the wait: with no frame ready it returns
// 0 and no error. An event loop calls it when Fd polls readable, and again
// while it fills the whole batch (a super-packet being cut leaves frames to
// return that the descriptor does not show).
func (d *Device) TryReadBatch(bufs [][]byte, sizes []int) (int, error) {
	return d.readBatch(bufs, sizes, false)
}

// Fd returns the device's descriptor, for an event loop to poll (epoll(7))
// for readability. It stays open until Close; reads and writes go through
// ReadBatch, TryReadBatch and WriteBatch only.
func (d *Device) Fd() int { return d.fd }

func (d *Device) readBatch(bufs [][]byte, sizes []int, block bool) (int, error) {
	n := min(len(bufs), len(sizes))
	d.rmu.Lock()
	defer d.rmu.Unlock()
	if d.closed.Load() {
		return 0, net.ErrClosed
	}
	k := 0
	for k < n {
		if d.pending.next < d.pending.Segs() {
			k += d.cut(bufs[k:n], sizes[k:n])
			continue
		}
		got, err := d.readOne(bufs[k], &sizes[k], block && k == 0)
		if err == errNothing || (err != nil && k > 0) {
			break // an error comes back on the next call
		}
		if err != nil {
			return 0, err
		}
		k += got
	}
	d.rxFrames.Add(uint64(k))
	return k, nil
}

// readOne reads one packet from the device. It returns 1 if the packet is in
// buf, 0 if it was dropped or is a super-packet now pending, or errNothing if
// block is false and no packet was there.
//
// With virtio-net headers the packet is read straight into buf (the header
// into d.rhdr, what does not fit buf into the rest of d.rx), so a packet that
// fits is not copied again; a super-packet is made contiguous in d.rx, to be
// cut into the caller's buffers.
func (d *Device) readOne(buf []byte, size *int, block bool) (int, error) {
	r := &d.rop
	if d.offload {
		r.set(d.rhdr[:], buf, d.rx[min(len(buf), len(d.rx)):])
	} else {
		r.set(buf, d.overflow, nil)
	}
	r.block = block
	measure := block && r.spinOn // the Spinner learns from blocking reads that may spin
	var start time.Time
	if measure {
		start = time.Now()
		r.spins = r.spin.Spins()
	}
	err := d.rc.Read(r.fn)
	n, serr := r.n, r.err
	if measure {
		r.spin.Record(time.Since(start))
	}
	r.clear()
	if err != nil {
		return 0, d.closedErr(err)
	}
	switch {
	case serr == unix.EAGAIN:
		return 0, errNothing
	case serr == unix.EFAULT || serr == unix.EMSGSIZE:
		// The packet did not fit the buffer (a kernel that makes super-packets
		// larger than 64 KiB); it is gone.
		d.rxDropped.Add(1)
		return 0, nil
	case serr != nil:
		return 0, d.closedErr(serr)
	case !d.offload:
		if n > len(buf) || n == 0 {
			d.rxDropped.Add(1)
			return 0, nil
		}
		*size = n
		return 1, nil
	}
	h, err := parseVnetHdr(d.rhdr[:min(n, vnetHdrLen)])
	if err != nil {
		d.rxDropped.Add(1)
		return 0, nil
	}
	m := n - vnetHdrLen // the packet's length
	if h.gsoType != vnetGSONone && d.whole && m <= len(buf) {
		// Config.Whole: the super-packet is in buf; check it as a cut would,
		// and hand it over as one frame. A full checksum was just verified
		// (prepareGSO); a partial one, or one the flags vouch for, is
		// computed over the whole, as the cut computes the segments'
		// (whatever csum_start says: the cut does not trust it either).
		g, err := prepareGSO(buf[:m], &h, !d.nosum)
		if err != nil {
			d.rxDropped.Add(1)
			return 0, nil
		}
		ipHL := g.IPHeaderLen()
		if !g.IsIPv6() {
			// As the cut (and the kernel's segmentation) does: the IPv4
			// header checksum is computed, not taken.
			wire.PutIPv4Checksum(buf[:ipHL])
		}
		if !d.nosum && h.flags&(vnetFlagNeedsCsum|vnetFlagDataValid) != 0 {
			src, dst := g.Addrs()
			wire.SetTCPChecksum(buf[ipHL:m], src, dst)
			d.rxCsum.Add(1)
		}
		d.rxGSO.Add(1)
		*size = m
		return 1, nil
	}
	if h.gsoType != vnetGSONone {
		// Cutting writes into buf: move the packet out of it first.
		copy(d.rx, buf[:min(m, len(buf))])
		g, err := prepareGSO(d.rx[:m], &h, !d.nosum)
		if err != nil {
			d.rxDropped.Add(1)
			return 0, nil
		}
		g.NoSum = d.nosum
		d.pending = g
		d.rxGSO.Add(1)
		return 0, nil
	}
	if m > len(buf) || m == 0 {
		d.rxDropped.Add(1)
		return 0, nil
	}
	if h.flags&vnetFlagNeedsCsum != 0 {
		if d.nosum {
			// Config.SkipChecksums: the reader does not look at it.
			if int(h.csumStart)+int(h.csumOffset)+2 > m {
				d.rxDropped.Add(1)
				return 0, nil
			}
		} else {
			if err := completeChecksum(buf[:m], &h); err != nil {
				d.rxDropped.Add(1)
				return 0, nil
			}
			d.rxCsum.Add(1)
		}
	}
	*size = m
	return 1, nil
}

// cut writes the pending super-packet's next segments into bufs and returns how
// many. A segment that does not fit its buffer drops the rest of the packet.
func (d *Device) cut(bufs [][]byte, sizes []int) int {
	g := &d.pending
	k := 0
	for k < len(bufs) && g.next < g.Segs() {
		m := g.Segment(g.next, bufs[k])
		if m == 0 {
			d.rxDropped.Add(1)
			g.next = g.Segs()
			break
		}
		sizes[k] = m
		g.next++
		k++
	}
	if g.next >= g.Segs() {
		*g = gsoPacket{}
	}
	return k
}

// WriteBatch writes frames (IP packets) to the device, in order (with Offload,
// each flow's frames in order: see coalesce.go). With Offload every TCP packet
// is written with a partial checksum (NEEDS_CSUM), so a TCP frame may carry a
// full checksum or only the pseudo-header sum (engine.Config.PartialChecksums);
// without Offload frames go as they are and need full checksums. It does not
// retain frames. A frame the kernel refuses (malformed, link down) is dropped
// and counted (Stats.TxErrors); only a failure of the device itself is
// returned. After Close it returns net.ErrClosed.
func (d *Device) WriteBatch(frames [][]byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if d.closed.Load() {
		return net.ErrClosed
	}
	d.txFrames.Add(uint64(len(frames)))
	if !d.offload {
		var one [1][]byte
		for _, f := range frames {
			if len(f) == 0 {
				continue
			}
			one[0] = f
			if err := d.write(one[:]); err != nil {
				return err
			}
		}
		return nil
	}
	c := d.coal
	c.Plan(frames)
	defer c.Forget()
	for i := range c.Trains() {
		t := c.Train(i)
		if err := d.write(c.packet(i)); err != nil {
			return err
		}
		if t.Count() > 1 {
			d.txGSO.Add(1)
			d.txCoalesced.Add(uint64(t.Count()))
		}
	}
	return nil
}

// write writes one packet given as slices. Errors about the packet are
// counted; errors about the device are returned.
func (d *Device) write(parts [][]byte) error {
	w := &d.wop
	w.niov = 0
	for _, p := range parts {
		if len(p) > 0 && w.niov < len(w.iov) {
			w.iov[w.niov] = unix.Iovec{Base: &p[0]}
			w.iov[w.niov].SetLen(len(p))
			w.niov++
		}
	}
	err := d.rc.Write(w.fn)
	serr := w.err
	clear(w.iov[:w.niov])
	d.txWrites.Add(1)
	if err != nil {
		return d.closedErr(err)
	}
	switch serr {
	case nil:
		return nil
	case unix.EINVAL, unix.EIO, unix.ENOBUFS, unix.ENOMEM, unix.EMSGSIZE, unix.EFAULT:
		d.txErrors.Add(1)
		return nil
	}
	return d.closedErr(serr)
}

// readOp is the state of one read system call, kept in the Device so that
// a read allocates nothing (a closure handed to syscall.RawConn would escape).
type readOp struct {
	iov   [3]unix.Iovec
	niov  int
	block bool // wait for a packet (else EAGAIN is reported)
	n     int
	err   error
	fn    func(fd uintptr) bool // r.do, bound once
	// With Config.Spin a blocking read polls the descriptor for up to
	// spin.Window before it waits on the runtime's poller, as long as packets
	// keep coming that soon (host/internal/spin).
	spin   spin.Spinner
	spinOn bool        // Config.Spin
	spins  bool        // this read may spin (decided before it)
	fd     uintptr     // while spinning
	pollFn func() bool // r.poll, bound once
}

// poll is one non-blocking try of the read while spinning: true when it got
// a packet or an error other than EAGAIN.
func (r *readOp) poll() bool {
	r.try(r.fd)
	return r.err != unix.EAGAIN
}

// set points the read at up to three buffers, in order.
func (r *readOp) set(a, b, c []byte) {
	r.niov = 0
	for _, p := range [3][]byte{a, b, c} {
		if len(p) > 0 {
			r.iov[r.niov] = unix.Iovec{Base: &p[0]}
			r.iov[r.niov].SetLen(len(p))
			r.niov++
		}
	}
}

// clear drops the references to the caller's buffers.
func (r *readOp) clear() { r.iov = [3]unix.Iovec{} }

// do is the syscall.RawConn.Read callback: readv(2) until it is not EINTR;
// false (wait for the descriptor to be readable) on EAGAIN when blocking.
func (r *readOp) do(fd uintptr) bool {
	r.try(fd)
	if r.err == unix.EAGAIN && r.block && r.spins {
		r.spins = false // once per call: the poller's wake-up comes back here
		r.fd = fd
		spin.Until(r.pollFn)
	}
	return r.err != unix.EAGAIN || !r.block
}

// try is one readv(2), retried on EINTR.
func (r *readOp) try(fd uintptr) {
	for {
		r.n, r.err = 0, nil
		n, _, e := unix.Syscall(unix.SYS_READV, fd, uintptr(unsafe.Pointer(&r.iov[0])), uintptr(r.niov))
		if e != 0 {
			r.err = e
		} else {
			r.n = int(n)
		}
		if e != unix.EINTR {
			return
		}
	}
}

// writeOp is the state of one write system call (see readOp).
type writeOp struct {
	iov  [offload.MaxTrain + 4]unix.Iovec
	niov int
	err  error
	fn   func(fd uintptr) bool // w.do, bound once
}

// do is the syscall.RawConn.Write callback: writev(2) until it is neither
// EINTR nor EAGAIN (then it waits for the descriptor to be writable).
func (w *writeOp) do(fd uintptr) bool {
	for {
		w.err = nil
		if w.niov == 0 {
			return true
		}
		_, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(w.niov))
		if e != 0 {
			w.err = e
		}
		if e != unix.EINTR {
			return e != unix.EAGAIN
		}
	}
}
