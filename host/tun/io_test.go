package tun

import (
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

// WriteBatch joins a flow's segments into a super-packet and writes the rest
// with a zero header; in plain mode it writes frames as they are.
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
