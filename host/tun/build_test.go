package tun

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// seg describes a TCP segment for the builders.
type seg struct {
	src, dst netip.AddrPort
	seq, ack uint32
	flags    wire.Flags
	window   uint16
	urgent   uint16
	opts     *wire.Options
	payload  []byte
	// IPv4
	id      uint16
	noDF    bool
	tos     uint8
	ttl     uint8
	ipOpts  []byte
	flowLbl uint32 // IPv6
}

// frame builds s as an IPv4 or IPv6 packet with full checksums.
func (s seg) frame() []byte {
	ttl := s.ttl
	if ttl == 0 {
		ttl = 64
	}
	thl := wire.TCPMinHeaderLen
	if s.opts != nil {
		thl += s.opts.Len()
	}
	tcpLen := thl + len(s.payload)
	var b []byte
	var ipHL int
	if s.src.Addr().Is4() {
		ipHL = wire.IPv4MinHeaderLen + len(s.ipOpts)
		b = make([]byte, ipHL+tcpLen)
		var fl uint8 = wire.IPv4DontFragment
		if s.noDF {
			fl = 0
		}
		wire.PutIPv4(b, wire.IPv4Header{TOS: s.tos, TotalLen: len(b), ID: s.id, Flags: fl, TTL: ttl,
			Protocol: wire.ProtoTCP, Src: s.src.Addr(), Dst: s.dst.Addr(), Options: s.ipOpts})
	} else {
		ipHL = wire.IPv6HeaderLen
		b = make([]byte, ipHL+tcpLen)
		wire.PutIPv6(b, wire.IPv6Header{TrafficClass: s.tos, FlowLabel: s.flowLbl, PayloadLen: tcpLen,
			NextHeader: wire.ProtoTCP, HopLimit: ttl, Src: s.src.Addr(), Dst: s.dst.Addr()})
	}
	wire.PutTCP(b[ipHL:], wire.TCPHeader{SrcPort: s.src.Port(), DstPort: s.dst.Port(), Seq: wire.Seq(s.seq),
		Ack: wire.Seq(s.ack), Flags: s.flags, Window: s.window, Urgent: s.urgent}, s.opts)
	copy(b[ipHL+thl:], s.payload)
	wire.SetTCPChecksum(b[ipHL:], s.src.Addr(), s.dst.Addr())
	return b
}

// super builds the packet the kernel hands over for a TSO burst: s with all its
// payload, the IPv4 total length (or IPv6 payload length) of the whole, and
// the pseudo-header sum in the checksum field (CHECKSUM_PARTIAL), behind a
// virtio-net header with gso_size and NEEDS_CSUM.
func (s seg) super(gsoSize int) []byte {
	f := s.frame()
	v6 := !s.src.Addr().Is4()
	ipHL, gso := wire.IPv4MinHeaderLen+len(s.ipOpts), uint8(vnetGSOTCPv4)
	if v6 {
		ipHL, gso = wire.IPv6HeaderLen, vnetGSOTCPv6
	}
	tcpLen := len(f) - ipHL
	binary.BigEndian.PutUint16(f[ipHL+16:], wire.PseudoHeaderChecksum(wire.ProtoTCP, s.src.Addr(), s.dst.Addr(), tcpLen))
	h := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: gso, hdrLen: uint16(len(f)), gsoSize: uint16(gsoSize),
		csumStart: uint16(ipHL), csumOffset: 16}
	out := make([]byte, vnetHdrLen+len(f))
	h.put(out)
	copy(out[vnetHdrLen:], f)
	return out
}

var (
	a4 = netip.MustParseAddrPort("10.7.0.1:40000")
	b4 = netip.MustParseAddrPort("10.7.0.2:7")
	c4 = netip.MustParseAddrPort("10.7.0.3:7")
	a6 = netip.MustParseAddrPort("[fd07::1]:40000")
	b6 = netip.MustParseAddrPort("[fd07::2]:7")
)

func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = seed + byte(i*7) + byte(i>>8)
	}
	return b
}

// checkValid fails unless f is a well-formed IPv4 or IPv6 TCP packet with
// valid checksums.
func checkValid(t testing.TB, f []byte) {
	t.Helper()
	if len(f) == 0 {
		t.Fatalf("empty frame")
	}
	switch f[0] >> 4 {
	case 4:
		ip, err := wire.ParseIPv4(f)
		if err != nil || len(ip) != len(f) || !ip.ChecksumValid() {
			t.Fatalf("bad IPv4 packet (%v) % x", err, f[:min(len(f), 60)])
		}
		if !wire.TCP(ip.Payload()).ChecksumValid(ip.Src(), ip.Dst()) {
			t.Fatalf("bad TCP checksum % x", f[:min(len(f), 60)])
		}
	case 6:
		ip, err := wire.ParseIPv6(f)
		if err != nil || len(ip) != len(f) {
			t.Fatalf("bad IPv6 packet (%v)", err)
		}
		if !wire.TCP(ip.Payload()).ChecksumValid(ip.Src(), ip.Dst()) {
			t.Fatalf("bad TCP checksum % x", f[:min(len(f), 80)])
		}
	default:
		t.Fatalf("not IP: % x", f[:min(len(f), 20)])
	}
}

func equalFrames(t *testing.T, got, want [][]byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d frames, want %d", len(got), len(want))
	}
	for i := range got {
		if !bytes.Equal(got[i], want[i]) {
			t.Fatalf("frame %d differs\n got % x\nwant % x", i, got[i][:min(len(got[i]), 80)], want[i][:min(len(want[i]), 80)])
		}
	}
}
