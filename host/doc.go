// Package host drives a tcpeng engine in real time and gives Go programs the
// net package's interfaces on top of it.
//
// A Driver owns one engine.Engine (the native *engine.Stack, or any other
// implementation of the interface, such as the WebAssembly engine) and one Link
// (a TUN device, an in-memory pair, ...). It runs the engine's clock and timers
// and hands out net.Listener, net.Conn and a DialContext usable as
// http.Transport.DialContext:
//
//	a, b := memlink.NewPair(1500, 1024) // or a TUN device
//	stack, _ := engine.New(engine.Config{Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}})
//	d, _ := host.NewDriver(stack, a, nil)
//	defer d.Close()
//	ln, _ := d.Listen("tcp", "10.0.0.1:80")                           // a net.Listener
//	go http.Serve(ln, handler)
//	tr := &http.Transport{DialContext: otherDriver.DialContext}     // on the engine behind b
//
// Conns follow the net package's conventions: deadlines, CloseWrite,
// *net.TCPAddr addresses, and errors wrapped in *net.OpError that errors.Is
// matches against syscall.ECONNREFUSED, ECONNRESET, ETIMEDOUT (and the
// engine's own codes), io.EOF for the end of the stream, net.ErrClosed after
// Close, os.ErrDeadlineExceeded for deadlines.
//
// # Goroutines
//
// A Driver runs three goroutines, however many connections it carries: the
// link reader, which blocks in Link.ReadBatch; the writer, which hands large
// batches of frames to Link.WriteBatch while the engine goes on; and the
// engine goroutine, which runs timers and the work others leave to it.
// Engines are single-threaded, so one goroutine at a time holds the right to
// call Step, and it is usually not the engine goroutine: an application's
// Read, Write, Dial, Accept or Close, or the link reader with a few frames,
// runs the Step itself when nobody else is, with everything that accumulated
// meanwhile (frames, other connections' commands) in the same batch, and
// writes the resulting frames to the link itself when they are few. Whoever
// finds the engine busy records its work and leaves it to the goroutine
// running it. So a request and its answer cost no goroutine switch in the
// driver. A goroutine brought in by an application runs at most a few rounds
// for others before the engine goroutine takes over. Applications block on a
// per-connection sync.Cond; a Read or Write that cannot complete at once stays
// with the driver, which retries it when the engine says the connection
// became readable or writable, and wakes the caller only when it is done.
// Close stops all three goroutines.
//
// A blocked call, the engine goroutine and memlink's reader spin for up to
// 50 µs (yielding the processor) before they park, for as long as their
// waits keep ending that soon (host/internal/spin): waking a parked goroutine
// onto an idle CPU takes 30 to 100 µs on the virtual machines we measure on,
// and without the spin the two engines of a bulk transfer in one process ran
// one at a time (bench/README.md, W1 at MTU 65535). A connection or link
// that stays idle stops spinning after two long waits; with GOMAXPROCS 1
// nothing spins, nor with Options.NoSpin (for drivers whose traffic depends
// on other busy processes on the same CPUs). A TUN device spins in its reads
// with tun.Config.Spin.
//
// # Copies of a payload byte
//
// A byte written on a Conn of one Driver and read on a Conn of another, the two
// joined by memlink, is copied five times:
//
//  1. Write → the engine's send buffer (tcp.Conn.Write). TCP must keep every
//     byte until the peer acknowledges it, and Write returns the caller's buffer
//     to the caller, so the bytes are copied out of it. The command carries the
//     caller's slice itself: the driver adds no copy of its own.
//  2. send buffer → outgoing frame (PollFrame). A frame is one contiguous IP
//     packet with its headers in front of the payload; the engine assembles it
//     in its output arena, summing the checksum in the same pass as the copy.
//  3. frame → link (memlink.WriteBatch). The engine's frames are valid only
//     until the second Step after, so the link must copy them; on a TUN device
//     this is the kernel's copy in write(2).
//  4. (none) link → the driver's read batch: memlink.ReadBatch exchanges the
//     queue's buffer with the batch's (host.Link allows it) instead of copying.
//     On a TUN device this is the kernel's copy in read(2).
//  5. incoming frame → the engine's receive buffer (HandleFrame). The batch
//     buffer is reused for the next read, and segments may arrive out of
//     order, so the payload moves into the connection's reassembly ring.
//  6. receive buffer → Read's buffer (tcp.Conn.Read), the net.Conn contract.
//     The command carries the caller's slice: no intermediate buffer.
//
// Copies 1, 2, 5 and 6 are the engine's and are what any socket API over a
// packet interface needs (a kernel makes the same four). Copy 3 belongs to the
// link; a kernel TUN device makes 3 and 4. The driver itself copies no payload
// byte.
//
// # Allocation
//
// In steady state (an established connection moving data) neither the engine
// goroutine nor Read and Write allocate: the engine's Input and Output, the
// command list, the read batches and the per-connection wait state are reused.
// Dial, Listen, Accept, the first deadline set on a connection, and errors
// allocate.
package host
