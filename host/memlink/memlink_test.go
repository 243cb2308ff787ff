package memlink_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/host/memlink"
)

func batch(n, size int) ([][]byte, []int) {
	bufs := make([][]byte, n)
	for i := range bufs {
		bufs[i] = make([]byte, size)
	}
	return bufs, make([]int, n)
}

func stats(l any) memlink.Stats { return l.(*memlink.End).Stats() }

func TestOrderAndBatch(t *testing.T) {
	a, b := memlink.NewPair(1500, 8)
	frames := [][]byte{[]byte("one"), bytes.Repeat([]byte{7}, 1500), []byte("three")}
	if err := a.WriteBatch(frames); err != nil {
		t.Fatal(err)
	}
	bufs, sizes := batch(2, 1500)
	n, err := b.ReadBatch(bufs, sizes)
	if err != nil || n != 2 || string(bufs[0][:sizes[0]]) != "one" || !bytes.Equal(bufs[1][:sizes[1]], frames[1]) {
		t.Fatalf("first batch: %d frames, %v", n, err)
	}
	n, err = b.ReadBatch(bufs, sizes)
	if err != nil || n != 1 || string(bufs[0][:sizes[0]]) != "three" {
		t.Fatalf("second batch: %d frames, %v", n, err)
	}
	if s := stats(a); s != (memlink.Stats{Sent: 3}) {
		t.Fatalf("a's stats %+v", s)
	}
	if s := stats(b); s != (memlink.Stats{Received: 3}) {
		t.Fatalf("b's stats %+v", s)
	}
	// The other direction is independent.
	b.WriteBatch([][]byte{[]byte("back")})
	if n, err := a.ReadBatch(bufs, sizes); n != 1 || err != nil || string(bufs[0][:sizes[0]]) != "back" {
		t.Fatalf("b to a: %d %v", n, err)
	}
}

func TestDropsWhenFull(t *testing.T) {
	a, b := memlink.NewPair(1500, 4)
	f := []byte("frame")
	a.WriteBatch([][]byte{f, f, f, f, f, f})
	a.WriteBatch([][]byte{make([]byte, 1501)})
	if s := stats(a); s != (memlink.Stats{Sent: 4, Dropped: 2, Oversized: 1}) {
		t.Fatalf("stats %+v, want 4 sent, 2 dropped, 1 oversized", s)
	}
	bufs, sizes := batch(10, 1500)
	if n, _ := b.ReadBatch(bufs, sizes); n != 4 {
		t.Fatalf("read %d frames, want the 4 queued", n)
	}
	// Room again after the read, across the ring's end.
	for i := range 10 {
		a.WriteBatch([][]byte{{byte(i)}})
		if n, _ := b.ReadBatch(bufs, sizes); n != 1 || bufs[0][0] != byte(i) || sizes[0] != 1 {
			t.Fatalf("frame %d lost or changed", i)
		}
	}
}

func TestShortBuffer(t *testing.T) {
	a, b := memlink.NewPair(1500, 4)
	a.WriteBatch([][]byte{make([]byte, 1000), make([]byte, 1200)})
	bufs := [][]byte{make([]byte, 1100), make([]byte, 1100)}
	sizes := make([]int, 2)
	if n, err := b.ReadBatch(bufs, sizes); n != 1 || err != nil || sizes[0] != 1000 {
		t.Fatalf("a short second buffer: %d frames, %v; want the first frame only", n, err)
	}
	if n, err := b.ReadBatch(bufs, sizes); n != 0 || !errors.Is(err, io.ErrShortBuffer) {
		t.Fatalf("a short first buffer: %d frames, %v; want io.ErrShortBuffer", n, err)
	}
	if n, err := b.ReadBatch(nil, nil); n != 0 || err == nil {
		t.Fatalf("no buffers: %d, %v; want an error", n, err)
	}
}

func TestClose(t *testing.T) {
	a, b := memlink.NewPair(1500, 4)
	done := make(chan error, 1)
	go func() {
		bufs, sizes := batch(1, 1500)
		_, err := b.ReadBatch(bufs, sizes)
		done <- err
	}()
	time.Sleep(10 * time.Millisecond)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("blocked ReadBatch after Close: %v, want net.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock ReadBatch")
	}
	if err := b.WriteBatch([][]byte{[]byte("x")}); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("WriteBatch after Close: %v", err)
	}
	if err := b.Close(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	// The peer stays open; what it sends to the closed end is dropped.
	if err := a.WriteBatch([][]byte{[]byte("x")}); err != nil {
		t.Fatal(err)
	}
	if s := stats(a); s.Dropped != 1 {
		t.Fatalf("peer's stats %+v, want 1 dropped", s)
	}
}

func TestMTU(t *testing.T) {
	for _, c := range []struct{ in, want int }{{1500, 1500}, {100, 576}, {1 << 20, 65535}} {
		a, _ := memlink.NewPair(c.in, 1)
		if a.MTU() != c.want {
			t.Fatalf("NewPair(%d).MTU() = %d, want %d", c.in, a.MTU(), c.want)
		}
	}
}

func TestAllocs(t *testing.T) {
	a, b := memlink.NewPair(1500, 64)
	frames := [][]byte{make([]byte, 1500), make([]byte, 40), make([]byte, 1500)}
	bufs, sizes := batch(8, 1500)
	if allocs := testing.AllocsPerRun(1000, func() {
		a.WriteBatch(frames)
		b.ReadBatch(bufs, sizes)
	}); allocs != 0 {
		t.Fatalf("%v allocations per batch, want 0", allocs)
	}
}

func BenchmarkBatch(b *testing.B) {
	x, y := memlink.NewPair(1500, 64)
	frames := make([][]byte, 32)
	for i := range frames {
		frames[i] = make([]byte, 1500)
	}
	bufs, sizes := batch(32, 1500)
	b.SetBytes(32 * 1500)
	b.ReportAllocs()
	for range b.N {
		x.WriteBatch(frames)
		y.ReadBatch(bufs, sizes)
	}
}

// TestReadBatchExchangesBuffers: a reader's buffers of the link's size are
// exchanged, not copied into, and a frame handed out is never overwritten by
// later writes (the link writes only into buffers it was given back).
func TestReadBatchExchangesBuffers(t *testing.T) {
	a, b := memlink.NewPair(1500, 4)
	mine := make([]byte, 1500)
	bufs, sizes := [][]byte{mine}, []int{0}
	if err := a.WriteBatch([][]byte{[]byte("first frame")}); err != nil {
		t.Fatal(err)
	}
	if n, err := b.ReadBatch(bufs, sizes); n != 1 || err != nil {
		t.Fatal(n, err)
	}
	got := bufs[0]
	if &got[0] == &mine[0] {
		t.Fatal("the buffer was copied into, not exchanged")
	}
	for i := range 8 { // cycle every slot of the queue, the one now ours included
		if err := a.WriteBatch([][]byte{[]byte("later frames overwrite slots")}); err != nil {
			t.Fatal(err)
		}
		bufs[0] = make([]byte, 1500)
		if n, err := b.ReadBatch(bufs, sizes); n != 1 || err != nil {
			t.Fatal(i, n, err)
		}
	}
	if string(got[:len("first frame")]) != "first frame" {
		t.Fatalf("the first frame changed under its reader: %q", got[:11])
	}
	// A buffer of another size is copied into.
	odd := make([]byte, 2000)
	a.WriteBatch([][]byte{[]byte("copied")})
	bufs[0] = odd
	if n, _ := b.ReadBatch(bufs, sizes); n != 1 || &bufs[0][0] != &odd[0] || string(odd[:sizes[0]]) != "copied" {
		t.Fatalf("a 2000-byte buffer: %q", bufs[0][:sizes[0]])
	}
}
