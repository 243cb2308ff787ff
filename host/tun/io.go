package tun

import (
	"errors"
	"net"
	"unsafe"

	"golang.org/x/sys/unix"
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
	n := min(len(bufs), len(sizes))
	d.rmu.Lock()
	defer d.rmu.Unlock()
	if d.closed.Load() {
		return 0, net.ErrClosed
	}
	k := 0
	for k < n {
		if d.pending.next < d.pending.segs {
			k += d.cut(bufs[k:n], sizes[k:n])
			continue
		}
		got, err := d.readOne(bufs[k], &sizes[k], k == 0)
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
func (d *Device) readOne(buf []byte, size *int, block bool) (int, error) {
	var n int
	var serr error
	var iov [2]unix.Iovec
	op := func(fd uintptr) bool {
		for {
			if d.offload {
				n, serr = unix.Read(int(fd), d.rx)
			} else {
				n, serr = readv(int(fd), iov[:], buf, d.overflow)
			}
			if serr != unix.EINTR {
				return serr != unix.EAGAIN || !block
			}
		}
	}
	if err := d.rc.Read(op); err != nil {
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
	h, err := parseVnetHdr(d.rx[:n])
	if err != nil {
		d.rxDropped.Add(1)
		return 0, nil
	}
	pkt := d.rx[vnetHdrLen:n]
	if h.gsoType != vnetGSONone {
		g, err := prepareGSO(pkt, &h)
		if err != nil {
			d.rxDropped.Add(1)
			return 0, nil
		}
		d.pending = g
		d.rxGSO.Add(1)
		return 0, nil
	}
	if h.flags&vnetFlagNeedsCsum != 0 {
		if err := completeChecksum(pkt, &h); err != nil {
			d.rxDropped.Add(1)
			return 0, nil
		}
		d.rxCsum.Add(1)
	}
	if len(pkt) > len(buf) || len(pkt) == 0 {
		d.rxDropped.Add(1)
		return 0, nil
	}
	*size = copy(buf, pkt)
	return 1, nil
}

// cut writes the pending super-packet's next segments into bufs and returns how
// many. A segment that does not fit its buffer drops the rest of the packet.
func (d *Device) cut(bufs [][]byte, sizes []int) int {
	g := &d.pending
	k := 0
	for k < len(bufs) && g.next < g.segs {
		m := g.segment(g.next, bufs[k])
		if m == 0 {
			d.rxDropped.Add(1)
			g.next = g.segs
			break
		}
		sizes[k] = m
		g.next++
		k++
	}
	if g.next >= g.segs {
		*g = gsoPacket{}
	}
	return k
}

// WriteBatch writes frames (IP packets) to the device, in order (with Offload,
// each flow's frames in order: see coalesce.go). It does not retain frames. A
// frame the kernel refuses (malformed, link down) is dropped and counted
// (Stats.TxErrors); only a failure of the device itself is returned. After
// Close it returns net.ErrClosed.
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
	c.plan(frames)
	defer func() { c.frames = nil }()
	for i := range c.trains {
		t := &c.trains[i]
		if err := d.write(c.packet(i)); err != nil {
			return err
		}
		if t.count > 1 {
			d.txGSO.Add(1)
			d.txCoalesced.Add(uint64(t.count))
		}
	}
	return nil
}

// write writes one packet given as slices. Errors about the packet are
// counted; errors about the device are returned.
func (d *Device) write(parts [][]byte) error {
	var iovs [maxTrain + 4]unix.Iovec
	iov := iovs[:0]
	for _, p := range parts {
		if len(p) > 0 {
			v := unix.Iovec{Base: &p[0]}
			v.SetLen(len(p))
			iov = append(iov, v)
		}
	}
	var serr error
	err := d.rc.Write(func(fd uintptr) bool {
		for {
			_, serr = writev(int(fd), iov)
			if serr != unix.EINTR {
				return serr != unix.EAGAIN
			}
		}
	})
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

func readv(fd int, iov []unix.Iovec, a, b []byte) (int, error) {
	iov = iov[:0]
	for _, p := range [2][]byte{a, b} {
		if len(p) > 0 {
			v := unix.Iovec{Base: &p[0]}
			v.SetLen(len(p))
			iov = append(iov, v)
		}
	}
	n, _, e := unix.Syscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func writev(fd int, iov []unix.Iovec) (int, error) {
	if len(iov) == 0 {
		return 0, nil
	}
	n, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}
