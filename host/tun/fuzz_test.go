package tun

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// Fuzz targets: whatever a kernel bug or a fake device hands over, the read
// path neither panics nor returns anything but well-formed frames; whatever the
// engine writes, the write path neither panics nor changes a flow's bytes.

func seedReads(f *testing.F) {
	s := seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 4, flags: wire.FlagACK | wire.FlagPSH, payload: pattern(3000, 1)}
	f.Add(s.super(1400))
	f.Add(seg{src: a4, dst: b4, seq: 1, ack: 2, window: 3, id: 4, flags: wire.FlagACK | wire.FlagFIN, payload: pattern(50, 1)}.super(1))
	s6 := seg{src: a6, dst: b6, seq: 1, ack: 2, window: 3, flags: wire.FlagACK | wire.FlagCWR, payload: pattern(2000, 1),
		opts: &wire.Options{Present: wire.HasTimestamps, TSVal: 1}}
	f.Add(s6.super(500))
	p := s.super(1400)
	p[1] = vnetGSONone
	f.Add(p[:vnetHdrLen+100])
	f.Add(make([]byte, vnetHdrLen))
	f.Add([]byte{1, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x45})
}

// FuzzVnetRead feeds one read of a vnet-header device (header and packet) to
// the parser, the checksum completion and the splitter.
func FuzzVnetRead(f *testing.F) {
	seedReads(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseVnetHdr(b)
		if err != nil {
			return
		}
		if len(b) > 8<<10 || len(b)/max(int(h.gsoSize), 1) > 256 {
			return // more or smaller segments only take longer; they test nothing more
		}
		var enc [vnetHdrLen]byte
		h.put(enc[:])
		if !bytes.Equal(enc[:], b[:vnetHdrLen]) {
			t.Fatalf("header round trip % x -> % x", b[:vnetHdrLen], enc)
		}
		in := append([]byte(nil), b...)
		out, err := decodeFromDevice(in, nil)
		if err != nil {
			return
		}
		if h.gsoType == vnetGSONone {
			if len(out) != 1 || len(out[0]) != len(b)-vnetHdrLen {
				t.Fatalf("non-GSO read gave %d frames", len(out))
			}
			return
		}
		checkSegments(t, b[vnetHdrLen:], &h, out)
	})
}

// checkSegments checks a split: valid headers and checksums, sizes within
// gso_size, and payloads and sequence numbers that run on.
func checkSegments(t *testing.T, pkt []byte, h *vnetHdr, out [][]byte) {
	g, err := prepareGSO(pkt, h, true)
	if err != nil {
		t.Fatalf("decoded, but prepareGSO fails: %v", err)
	}
	var payload []byte
	seq := binary.BigEndian.Uint32(pkt[g.IPHeaderLen()+4:])
	for i, s := range out {
		checkValid(t, s)
		if len(s)-g.HeaderLen() > g.Size() {
			t.Fatalf("segment %d has %d payload bytes, gso_size %d", i, len(s)-g.HeaderLen(), g.Size())
		}
		if got := binary.BigEndian.Uint32(s[g.IPHeaderLen()+4:]); got != seq {
			t.Fatalf("segment %d seq %d, want %d", i, got, seq)
		}
		seq += uint32(len(s) - g.HeaderLen())
		payload = append(payload, s[g.HeaderLen():]...)
	}
	if !bytes.Equal(payload, pkt[g.HeaderLen():]) {
		t.Fatalf("payloads differ")
	}
}

// FuzzSplitGSO builds a well-formed super-packet from the inputs (so the
// fuzzer explores the splitter, not the parsers) and splits it lazily into
// buffers the way ReadBatch does.
func FuzzSplitGSO(f *testing.F) {
	f.Add(uint16(1400), uint16(3000), uint8(wire.FlagACK|wire.FlagPSH), false, uint32(1), uint16(7), uint8(0), uint16(1500))
	f.Add(uint16(1), uint16(100), uint8(wire.FlagACK|wire.FlagCWR|wire.FlagFIN), true, uint32(0xffffffff), uint16(0xffff), uint8(12), uint16(41))
	f.Add(uint16(0), uint16(10), uint8(wire.FlagACK), false, uint32(0), uint16(0), uint8(0), uint16(0))
	f.Fuzz(func(t *testing.T, size, plen uint16, flags uint8, v6 bool, seq uint32, id uint16, optLen uint8, bufLen uint16) {
		s := seg{src: a4, dst: b4, seq: seq, ack: 9, window: 9, id: id, flags: wire.Flags(flags)}
		if v6 {
			s.src, s.dst = a6, b6
		}
		if optLen = optLen % 41 / 4 * 4; optLen > 0 && optLen <= 8 {
			s.opts = &wire.Options{Present: wire.HasTimestamps}
		}
		hl := 40
		if v6 {
			hl = 60
		}
		s.payload = pattern(min(int(plen), 65535-hl-12), 1)
		in := s.super(int(size))
		h, _ := parseVnetHdr(in)
		g, err := prepareGSO(in[vnetHdrLen:], &h, true)
		if err != nil {
			if size != 0 && flags&uint8(wire.FlagSYN|wire.FlagRST) == 0 {
				t.Fatalf("well-formed super-packet refused: %v", err)
			}
			return
		}
		buf := make([]byte, bufLen)
		var out [][]byte
		for i := range g.Segs() {
			n := g.Segment(i, buf)
			if n == 0 {
				if len(buf) >= g.SegLen(i) {
					t.Fatalf("segment %d of %d bytes refused a %d-byte buffer", i, g.SegLen(i), len(buf))
				}
				return
			}
			out = append(out, append([]byte(nil), buf[:n]...))
		}
		checkSegments(t, in[vnetHdrLen:], &h, out)
		for i, o := range out {
			fl := wire.TCP(o[g.IPHeaderLen():]).Flags()
			want := wire.Flags(flags)
			if i < len(out)-1 {
				want &^= wire.FlagPSH | wire.FlagFIN
			}
			if i > 0 {
				want &^= wire.FlagCWR
			}
			if fl != want {
				t.Fatalf("segment %d flags %v, want %v", i, fl, want)
			}
		}
	})
}

// FuzzCoalesce writes arbitrary frames (length-prefixed in the input) through
// the coalescer and reads them back: nothing panics, and each flow's frames
// come back the same, apart from fields the super-packet rewrites by design
// (the TCP checksum, and the ID of DF packets).
func FuzzCoalesce(f *testing.F) {
	var seed []byte
	for i := range 3 {
		fr := seg{src: a4, dst: b4, seq: uint32(i * 100), ack: 1, window: 1, id: uint16(i), flags: wire.FlagACK, payload: pattern(100, 0)}.frame()
		seed = binary.BigEndian.AppendUint16(seed, uint16(len(fr)))
		seed = append(seed, fr...)
	}
	f.Add(seed)
	f.Fuzz(func(t *testing.T, b []byte) {
		var frames [][]byte
		for len(b) >= 2 {
			n := min(int(binary.BigEndian.Uint16(b)), len(b)-2)
			frames = append(frames, b[2:2+n])
			b = b[2+n:]
		}
		pkts := coalesce(frames)
		var out [][]byte
		for _, p := range pkts {
			h, _ := parseVnetHdr(p)
			if h.gsoType == vnetGSONone {
				out = append(out, p[vnetHdrLen:])
				continue
			}
			g, err := prepareGSO(p[vnetHdrLen:], &h, true)
			if err != nil {
				t.Fatalf("own super-packet refused: %v", err)
			}
			for i := range g.Segs() {
				s := make([]byte, g.SegLen(i))
				g.Segment(i, s)
				out = append(out, s)
			}
		}
		nonEmpty := 0
		for _, fr := range frames {
			if len(fr) > 0 {
				nonEmpty++
			}
		}
		if len(out) < nonEmpty || len(out) > len(frames) {
			t.Fatalf("%d frames back of %d", len(out), len(frames))
		}
		// Compare flow by flow after normalizing the rewritten fields.
		norm := func(fr []byte) string {
			s := inspect(fr)
			c := append([]byte(nil), fr...)
			if s.tcp {
				c[s.ipHL+16], c[s.ipHL+17] = 0, 0 // every TCP packet goes with the pseudo-header sum
			}
			if s.ok {
				if !s.v6 {
					c[10], c[11] = 0, 0
					if s.df {
						c[4], c[5] = 0, 0
					}
				}
			}
			return string(c)
		}
		want := map[string][]string{}
		for _, fr := range frames {
			want[flowOf(fr)] = append(want[flowOf(fr)], norm(fr))
		}
		got := map[string][]string{}
		for _, fr := range out {
			got[flowOf(fr)] = append(got[flowOf(fr)], norm(fr))
		}
		for k, w := range want {
			g := got[k]
			j := 0
			for _, x := range w {
				if x == "" {
					continue // empty frames are not written
				}
				if j >= len(g) || g[j] != x {
					t.Fatalf("flow frames differ at %d", j)
				}
				j++
			}
		}
	})
}

// FuzzDeviceRead writes one read of a vnet-header device to a fake device and
// reads it back with ReadBatch (the real read path: straight into the
// caller's buffers, super-packets cut from a copy), with and without
// checksums: never a panic, never a frame larger than its buffer, and with
// checksums the frames decodeFromDevice gives.
func FuzzDeviceRead(f *testing.F) {
	seedReads(f)
	marker := make([]byte, vnetHdrLen, 200)
	marker = append(marker, seg{src: c4, dst: b4, seq: 9, ack: 9, flags: wire.FlagACK, payload: []byte("end")}.frame()...)
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > 8<<10 {
			return
		}
		if h, err := parseVnetHdr(b); err == nil && len(b)/max(int(h.gsoSize), 1) > 256 {
			return
		}
		for _, nosum := range []bool{false, true} {
			d, k := fakeDevice(t, true)
			d.nosum = nosum
			got := readThrough(t, d, k, b, marker, 1500)
			if nosum {
				continue
			}
			want, err := decodeFromDevice(append([]byte(nil), b...), nil)
			if err != nil {
				continue
			}
			// ReadBatch drops a frame too large for its buffer, or empty, and
			// with it the rest of a super-packet (cut).
			for i, w := range want {
				if len(w) > 1500 || len(w) == 0 {
					want = want[:i]
					break
				}
			}
			equalFrames(t, got, want)
		}
		// Config.Whole: a super-packet comes out whole (one frame, carrying
		// the payload its cut segments carry) or not at all.
		d, k := fakeDevice(t, true)
		d.whole = true
		got := readThrough(t, d, k, b, marker, 65535)
		h, _ := parseVnetHdr(b)
		want, err := decodeFromDevice(append([]byte(nil), b...), nil)
		if err != nil || h.gsoType == vnetGSONone || len(want) == 0 {
			return
		}
		if len(got) != 1 {
			t.Fatalf("a super-packet of %d segments came out as %d frames", len(want), len(got))
		}
		var payload []byte
		for _, w := range want {
			payload = append(payload, w[len(w)-(len(w)-inspectHL(w)):]...)
		}
		if !bytes.HasSuffix(got[0], payload) || len(got[0]) != inspectHL(got[0])+len(payload) {
			t.Fatalf("the whole frame does not carry its segments' payload")
		}
		checkValid(t, got[0])
	})
}

// readThrough has the fake kernel k behind d send the read b, then marker (a
// good packet), and returns the frames d reads before the marker, in buffers
// of size bytes. It closes d.
func readThrough(t *testing.T, d *Device, k int, b, marker []byte, size int) [][]byte {
	kernelSend(t, k, append([]byte(nil), b...), marker)
	bs, sizes := bufs(8, size)
	var got [][]byte
	for done := false; !done; {
		n, err := d.ReadBatch(bs, sizes)
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			if sizes[i] > len(bs[i]) || sizes[i] == 0 {
				t.Fatalf("frame of %d bytes in a buffer of %d", sizes[i], len(bs[i]))
			}
			f := bs[i][:sizes[i]]
			if bytes.Equal(f, marker[vnetHdrLen:]) {
				done = true
				break
			}
			got = append(got, append([]byte(nil), f...))
		}
	}
	d.Close()
	return got
}

// inspectHL is the IP and TCP header length of a frame.
func inspectHL(f []byte) int {
	s := inspect(f)
	return s.ipHL + s.tcpHL
}
