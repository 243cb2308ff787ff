// Package tcpnet is the benchmark's tcpeng net.Conn column: two engine stacks,
// each run by a host.Driver, joined by a host/memlink pair, with applications
// on the driver's net.Conn and net.Listener. The stacks have the raw column's
// configuration (raw.Config: 1 MiB buffers); the driver turns Nagle's
// algorithm off on every connection, as Go's net package does.
package tcpnet

import (
	"context"
	"errors"
	"net"
	"net/netip"

	"github.com/tcpeng/tcpeng/bench/raw"
	"github.com/tcpeng/tcpeng/bench/workload"
	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
	"github.com/tcpeng/tcpeng/host/memlink"
	"github.com/tcpeng/tcpeng/host/offload"
)

// QueueLen returns the memlink queue for mtu, in frames: room for a full
// window and a quarter (1.25 × 1 MiB of full-size segments; one connection
// never has more in flight), rounded up to a power of two: 1024 frames at MTU
// 1500, 32 at 65535. memlink copies each frame into a preallocated slot of its
// ring, so a deeper ring than the traffic needs only spreads the copies over
// cold memory: at MTU 65535, 128 slots (8 MiB a direction, four windows)
// gave W1 about 15% less throughput and 15% more CPU than 32, and 16384 slots
// at MTU 1500 cost about 15% more CPU than 2048. gVisor's channel queue holds
// pointers and has no such cost.
func QueueLen(mtu int) int {
	need := (raw.Buffer + raw.Buffer/4 + mtu - 41) / (mtu - 40)
	n := 1
	for n < need {
		n <<= 1
	}
	return n
}

// Pair is two drivers joined by memlink. It implements workload.Net.
type Pair struct {
	client, server *host.Driver
}

var _ workload.Net = (*Pair)(nil)

// New returns a client and a server driver at mtu, on native engines.
func New(mtu int) (*Pair, error) { return NewWith(mtu, Options{}) }

// NewEngine makes an engine: engine.New, or the WebAssembly engine's
// (bindings/wazero).
type NewEngine func(engine.Config) (engine.Engine, error)

// Native is the NewEngine of the native stack.
func Native(c engine.Config) (engine.Engine, error) { return engine.New(c) }

// Options choose the engines of a pair.
type Options struct {
	// Client and Server make the two engines; nil is Native. (In W1 the
	// server sends and the client receives.)
	Client, Server NewEngine
	// Offload puts each engine behind host/offload.Engine, made with
	// engine.Config.SegmentOffload: it receives bursts joined and sends
	// super-packets that are cut at the MTU. The wrapper checks the checksums
	// of what arrives (Verify), so the engine is made with TrustLink.
	Offload bool
}

// NewWith returns a client and a server driver at mtu, on the engines o
// chooses.
func NewWith(mtu int, o Options) (*Pair, error) {
	a, b := memlink.NewPair(mtu, QueueLen(mtu))
	sc, err := o.make(o.Client, raw.Config(raw.ClientAddr, mtu, 1))
	if err != nil {
		return nil, err
	}
	ss, err := o.make(o.Server, raw.Config(raw.ServerAddr, mtu, 2))
	if err != nil {
		return nil, err
	}
	p := &Pair{}
	if p.client, err = host.NewDriver(sc, a, nil); err != nil {
		return nil, err
	}
	if p.server, err = host.NewDriver(ss, b, nil); err != nil {
		p.client.Close()
		return nil, err
	}
	return p, nil
}

func (o Options) make(mk NewEngine, c engine.Config) (engine.Engine, error) {
	if mk == nil {
		mk = Native
	}
	c.SegmentOffload, c.TrustLink = o.Offload, o.Offload
	e, err := mk(c)
	if err != nil || !o.Offload {
		return e, err
	}
	w := offload.New(e, c.MTU)
	w.Verify = true
	return w, nil
}

// Listen listens on the server driver.
func (p *Pair) Listen(port uint16) (net.Listener, error) {
	l, err := p.server.ListenTCP(netip.AddrPortFrom(raw.ServerAddr, port))
	if err != nil {
		return nil, err
	}
	return l, nil
}

// Dial connects from the client driver to the server.
func (p *Pair) Dial(ctx context.Context, port uint16) (net.Conn, error) {
	c, err := p.client.DialTCP(ctx, netip.AddrPortFrom(raw.ServerAddr, port))
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Close closes both drivers.
func (p *Pair) Close() error {
	return errors.Join(p.client.Close(), p.server.Close())
}
