package pipe

import (
	"fmt"
	"net/netip"

	"github.com/tcpeng/tcpeng/engine"
)

// Host is an App's handle on its side of the pipe: it queues commands for the
// side's next Step and can stop the run with an error.
type Host struct {
	p       *Pipe
	side    Side
	pending []engine.Command
}

// Side returns the side the host belongs to.
func (h *Host) Side() Side { return h.side }

// Now returns the virtual time.
func (h *Host) Now() engine.Time { return h.p.now }

// Do queues c for the side's next Step. Data slices (OpWrite, OpRead) must stay
// untouched until the Result arrives. It fails with ErrTooManyCommands past
// Config.MaxCommands waiting commands.
func (h *Host) Do(c engine.Command) error {
	if len(h.pending) >= h.p.cfg.MaxCommands {
		return fmt.Errorf("%w: side %v has %d commands waiting for its next Step (Config.MaxCommands)",
			ErrTooManyCommands, h.side, len(h.pending))
	}
	h.pending = append(h.pending, c)
	return nil
}

// Fail stops the run: Run returns err (the first one given). Apps call it when
// something they check goes wrong.
func (h *Host) Fail(err error) {
	if h.p.err == nil {
		h.p.err = err
	}
}

// Listen queues OpListen on addr with the default backlog.
func (h *Host) Listen(addr netip.AddrPort) error {
	return h.Do(engine.Command{Op: engine.OpListen, Addr: addr})
}

// Dial queues OpDial to remote from an ephemeral port.
func (h *Host) Dial(remote netip.AddrPort) error {
	return h.Do(engine.Command{Op: engine.OpDial, Addr: remote})
}

// Accept queues OpAccept on listener l.
func (h *Host) Accept(l engine.ConnID) error {
	return h.Do(engine.Command{Op: engine.OpAccept, Conn: l})
}

// Close queues OpClose on id.
func (h *Host) Close(id engine.ConnID) error {
	return h.Do(engine.Command{Op: engine.OpClose, Conn: id})
}
