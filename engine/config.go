package engine

import (
	"errors"
	"net/netip"
	"strconv"

	"github.com/tcpeng/tcpeng/engine/tcpip"
)

// Config configures a Stack. The zero value of every field means its default,
// so Config{Addrs: ...} is a complete configuration.
type Config struct {
	// Addrs are the stack's own addresses; at least one IPv4 address is required.
	// Frames to other destinations are dropped and counted.
	Addrs []netip.Addr

	// MTU is the largest IP packet sent or expected, in bytes. Default 1500;
	// at least 576 (RFC 791), at most 65535. The MSS offered is MTU-40.
	MTU int

	// Seed seeds the stack's random choices (ephemeral ports, IP IDs). The same
	// seed and the same inputs give byte-identical outputs.
	Seed uint64

	// Key is the secret of the keyed hash behind initial sequence numbers
	// (RFC 6528) and the connection table. All zero is allowed but predictable:
	// hosts should fill it from a cryptographic source.
	Key [16]byte

	// SendBuffer and RecvBuffer are each connection's buffer sizes in bytes,
	// changeable per connection with SetOption. Default 1 MiB each. Memory is
	// taken in 16 KiB chunks only while bytes are held.
	SendBuffer, RecvBuffer int

	// MaxConns bounds connections and listeners together (default 65536, at most
	// 1<<20). Past it, Dial fails with ErrLimit and SYNs are dropped and counted.
	MaxConns int

	// Backlog is the listen backlog used when Listen is given 0 (default 128): the
	// most connections a listener holds, half-open and not yet accepted together.
	// A SYN past it is dropped and counted.
	Backlog int

	// EphemeralLow and EphemeralHigh bound the local ports Dial picks
	// (RFC 6056 §3.2; default 49152-65535, the IANA dynamic range).
	EphemeralLow, EphemeralHigh uint16

	// MSL is the maximum segment lifetime; TIME_WAIT lasts 2×MSL. Default 30 s
	// (Linux's 60 s TIME_WAIT; RFC 9293 §3.4.2 suggests 2 minutes).
	MSL tcpip.Duration
	// InitialRTO is the retransmission timeout before any RTT sample (RFC 6298
	// §2.1). Default 1 s.
	InitialRTO tcpip.Duration
	// MinRTO is the floor of the retransmission timeout. Default 200 ms (Linux's;
	// RFC 6298 §2.4 says 1 s).
	MinRTO tcpip.Duration
	// MaxRTO is the ceiling of the retransmission timeout (RFC 6298 §2.5). Default 60 s.
	MaxRTO tcpip.Duration
	// DelayedAck is the longest an ACK is delayed (RFC 9293 §3.8.6.3). Default 40 ms;
	// a negative value turns delayed ACKs off.
	DelayedAck tcpip.Duration
	// KeepaliveIdle, KeepaliveInterval and KeepaliveCount shape keepalive probes on
	// connections that turn them on (off by default; RFC 9293 §3.8.4). Defaults:
	// 2 h idle, 75 s between probes, 9 probes.
	KeepaliveIdle, KeepaliveInterval tcpip.Duration
	KeepaliveCount                   int
	// MaxRetries is how many times one segment is retransmitted before the
	// connection fails with ErrTimedOut (RFC 9293 §3.8.3's R2). Default 15
	// (Linux's tcp_retries2, about 15 minutes with the backoff).
	MaxRetries int
	// SynRetries is the same for SYNs and SYN-ACKs (R2 for SYN). Default 6.
	SynRetries int
	// FinWait2Timeout is how long a connection the application has closed waits in
	// FIN_WAIT_2 for the peer's FIN. Default 60 s.
	FinWait2Timeout tcpip.Duration
	// NoWindowScale turns the window scale option off (RFC 7323); with it windows
	// are limited to 64 KiB.
	NoWindowScale bool
	// NoSACK turns selective acknowledgments off (RFC 2018); loss recovery is
	// then NewReno's (RFC 6582).
	NoSACK bool
	// NoTimestamps turns the timestamps option off (RFC 7323): 12 bytes more
	// payload per segment, but RTT samples only by Karn's rule and no PAWS.
	NoTimestamps bool
	// InvalidAckInterval is the least time between two ACKs a connection sends in
	// answer to segments it does not accept (out of the window, ACKs of data never
	// sent, challenge ACKs; RFC 5961 §7). Default 500 ms, Linux's
	// tcp_invalid_ratelimit; without it two ends out of step exchange ACKs forever.
	InvalidAckInterval tcpip.Duration
	// MaxOutOfOrder bounds the out-of-order ranges each connection holds.
	// Default 32; past it, out-of-order segments are dropped and counted.
	MaxOutOfOrder int

	// Forward makes the stack take packets to any destination, not only to Addrs:
	// a listener on the unspecified address and port 0 then accepts connections
	// to every address and port, and each accepted connection's local address is
	// the destination the peer asked for. This is the transparent mode of
	// userspace networking (`tcpeng forward`, slirp4netns, pasta).
	Forward bool

	// TrustLink says the link cannot corrupt frames: a TUN device, where the
	// local kernel wrote every byte, or an in-process link. The IPv4 header and
	// TCP checksums of arriving frames are then not verified (RFC 1122 §3.2.1.2
	// and RFC 9293 §3.1 make verification the receiver's duty on a real network;
	// a link without bit errors makes it a pure cost). Sent frames always carry
	// correct checksums. Leave it off for anything that crosses a wire.
	TrustLink bool

	// PartialChecksums leaves the TCP checksum of sent frames for the link to
	// finish, as a NIC with checksum offload does: the checksum field carries
	// only the sum of the pseudo-header (RFC 9293 §3.1), not complemented, and
	// the segment is not summed. This is Linux's CHECKSUM_PARTIAL, with the
	// sum to complete from the TCP header (offset 16 in it) to the end of the
	// frame. Set it only for a link that finishes the checksum or tells the
	// receiver it need not check it: a TUN device with virtio-net headers
	// (host/tun with Config.Offload writes every TCP frame with
	// VIRTIO_NET_HDR_F_NEEDS_CSUM, and the kernel then sums nothing for a
	// local receiver). Anything else that reads the frames (a packet capture,
	// a peer engine) sees checksums it must call bad. IPv4 header checksums
	// are always complete.
	PartialChecksums bool

	// SegmentOffload lets Step hand over TCP frames longer than the MTU, as a
	// stack does to a NIC with TCP segmentation offload: a run of new data that
	// would have gone as several full-sized segments goes as one frame of up
	// to 65535 bytes, to be cut at the MTU. Cutting it (host/offload.NewSuperMTU) gives,
	// byte for byte, the frames the stack sends without the option: each piece
	// gets the frame's headers with its own IPv4 total length, ID (the frame's
	// plus the piece's index), header checksum, sequence number, and TCP
	// checksum; PSH and FIN stay on the last piece. Such a frame's TCP checksum
	// field carries only the pseudo-header sum (as with PartialChecksums), and
	// its payload is not summed: the cutter sums each piece as it copies it.
	// Only frames longer than the MTU are affected; the others are as without
	// the option. A connection uses it only while its MSS is the one the MTU
	// gives (the peer offered at least as much), so that the cut at the MTU is
	// the cut at the MSS. Set it only when every frame of Step goes through a
	// cutter: host/offload.Engine does that for any engine, native or
	// WebAssembly, and saves the engine per-segment work, which matters most
	// in WebAssembly.
	SegmentOffload bool

	// TraceStates asks for an EventState at every state change of every connection.
	TraceStates bool

	// OutputBuffer bounds the bytes of frames one Step returns. Default 1 MiB.
	// Frames that do not fit stay queued and the deadline is set to now.
	OutputBuffer int
	// MaxFreeChunks bounds the 16 KiB buffer chunks kept for reuse, and the
	// chunk tables. Default 256 (4 MiB): enough for a few full windows in flight.
	MaxFreeChunks int
}

// Defaults.
const (
	DefaultMTU        = 1500
	DefaultBuffer     = 1 << 20
	DefaultMaxConns   = 65536
	DefaultBacklog    = 128
	MaxConnsLimit     = 1 << connIndexBits
	minMTU            = 576
	defaultOutput     = 1 << 20
	defaultFreeChunks = 256
)

// withDefaults returns c with every zero field set to its default, or an error
// saying which field is invalid.
func (c Config) withDefaults() (Config, error) {
	def := func(p *tcpip.Duration, d tcpip.Duration) {
		if *p == 0 {
			*p = d
		}
	}
	defInt := func(p *int, d int) {
		if *p == 0 {
			*p = d
		}
	}
	defInt(&c.MTU, DefaultMTU)
	defInt(&c.SendBuffer, DefaultBuffer)
	defInt(&c.RecvBuffer, DefaultBuffer)
	defInt(&c.MaxConns, DefaultMaxConns)
	defInt(&c.Backlog, DefaultBacklog)
	defInt(&c.KeepaliveCount, 9)
	defInt(&c.MaxRetries, 15)
	defInt(&c.SynRetries, 6)
	defInt(&c.MaxOutOfOrder, 32)
	defInt(&c.OutputBuffer, defaultOutput)
	defInt(&c.MaxFreeChunks, defaultFreeChunks)
	def(&c.MSL, 30*tcpip.Second)
	def(&c.InitialRTO, tcpip.Second)
	def(&c.MinRTO, 200*tcpip.Millisecond)
	def(&c.MaxRTO, 60*tcpip.Second)
	def(&c.DelayedAck, 40*tcpip.Millisecond)
	def(&c.KeepaliveIdle, 2*tcpip.Hour)
	def(&c.KeepaliveInterval, 75*tcpip.Second)
	def(&c.FinWait2Timeout, 60*tcpip.Second)
	def(&c.InvalidAckInterval, 500*tcpip.Millisecond)
	if c.EphemeralLow == 0 && c.EphemeralHigh == 0 {
		c.EphemeralLow, c.EphemeralHigh = 49152, 65535
	}

	var v4 bool
	for _, a := range c.Addrs {
		if !a.IsValid() || a.Zone() != "" {
			return c, errors.New("tcpeng: Config.Addrs holds " + a.String() + ": give plain IPv4 or IPv6 addresses")
		}
		v4 = v4 || a.Is4()
	}
	switch {
	case !v4:
		return c, errors.New("tcpeng: Config.Addrs has no IPv4 address: give the stack at least one (for example 10.7.0.2)")
	case c.MTU < minMTU || c.MTU > 65535:
		return c, errors.New("tcpeng: Config.MTU " + itoa(c.MTU) + " is out of range: use 576 to 65535")
	case c.SendBuffer < 1 || c.SendBuffer > 1<<30 || c.RecvBuffer < 1 || c.RecvBuffer > 1<<30:
		return c, errors.New("tcpeng: Config buffers " + itoa(c.SendBuffer) + "/" + itoa(c.RecvBuffer) + " out of range: use 1 byte to 1 GiB")
	case c.MaxConns < 1 || c.MaxConns > MaxConnsLimit:
		return c, errors.New("tcpeng: Config.MaxConns " + itoa(c.MaxConns) + " is out of range: use 1 to " + itoa(MaxConnsLimit))
	case c.Backlog < 1:
		return c, errors.New("tcpeng: Config.Backlog " + itoa(c.Backlog) + " must be positive")
	case c.EphemeralLow == 0 || c.EphemeralLow > c.EphemeralHigh:
		return c, errors.New("tcpeng: ephemeral port range " + itoa(int(c.EphemeralLow)) + "-" + itoa(int(c.EphemeralHigh)) + " is empty or starts at 0")
	case c.MinRTO <= 0 || c.MaxRTO < c.MinRTO || c.InitialRTO <= 0 || c.MSL <= 0 || c.KeepaliveIdle <= 0 ||
		c.KeepaliveInterval <= 0 || c.FinWait2Timeout <= 0 || c.InvalidAckInterval <= 0:
		return c, errors.New("tcpeng: Config timers must be positive, and MaxRTO at least MinRTO")
	case c.KeepaliveCount < 1 || c.MaxRetries < 1 || c.SynRetries < 1 || c.MaxOutOfOrder < 1:
		return c, errors.New("tcpeng: Config counts (KeepaliveCount, MaxRetries, SynRetries, MaxOutOfOrder) must be positive")
	case c.OutputBuffer < c.MTU:
		return c, errors.New("tcpeng: Config.OutputBuffer " + itoa(c.OutputBuffer) + " is below the MTU " + itoa(c.MTU))
	}
	return c, nil
}

func itoa(n int) string { return strconv.Itoa(n) }
