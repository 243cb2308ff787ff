package tun

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/engine/wire"
	"github.com/tcpeng/tcpeng/host/offload"
)

// decodeAll undoes coalesce: each packet's frames, in order.
func decodeAll(t testing.TB, pkts [][]byte) [][]byte {
	t.Helper()
	var out [][]byte
	for _, p := range pkts {
		var err error
		out, err = decodeFromDevice(p, out)
		if err != nil {
			t.Fatalf("decode % x: %v", p[:min(len(p), 70)], err)
		}
	}
	return out
}

func TestCoalesceGolden(t *testing.T) {
	payload := pattern(3000, 5)
	base := seg{src: a4, dst: b4, ack: 5000, window: 501, flags: wire.FlagACK}
	s0, s1, s2 := base, base, base
	s0.seq, s0.id, s0.payload = 1000, 0x100, payload[:1400]
	s1.seq, s1.id, s1.payload = 2400, 0x101, payload[1400:2800]
	s2.seq, s2.id, s2.payload, s2.flags = 3800, 0x102, payload[2800:], wire.FlagACK|wire.FlagPSH
	in := [][]byte{s0.frame(), s1.frame(), s2.frame()}
	pkts := coalesce(in)
	if len(pkts) != 1 {
		t.Fatalf("%d packets, want 1", len(pkts))
	}
	p := pkts[0]
	// NEEDS_CSUM, TCPv4, hdr_len 40, gso_size 1400, csum_start 20, csum_offset 16.
	if h := hex.EncodeToString(p[:vnetHdrLen]); h != "01012800780514001000" {
		t.Errorf("vnet header %s", h)
	}
	ip := p[vnetHdrLen:]
	if len(ip) != 3040 || binary.BigEndian.Uint16(ip[2:]) != 3040 || binary.BigEndian.Uint16(ip[4:]) != 0x100 {
		t.Errorf("super-packet length %d, total length %d, ID %#x", len(ip), binary.BigEndian.Uint16(ip[2:]), binary.BigEndian.Uint16(ip[4:]))
	}
	if !wire.IPv4(ip).ChecksumValid() {
		t.Errorf("IPv4 header checksum")
	}
	tcp := ip[20:]
	if f := wire.TCP(tcp).Flags(); f != wire.FlagACK|wire.FlagPSH {
		t.Errorf("flags %v, want PSH,ACK", f)
	}
	if c, want := wire.TCP(tcp).Checksum(), wire.PseudoHeaderChecksum(wire.ProtoTCP, a4.Addr(), b4.Addr(), 3020); c != want {
		t.Errorf("checksum field %#x, want the pseudo-header sum %#x", c, want)
	}
	if !bytes.Equal(tcp[20:], payload) {
		t.Errorf("payload differs")
	}
	equalFrames(t, decodeAll(t, pkts), in)
}

// Segments that must not be joined, each as a pair (or a train) of frames.
func TestCoalesceRefuses(t *testing.T) {
	p := pattern(1000, 1)
	base := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 10, flags: wire.FlagACK, payload: p}
	next := func(f func(s *seg)) seg {
		s := base
		s.seq, s.id = 1001, 11
		f(&s)
		return s
	}
	ts := &wire.Options{Present: wire.HasTimestamps, TSVal: 1, TSEcr: 2}
	cases := []struct {
		name   string
		frames []seg
	}{
		{"sequence gap", []seg{base, next(func(s *seg) { s.seq = 1002 })}},
		{"sequence back", []seg{base, next(func(s *seg) { s.seq = 1 })}},
		{"other ACK", []seg{base, next(func(s *seg) { s.ack = 3 })}},
		{"other window", []seg{base, next(func(s *seg) { s.window = 4 })}},
		{"options differ", []seg{base, next(func(s *seg) { s.opts = ts })}},
		{"timestamps differ", []seg{func() seg { s := base; s.opts = ts; return s }(),
			next(func(s *seg) { s.opts = &wire.Options{Present: wire.HasTimestamps, TSVal: 2, TSEcr: 2} })}},
		{"longer than the first", []seg{base, next(func(s *seg) { s.payload = pattern(1001, 1) })}},
		{"SYN", []seg{base, next(func(s *seg) { s.flags |= wire.FlagSYN })}},
		{"RST", []seg{base, next(func(s *seg) { s.flags |= wire.FlagRST })}},
		{"URG", []seg{base, next(func(s *seg) { s.flags |= wire.FlagURG; s.urgent = 5 })}},
		{"urgent pointer", []seg{base, next(func(s *seg) { s.urgent = 5 })}},
		{"CWR on the second", []seg{base, next(func(s *seg) { s.flags |= wire.FlagCWR })}},
		{"CWR on the first", []seg{func() seg { s := base; s.flags |= wire.FlagCWR; return s }(), next(func(s *seg) {})}},
		{"ECE on one", []seg{base, next(func(s *seg) { s.flags |= wire.FlagECE })}},
		{"PSH on the first", []seg{func() seg { s := base; s.flags |= wire.FlagPSH; return s }(), next(func(s *seg) {})}},
		{"FIN on the first", []seg{func() seg { s := base; s.flags |= wire.FlagFIN; return s }(), next(func(s *seg) { s.seq = 1002 })}},
		{"no ACK", []seg{func() seg { s := base; s.flags = 0; return s }(), next(func(s *seg) { s.flags = 0 })}},
		{"ID not consecutive without DF", []seg{func() seg { s := base; s.noDF = true; return s }(),
			next(func(s *seg) { s.noDF = true; s.id = 13 })}},
		{"DF differs", []seg{base, next(func(s *seg) { s.noDF = true })}},
		{"TTL differs", []seg{base, next(func(s *seg) { s.ttl = 63 })}},
		{"TOS differs (ECN CE)", []seg{base, next(func(s *seg) { s.tos = 3 })}},
		{"IP options differ", []seg{func() seg { s := base; s.ipOpts = []byte{1, 1, 1, 0}; return s }(),
			next(func(s *seg) { s.ipOpts = []byte{1, 1, 0, 0} })}},
		{"other flow", []seg{base, next(func(s *seg) { s.dst = c4 })}},
		{"empty payload", []seg{base, next(func(s *seg) { s.payload = nil })}},
		{"IPv6 flow label", []seg{func() seg { s := base; s.src, s.dst = a6, b6; return s }(),
			next(func(s *seg) { s.src, s.dst, s.flowLbl = a6, b6, 1 })}},
		{"IPv4 then IPv6", []seg{base, next(func(s *seg) { s.src, s.dst = a6, b6 })}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var in [][]byte
			for _, s := range c.frames {
				in = append(in, s.frame())
			}
			pkts := coalesce(in)
			if len(pkts) != len(in) {
				t.Fatalf("%d packets from %d frames", len(pkts), len(in))
			}
			for i, p := range pkts {
				alone(t, p, in[i])
			}
			equalFrames(t, decodeAll(t, pkts), in)
		})
	}
}

// alone checks that p is frame f written alone: a virtio-net header with
// NEEDS_CSUM and no GSO, then f with the pseudo-header sum in its TCP checksum
// field (the kernel's CHECKSUM_PARTIAL).
func alone(t *testing.T, p, f []byte) {
	t.Helper()
	ipHL := wire.IPv6HeaderLen
	if f[0]>>4 == 4 {
		ipHL = wire.IPv4(f).HeaderLen()
	}
	want := vnetHdr{flags: vnetFlagNeedsCsum, hdrLen: uint16(ipHL + wire.TCP(f[ipHL:]).HeaderLen()), csumStart: uint16(ipHL), csumOffset: 16}
	if h, err := parseVnetHdr(p); err != nil || h != want {
		t.Fatalf("header %+v, want %+v", h, want)
	}
	q := p[vnetHdrLen:]
	if len(q) != len(f) || !bytes.Equal(q[:ipHL+16], f[:ipHL+16]) || !bytes.Equal(q[ipHL+18:], f[ipHL+18:]) {
		t.Fatalf("packet is not the frame")
	}
	var src, dst netip.Addr
	if ipHL == wire.IPv6HeaderLen {
		src, dst = wire.IPv6(f).Src(), wire.IPv6(f).Dst()
	} else {
		src, dst = wire.IPv4(f).Src(), wire.IPv4(f).Dst()
	}
	if got, want := binary.BigEndian.Uint16(q[ipHL+16:]), wire.PseudoHeaderChecksum(wire.ProtoTCP, src, dst, len(f)-ipHL); got != want {
		t.Fatalf("checksum field %#04x, want the pseudo-header sum %#04x", got, want)
	}
}

// Frames with partial checksums (engine.Config.PartialChecksums: the field
// holds the pseudo-header sum) are written exactly as the same frames with full
// checksums: alone or in trains.
func TestCoalescePartialInput(t *testing.T) {
	var full [][]byte
	for i := range 3 {
		full = append(full, seg{src: b4, dst: a4, seq: uint32(1 + i*1000), ack: 2, window: 3, id: uint16(i), flags: wire.FlagACK, payload: pattern(1000, byte(i))}.frame())
	}
	full = append(full, seg{src: a6, dst: b6, seq: 7, ack: 2, window: 3, flags: wire.FlagACK | wire.FlagFIN, payload: pattern(10, 9)}.frame(),
		seg{src: b4, dst: a4, seq: 9, flags: wire.FlagRST}.frame())
	var partial [][]byte
	for _, f := range full {
		p := bytes.Clone(f)
		ipHL, src, dst := wire.IPv6HeaderLen, netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
		if p[0]>>4 == 4 {
			ipHL, src, dst = wire.IPv4(p).HeaderLen(), wire.IPv4(p).Src(), wire.IPv4(p).Dst()
		}
		binary.BigEndian.PutUint16(p[ipHL+16:], wire.PseudoHeaderChecksum(wire.ProtoTCP, src, dst, len(p)-ipHL))
		partial = append(partial, p)
	}
	want, got := coalesce(full), coalesce(partial)
	if len(want) != 3 {
		t.Fatalf("%d packets from the full frames, want 3", len(want))
	}
	equalFrames(t, got, want)
	equalFrames(t, decodeAll(t, got), full)
}

// Super-packets stop at 65535 bytes and at offload.MaxTrain segments.
func TestCoalesceLimits(t *testing.T) {
	for _, tc := range []struct {
		mss, n int
		want   []int // segments per packet
	}{
		{1460, 50, []int{44, 6}},        // 20+20+44*1460 = 64280; one more is past 65535
		{100, 300, []int{128, 128, 44}}, // offload.MaxTrain
		{65495, 2, []int{1, 1}},
	} {
		var in [][]byte
		for i := range tc.n {
			s := seg{src: a4, dst: b4, seq: uint32(i * tc.mss), ack: 2, window: 3, id: uint16(i), flags: wire.FlagACK, payload: pattern(tc.mss, byte(i))}
			in = append(in, s.frame())
		}
		pkts := coalesce(in)
		if len(pkts) != len(tc.want) {
			t.Fatalf("mss %d: %d packets, want %d", tc.mss, len(pkts), len(tc.want))
		}
		for i, p := range pkts {
			got, err := decodeFromDevice(p, nil)
			if err != nil || len(got) != tc.want[i] {
				t.Fatalf("mss %d packet %d: %d segments (%v), want %d", tc.mss, i, len(got), err, tc.want[i])
			}
			if len(p)-vnetHdrLen > 65535 {
				t.Fatalf("packet of %d bytes", len(p)-vnetHdrLen)
			}
		}
		equalFrames(t, decodeAll(t, pkts), in)
	}
}

// Flows interleave: each flow's train goes out where its first segment was; a
// segment of a flow that goes out alone ends that flow's train, so no segment
// overtakes another of its flow.
func TestCoalesceFlows(t *testing.T) {
	p := pattern(1000, 1)
	mk := func(dst netip.AddrPort, seq uint32, id uint16, payload []byte) []byte {
		return seg{src: a4, dst: dst, seq: seq, ack: 9, window: 9, id: id, flags: wire.FlagACK, payload: payload}.frame()
	}
	A1, B1, A2, B2 := mk(b4, 0, 1, p), mk(c4, 0, 2, p), mk(b4, 1000, 3, p), mk(c4, 1000, 4, p)
	pkts := coalesce([][]byte{A1, B1, A2, B2})
	if len(pkts) != 2 {
		t.Fatalf("%d packets, want 2", len(pkts))
	}
	// DF is set, so the IDs (1, 3) need not run on; split gives 1, 2.
	A2n := append([]byte(nil), A2...)
	binary.BigEndian.PutUint16(A2n[4:], 2)
	A2n[10], A2n[11] = 0, 0
	binary.BigEndian.PutUint16(A2n[10:], ^wire.Checksum(A2n[:20], 0))
	B2n := append([]byte(nil), B2...)
	binary.BigEndian.PutUint16(B2n[4:], 3)
	B2n[10], B2n[11] = 0, 0
	binary.BigEndian.PutUint16(B2n[10:], ^wire.Checksum(B2n[:20], 0))
	equalFrames(t, decodeAll(t, pkts), [][]byte{A1, A2n, B1, B2n})

	ack := seg{src: a4, dst: b4, seq: 1000, ack: 9, window: 10, id: 2, flags: wire.FlagACK}.frame()
	A2b := mk(b4, 1000, 3, p)
	pkts = coalesce([][]byte{A1, ack, A2b})
	equalFrames(t, decodeAll(t, pkts), [][]byte{A1, ack, A2b})

	// A short segment ends a train.
	s1, s2 := mk(b4, 1000, 2, p[:500]), mk(b4, 1500, 3, p)
	pkts = coalesce([][]byte{A1, s1, s2})
	if len(pkts) != 2 {
		t.Fatalf("after a short segment: %d packets, want 2", len(pkts))
	}
	equalFrames(t, decodeAll(t, pkts), [][]byte{A1, s1, s2})

	// A non-TCP packet between two segments does not stop them joining.
	udp := make([]byte, 28)
	wire.PutIPv4(udp, wire.IPv4Header{TotalLen: 28, TTL: 64, Protocol: wire.ProtoUDP, Src: a4.Addr(), Dst: b4.Addr()})
	pkts = coalesce([][]byte{A1, udp, mk(b4, 1000, 2, p)})
	if len(pkts) != 2 {
		t.Fatalf("with UDP between: %d packets, want 2", len(pkts))
	}
}

var propIters = flag.Int("tun.iters", 200, "iterations of the coalesce/split property test")

// Property: for random trains of segments of random flows, cutting the
// coalesced packets gives back every flow's segments exactly, in order; and
// coalescing the cut of a kernel super-packet gives the super-packet back.
func TestCoalesceSplitProperty(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for it := range *propIters {
		nflows := 1 + r.IntN(4)
		type flow struct {
			s     seg
			mss   int
			left  int
			first bool
		}
		flows := make([]*flow, nflows)
		for i := range flows {
			s := seg{src: a4, dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 7, 0, byte(2 + i)}), 7),
				seq: r.Uint32(), ack: r.Uint32(), window: uint16(r.Uint32()), id: uint16(r.Uint32()),
				flags: wire.FlagACK, noDF: r.IntN(2) == 0, tos: uint8(r.IntN(2) * 0x10)}
			if r.IntN(3) == 0 {
				s.src, s.dst = a6, netip.AddrPortFrom(netip.AddrFrom16([16]byte{0xfd, 7, 15: byte(2 + i)}), 7)
				s.flowLbl = r.Uint32() & 0xfffff
			}
			if r.IntN(2) == 0 {
				s.opts = &wire.Options{Present: wire.HasTimestamps, TSVal: r.Uint32(), TSEcr: r.Uint32()}
			}
			flows[i] = &flow{s: s, mss: 1 + r.IntN(1500), left: 1 + r.IntN(60), first: true}
		}
		var in [][]byte
		perFlow := make([][][]byte, nflows)
		for {
			var live []int
			for i, f := range flows {
				if f.left > 0 {
					live = append(live, i)
				}
			}
			if len(live) == 0 {
				break
			}
			fi := live[r.IntN(len(live))]
			f := flows[fi]
			s := f.s
			n := f.mss
			switch r.IntN(20) {
			case 0:
				n = 1 + r.IntN(f.mss) // a short segment
			case 1:
				n = 0 // a pure ACK
			}
			s.payload = pattern(n, byte(r.Uint32()))
			f.left--
			if f.left == 0 && r.IntN(2) == 0 {
				s.flags |= wire.FlagPSH
			}
			if f.left == 0 && r.IntN(4) == 0 {
				s.flags |= wire.FlagFIN
			}
			fr := s.frame()
			in = append(in, fr)
			perFlow[fi] = append(perFlow[fi], fr)
			f.s.seq += uint32(n)
			if s.flags&wire.FlagFIN != 0 {
				f.s.seq++
			}
			f.s.id++
		}
		pkts := coalesce(in)
		out := decodeAll(t, pkts)
		if len(out) != len(in) {
			t.Fatalf("iteration %d: %d frames back of %d", it, len(out), len(in))
		}
		// Sort the output by flow, keeping order.
		got := make([][][]byte, nflows)
		for _, f := range out {
			checkValid(t, f)
			for i := range flows {
				if flowOf(f) == flowOf(perFlow[i][0]) {
					got[i] = append(got[i], f)
				}
			}
		}
		for i := range flows {
			if len(got[i]) != len(perFlow[i]) {
				t.Fatalf("iteration %d flow %d: %d frames, want %d", it, i, len(got[i]), len(perFlow[i]))
			}
			for j := range got[i] {
				if !bytes.Equal(got[i][j], perFlow[i][j]) {
					t.Fatalf("iteration %d flow %d frame %d differs\n got % x\nwant % x", it, i, j,
						got[i][j][:min(80, len(got[i][j]))], perFlow[i][j][:min(80, len(perFlow[i][j]))])
				}
			}
		}

		// The other way: a kernel super-packet, cut, then joined again.
		f := flows[0].s
		f.payload = pattern(r.IntN(min(30000, flows[0].mss*offload.MaxTrain)+1), 3)
		f.flags = wire.FlagACK | []wire.Flags{0, wire.FlagPSH, wire.FlagFIN, wire.FlagPSH | wire.FlagFIN}[r.IntN(4)]
		size := flows[0].mss
		super := f.super(size)
		cut, err := decodeFromDevice(super, nil)
		if err != nil {
			t.Fatal(err)
		}
		back := coalesce(cut)
		if len(cut) == 1 {
			continue // a single segment goes back as it is
		}
		if len(back) != 1 {
			t.Fatalf("iteration %d: %d segments joined into %d packets", it, len(cut), len(back))
		}
		// hdr_len differs by design (the kernel's is the linear length).
		super[2], super[3] = back[0][2], back[0][3]
		if !bytes.Equal(back[0], super) {
			t.Fatalf("iteration %d: rejoined super-packet differs\n got % x\nwant % x", it, back[0][:80], super[:80])
		}
	}
}

func flowOf(f []byte) string { return inspect(f).flow }

// segFields is what the tests need to know of a frame: what offload's
// planner looks at.
type segFields struct {
	tcp, ok, v6, df bool // ok: a TCP segment that may join a train
	ipHL, tcpHL     int
	flow            string // IP version, addresses and ports
}

func inspect(f []byte) segFields {
	var s segFields
	if len(f) == 0 {
		return s
	}
	switch f[0] >> 4 {
	case 4:
		ip, err := wire.ParseIPv4(f)
		if err != nil || len(ip) != len(f) || ip.Protocol() != wire.ProtoTCP || ip.IsFragment() {
			return s
		}
		s.ipHL, s.df = ip.HeaderLen(), ip.Flags()&wire.IPv4DontFragment != 0
		s.flow = "4" + string(f[12:20])
	case 6:
		ip, err := wire.ParseIPv6(f)
		if err != nil || len(ip) != len(f) || ip.NextHeader() != wire.ProtoTCP {
			return s
		}
		s.v6, s.ipHL = true, wire.IPv6HeaderLen
		s.flow = "6" + string(f[8:40])
	default:
		return s
	}
	tc, err := wire.ParseTCP(f[s.ipHL:])
	if err != nil {
		return segFields{}
	}
	s.tcp, s.tcpHL = true, tc.HeaderLen()
	s.flow += string(f[s.ipHL : s.ipHL+4])
	fl := tc.Flags()
	s.ok = len(f) > s.ipHL+s.tcpHL && fl&(wire.FlagSYN|wire.FlagRST|wire.FlagURG|wire.FlagCWR) == 0 && fl&wire.FlagACK != 0
	return s
}

// Steady state allocates nothing: planning and building packets reuse memory.
func TestCoalesceAllocs(t *testing.T) {
	var in [][]byte
	for i := range 64 {
		dst := b4
		if i%2 == 1 {
			dst = c4
		}
		in = append(in, seg{src: a4, dst: dst, seq: uint32(i/2) * 1400, ack: 1, window: 1, id: uint16(i), flags: wire.FlagACK, payload: pattern(1400, 0)}.frame())
	}
	c := newCoalescer()
	allocs := testing.AllocsPerRun(100, func() {
		c.Plan(in)
		for i := range c.Trains() {
			c.packet(i)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per batch", allocs)
	}
	if c.Trains() != 2 {
		t.Fatalf("%d trains, want 2", c.Trains())
	}
}

func BenchmarkCoalesce(b *testing.B) {
	var in [][]byte
	for i := range 64 {
		in = append(in, seg{src: a4, dst: b4, seq: uint32(i) * 1448, ack: 1, window: 1, id: uint16(i), flags: wire.FlagACK, payload: pattern(1448, 0)}.frame())
	}
	c := newCoalescer()
	b.SetBytes(64 * 1448)
	for b.Loop() {
		c.Plan(in)
		for i := range c.Trains() {
			c.packet(i)
		}
	}
}

func BenchmarkSplit(b *testing.B) {
	s := seg{src: a4, dst: b4, seq: 1, ack: 1, window: 1, flags: wire.FlagACK, payload: pattern(65000, 0)}
	in := s.super(1448)
	h, _ := parseVnetHdr(in)
	buf := make([]byte, 1500)
	b.SetBytes(65000)
	for b.Loop() {
		g, err := prepareGSO(in[vnetHdrLen:], &h, true)
		if err != nil {
			b.Fatal(err)
		}
		for i := range g.Segs() {
			g.Segment(i, buf)
		}
	}
}
