package tun

import (
	"bytes"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/engine/wire"
	"golang.org/x/sys/unix"
)

// fakeDevice is a Device on one end of a SOCK_SEQPACKET socket pair, which
// keeps packet boundaries as a TUN descriptor does: the test plays the kernel
// on the other end.
func fakeDevice(t *testing.T, offload bool) (*Device, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, fd := range fds {
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	}
	if err := unix.SetNonblock(fds[0], true); err != nil {
		t.Fatal(err)
	}
	d := &Device{name: "fake", mtu: 1500, offload: offload}
	if err := d.use(fds[0]); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		d.Close()
		unix.Close(fds[1])
	})
	return d, fds[1]
}

func kernelSend(t *testing.T, fd int, pkts ...[]byte) {
	t.Helper()
	for _, p := range pkts {
		if _, err := unix.Write(fd, p); err != nil {
			t.Fatal(err)
		}
	}
}

func kernelRecv(t *testing.T, fd int) []byte {
	t.Helper()
	b := make([]byte, 1<<17)
	n, err := unix.Read(fd, b)
	if err != nil {
		t.Fatal(err)
	}
	return b[:n]
}

func bufs(n, size int) ([][]byte, []int) {
	b := make([][]byte, n)
	for i := range b {
		b[i] = make([]byte, size)
	}
	return b, make([]int, n)
}

func read(t *testing.T, d *Device, b [][]byte, sizes []int) [][]byte {
	t.Helper()
	n, err := d.ReadBatch(b, sizes)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for i := range n {
		out = append(out, append([]byte(nil), b[i][:sizes[i]]...))
	}
	return out
}

// A super-packet larger than the batch carries over to the next call, and the
// next call goes on with the packets behind it.
func TestReadBatchCarriesOver(t *testing.T) {
	d, k := fakeDevice(t, true)
	burst := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 4, flags: wire.FlagACK | wire.FlagPSH, payload: pattern(3000, 1)}
	single := seg{src: a4, dst: b4, seq: 3001, ack: 2, window: 3, id: 7, flags: wire.FlagACK, payload: pattern(10, 2)}
	sp := single.super(1400)
	sp[0], sp[1] = 0, vnetGSONone // a plain packet with a full checksum
	copy(sp[vnetHdrLen:], single.frame())
	kernelSend(t, k, burst.super(1400), sp)
	want, err := decodeFromDevice(burst.super(1400), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, sizes := bufs(2, 1500)
	equalFrames(t, read(t, d, b, sizes), want[:2])
	equalFrames(t, read(t, d, b, sizes), [][]byte{want[2], single.frame()})
	st := d.Stats()
	if st.RxFrames != 4 || st.RxGSO != 1 || st.RxDropped != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Malformed packets are dropped and counted, never returned as errors; a
// segment too large for the caller's buffer is dropped with the rest of its
// super-packet.
func TestReadBatchDrops(t *testing.T) {
	d, k := fakeDevice(t, true)
	good := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 4, flags: wire.FlagACK, payload: pattern(100, 1)}
	gp := good.super(1400)
	gp[0], gp[1] = 0, vnetGSONone
	copy(gp[vnetHdrLen:], good.frame())
	badType := seg{src: a4, dst: b4, flags: wire.FlagACK, payload: pattern(3000, 1)}.super(1400)
	badType[1] = vnetGSOUDP
	badCsum := append([]byte(nil), gp...)
	badCsum[0] = vnetFlagNeedsCsum
	// csum_start past the end
	badCsum[6], badCsum[7] = 0xff, 0xff
	// 1500-byte segments, for 1400-byte buffers.
	big := seg{src: a4, dst: b4, flags: wire.FlagACK, payload: pattern(3000, 1)}.super(1460)
	kernelSend(t, k, []byte{1, 2, 3}, badType, badCsum, big, gp)
	b, sizes := bufs(4, 1400)
	equalFrames(t, read(t, d, b, sizes), [][]byte{good.frame()})
	if st := d.Stats(); st.RxDropped != 4 || st.RxFrames != 1 {
		t.Fatalf("stats %+v", st)
	}

	// Plain mode: a packet larger than the buffer is dropped whole.
	p, k2 := fakeDevice(t, false)
	kernelSend(t, k2, big[vnetHdrLen:vnetHdrLen+1500], good.frame())
	b, sizes = bufs(4, 1000)
	equalFrames(t, read(t, p, b, sizes), [][]byte{good.frame()})
	if st := p.Stats(); st.RxDropped != 1 || st.RxFrames != 1 {
		t.Fatalf("plain stats %+v", st)
	}
}

// WriteBatch joins a flow's segments into a super-packet and writes a frame
// that is not TCP with a zero header; in plain mode it writes frames as they are.
func TestWriteBatchFake(t *testing.T) {
	d, k := fakeDevice(t, true)
	var frames [][]byte
	for i := range 3 {
		frames = append(frames, seg{src: b4, dst: a4, seq: uint32(1 + i*1000), ack: 2, window: 3, id: uint16(i), flags: wire.FlagACK, payload: pattern(1000, byte(i))}.frame())
	}
	udp := make([]byte, 28)
	wire.PutIPv4(udp, wire.IPv4Header{TotalLen: 28, TTL: 64, Protocol: wire.ProtoUDP, Src: b4.Addr(), Dst: a4.Addr()})
	frames = append(frames, udp, nil)
	if err := d.WriteBatch(frames); err != nil {
		t.Fatal(err)
	}
	want := coalesce(frames)
	if len(want) != 2 {
		t.Fatalf("%d packets planned", len(want))
	}
	equalFrames(t, [][]byte{kernelRecv(t, k), kernelRecv(t, k)}, want)
	if st := d.Stats(); st.TxFrames != 5 || st.TxWrites != 2 || st.TxGSO != 1 || st.TxCoalesced != 3 {
		t.Fatalf("stats %+v", st)
	}

	p, k2 := fakeDevice(t, false)
	if err := p.WriteBatch(frames); err != nil {
		t.Fatal(err)
	}
	equalFrames(t, [][]byte{kernelRecv(t, k2), kernelRecv(t, k2), kernelRecv(t, k2), kernelRecv(t, k2)}, frames[:4])
}

func TestFakeCloseUnblocks(t *testing.T) {
	for _, offload := range []bool{false, true} {
		d, _ := fakeDevice(t, offload)
		done := make(chan error, 1)
		go func() {
			b, sizes := bufs(1, 1500)
			_, err := d.ReadBatch(b, sizes)
			done <- err
		}()
		time.Sleep(20 * time.Millisecond)
		d.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("ReadBatch: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("ReadBatch still blocked after Close")
		}
		if n, err := d.ReadBatch(bufs(1, 1500)); n != 0 || !errors.Is(err, net.ErrClosed) {
			t.Fatalf("ReadBatch after Close: %d %v", n, err)
		}
	}
}

// With SkipChecksums, ReadBatch cuts super-packets and passes partial
// checksums on without summing anything: the frames are those of the default
// mode but for the TCP checksum field (the IPv4 header checksum stays valid).
// A packet with a full checksum comes through unchanged either way.
func TestReadBatchSkipChecksums(t *testing.T) {
	burst := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 4, flags: wire.FlagACK | wire.FlagPSH, payload: pattern(3000, 1)}
	small := seg{src: a4, dst: b4, seq: 3001, ack: 2, window: 3, id: 7, flags: wire.FlagACK, payload: pattern(10, 2)}
	partial := small.super(1400)
	partial[1] = vnetGSONone // not GSO: a plain packet with a partial checksum
	full := small.super(1400)
	full[0], full[1] = 0, vnetGSONone
	copy(full[vnetHdrLen:], small.frame())
	want, err := decodeFromDevice(burst.super(1400), nil)
	if err != nil {
		t.Fatal(err)
	}
	want = append(want, small.frame(), small.frame())

	d, k := fakeDevice(t, true)
	d.nosum = true
	kernelSend(t, k, burst.super(1400), partial, full)
	b, sizes := bufs(8, 1500)
	got := read(t, d, b, sizes)
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range got {
		ip, err := wire.ParseIPv4(got[i])
		if err != nil || !ip.ChecksumValid() {
			t.Fatalf("frame %d: IPv4 header %v, checksum valid %v", i, err, err == nil && ip.ChecksumValid())
		}
		g, w := got[i], want[i]
		if len(g) != len(w) {
			t.Fatalf("frame %d: %d bytes, want %d", i, len(g), len(w))
		}
		// The TCP checksum field (bytes 36-37 behind a 20-byte IPv4 header) is
		// all that may differ.
		if !bytes.Equal(g[:36], w[:36]) || !bytes.Equal(g[38:], w[38:]) {
			t.Fatalf("frame %d differs beyond the TCP checksum:\n got % x\nwant % x", i, g[:60], w[:60])
		}
	}
	// The last frame carried a full checksum: untouched.
	if !bytes.Equal(got[4], small.frame()) {
		t.Fatalf("full-checksum frame changed")
	}
	// The partial one kept its pseudo-header sum.
	if !bytes.Equal(got[3][36:38], partial[vnetHdrLen+36:vnetHdrLen+38]) {
		t.Fatalf("partial checksum % x, want the pseudo-header sum % x", got[3][36:38], partial[vnetHdrLen+36:vnetHdrLen+38])
	}
	if st := d.Stats(); st.RxFrames != 5 || st.RxGSO != 1 || st.RxCsum != 0 || st.RxDropped != 0 {
		t.Fatalf("stats %+v", st)
	}

	// The default completes and computes: every frame checks.
	d2, k2 := fakeDevice(t, true)
	kernelSend(t, k2, burst.super(1400), partial, full)
	got = read(t, d2, b, sizes)
	equalFrames(t, got, want)
	for _, f := range got {
		checkValid(t, f)
	}
	if st := d2.Stats(); st.RxCsum != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// A super-packet small enough for the caller's buffer is read into it and cut
// from a copy, so the segments do not overwrite the packet being cut.
func TestReadBatchSmallSuperPacket(t *testing.T) {
	burst := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 4, flags: wire.FlagACK, payload: pattern(900, 3)}
	want, err := decodeFromDevice(burst.super(300), nil)
	if err != nil {
		t.Fatal(err)
	}
	d, k := fakeDevice(t, true)
	kernelSend(t, k, burst.super(300))
	b, sizes := bufs(4, 1500)
	equalFrames(t, read(t, d, b, sizes), want)
}

// ReadBatch and WriteBatch allocate nothing: a super-packet written (joined
// from 3 segments) and read back (cut again), and a plain packet each way.
func TestDeviceIOAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	for _, offload := range []bool{true, false} {
		d, k := fakeDevice(t, offload)
		var frames [][]byte
		for i := range 3 {
			frames = append(frames, seg{src: b4, dst: a4, seq: uint32(1 + i*1000), ack: 2, window: 3, id: uint16(i), flags: wire.FlagACK, payload: pattern(1000, byte(i))}.frame())
		}
		in := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 4, flags: wire.FlagACK, payload: pattern(3000, 1)}
		pkt := in.super(1400)
		if !offload {
			pkt = in.frame()
		}
		out := make([]byte, 1<<17)
		b, sizes := bufs(4, 4000)
		run := func() {
			if err := d.WriteBatch(frames); err != nil {
				t.Fatal(err)
			}
			for range len(frames) {
				if _, err := unix.Read(k, out); err != nil {
					t.Fatal(err)
				}
				if offload {
					break // one super-packet
				}
			}
			if _, err := unix.Write(k, pkt); err != nil {
				t.Fatal(err)
			}
			for got := 0; got < 1; {
				n, err := d.ReadBatch(b, sizes)
				if err != nil {
					t.Fatal(err)
				}
				got += n
			}
			if d.pending.next < d.pending.Segs() {
				d.ReadBatch(b, sizes)
			}
		}
		for range 10 {
			run()
		}
		if allocs := testing.AllocsPerRun(100, run); allocs != 0 {
			t.Errorf("offload %v: %v allocations per write and read", offload, allocs)
		}
	}
}

// With Config.Spin a blocking read polls the descriptor before it waits on
// the poller: a packet that comes while it polls, or after it has gone to
// wait, is read all the same, and reading allocates nothing.
func TestReadBatchSpin(t *testing.T) {
	d, k := fakeDevice(t, false)
	d.rop.spinOn = true
	pkt := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 4, flags: wire.FlagACK, payload: pattern(100, 1)}.frame()
	b, sizes := bufs(4, 1500)
	for _, delay := range []time.Duration{0, 10 * time.Microsecond, 200 * time.Microsecond, 5 * time.Millisecond} {
		go func() {
			time.Sleep(delay)
			unix.Write(k, pkt)
		}()
		n, err := d.ReadBatch(b, sizes)
		if err != nil || n != 1 || !bytes.Equal(b[0][:sizes[0]], pkt) {
			t.Fatalf("packet after %v: ReadBatch = %d, %v", delay, n, err)
		}
	}
	if raceEnabled {
		return
	}
	allocs := testing.AllocsPerRun(100, func() {
		unix.Write(k, pkt)
		if n, err := d.ReadBatch(b, sizes); n != 1 || err != nil {
			t.Fatalf("ReadBatch = %d, %v", n, err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per spinning read", allocs)
	}
}

// TryReadBatch returns at once: nothing and no error on an empty device, the
// frames that are there otherwise; Fd polls readable exactly when one is.
func TestTryReadBatch(t *testing.T) {
	d, k := fakeDevice(t, false)
	pkt := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 4, flags: wire.FlagACK, payload: pattern(100, 1)}.frame()
	b, sizes := bufs(4, 1500)
	readable := func() bool {
		fds := []unix.PollFd{{Fd: int32(d.Fd()), Events: unix.POLLIN}}
		n, err := unix.Poll(fds, 0)
		return err == nil && n == 1
	}
	if n, err := d.TryReadBatch(b, sizes); n != 0 || err != nil || readable() {
		t.Fatalf("empty device: TryReadBatch = %d, %v; readable %v", n, err, readable())
	}
	for range 3 {
		unix.Write(k, pkt)
	}
	if !readable() {
		t.Fatal("Fd does not poll readable with 3 packets queued")
	}
	n, err := d.TryReadBatch(b, sizes)
	if err != nil || n != 3 || !bytes.Equal(b[2][:sizes[2]], pkt) {
		t.Fatalf("TryReadBatch = %d, %v, want the 3 packets", n, err)
	}
	if n, err := d.TryReadBatch(b, sizes); n != 0 || err != nil {
		t.Fatalf("drained: TryReadBatch = %d, %v", n, err)
	}
	d.Close()
	if _, err := d.TryReadBatch(b, sizes); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("after Close: %v, want net.ErrClosed", err)
	}
}

// Config.Whole: a super-packet that fits the caller's buffer is handed over as
// one frame, the super-packet itself with its checksum completed (or left
// partial with SkipChecksums); one that does not fit is cut as before; a
// malformed one is dropped.
func TestReadBatchWhole(t *testing.T) {
	burst := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 4, flags: wire.FlagACK | wire.FlagPSH, payload: pattern(3000, 1)}
	burst6 := seg{src: a6, dst: b6, seq: 1, ack: 2, window: 3, flags: wire.FlagACK, payload: pattern(5000, 3)}
	bad := burst.super(1400)
	bad[vnetHdrLen+9] = 17 // UDP: not a TCP super-packet
	d, k := fakeDevice(t, true)
	d.whole = true
	kernelSend(t, k, burst.super(1400), burst6.super(1440), bad)
	b, sizes := bufs(4, 65535)
	got := read(t, d, b, sizes)
	equalFrames(t, got, [][]byte{burst.frame(), burst6.frame()})
	if st := d.Stats(); st.RxFrames != 2 || st.RxGSO != 2 || st.RxCsum != 2 || st.RxDropped != 1 {
		t.Fatalf("stats %+v", st)
	}

	// With SkipChecksums the field keeps the pseudo-header sum.
	d.nosum = true
	kernelSend(t, k, burst.super(1400))
	got = read(t, d, b, sizes)
	sp := burst.super(1400)
	if len(got) != 1 || !bytes.Equal(got[0], sp[vnetHdrLen:]) {
		t.Fatalf("with SkipChecksums: %d frames, or not the super-packet as it came", len(got))
	}

	// Buffers of the MTU: cut, as without Whole.
	d.nosum = false
	kernelSend(t, k, burst.super(1400))
	want, err := decodeFromDevice(burst.super(1400), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, sizes = bufs(4, 1500)
	equalFrames(t, read(t, d, b, sizes), want)
}
