package tun

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"flag"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/netns"
)

var echoBytes = flag.Int("tun.bytes", 1<<20, "bytes each kernel test sends through the TUN device")

// driver runs an engine.Stack on a Device: a reader goroutine hands frame
// batches to one loop goroutine that owns the stack (HandleFrame, timers from
// time.Now, commands, PollFrame into WriteBatch, PollEvent to the handler).
type driver struct {
	t     *testing.T
	st    *engine.Stack
	dev   *Device
	start time.Time

	rx   chan *rxBatch
	free chan *rxBatch
	cmds chan func()
	stop chan struct{}
	wg   sync.WaitGroup

	onEvent func(engine.Event) // runs on the loop goroutine
	tx      [][]byte
	arena   []byte
}

type rxBatch struct {
	bufs  [][]byte
	sizes []int
	n     int
}

const batch = 64

func newDriver(t *testing.T, dev *Device, addr netip.Addr) *driver {
	cfg := engine.Config{Addrs: []netip.Addr{addr}, MTU: dev.MTU(), Seed: 7}
	rand.Read(cfg.Key[:])
	st, err := engine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d := &driver{
		t: t, st: st, dev: dev, start: time.Now(),
		rx: make(chan *rxBatch, 4), free: make(chan *rxBatch, 4), cmds: make(chan func(), 16), stop: make(chan struct{}),
		arena: make([]byte, batch*dev.MTU()),
	}
	for range 4 {
		b := &rxBatch{bufs: make([][]byte, batch), sizes: make([]int, batch)}
		for i := range b.bufs {
			b.bufs[i] = make([]byte, dev.MTU())
		}
		d.free <- b
	}
	return d
}

func (d *driver) now() engine.Time { return engine.Time(time.Since(d.start)) }

// run starts the reader and the loop; stopping is by Close of the device and
// close(d.stop).
func (d *driver) run() {
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		for b := range d.free {
			n, err := d.dev.ReadBatch(b.bufs, b.sizes)
			if err != nil {
				if !errors.Is(err, net.ErrClosed) {
					d.t.Errorf("ReadBatch: %v", err)
				}
				return
			}
			b.n = n
			select {
			case d.rx <- b:
			case <-d.stop:
				return
			}
		}
	}()
	go func() {
		defer d.wg.Done()
		timer := time.NewTimer(time.Hour)
		for {
			// Frames that wait arrived before now: take them before the timers
			// (Step runs timers first), or a loop that woke up late fires a
			// retransmission timeout for data whose ACK is waiting here.
			for more := true; more; {
				select {
				case b := <-d.rx:
					d.input(b)
				default:
					more = false
				}
			}
			d.st.HandleTimeout(d.now())
			d.flush()
			var tc <-chan time.Time
			if dl := d.st.PollDeadline(); dl != engine.Never {
				wait := time.Duration(dl - d.now())
				if wait <= 0 {
					continue
				}
				timer.Reset(wait)
				tc = timer.C
			}
			select {
			case b := <-d.rx:
				d.input(b)
			case f := <-d.cmds:
				f()
			case <-tc:
			case <-d.stop:
				return
			}
		}
	}()
}

// input hands a batch of frames to the stack and recycles it.
func (d *driver) input(b *rxBatch) {
	now := d.now()
	for i := range b.n {
		d.st.HandleFrame(now, b.bufs[i][:b.sizes[i]])
	}
	d.free <- b
}

// flush sends the stack's frames and delivers its events until it is quiet.
func (d *driver) flush() {
	mtu := d.dev.MTU()
	for {
		d.tx = d.tx[:0]
		off := 0
		for len(d.tx) < batch {
			n := d.st.PollFrame(d.arena[off : off+mtu])
			if n == 0 {
				break
			}
			d.tx = append(d.tx, d.arena[off:off+n])
			off += n
		}
		if len(d.tx) > 0 {
			if err := d.dev.WriteBatch(d.tx); err != nil {
				d.t.Errorf("WriteBatch: %v", err)
			}
		}
		evs := 0
		for {
			ev, ok := d.st.PollEvent()
			if !ok {
				break
			}
			evs++
			if d.onEvent != nil {
				d.onEvent(ev)
			}
		}
		if len(d.tx) == 0 && evs == 0 {
			return
		}
	}
}

// do runs f on the loop goroutine.
func (d *driver) do(f func()) { d.cmds <- f }

func (d *driver) close() {
	d.dev.Close()
	close(d.stop)
	d.wg.Wait()
}

// echoServer serves RFC 862 echo on port 7 with engine commands.
type echoServer struct {
	st    *engine.Stack
	lid   engine.ConnID
	conns map[engine.ConnID]*echoConn
	done  chan engine.ConnID // a connection finished echoing
}

type echoConn struct {
	pend []byte
	data [64 << 10]byte
}

func (e *echoServer) event(ev engine.Event) {
	switch ev.Kind {
	case engine.EventAcceptable:
		for {
			id, err := e.st.Accept(e.lid)
			if err != engine.OK {
				return
			}
			e.conns[id] = &echoConn{}
			e.pump(id)
		}
	case engine.EventReadable, engine.EventWritable, engine.EventPeerClosed:
		e.pump(ev.Conn)
	case engine.EventReset, engine.EventError:
		if _, ok := e.conns[ev.Conn]; ok {
			delete(e.conns, ev.Conn)
			e.st.Close(ev.Conn)
		}
	}
}

// pump moves data from the connection back into it until it would block; after
// the peer's FIN and the last byte, it closes the connection.
func (e *echoServer) pump(id engine.ConnID) {
	c, ok := e.conns[id]
	if !ok {
		return
	}
	for {
		if len(c.pend) > 0 {
			n, _ := e.st.Write(id, c.pend)
			c.pend = c.pend[n:]
			if len(c.pend) > 0 {
				return // EventWritable brings us back
			}
		}
		n, err := e.st.Read(id, c.data[:])
		switch err {
		case engine.OK:
			c.pend = c.data[:n]
			continue
		case engine.ErrWouldBlock:
			return
		case engine.ErrEOF:
			e.st.Close(id)
		default:
			e.st.Abort(id)
		}
		delete(e.conns, id)
		e.done <- id
		return
	}
}

// tunPair opens a TUN device in a new namespace: the kernel at 10.7.0.1/24 on
// it, the engine at 10.7.0.2 behind it.
func tunPair(t *testing.T, offload bool, mtu int) (string, *Device) {
	return tunPairSpin(t, offload, mtu, false)
}

// tunPairSpin is tunPair with Config.Spin.
func tunPairSpin(t *testing.T, offload bool, mtu int, spin bool) (string, *Device) {
	ns := newNS(t)
	dev, err := Open(Config{Name: "tcpt0", Netns: ns, MTU: mtu, Offload: offload, Spin: spin,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.7.0.1/24")}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	if *pcapDir != "" {
		capture(t, ns, dev.Name())
	}
	return ns, dev
}

var pcapDir = flag.String("tun.pcap", "", "write a tcpdump capture of each kernel test's TUN device into this directory")

// capture runs tcpdump on the kernel side of the device until the test ends.
func capture(t *testing.T, ns, dev string) {
	file := filepath.Join(*pcapDir, strings.NewReplacer("/", "_").Replace(t.Name())+".pcap")
	cmd := exec.Command("ip", "netns", "exec", ns, "tcpdump", "-i", dev, "-s", "128", "-U", "-w", file)
	if err := cmd.Start(); err != nil {
		t.Fatalf("tcpdump: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // let it attach
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		t.Logf("capture in %s", file)
	})
}

var (
	kernelAddr = netip.MustParseAddr("10.7.0.1")
	engineAddr = netip.MustParseAddr("10.7.0.2")
)

func randomBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// A kernel TCP client in the namespace sends data to the engine's echo server
// and gets it back, compared by SHA-256.
func TestKernelClientEngineEcho(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offload bool
		mtu     int
		spin    bool
	}{{"plain", false, 1500, false}, {"offload", true, 1500, false}, {"plain-mtu9000", false, 9000, false}, {"plain-mtu65000", false, 65000, false}, {"offload-mtu9000", true, 9000, false},
		{"offload-spin", true, 1500, true}, {"plain-spin", false, 1500, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ns, dev := tunPairSpin(t, tc.offload, tc.mtu, tc.spin)
			d := newDriver(t, dev, engineAddr)
			srv := &echoServer{st: d.st, conns: map[engine.ConnID]*echoConn{}, done: make(chan engine.ConnID, 1)}
			lid, lerr := d.st.Listen(netip.AddrPortFrom(engineAddr, 7), 0)
			if lerr != engine.OK {
				t.Fatal(lerr)
			}
			srv.lid = lid
			d.onEvent = srv.event
			d.run()
			defer d.close()

			var conn net.Conn
			if err := netns.Do(ns, func() error {
				var err error
				conn, err = net.DialTimeout("tcp", "10.7.0.2:7", 5*time.Second)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(60 * time.Second))
			data := randomBytes(*echoBytes)
			start := time.Now()
			werr := make(chan error, 1)
			go func() {
				_, err := conn.Write(data)
				if err == nil {
					err = conn.(*net.TCPConn).CloseWrite()
				}
				werr <- err
			}()
			got, err := io.ReadAll(conn)
			if err != nil {
				t.Fatalf("read echo: %v (got %d bytes)", err, len(got))
			}
			if err := <-werr; err != nil {
				t.Fatal(err)
			}
			el := time.Since(start)
			if sha256.Sum256(got) != sha256.Sum256(data) {
				t.Fatalf("echo differs: %d bytes back of %d", len(got), len(data))
			}
			<-srv.done
			t.Logf("%s: %d bytes each way in %v (%.1f MB/s each way)", tc.name, len(data), el, float64(len(data))/el.Seconds()/1e6)
			checkStats(t, d, tc.offload)
		})
	}
}

// checkStats asserts that nothing was dropped on either side and, with
// offloads, that super-packets went both ways.
func checkStats(t *testing.T, d *driver, offload bool) {
	t.Helper()
	st := d.dev.Stats()
	done := make(chan engine.Stats, 1)
	d.do(func() { done <- d.st.Stats() })
	es := <-done
	t.Logf("device %+v", st)
	t.Logf("engine frames in %d out %d, drops malformed %d checksum %d not-for-us %d protocol %d",
		es.FramesIn, es.FramesOut, es.DropMalformed, es.DropChecksum, es.DropNotForUs, es.DropProtocol)
	t.Logf("engine tcp %+v", es.TCP)
	if out, err := tryRun("ip", "-n", d.dev.Netns(), "-s", "-s", "link", "show", d.dev.Name()); err == nil {
		t.Logf("kernel side:\n%s", out)
	}
	if st.RxDropped != 0 || st.TxErrors != 0 {
		t.Errorf("device dropped %d, refused %d", st.RxDropped, st.TxErrors)
	}
	if es.DropMalformed != 0 || es.DropChecksum != 0 {
		t.Errorf("engine dropped %d malformed, %d bad checksums", es.DropMalformed, es.DropChecksum)
	}
	if offload {
		if st.RxGSO == 0 {
			t.Errorf("no super-packet came from the kernel")
		}
		if st.TxGSO == 0 {
			t.Errorf("no super-packet went to the kernel")
		}
	} else if st.RxGSO != 0 || st.TxGSO != 0 {
		t.Errorf("super-packets without offload: %d in, %d out", st.RxGSO, st.TxGSO)
	}
}

// The engine dials a kernel echo listener in the namespace.
func TestEngineClientKernelEcho(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offload bool
	}{{"plain", false}, {"offload", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ns, dev := tunPair(t, tc.offload, 1500)
			var ln net.Listener
			if err := netns.Do(ns, func() error {
				var err error
				ln, err = net.Listen("tcp", "10.7.0.1:9007")
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

			d := newDriver(t, dev, engineAddr)
			data := randomBytes(*echoBytes)
			cl := &echoClient{st: d.st, data: data, done: make(chan error, 1)}
			d.onEvent = cl.event
			d.run()
			defer d.close()
			start := time.Now()
			d.do(func() {
				id, err := d.st.Dial(d.now(), netip.AddrPort{}, netip.AddrPortFrom(kernelAddr, 9007))
				if err != engine.OK {
					cl.done <- err
				}
				cl.id = id
			})
			select {
			case err := <-cl.done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(60 * time.Second):
				t.Fatalf("echo not done after 60 s: sent %d, got %d", cl.sent, cl.got.Len())
			}
			el := time.Since(start)
			if sha256.Sum256(cl.got.Bytes()) != sha256.Sum256(data) {
				t.Fatalf("echo differs: %d bytes back of %d", cl.got.Len(), len(data))
			}
			t.Logf("%s: %d bytes each way in %v (%.1f MB/s each way)", tc.name, len(data), el, float64(len(data))/el.Seconds()/1e6)
			checkStats(t, d, tc.offload)
		})
	}
}

// echoClient sends data on an engine connection, shuts down its side, and
// reads the echo to the end.
type echoClient struct {
	st   *engine.Stack
	id   engine.ConnID
	data []byte
	sent int
	shut bool
	got  bytes.Buffer
	buf  [64 << 10]byte
	done chan error
}

func (c *echoClient) event(ev engine.Event) {
	if ev.Conn != c.id {
		return
	}
	switch ev.Kind {
	case engine.EventConnected, engine.EventWritable, engine.EventReadable, engine.EventPeerClosed:
		for c.sent < len(c.data) {
			n, err := c.st.Write(c.id, c.data[c.sent:])
			c.sent += n
			if n == 0 || err != engine.OK {
				break
			}
		}
		if c.sent == len(c.data) && !c.shut {
			c.shut = true
			c.st.Shutdown(c.id)
		}
		for {
			n, err := c.st.Read(c.id, c.buf[:])
			c.got.Write(c.buf[:n])
			switch err {
			case engine.OK:
				continue
			case engine.ErrWouldBlock:
				return
			case engine.ErrEOF:
				c.st.Close(c.id)
				c.done <- nil
			default:
				c.done <- err
			}
			return
		}
	case engine.EventReset, engine.EventError:
		c.done <- ev.Err
	}
}
