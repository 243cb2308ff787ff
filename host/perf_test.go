package host_test

import (
	"flag"
	"io"
	"net/netip"
	"runtime"
	"testing"
	"time"
	"unsafe"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
)

var idleConns = flag.Int("idleconns", 2000, "connection pairs TestIdleConnMemory opens")

// TestAllocs moves 64 KiB (45 full segments) from one driver to the other per
// run, through Write, both engines, memlink and Read, and counts the heap
// allocations of the whole process: both drivers' goroutines included.
func TestAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector changes allocation counts")
	}
	e := newEnv(t, nil)
	client, server := e.pair(t)
	out, in := pattern(64<<10, 11), make([]byte, 64<<10)
	run := func() {
		if _, err := client.Write(out); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(server, in); err != nil {
			t.Fatal(err)
		}
	}
	for range 200 { // warm up: buffers and pools reach their working size
		run()
	}
	if allocs := testing.AllocsPerRun(500, run); allocs != 0 {
		t.Fatalf("%v allocations per 64 KiB transferred, want 0", allocs)
	}
	// The other way, and a round trip of small messages (request-response).
	run = func() {
		if _, err := server.Write(out[:100]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(client, in[:100]); err != nil {
			t.Fatal(err)
		}
		if _, err := client.Write(out[:100]); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(server, in[:100]); err != nil {
			t.Fatal(err)
		}
	}
	for range 200 {
		run()
	}
	if allocs := testing.AllocsPerRun(500, run); allocs != 0 {
		t.Fatalf("%v allocations per 100-byte round trip, want 0", allocs)
	}
}

// TestIdleConnMemory measures what an idle, established connection pair
// costs, as BENCH.md's W3 does (HeapInuse+StackInuse after GC): both engines'
// state and both drivers' Conns, fresh and after one byte each way (buffers are
// returned when empty). BENCH.md's goal is at most 1.5 KB per pair. Run with
// -idleconns=10000 -v for W3's size.
func TestIdleConnMemory(t *testing.T) {
	for _, traffic := range []bool{false, true} {
		name := "fresh"
		if traffic {
			name = "after-traffic"
		}
		t.Run(name, func(t *testing.T) { idleConnMemory(t, traffic) })
	}
}

func idleConnMemory(t *testing.T, traffic bool) {
	e := newEnv(t, func(c *engine.Config) { c.Backlog = 1 << 16 })
	n := *idleConns
	if testing.Short() {
		n = 200
	}
	ln, err := e.b.ListenTCP(netip.AddrPortFrom(ipB, 80))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	clients, servers := make([]*host.Conn, n+1), make([]*host.Conn, n+1)
	dial := func(i int) {
		c, err := e.a.DialTCP(t.Context(), ln.AddrPort())
		if err != nil {
			t.Fatal(err)
		}
		s, err := ln.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		clients[i], servers[i] = c, s
		if traffic {
			one := []byte{1}
			for _, p := range [][2]*host.Conn{{c, s}, {s, c}} {
				if _, err := p[0].Write(one); err != nil {
					t.Fatal(err)
				}
				if _, err := io.ReadFull(p[1], one); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	defer func() {
		for i := range clients {
			if clients[i] != nil {
				clients[i].Close()
				servers[i].Close()
			}
		}
	}()
	dial(n) // one first, so that tables and pools exist before the measurement
	inuse := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapInuse + m.StackInuse
	}
	goroutines := runtime.NumGoroutine()
	before := inuse()
	for i := range n {
		dial(i)
	}
	if traffic {
		// Idle means idle: the last delayed ACKs (40 ms) go out, and the send
		// buffers they free go back to the pool.
		time.Sleep(200 * time.Millisecond)
	}
	// The pools' spare chunks are a fixed cost of each stack (at most
	// Config.MaxFreeChunks), not of connections: count them apart.
	var pooled uint64
	for _, d := range []*host.Driver{e.a, e.b} {
		d.Inspect(func(en engine.Engine) { pooled += uint64(en.(*engine.Stack).Stats().PoolFree) * 16 << 10 })
	}
	perPair := (float64(inuse()-before) - float64(pooled)) / float64(n)
	t.Logf("%d idle connection pairs: %.0f bytes per pair (a host.Conn is %d bytes), %d KiB of spare chunks in the pools; %d goroutines more",
		n, perPair, unsafe.Sizeof(host.Conn{}), pooled>>10, runtime.NumGoroutine()-goroutines)
	if perPair > 1536 {
		t.Errorf("%.0f bytes per idle connection pair, want at most 1536 (BENCH.md W3)", perPair)
	}
	if g := runtime.NumGoroutine() - goroutines; g > 0 {
		t.Fatalf("%d goroutines more with %d connections open, want none", g, 2*n)
	}
	// The driver's share is the Conns and their table entries; the rest is the engines'.
	if size := unsafe.Sizeof(host.Conn{}); size > 128 {
		t.Fatalf("host.Conn is %d bytes, want at most 128", size)
	}
}

// BenchmarkBulk is one direction of bulk transfer through two drivers.
func BenchmarkBulk(b *testing.B) {
	e := newEnv(b, nil)
	client, server := e.pair(b)
	buf := make([]byte, 64<<10)
	done := make(chan struct{})
	go func() {
		defer close(done)
		in := make([]byte, 64<<10)
		for {
			if _, err := server.Read(in); err != nil {
				return
			}
		}
	}()
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := client.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	client.Close()
	<-done
}

// BenchmarkRoundTrip is a 100-byte request and its 100-byte answer.
func BenchmarkRoundTrip(b *testing.B) {
	e := newEnv(b, nil)
	client, server := e.pair(b)
	go func() {
		buf := make([]byte, 100)
		for {
			if _, err := io.ReadFull(server, buf); err != nil {
				return
			}
			if _, err := server.Write(buf); err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 100)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := client.Write(buf); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(client, buf); err != nil {
			b.Fatal(err)
		}
	}
}
