package workload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Net is a pair of stacks in one process: a client side and a server side,
// joined by an in-memory link. Every column of the benchmark that speaks
// net.Conn implements it.
type Net interface {
	// Listen listens on the server stack's address at port.
	Listen(port uint16) (net.Listener, error)
	// Dial connects from the client stack to the server stack's address at port.
	Dial(ctx context.Context, port uint16) (net.Conn, error)
	// Close stops both stacks and the link.
	Close() error
}

// Params sizes the workloads. Full is BENCH.md's definition; Quick and Tiny
// shrink every count for a smoke run.
type Params struct {
	BulkBytes int64 // W1: bytes the server writes
	Conns     int   // W2: lifecycles
	Clients   int   // W2: concurrent clients of the concurrent variant
	IdleConns int   // W3: established connections
	Warmup    int   // W4: untimed round trips
	Rounds    int   // W4: timed round trips
}

// Full is the benchmark as BENCH.md defines it.
func Full() Params {
	return Params{BulkBytes: 1 << 30, Conns: 20000, Clients: 64, IdleConns: 10000, Warmup: 1000, Rounds: 100000}
}

// Quick is a short run of every workload, for CI.
func Quick() Params {
	return Params{BulkBytes: 64 << 20, Conns: 1000, Clients: 64, IdleConns: 500, Warmup: 100, Rounds: 2000}
}

// Tiny is the smoke test's size.
func Tiny() Params {
	return Params{BulkBytes: 4 << 20, Conns: 200, Clients: 16, IdleConns: 200, Warmup: 10, Rounds: 200}
}

// Chunk is the size of W1's writes and reads; Message is W4's message.
const (
	Chunk   = 64 << 10
	Message = 64
)

// Ports of the workloads' listeners.
const (
	PortBulk  = 5001
	PortConn  = 5002
	PortIdle  = 5003
	PortPing  = 5004
	IdleSleep = 200 * time.Millisecond // W3: time left for delayed ACKs and timers to settle before measuring
)

// accept accepts one connection in the background.
func accept(ln net.Listener) <-chan acceptResult {
	ch := make(chan acceptResult, 1)
	go func() {
		c, err := ln.Accept()
		ch <- acceptResult{c, err}
	}()
	return ch
}

type acceptResult struct {
	c   net.Conn
	err error
}

// connect returns an established pair: the client's end and the server's end.
func connect(n Net, ln net.Listener, port uint16) (client, server net.Conn, err error) {
	ach := accept(ln)
	client, err = n.Dial(context.Background(), port)
	if err != nil {
		ln.Close()
		<-ach
		return nil, nil, fmt.Errorf("dial: %w", err)
	}
	a := <-ach
	if a.err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("accept: %w", a.err)
	}
	return client, a.c, nil
}

// Bulk is W1: the server writes total bytes in 64 KiB writes; the client reads
// 64 KiB at a time and discards. The clock runs from the first write to the
// last byte read.
func Bulk(n Net, total int64) (Metrics, error) {
	ln, err := n.Listen(PortBulk)
	if err != nil {
		return nil, fmt.Errorf("W1 listen: %w", err)
	}
	defer ln.Close()
	cc, sc, err := connect(n, ln, PortBulk)
	if err != nil {
		return nil, fmt.Errorf("W1 %w", err)
	}
	start := make(chan struct{})
	werr := make(chan error, 1)
	wbuf := make([]byte, Chunk)
	go func() {
		<-start
		var sent int64
		for sent < total {
			m, err := sc.Write(wbuf[:min(int64(Chunk), total-sent)])
			sent += int64(m)
			if err != nil {
				werr <- fmt.Errorf("W1 server write after %d bytes: %w", sent, err)
				return
			}
		}
		werr <- nil
	}()
	rbuf := make([]byte, Chunk)
	var got int64
	var rerr error
	b := Begin()
	close(start)
	for got < total {
		m, err := cc.Read(rbuf)
		got += int64(m)
		if err != nil {
			rerr = fmt.Errorf("W1 client read after %d of %d bytes: %w", got, total, err)
			break
		}
	}
	e := End()
	if rerr != nil {
		cc.Close()
		sc.Close()
		<-werr
		return nil, rerr
	}
	if err := <-werr; err != nil {
		cc.Close()
		sc.Close()
		return nil, err
	}
	if err := errors.Join(cc.Close(), sc.Close()); err != nil {
		return nil, fmt.Errorf("W1 close: %w", err)
	}
	return BulkMetrics(Since(b, e), got), nil
}

// firstErr keeps the first error of many goroutines.
type firstErr struct {
	once sync.Once
	err  error
	set  atomic.Bool
}

func (f *firstErr) put(err error) {
	f.once.Do(func() { f.err = err; f.set.Store(true) })
}

// ConnRate is W2: total lifecycles (dial, accept, the client writes one byte,
// the server reads it and closes, the client reads EOF and closes) by clients
// concurrent clients; the server runs as many accepting goroutines.
func ConnRate(n Net, total, clients int) (Metrics, error) {
	ln, err := n.Listen(PortConn)
	if err != nil {
		return nil, fmt.Errorf("W2 listen: %w", err)
	}
	var fe firstErr
	var served atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1)
			for {
				c, err := ln.Accept()
				if err != nil {
					return // the listener closed at the end
				}
				if _, err := io.ReadFull(c, buf); err != nil {
					fe.put(fmt.Errorf("W2 server read: %w", err))
				}
				if err := c.Close(); err != nil {
					fe.put(fmt.Errorf("W2 server close: %w", err))
				}
				served.Add(1)
			}
		}()
	}
	lat := make([]time.Duration, total)
	var next atomic.Int64
	var cwg sync.WaitGroup
	b := Begin()
	for range clients {
		cwg.Add(1)
		go func() {
			defer cwg.Done()
			one := []byte{'x'}
			buf := make([]byte, 1)
			ctx := context.Background()
			for !fe.set.Load() {
				i := next.Add(1) - 1
				if i >= int64(total) {
					return
				}
				t0 := time.Now()
				c, err := n.Dial(ctx, PortConn)
				if err != nil {
					fe.put(fmt.Errorf("W2 dial %d: %w", i, err))
					return
				}
				if _, err := c.Write(one); err != nil {
					fe.put(fmt.Errorf("W2 client write: %w", err))
				}
				if m, err := c.Read(buf); m != 0 || err != io.EOF {
					fe.put(fmt.Errorf("W2 client read: got %d bytes and %v, want 0 and EOF", m, err))
				}
				if err := c.Close(); err != nil {
					fe.put(fmt.Errorf("W2 client close: %w", err))
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	cwg.Wait()
	e := End()
	ln.Close()
	wg.Wait()
	if fe.set.Load() {
		return nil, fe.err
	}
	if s := served.Load(); s != int64(total) {
		return nil, fmt.Errorf("W2: the server finished %d lifecycles of %d", s, total)
	}
	return ConnMetrics(Since(b, e), lat), nil
}

// IdleMem is W3: count established connections, both ends in the process,
// idle; it measures HeapInuse+StackInuse (after GC) and goroutines before and
// after, per connection pair. One connection made and kept before the first
// measurement warms both stacks up, so that what each stack allocates once (an
// output buffer, a table's first size) is not counted as the connections'.
func IdleMem(n Net, count int) (Metrics, error) {
	ln, err := n.Listen(PortIdle)
	if err != nil {
		return nil, fmt.Errorf("W3 listen: %w", err)
	}
	defer ln.Close()
	wc, ws, err := connect(n, ln, PortIdle)
	if err != nil {
		return nil, fmt.Errorf("W3 warm-up %w", err)
	}
	defer wc.Close()
	defer ws.Close()
	cs := make([]net.Conn, count)
	ss := make([]net.Conn, count)
	defer func() {
		for i := range count {
			if cs[i] != nil {
				cs[i].Close()
			}
			if ss[i] != nil {
				ss[i].Close()
			}
		}
	}()
	accepted := make(chan error, 1)
	measured := make(chan struct{})
	go func() {
		for i := range count {
			c, err := ln.Accept()
			if err != nil {
				accepted <- fmt.Errorf("W3 accept %d: %w", i, err)
				return
			}
			ss[i] = c
		}
		accepted <- nil
		<-measured // stay alive until measured, so the goroutine count is even
	}()
	defer close(measured)
	h0, s0, g0 := Memory()
	ctx := context.Background()
	for i := range count {
		if cs[i], err = n.Dial(ctx, PortIdle); err != nil {
			ln.Close()
			<-accepted
			return nil, fmt.Errorf("W3 dial %d: %w", i, err)
		}
	}
	if err := <-accepted; err != nil {
		return nil, err
	}
	time.Sleep(IdleSleep)
	h1, s1, g1 := Memory()
	runtime.KeepAlive(n)
	return IdleMetrics(h0, s0, g0, h1, s1, g1, count), nil
}

// PingPong is W4: one connection; the client writes a 64-byte message, the
// server echoes it, the client reads it back; warm untimed round trips, then
// rounds timed ones.
func PingPong(n Net, warm, rounds int) (Metrics, error) {
	ln, err := n.Listen(PortPing)
	if err != nil {
		return nil, fmt.Errorf("W4 listen: %w", err)
	}
	defer ln.Close()
	cc, sc, err := connect(n, ln, PortPing)
	if err != nil {
		return nil, fmt.Errorf("W4 %w", err)
	}
	defer cc.Close()
	echoed := make(chan error, 1)
	go func() {
		defer sc.Close()
		buf := make([]byte, Message)
		for {
			if _, err := io.ReadFull(sc, buf); err != nil {
				if err == io.EOF {
					err = nil
				}
				echoed <- err
				return
			}
			if _, err := sc.Write(buf); err != nil {
				echoed <- err
				return
			}
		}
	}()
	msg := make([]byte, Message)
	in := make([]byte, Message)
	rt := func() error {
		if _, err := cc.Write(msg); err != nil {
			return fmt.Errorf("W4 client write: %w", err)
		}
		if _, err := io.ReadFull(cc, in); err != nil {
			return fmt.Errorf("W4 client read: %w", err)
		}
		return nil
	}
	for range warm {
		if err := rt(); err != nil {
			return nil, err
		}
	}
	lat := make([]time.Duration, rounds)
	b := Begin()
	for i := range rounds {
		t0 := time.Now()
		if err := rt(); err != nil {
			return nil, err
		}
		lat[i] = time.Since(t0)
	}
	e := End()
	if err := cc.Close(); err != nil {
		return nil, fmt.Errorf("W4 close: %w", err)
	}
	if err := <-echoed; err != nil {
		return nil, fmt.Errorf("W4 server: %w", err)
	}
	return PingMetrics(Since(b, e), lat), nil
}
