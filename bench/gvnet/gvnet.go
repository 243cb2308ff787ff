// Package gvnet is the gVisor column of the benchmark: two gVisor netstack
// stacks in one process, joined by an in-memory link that carries raw IPv4
// packets, with applications on gonet. The settings are BENCH.md's: SACK on,
// receive-buffer moderation on, receive buffer 4 KiB / 1 MiB / 8 MiB, send
// buffer 4 KiB / 1 MiB / 6 MiB, CUBIC, RACK off, Nagle off, checksums computed
// and verified (the link endpoints offer no checksum offload), no GSO.
package gvnet

import (
	"context"
	"fmt"
	"net"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/pipe"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/tcpeng/tcpeng/bench/workload"
)

// Link says how the two stacks are joined.
type Link string

const (
	// Channel: each stack's NIC is a link/channel endpoint with a 16384-packet
	// queue, and one pump goroutine per direction injects into the peer.
	Channel Link = "channel"
	// Pipe: link/pipe, which delivers each packet to the peer synchronously
	// inside the sender's write (the direct link).
	Pipe Link = "pipe"
)

// QueueLen is the channel endpoints' queue, in packets.
const QueueLen = 16384

// Addresses of the client and server stacks.
var (
	ClientAddr = tcpip.AddrFrom4([4]byte{10, 9, 0, 1})
	ServerAddr = tcpip.AddrFrom4([4]byte{10, 9, 0, 2})
)

// Pair is two gVisor stacks joined by a link. It implements workload.Net.
type Pair struct {
	client, server *stack.Stack
	chans          []*channel.Endpoint
	cancel         context.CancelFunc
	wg             sync.WaitGroup
}

var _ workload.Net = (*Pair)(nil)

// New returns two stacks joined by link at mtu.
func New(link Link, mtu int) (*Pair, error) {
	p := &Pair{}
	var epC, epS stack.LinkEndpoint
	switch link {
	case Channel:
		c, s := channel.New(QueueLen, uint32(mtu), ""), channel.New(QueueLen, uint32(mtu), "")
		p.chans = []*channel.Endpoint{c, s}
		epC, epS = c, s
	case Pipe:
		epC, epS = pipe.New("", "", uint32(mtu))
	default:
		return nil, fmt.Errorf("gvnet: unknown link %q: use %q or %q", link, Channel, Pipe)
	}
	var err error
	if p.client, err = newStack(epC, ClientAddr); err != nil {
		return nil, err
	}
	if p.server, err = newStack(epS, ServerAddr); err != nil {
		p.client.Close()
		return nil, err
	}
	if link == Channel {
		ctx, cancel := context.WithCancel(context.Background())
		p.cancel = cancel
		p.wg.Add(2)
		go p.pump(ctx, p.chans[0], p.chans[1])
		go p.pump(ctx, p.chans[1], p.chans[0])
	}
	return p, nil
}

// pump moves every packet that from's stack sends into to's stack.
func (p *Pair) pump(ctx context.Context, from, to *channel.Endpoint) {
	defer p.wg.Done()
	for {
		pkt := from.ReadContext(ctx)
		if pkt == nil {
			return
		}
		in := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: pkt.ToBuffer()})
		pkt.DecRef()
		to.InjectInbound(header.IPv4ProtocolNumber, in)
		in.DecRef()
	}
}

func newStack(ep stack.LinkEndpoint, addr tcpip.Address) (*stack.Stack, error) {
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	sack := tcpip.TCPSACKEnabled(true)
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	cubic := tcpip.CongestionControlOption("cubic")
	recovery := tcpip.TCPRecovery(0) // RACK off
	delay := tcpip.TCPDelayEnabled(false)
	opts := []tcpip.SettableTransportProtocolOption{
		&sack, &moderate, &cubic, &recovery, &delay,
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20},
		&tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 6 << 20},
	}
	for _, o := range opts {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			s.Close()
			return nil, fmt.Errorf("gvnet: setting %T: %s", o, err)
		}
	}
	if err := s.CreateNIC(1, ep); err != nil {
		s.Close()
		return nil, fmt.Errorf("gvnet: CreateNIC: %s", err)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: addr.WithPrefix()}
	if err := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); err != nil {
		s.Close()
		return nil, fmt.Errorf("gvnet: AddProtocolAddress: %s", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})
	return s, nil
}

// Listen listens on the server stack.
func (p *Pair) Listen(port uint16) (net.Listener, error) {
	return gonet.ListenTCP(p.server, tcpip.FullAddress{NIC: 1, Addr: ServerAddr, Port: port}, ipv4.ProtocolNumber)
}

// Dial connects from the client stack to the server stack.
func (p *Pair) Dial(ctx context.Context, port uint16) (net.Conn, error) {
	return gonet.DialContextTCP(ctx, p.client, tcpip.FullAddress{NIC: 1, Addr: ServerAddr, Port: port}, ipv4.ProtocolNumber)
}

// Close stops the pumps and both stacks.
func (p *Pair) Close() error {
	if p.cancel != nil {
		p.cancel()
		p.wg.Wait()
	}
	for _, s := range []*stack.Stack{p.client, p.server} {
		s.Close()
		s.Wait()
	}
	for _, c := range p.chans {
		c.Close()
	}
	return nil
}
