package sim

import (
	"fmt"
	"net/netip"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/internal/app"
)

// Host is one engine of a network with its App and links. An App issues
// commands through it.
type Host struct {
	net      *Network
	index    int
	name     string
	eng      engine.Engine
	app      App
	addrs    []netip.Addr
	tx, rx   []*direction // the link directions leaving and reaching this host
	pending  []engine.Command
	cmds     []engine.Command // the commands of the Step in progress
	input    engine.Input
	output   engine.Output
	popped   []*direction // the direction of each frame of input.Frames
	deadline engine.Time
	steps    uint64
}

// Name returns the host's name.
func (h *Host) Name() string { return h.name }

// Engine returns the host's engine.
func (h *Host) Engine() engine.Engine { return h.eng }

// Addrs returns the host's addresses.
func (h *Host) Addrs() []netip.Addr { return h.addrs }

// Now returns the virtual time.
func (h *Host) Now() engine.Time { return h.net.now }

// Deadline returns the deadline the engine gave at its last Step.
func (h *Host) Deadline() engine.Time { return h.deadline }

// Steps returns how many times the engine was stepped.
func (h *Host) Steps() uint64 { return h.steps }

// Do queues c for the host's next Step, at the current instant. Data slices
// (OpWrite, OpRead) must stay untouched until the Result arrives. It fails
// with ErrTooManyCommands past Config.MaxCommands waiting commands.
func (h *Host) Do(c engine.Command) error {
	if len(h.pending) >= h.net.cfg.MaxCommands {
		return fmt.Errorf("%w: host %s has %d commands waiting for its next Step (Config.MaxCommands)",
			ErrTooManyCommands, h.name, len(h.pending))
	}
	h.pending = append(h.pending, c)
	return nil
}

// Fail stops the run: Run returns err (the first one given). Apps call it when
// something they check goes wrong.
func (h *Host) Fail(err error) { h.net.fail(err) }

func (h *Host) owns(a netip.Addr) bool {
	for _, o := range h.addrs {
		if o == a {
			return true
		}
	}
	return false
}

// route returns the link direction that carries frame f, or nil: the link to
// the host owning f's destination address, or the only link of a host with one.
func (h *Host) route(f []byte) *direction {
	if len(h.tx) == 1 {
		return h.tx[0]
	}
	var dst netip.Addr
	switch {
	case len(f) >= 20 && f[0]>>4 == 4:
		dst = netip.AddrFrom4([4]byte(f[16:20]))
	case len(f) >= 40 && f[0]>>4 == 6:
		dst = netip.AddrFrom16([16]byte(f[24:40]))
	default:
		return nil
	}
	for _, d := range h.tx {
		if d.to.owns(dst) {
			return d
		}
	}
	return nil
}

// due reports whether h has something to do at now.
func (h *Host) due(now engine.Time) bool {
	if len(h.pending) > 0 || h.deadline <= now {
		return true
	}
	for _, d := range h.rx {
		if d.wire.Next() <= now {
			return true
		}
	}
	return false
}

// App scripts one host of the network (see app.App: Start, then Result for
// each command a Step ran, then Event for each event).
type App = app.App[*Host]

// Funcs adapts functions to an App; nil fields do nothing.
type Funcs = app.Funcs[*Host]
