// Package raw is the benchmark's sans-I/O column: two *engine.Stack driven
// through Step by one goroutine, with no goroutines, no locks and no link
// copies. It shows what the engine itself costs, beside the net.Conn column
// (which adds the host driver and the link) and gVisor.
//
// # The loop
//
// One round steps the client, then the server. Each Step takes as input the
// frames the peer's previous Step returned, as they are: Step does not retain
// its input, and a stack's output frames stay valid until its own next Step,
// which comes only after the peer consumed them. A side with no frames to take,
// no command to run and no deadline due is not stepped. The clock is the
// process's monotonic clock; a side waiting only for a timer spins until it is
// due.
//
// Applications react to results and events as an event loop would: a writer
// writes until a write is short and waits for EventWritable; a reader that
// expects data puts its reads in the same Step as the frames that may carry it
// (commands run after frames in a Step), so a byte is read in the Step that
// receives it.
package raw

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/tcpeng/tcpeng/bench/workload"
	"github.com/tcpeng/tcpeng/engine"
)

// Addresses of the two stacks.
var (
	ClientAddr = netip.AddrFrom4([4]byte{10, 9, 0, 1})
	ServerAddr = netip.AddrFrom4([4]byte{10, 9, 0, 2})
)

// Buffer is each connection's send and receive buffer: gVisor's default (1 MiB).
const Buffer = 1 << 20

// Limit bounds the wall time of one workload; past it the workload fails
// instead of spinning forever.
var Limit = 5 * time.Minute

// Config returns the engine configuration both columns of tcpeng use for a
// stack at addr: 1 MiB buffers, the given MTU, a fixed seed and key.
func Config(addr netip.Addr, mtu int, seed uint64) engine.Config {
	return engine.Config{
		Addrs:      []netip.Addr{addr},
		MTU:        mtu,
		Seed:       seed,
		Key:        [16]byte{'t', 'c', 'p', 'e', 'n', 'g', '-', 'b', 'e', 'n', 'c', 'h', byte(seed)},
		SendBuffer: Buffer,
		RecvBuffer: Buffer,
	}
}

// Pair is two stacks, 0 the client and 1 the server, driven through Step.
type Pair struct {
	st    [2]*engine.Stack
	in    [2]engine.Input
	out   [2]engine.Output
	cmds  [2][]engine.Command
	base  time.Time
	now   engine.Time
	limit time.Time
	spins int
	Steps [2]uint64 // Steps taken by each side
}

// New returns a client and a server stack at mtu.
func New(mtu int) (*Pair, error) {
	p := &Pair{base: time.Now()}
	for i, a := range []netip.Addr{ClientAddr, ServerAddr} {
		s, err := engine.New(Config(a, mtu, uint64(i+1)))
		if err != nil {
			return nil, err
		}
		p.st[i] = s
		p.cmds[i] = make([]engine.Command, 0, 64)
	}
	return p, nil
}

// Stack returns side i's stack (0 client, 1 server).
func (p *Pair) Stack(i int) *engine.Stack { return p.st[i] }

// tick reads the clock. Every 4096 calls it checks the wall-time limit.
func (p *Pair) tick() error {
	p.now = engine.Time(time.Since(p.base))
	p.spins++
	if p.spins&4095 == 0 && !p.limit.IsZero() && time.Now().After(p.limit) {
		return fmt.Errorf("raw: no progress within %v (client %d steps, server %d steps)", Limit, p.Steps[0], p.Steps[1])
	}
	return nil
}

func (p *Pair) start() { p.limit = time.Now().Add(Limit) }

// need reports whether side i has anything to do: frames from the peer,
// commands, or a deadline due.
func (p *Pair) need(i int) bool {
	return len(p.out[1-i].Frames) > 0 || len(p.cmds[i]) > 0 || p.out[i].Deadline <= p.now
}

// step runs one Step of side i with the peer's frames and cmds[i]; the results
// and events are in p.out[i] afterwards.
func (p *Pair) step(i int) *engine.Output {
	o := 1 - i
	in := &p.in[i]
	in.Now = p.now
	in.Frames = p.out[o].Frames
	in.Commands = p.cmds[i]
	p.st[i].Step(in, &p.out[i])
	p.out[o].Frames = p.out[o].Frames[:0] // consumed
	p.cmds[i] = p.cmds[i][:0]
	p.Steps[i]++
	return &p.out[i]
}

// incoming returns the bytes of frames waiting for side i.
func (p *Pair) incoming(i int) int {
	n := 0
	for _, f := range p.out[1-i].Frames {
		n += len(f)
	}
	return n
}

func (p *Pair) cmd(i int, c engine.Command) { p.cmds[i] = append(p.cmds[i], c) }

// fail turns a connection's reset or error event into an error.
func fail(side string, ev engine.Event) error {
	switch ev.Kind {
	case engine.EventReset, engine.EventError:
		return fmt.Errorf("raw: %s connection %d: %v: %w", side, ev.Conn, ev.Kind, ev.Err)
	}
	return nil
}

// checkResults fails on any result error other than the expected ones.
func checkResults(side string, cmds []engine.Command, out *engine.Output, ok ...engine.Error) error {
	for i, r := range out.Results {
		if r.Err == engine.OK {
			continue
		}
		allowed := false
		for _, e := range ok {
			allowed = allowed || r.Err == e
		}
		if !allowed {
			return fmt.Errorf("raw: %s %v on connection %d: %w", side, cmds[i].Op, cmds[i].Conn, r.Err)
		}
	}
	return nil
}

// Listen makes the server listen on port.
func (p *Pair) Listen(port uint16) (engine.ConnID, error) {
	if err := p.tick(); err != nil {
		return 0, err
	}
	p.cmd(1, engine.Command{Op: engine.OpListen, Addr: netip.AddrPortFrom(ServerAddr, port)})
	out := p.step(1)
	if err := out.Results[0].Err; err != engine.OK {
		return 0, fmt.Errorf("raw: listen on %d: %w", port, err)
	}
	return out.Results[0].Conn, nil
}

func noDelay(id engine.ConnID) engine.Command {
	return engine.Command{Op: engine.OpSetOption, Conn: id, Option: engine.OptNoDelay, Value: 1}
}

// Connect establishes one connection to the listener lis at port and turns
// Nagle's algorithm off on both ends.
func (p *Pair) Connect(lis engine.ConnID, port uint16) (client, server engine.ConnID, err error) {
	p.start()
	p.cmd(0, engine.Command{Op: engine.OpDial, Addr: netip.AddrPortFrom(ServerAddr, port)})
	connected := false
	for !connected || server == 0 {
		if err := p.tick(); err != nil {
			return 0, 0, err
		}
		if p.need(0) {
			cmds := p.cmds[0]
			out := p.step(0)
			if len(cmds) > 0 && cmds[0].Op == engine.OpDial {
				if r := out.Results[0]; r.Err != engine.OK {
					return 0, 0, fmt.Errorf("raw: dial: %w", r.Err)
				}
				client = out.Results[0].Conn
			}
			for _, ev := range out.Events {
				if err := fail("client", ev); err != nil {
					return 0, 0, err
				}
				connected = connected || ev.Kind == engine.EventConnected && ev.Conn == client
			}
		}
		if server == 0 {
			p.cmd(1, engine.Command{Op: engine.OpAccept, Conn: lis})
		}
		if p.need(1) {
			acc := len(p.cmds[1]) > 0
			out := p.step(1)
			if acc && out.Results[0].Err == engine.OK {
				server = out.Results[0].Conn
			}
		}
	}
	p.cmd(0, noDelay(client))
	p.cmd(1, noDelay(server))
	for i := range 2 {
		cmds := p.cmds[i]
		if err := checkResults("setup", cmds, p.step(i)); err != nil {
			return 0, 0, err
		}
	}
	return client, server, nil
}

// Close releases the stacks' memory for the garbage collector.
func (p *Pair) Close() error {
	p.st = [2]*engine.Stack{}
	return nil
}

// Bulk is W1 on the raw engine: the server writes total bytes in 64 KiB writes,
// the client reads 64 KiB at a time.
func (p *Pair) Bulk(total int64) (workload.Metrics, error) {
	lis, err := p.Listen(workload.PortBulk)
	if err != nil {
		return nil, err
	}
	c, s, err := p.Connect(lis, workload.PortBulk)
	if err != nil {
		return nil, err
	}
	const maxCmds = Buffer / workload.Chunk
	chunk := make([]byte, workload.Chunk)
	rbuf := make([]byte, workload.Chunk)
	var sent, got int64
	off := 0 // bytes of the current 64 KiB write already taken
	canWrite, readable := true, false
	p.start()
	b := workload.Begin()
	for got < total {
		if err := p.tick(); err != nil {
			return nil, err
		}
		// Client: read what the arriving frames may carry, or what is left.
		if in := p.incoming(0); in > 0 || readable {
			k := maxCmds
			if !readable {
				k = min(in/workload.Chunk+2, maxCmds)
			}
			for range k {
				p.cmd(0, engine.Command{Op: engine.OpRead, Conn: c, Data: rbuf})
			}
		}
		if p.need(0) {
			cmds := p.cmds[0]
			out := p.step(0)
			if err := checkResults("client", cmds, out, engine.ErrWouldBlock); err != nil {
				return nil, err
			}
			drained := false
			for _, r := range out.Results {
				got += int64(r.N)
				drained = drained || r.Err == engine.ErrWouldBlock
			}
			// Readable events come from this Step's frames, which the reads
			// that followed them saw: after an ErrWouldBlock they are stale.
			readable = !drained && readable
			for _, ev := range out.Events {
				if err := fail("client", ev); err != nil {
					return nil, err
				}
				if ev.Kind == engine.EventReadable && ev.Conn == c && !drained {
					readable = true
				}
			}
		}
		// Server: write until a write is short.
		if canWrite && sent < total {
			pos := sent
			for range maxCmds {
				if pos >= total {
					break
				}
				n := int64(workload.Chunk - off)
				if pos != sent {
					n = workload.Chunk
				}
				n = min(n, total-pos)
				d := chunk[workload.Chunk-int(n):]
				p.cmd(1, engine.Command{Op: engine.OpWrite, Conn: s, Data: d})
				pos += n
			}
		}
		if p.need(1) {
			cmds := p.cmds[1]
			out := p.step(1)
			if err := checkResults("server", cmds, out, engine.ErrWouldBlock); err != nil {
				return nil, err
			}
			for i, r := range out.Results {
				sent += int64(r.N)
				if r.N < len(cmds[i].Data) {
					off = (off + r.N) % workload.Chunk
					canWrite = false
					break
				}
				off = 0
			}
			for _, ev := range out.Events {
				if err := fail("server", ev); err != nil {
					return nil, err
				}
				if ev.Kind == engine.EventWritable && ev.Conn == s {
					canWrite = true
				}
			}
		}
	}
	e := workload.End()
	return workload.BulkMetrics(workload.Since(b, e), got), nil
}
