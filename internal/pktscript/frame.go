package pktscript

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// Packet is a decoded IPv4+TCP frame.
type Packet struct {
	Src, Dst  netip.AddrPort
	Flags     wire.Flags
	Seq, Ack  uint32
	Win, Urg  uint16
	Opts      []Option // in wire order, numbers absolute; an "eol" ends the list
	OptsBad   bool     // the option list is malformed
	Payload   []byte
	BadIPSum  bool // the IPv4 header checksum does not verify
	BadSum    bool // the TCP checksum does not verify
	NotTCP    bool // the frame is IPv4 but not TCP (Payload holds the IP payload)
	Fragment  bool // the frame is an IPv4 fragment
	FrameSize int
}

// DecodePacket decodes an IPv4 frame. It fails only if the frame is not a
// well-formed IPv4 datagram with a TCP header; checksums are reported, not
// enforced.
func DecodePacket(b []byte) (*Packet, error) {
	ip, err := wire.ParseIPv4(b)
	if err != nil {
		return nil, fmt.Errorf("not an IPv4 datagram: %w", err)
	}
	pk := &Packet{FrameSize: len(b), BadIPSum: !ip.ChecksumValid(), Fragment: ip.IsFragment()}
	src, dst := ip.Src(), ip.Dst()
	if ip.Protocol() != wire.ProtoTCP || pk.Fragment {
		pk.NotTCP, pk.Payload = true, ip.Payload()
		pk.Src, pk.Dst = netip.AddrPortFrom(src, 0), netip.AddrPortFrom(dst, 0)
		return pk, nil
	}
	t, err := wire.ParseTCP(ip.Payload())
	if err != nil {
		return nil, fmt.Errorf("a malformed TCP header: %w", err)
	}
	pk.Src, pk.Dst = netip.AddrPortFrom(src, t.SrcPort()), netip.AddrPortFrom(dst, t.DstPort())
	pk.Flags, pk.Seq, pk.Ack = t.Flags(), uint32(t.Seq()), uint32(t.Ack())
	pk.Win, pk.Urg = t.Window(), t.Urgent()
	pk.BadSum = !t.ChecksumValid(src, dst)
	pk.Payload = t.Payload()
	pk.Opts, pk.OptsBad = decodeOptions(t.Options())
	return pk, nil
}

// decodeOptions turns a raw option list into Options. An EOL ends the list (what
// follows is padding); an unknown kind or a bad length marks the list malformed
// and ends the walk.
func decodeOptions(b []byte) (opts []Option, bad bool) {
	num := func(v uint32) Num { return Num{V: int64(v), Abs: true, Set: true} }
	for len(b) > 0 {
		switch b[0] {
		case wire.OptEOL:
			return append(opts, Option{Kind: OptEOL}), false
		case wire.OptNOP:
			opts = append(opts, Option{Kind: OptNOP})
			b = b[1:]
			continue
		}
		if len(b) < 2 || int(b[1]) < 2 || int(b[1]) > len(b) {
			return opts, true
		}
		n := int(b[1])
		v := b[2:n]
		o := Option{}
		switch {
		case b[0] == wire.OptMSS && n == 4:
			o.Kind, o.A = OptMSS, num(uint32(binary.BigEndian.Uint16(v)))
		case b[0] == wire.OptWindowScale && n == 3:
			o.Kind, o.A = OptWScale, num(uint32(v[0]))
		case b[0] == wire.OptSACKPermitted && n == 2:
			o.Kind = OptSACKOK
		case b[0] == wire.OptTimestamps && n == 10:
			o.Kind, o.A, o.B = OptTS, num(binary.BigEndian.Uint32(v)), num(binary.BigEndian.Uint32(v[4:]))
		case b[0] == wire.OptSACK && (n-2)%8 == 0 && n > 2:
			o.Kind = OptSACK
			for i := 0; i+8 <= len(v); i += 8 {
				o.Blocks = append(o.Blocks, num(binary.BigEndian.Uint32(v[i:])), num(binary.BigEndian.Uint32(v[i+4:])))
			}
		default:
			return opts, true
		}
		opts = append(opts, o)
		b = b[n:]
	}
	return opts, false
}

// encodeOptions writes options in the order given, padded with zeros (EOL) to
// a multiple of four bytes (RFC 9293 §3.1). seqBase is added to relative SACK
// edges.
func encodeOptions(opts []Option, seqBase uint32) []byte {
	var b []byte
	val := func(n Num, base uint32) uint32 {
		if n.Abs {
			return uint32(n.V)
		}
		return base + uint32(n.V)
	}
	for _, o := range opts {
		switch o.Kind {
		case OptNOP:
			b = append(b, wire.OptNOP)
		case OptEOL:
			b = append(b, wire.OptEOL)
		case OptMSS:
			b = binary.BigEndian.AppendUint16(append(b, wire.OptMSS, 4), uint16(o.A.V))
		case OptWScale:
			b = append(b, wire.OptWindowScale, 3, uint8(o.A.V))
		case OptSACKOK:
			b = append(b, wire.OptSACKPermitted, 2)
		case OptTS:
			b = append(b, wire.OptTimestamps, 10)
			b = binary.BigEndian.AppendUint32(b, uint32(o.A.V))
			b = binary.BigEndian.AppendUint32(b, uint32(o.B.V))
		case OptSACK:
			b = append(b, wire.OptSACK, uint8(2+4*len(o.Blocks)))
			for _, e := range o.Blocks {
				b = binary.BigEndian.AppendUint32(b, val(e, seqBase))
			}
		}
	}
	for len(b)%4 != 0 {
		b = append(b, wire.OptEOL)
	}
	return b
}

// Flow is the bookkeeping of one connection between the endpoint and the peer:
// the initial sequence numbers, the bytes each side sent, and how far the
// application has read.
type Flow struct {
	Port     uint16 // the peer's port
	LocalISN uint32 // the endpoint's ISN, once Known
	Known    bool

	sent     []byte // the bytes the application wrote, from the endpoint's ISN+1
	rcvd     []byte // the bytes the peer injected, by peer sequence number - (ISN+1)
	rcvdMask []byte // per rcvd byte: 0 unknown, 1 known, 2 conflicting injections
	readAt   int64  // the peer-relative sequence number of the next byte to read; 0 unknown
	readAny  bool   // the application read something in this incarnation

	readPending bool // the endpoint sent a SYN: its next ACK says where the peer's data starts

	peerSyn uint32 // the sequence number of the last SYN the peer sent
	synSet  bool

	highEnd uint32 // the end of the highest sequence number the endpoint sent
	highSet bool
}

// maxStream bounds the bytes a Flow records of each direction.
const maxStream = 64 << 20

// Peer is the scripted remote peer of a script: it builds the frames of
// injected segments, tracks the initial sequence numbers and data of each flow,
// and matches and formats the frames the endpoint sends. The engine runner and
// the Linux runner both use it.
type Peer struct {
	s     *Script
	flows map[uint16]*Flow
	ipID  uint16
}

// NewPeer returns the peer of script s.
func NewPeer(s *Script) *Peer { return &Peer{s: s, flows: map[uint16]*Flow{}} }

// Flow returns the bookkeeping of the flow with the peer's port.
func (p *Peer) Flow(port uint16) *Flow {
	f := p.flows[port]
	if f == nil {
		f = &Flow{Port: port}
		p.flows[port] = f
	}
	return f
}

// Remote returns the peer's address and port for a line.
func (p *Peer) Remote(l *Line) netip.AddrPort { return netip.AddrPortFrom(p.s.Remote.Addr(), l.Port) }

// peerRel returns a peer sequence number relative to the peer's ISN.
func (p *Peer) peerRel(v uint32) int64 { return int64(int32(v - p.s.PeerISN)) }

// Build returns the IPv4 frame of an injected segment (KindInject), with
// correct checksums unless the line says badsum. It records the payload so that
// reads can be checked.
func (p *Peer) Build(l *Line) ([]byte, error) {
	g := l.Seg
	f := p.Flow(l.Port)
	seq := p.s.PeerISN + uint32(g.Seq.V)
	if g.Seq.Abs {
		seq = uint32(g.Seq.V)
	}
	var ack uint32
	if g.Ack.Set {
		switch {
		case g.Ack.Abs:
			ack = uint32(g.Ack.V)
		case !f.Known:
			return nil, fmt.Errorf("ack %s is relative to the endpoint's ISN, which is not known yet (no SYN from it on port %d): write ack =N for an absolute value", g.Ack, l.Port)
		default:
			ack = f.LocalISN + uint32(g.Ack.V)
		}
	}
	opts := encodeOptions(g.Opts, f.LocalISN)
	payload := g.Payload
	dataSeq := seq
	if g.Flags&wire.FlagSYN != 0 {
		dataSeq++
	}
	if payload == nil {
		payload = make([]byte, g.Len.V)
		for i := range payload {
			payload[i] = peerByte(p.peerRel(dataSeq + uint32(i)))
		}
	}
	f.record(p.peerRel(dataSeq), payload)
	if g.Flags&(wire.FlagSYN|wire.FlagRST) == wire.FlagSYN {
		f.peerSyn, f.synSet = seq, true
	}

	tcpLen := wire.TCPMinHeaderLen + len(opts) + len(payload)
	b := make([]byte, wire.IPv4MinHeaderLen+tcpLen)
	src, dst := p.s.Remote.Addr(), p.s.Local.Addr()
	p.ipID++
	wire.PutIPv4(b, wire.IPv4Header{
		TotalLen: len(b), ID: p.ipID, Flags: wire.IPv4DontFragment, TTL: 64, Protocol: wire.ProtoTCP, Src: src, Dst: dst,
	})
	t := b[wire.IPv4MinHeaderLen:]
	wire.PutTCP(t, wire.TCPHeader{
		SrcPort: l.Port, DstPort: p.s.Local.Port(), Seq: wire.Seq(seq), Ack: wire.Seq(ack),
		Flags: g.Flags, Window: uint16(g.Win.V), Urgent: uint16(g.Urg.V),
	}, nil)
	t[12] = uint8((wire.TCPMinHeaderLen+len(opts))/4) << 4
	copy(t[wire.TCPMinHeaderLen:], opts)
	copy(t[wire.TCPMinHeaderLen+len(opts):], payload)
	wire.SetTCPChecksum(t, src, dst)
	if g.BadSum {
		t[16] ^= 0x55 // never turns a checksum into its one's-complement equivalent
		t[17] ^= 0x55
	}
	return b, nil
}

// peerByte is the default payload of the peer at a relative sequence number:
// "abc...z" repeating from the first data byte.
func peerByte(rel int64) byte { return 'a' + byte(((rel-1)%26+26)%26) }

// localByte is the default data the application writes at stream offset k:
// "ABC...Z" repeating.
func localByte(k int) byte { return 'A' + byte(k%26) }

// record notes that the peer sent payload starting at relative sequence number rel.
func (f *Flow) record(rel int64, payload []byte) {
	for i, c := range payload {
		k := rel - 1 + int64(i)
		if k < 0 || k >= maxStream {
			continue
		}
		for int64(len(f.rcvd)) <= k {
			f.rcvd = append(f.rcvd, 0)
			f.rcvdMask = append(f.rcvdMask, 0)
		}
		switch {
		case f.rcvdMask[k] == 0:
			f.rcvd[k], f.rcvdMask[k] = c, 1
		case f.rcvd[k] != c:
			f.rcvdMask[k] = 2
		}
	}
}

// WriteData returns the bytes a write call of line l sends: its text, or N bytes
// of the default pattern continuing the flow's stream.
func (p *Peer) WriteData(l *Line) []byte {
	if l.Call.Data != nil {
		return l.Call.Data
	}
	f := p.Flow(l.Port)
	b := make([]byte, l.Call.N)
	for i := range b {
		b[i] = localByte(len(f.sent) + i)
	}
	return b
}

// Wrote records that the endpoint took data for sending on the flow of port.
func (p *Peer) Wrote(port uint16, data []byte) error {
	f := p.Flow(port)
	if len(f.sent)+len(data) > maxStream {
		return fmt.Errorf("the script wrote more than %d bytes on one connection", maxStream)
	}
	f.sent = append(f.sent, data...)
	return nil
}

// CheckRead checks bytes the application read on the flow of port against what
// the peer injected, and advances the read position.
func (p *Peer) CheckRead(port uint16, data []byte) error {
	f := p.Flow(port)
	f.readAny = f.readAny || len(data) > 0
	if f.readAt == 0 {
		return nil
	}
	at := f.readAt
	f.readAt += int64(len(data))
	for i, c := range data {
		k := at - 1 + int64(i)
		switch {
		case k < 0 || k >= int64(len(f.rcvd)) || f.rcvdMask[k] == 0:
			return fmt.Errorf("read returned %q at peer sequence %d, which the peer never sent", data[i:min(i+16, len(data))], at+int64(i))
		case f.rcvdMask[k] == 1 && f.rcvd[k] != c:
			return fmt.Errorf("read returned %q at peer sequence %d; the peer sent %q there", c, at+int64(i), f.rcvd[k])
		}
	}
	return nil
}

// Observe updates the flow bookkeeping with a frame the endpoint sent: the
// acknowledgment of the peer's SYN says where the peer's data starts (its
// SYN-ACK in a passive or simultaneous open, its first ACK after its SYN in an
// active open).
func (p *Peer) Observe(pk *Packet) {
	if pk.NotTCP {
		return
	}
	f := p.Flow(pk.Dst.Port())
	end := pk.Seq + uint32(len(pk.Payload))
	if pk.Flags&wire.FlagSYN != 0 {
		end++
	}
	if pk.Flags&wire.FlagFIN != 0 {
		end++
	}
	if pk.Flags&wire.FlagRST == 0 && (!f.highSet || int32(end-f.highEnd) > 0) {
		f.highEnd, f.highSet = end, true
	}
	if f.readAny {
		return
	}
	switch pk.Flags & (wire.FlagSYN | wire.FlagACK | wire.FlagRST) {
	case wire.FlagSYN:
		f.readAt, f.readPending = 0, true
	case wire.FlagSYN | wire.FlagACK:
		f.readAt, f.readPending = p.peerRel(pk.Ack), false
	case wire.FlagACK:
		if f.readPending {
			// The ACK covers the peer's SYN and any data on its SYN-ACK: the
			// data starts after the SYN the peer sent last.
			f.readAt, f.readPending = p.peerRel(pk.Ack), false
			if f.synSet && p.peerRel(f.peerSyn)+1 <= f.readAt {
				f.readAt = p.peerRel(f.peerSyn) + 1
			}
		}
	}
}

// Match compares a frame the endpoint sent with the expected segment of line l
// and returns the differences, or nil if it matches. An expected SYN with a
// relative sequence number teaches the flow the endpoint's ISN, as does one
// marked newisn (a new incarnation: the flow's streams start over).
func (p *Peer) Match(l *Line, pk *Packet) []string {
	var d []string
	add := func(format string, args ...any) { d = append(d, fmt.Sprintf(format, args...)) }
	g := l.Seg
	if pk.NotTCP || pk.Fragment {
		return []string{"not a TCP segment (protocol or fragment)"}
	}
	if pk.BadIPSum {
		add("bad IPv4 header checksum")
	}
	if pk.BadSum {
		add("bad TCP checksum")
	}
	if pk.Src != p.s.Local {
		add("from %s (want %s)", pk.Src, p.s.Local)
	}
	if want := p.Remote(l); pk.Dst != want {
		add("to %s (want %s)", pk.Dst, want)
	}
	f := p.Flow(pk.Dst.Port())
	if !g.AnyFlags && pk.Flags != g.Flags {
		add("flags %s (want %s)", FlagString(pk.Flags), FlagString(g.Flags))
	}
	if !g.Seq.Any {
		switch {
		case g.Seq.Abs:
			if pk.Seq != uint32(g.Seq.V) {
				add("seq =%d (want =%d)", pk.Seq, uint32(g.Seq.V))
			}
		case g.NewISN || !f.Known && g.Flags&wire.FlagSYN != 0:
			isn := pk.Seq - uint32(g.Seq.V)
			if g.Above && f.highSet && int32(isn-f.highEnd) < 0 {
				add("new ISN =%d is not above the previous incarnation's last sequence number =%d", isn, f.highEnd-1)
			}
			if len(d) == 0 {
				f.startIncarnation(isn)
			}
		case !f.Known:
			add("seq =%d: the endpoint's ISN is not known (no SYN from it on port %d yet); write =N for an absolute sequence number", pk.Seq, f.Port)
		case pk.Seq != f.LocalISN+uint32(g.Seq.V):
			add("seq %d (want %d)", int32(pk.Seq-f.LocalISN), g.Seq.V)
		}
	}
	if !g.Len.Any && int64(len(pk.Payload)) != g.Len.V {
		add("length %d (want %d)", len(pk.Payload), g.Len.V)
	}
	if g.Ack.Set && !g.Ack.Any {
		switch {
		case g.Ack.Abs && pk.Ack != uint32(g.Ack.V):
			add("ack =%d (want =%d)", pk.Ack, uint32(g.Ack.V))
		case !g.Ack.Abs && pk.Ack != p.s.PeerISN+uint32(g.Ack.V):
			add("ack %d (want %d)", p.peerRel(pk.Ack), g.Ack.V)
		}
	}
	if g.Win.Set && !g.Win.Any && int64(pk.Win) != g.Win.V {
		add("win %d (want %d)", pk.Win, g.Win.V)
	}
	if g.Urg.Set && !g.Urg.Any && int64(pk.Urg) != g.Urg.V {
		add("urg %d (want %d)", pk.Urg, g.Urg.V)
	}
	if msg := p.matchOptions(g, pk); msg != "" {
		add("%s", msg)
	}
	if g.Payload != nil && string(pk.Payload) != string(g.Payload) {
		add("payload %q (want %q)", clip(pk.Payload), clip(g.Payload))
	}
	if msg := f.checkSent(pk); msg != "" {
		add("%s", msg)
	}
	return d
}

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

// startIncarnation sets the endpoint's ISN of the flow and forgets the data of
// the previous incarnation.
func (f *Flow) startIncarnation(isn uint32) {
	if f.Known && f.LocalISN == isn {
		return
	}
	f.LocalISN, f.Known = isn, true
	f.sent = f.sent[:0]
	f.readAny = false
}

// checkSent checks the payload of a segment the endpoint sent against what the
// application wrote.
func (f *Flow) checkSent(pk *Packet) string {
	if !f.Known || len(pk.Payload) == 0 {
		return ""
	}
	rel := int64(int32(pk.Seq - f.LocalISN))
	if pk.Flags&wire.FlagSYN != 0 {
		rel++
	}
	for i, c := range pk.Payload {
		k := rel - 1 + int64(i)
		if k < 0 || k >= int64(len(f.sent)) {
			return fmt.Sprintf("payload byte at seq %d was never written by the application", k+1)
		}
		if f.sent[k] != c {
			return fmt.Sprintf("payload byte at seq %d is %q; the application wrote %q", k+1, c, f.sent[k])
		}
	}
	return ""
}

// matchOptions compares option lists; it returns "" when they match.
func (p *Peer) matchOptions(g *Segment, pk *Packet) string {
	if g.AnyOpts {
		return ""
	}
	got := pk.Opts
	if n := len(got); n > 0 && got[n-1].Kind == OptEOL && (len(g.Opts) == 0 || g.Opts[len(g.Opts)-1].Kind != OptEOL) {
		got = got[:n-1] // padding
	}
	f := p.Flow(pk.Dst.Port())
	ok := len(got) == len(g.Opts) && !pk.OptsBad
	for i := 0; ok && i < len(got); i++ {
		w, a := g.Opts[i], got[i]
		ok = w.Kind == a.Kind && numMatch(w.A, a.A, 0) && numMatch(w.B, a.B, 0) && len(w.Blocks) == len(a.Blocks)
		for j := 0; ok && j < len(w.Blocks); j++ {
			ok = numMatch(w.Blocks[j], a.Blocks[j], p.s.PeerISN)
		}
	}
	if ok {
		return ""
	}
	return "options " + p.formatOptions(pk, f) + " (want " + OptionsString(g.Opts, false) + ")"
}

// numMatch compares a wanted number with an actual absolute one; relative
// wanted values are added to base.
func numMatch(w, a Num, base uint32) bool {
	if w.Any || !w.Set {
		return true
	}
	if w.Abs || base == 0 {
		return uint32(w.V) == uint32(a.V)
	}
	return base+uint32(w.V) == uint32(a.V)
}

// Format returns a frame in script syntax, the sequence number relative to its
// sender's ISN and the acknowledgment number relative to its receiver's, where
// known ("=N" where not). fromPeer says the peer sent it.
func (p *Peer) Format(pk *Packet, fromPeer bool) string {
	if pk.NotTCP {
		return fmt.Sprintf("(not TCP: %s > %s, %d bytes)", pk.Src.Addr(), pk.Dst.Addr(), pk.FrameSize)
	}
	port := pk.Dst.Port()
	if fromPeer {
		port = pk.Src.Port()
	}
	f := p.Flow(port)
	peerNum := func(v uint32) string { return strconv.FormatInt(p.peerRel(v), 10) }
	isn, known := f.LocalISN, f.Known
	if !known && !fromPeer && pk.Flags&wire.FlagSYN != 0 {
		isn, known = pk.Seq, true // an unmatched SYN of the endpoint shows its own ISN
	}
	localNum := func(v uint32) string {
		if !known {
			return "=" + strconv.FormatUint(uint64(v), 10)
		}
		return strconv.FormatInt(int64(int32(v-isn)), 10)
	}
	seqOf, ackOf := localNum, peerNum
	if fromPeer {
		seqOf, ackOf = peerNum, localNum
	}
	var b strings.Builder
	if port != p.s.Remote.Port() {
		b.WriteString(":" + strconv.Itoa(int(port)) + " ")
	}
	n := uint32(len(pk.Payload))
	fmt.Fprintf(&b, "%s %s:%s(%d)", FlagString(pk.Flags), seqOf(pk.Seq), seqOf(pk.Seq+n), n)
	if pk.Flags&wire.FlagACK != 0 || pk.Ack != 0 {
		b.WriteString(" ack " + ackOf(pk.Ack))
	}
	fmt.Fprintf(&b, " win %d", pk.Win)
	if pk.Flags&wire.FlagURG != 0 || pk.Urg != 0 {
		fmt.Fprintf(&b, " urg %d", pk.Urg)
	}
	if len(pk.Opts) > 0 || pk.OptsBad {
		b.WriteString(" " + p.formatOptions(pk, f))
	}
	if pk.BadSum || pk.BadIPSum {
		b.WriteString(" badsum")
	}
	return b.String()
}

// formatOptions formats a frame's options; SACK edges are shown relative to the
// peer's ISN (the endpoint acknowledges the peer's data).
func (p *Peer) formatOptions(pk *Packet, _ *Flow) string {
	opts := make([]Option, len(pk.Opts))
	for i, o := range pk.Opts {
		o.A.Abs, o.B.Abs = false, false
		if o.Kind == OptSACK {
			bl := make([]Num, len(o.Blocks))
			for j, e := range o.Blocks {
				bl[j] = Num{V: p.peerRel(uint32(e.V)), Set: true}
			}
			o.Blocks = bl
		}
		opts[i] = o
	}
	s := OptionsString(opts, false)
	if pk.OptsBad {
		s = strings.TrimSuffix(s, ">") + ",malformed>"
	}
	return s
}
