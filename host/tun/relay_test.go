package tun

import (
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/host/netns"
)

// Two kernels talk TCP through two TUN devices joined by a relay that copies
// ReadBatch of one into WriteBatch of the other. With offloads, every
// super-packet the sending kernel makes is cut by the splitter and joined
// again by the coalescer before the receiving kernel sees it: both halves of
// the offload path meet a real kernel, for IPv4 and IPv6.
func TestKernelRelay(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offload bool
		v6      bool
	}{{"plain-v4", false, false}, {"offload-v4", true, false}, {"plain-v6", false, true}, {"offload-v6", true, true}} {
		t.Run(tc.name, func(t *testing.T) {
			nsA, nsB := newNS(t), newNS(t)
			open := func(ns string, a4, a6 string) *Device {
				d, err := Open(Config{Name: "tcpr0", Netns: ns, Offload: tc.offload,
					Addrs: []netip.Prefix{netip.MustParsePrefix(a4), netip.MustParsePrefix(a6)}})
				if err != nil {
					t.Fatal(err)
				}
				return d
			}
			devA := open(nsA, "10.7.0.1/24", "fd07::1/64")
			devB := open(nsB, "10.7.0.2/24", "fd07::2/64")
			var wg sync.WaitGroup
			relay := func(from, to *Device) {
				defer wg.Done()
				bufs, sizes := make([][]byte, 64), make([]int, 64)
				for i := range bufs {
					bufs[i] = make([]byte, from.MTU())
				}
				frames := make([][]byte, 0, 64)
				for {
					n, err := from.ReadBatch(bufs, sizes)
					if err != nil {
						if !errors.Is(err, net.ErrClosed) {
							t.Errorf("ReadBatch: %v", err)
						}
						return
					}
					frames = frames[:0]
					for i := range n {
						frames = append(frames, bufs[i][:sizes[i]])
					}
					if err := to.WriteBatch(frames); err != nil && !errors.Is(err, net.ErrClosed) {
						t.Errorf("WriteBatch: %v", err)
					}
				}
			}
			wg.Add(2)
			go relay(devA, devB)
			go relay(devB, devA)
			defer func() {
				devA.Close()
				devB.Close()
				wg.Wait()
			}()

			addr := "10.7.0.2:9000"
			if tc.v6 {
				addr = "[fd07::2]:9000"
			}
			var ln net.Listener
			if err := netns.Do(nsB, func() error {
				var err error
				ln, err = net.Listen("tcp", addr)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				io.Copy(c, c)
				c.(*net.TCPConn).CloseWrite()
			}()
			var conn net.Conn
			if err := netns.Do(nsA, func() error {
				var err error
				conn, err = net.DialTimeout("tcp", addr, 5*time.Second)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(60 * time.Second))
			data := randomBytes(4 * *echoBytes)
			start := time.Now()
			go func() {
				conn.Write(data)
				conn.(*net.TCPConn).CloseWrite()
			}()
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("read: %v after %d bytes", err, len(got))
			}
			el := time.Since(start)
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("echo differs: %d bytes back of %d", len(got), len(data))
			}
			sa, sb := devA.Stats(), devB.Stats()
			t.Logf("%d bytes each way in %v (%.1f MB/s each way)", len(data), el, float64(len(data))/el.Seconds()/1e6)
			t.Logf("A %+v", sa)
			t.Logf("B %+v", sb)
			for _, st := range []Stats{sa, sb} {
				if st.RxDropped != 0 || st.TxErrors != 0 {
					t.Errorf("dropped %d, refused %d", st.RxDropped, st.TxErrors)
				}
				if tc.offload && (st.RxGSO == 0 || st.TxGSO == 0) {
					t.Errorf("offload: %d super-packets in, %d out", st.RxGSO, st.TxGSO)
				}
			}
		})
	}
}
