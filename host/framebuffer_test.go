package host

import (
	"net"
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
)

// bufLink records the buffers the driver hands to ReadBatch, then waits for
// Close.
type bufLink struct {
	got    chan [2]int // buffers, bytes each
	closed chan struct{}
}

func (l *bufLink) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	select {
	case l.got <- [2]int{len(bufs), len(bufs[0])}:
	default:
	}
	<-l.closed
	return 0, net.ErrClosed
}
func (l *bufLink) WriteBatch([][]byte) error { return nil }
func (l *bufLink) MTU() int                  { return 1500 }
func (l *bufLink) Close() error              { close(l.closed); return nil }

// Options.FrameBuffer sizes the read buffers for a link that delivers frames
// longer than its MTU (tun.Config.Whole), and the default batch shrinks to
// keep near 256 KiB.
func TestFrameBuffer(t *testing.T) {
	for _, c := range []struct {
		opts       Options
		bufs, size int
	}{
		{Options{}, 64, 1500},
		{Options{FrameBuffer: 65535}, 4, 65535},
		{Options{FrameBuffer: 65535, BatchFrames: 16}, 16, 65535},
		{Options{FrameBuffer: 1 << 20}, 4, 65535},
		{Options{FrameBuffer: 100}, 64, 1500},
	} {
		e, err := engine.New(engine.Config{Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}})
		if err != nil {
			t.Fatal(err)
		}
		l := &bufLink{got: make(chan [2]int, 1), closed: make(chan struct{})}
		d, err := NewDriver(e, l, &c.opts)
		if err != nil {
			t.Fatal(err)
		}
		got := <-l.got
		d.Close()
		if got != [2]int{c.bufs, c.size} {
			t.Errorf("%+v: %d buffers of %d bytes, want %d of %d", c.opts, got[0], got[1], c.bufs, c.size)
		}
	}
}
