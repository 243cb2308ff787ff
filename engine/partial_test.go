package engine

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// TestPartialChecksums: with Config.PartialChecksums every TCP checksum field
// sent holds the pseudo-header sum, and finishing it as the link would gives
// exactly the frames of the same run with full checksums: handshake, data both
// ways, close, and a reset from the control queue (a dial to a closed port).
func TestPartialChecksums(t *testing.T) {
	run := func(partial bool) [][]byte {
		p := newPair(t, func(c *Config) { c.PartialChecksums = partial })
		var sent [][]byte
		p.drop = func(from int, f []byte) bool {
			ip := wire.IPv4(f)
			seg := f[ip.HeaderLen():]
			if !ip.ChecksumValid() {
				t.Fatalf("partial %v: IPv4 header checksum", partial)
			}
			if partial {
				pseudo := wire.PseudoHeaderChecksum(wire.ProtoTCP, ip.Src(), ip.Dst(), len(seg))
				if got := binary.BigEndian.Uint16(seg[16:]); got != pseudo {
					t.Fatalf("checksum field %#04x, want the pseudo-header sum %#04x", got, pseudo)
				}
				// What a NIC or the kernel does with CHECKSUM_PARTIAL: sum from
				// the TCP header to the end, field included, and store the
				// complement.
				binary.BigEndian.PutUint16(seg[16:], ^wire.Checksum(seg, 0))
			}
			sent = append(sent, bytes.Clone(f))
			return false
		}
		lid, _ := p.b.Listen(netip.AddrPortFrom(addrB, 80), 0)
		cid, _ := p.a.Dial(p.now, netip.AddrPort{}, netip.AddrPortFrom(addrB, 80))
		p.a.Dial(p.now, netip.AddrPort{}, netip.AddrPortFrom(addrB, 81)) // refused: a reset
		p.run(p.now.Add(Second))
		sid, err := p.b.Accept(lid)
		if err != OK {
			t.Fatalf("partial %v: accept: %v", partial, err)
		}
		data := bytes.Repeat([]byte("partial!"), 40000)
		got := make([]byte, 0, len(data))
		buf := make([]byte, 64<<10)
		for w := 0; len(got) < len(data); {
			n, _ := p.a.Write(cid, data[w:])
			w += n
			p.b.Write(sid, data[:100])
			p.run(p.now.Add(Millisecond))
			n, _ = p.b.Read(sid, buf)
			got = append(got, buf[:n]...)
			p.a.Read(cid, buf)
		}
		if !bytes.Equal(got, data) {
			t.Fatalf("partial %v: the data differs", partial)
		}
		p.a.Close(cid)
		p.b.Close(sid)
		p.run(p.now.Add(300 * Second))
		if st := p.b.Stats(); st.DropChecksum != 0 {
			t.Fatalf("partial %v: %d frames dropped for their checksum", partial, st.DropChecksum)
		}
		return sent
	}
	full, partial := run(false), run(true)
	if len(full) != len(partial) || len(full) < 100 {
		t.Fatalf("%d frames with full checksums, %d with partial ones", len(full), len(partial))
	}
	for i := range full {
		if !bytes.Equal(full[i], partial[i]) {
			t.Fatalf("frame %d differs once finished:\n% x\n% x", i, full[i][:40], partial[i][:40])
		}
	}
}

// TestSegmentLargerThanMSS: a segment that carries more than the MSS (a TSO
// super-packet that a TUN device hands over whole, as GRO does) is taken whole
// and acknowledged at once: it carries two full-sized segments (RFC 5681 §4.2),
// so it does not wait for the delayed-ACK timer.
func TestSegmentLargerThanMSS(t *testing.T) {
	p := newPair(t, nil)
	lid, _ := p.b.Listen(netip.AddrPortFrom(addrB, 80), 0)
	cid, _ := p.a.Dial(p.now, netip.AddrPort{}, netip.AddrPortFrom(addrB, 80))
	p.run(p.now.Add(Second))
	sid, err := p.b.Accept(lid)
	if err != OK {
		t.Fatal(err)
	}
	// a's segments, kept from b.
	var segs [][]byte
	p.drop = func(from int, f []byte) bool {
		if from == 0 && len(f) > 52+12 {
			segs = append(segs, f)
			return true
		}
		return false
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 181) // two full-sized segments of 1448 bytes (MSS 1460 less timestamps)
	if n, _ := p.a.Write(cid, data); n != len(data) {
		t.Fatal(n)
	}
	p.exchange()
	if len(segs) != 2 {
		t.Fatalf("%d segments from a, want 2", len(segs))
	}
	// Join them as the kernel's GSO would have sent them: the first's headers,
	// every payload, the total length, PSH from the last.
	first := wire.IPv4(segs[0])
	hl := first.HeaderLen() + wire.TCP(segs[0][first.HeaderLen():]).HeaderLen()
	big := bytes.Clone(segs[0][:hl])
	for _, s := range segs {
		big = append(big, s[hl:]...)
	}
	binary.BigEndian.PutUint16(big[2:], uint16(len(big)))
	big[10], big[11] = 0, 0
	binary.BigEndian.PutUint16(big[10:], ^wire.Checksum(big[:first.HeaderLen()], 0))
	tcp := big[first.HeaderLen():]
	tcp[13] |= segs[1][first.HeaderLen()+13] & uint8(wire.FlagPSH)
	tcp[16], tcp[17] = 0, 0
	binary.BigEndian.PutUint16(tcp[16:], ^wire.ChecksumCombine(wire.Checksum(tcp, 0),
		wire.PseudoHeaderChecksum(wire.ProtoTCP, first.Src(), first.Dst(), len(tcp))))
	p.b.HandleFrame(p.now, big)
	buf := make([]byte, 2000)
	n := p.b.PollFrame(buf)
	if n == 0 {
		t.Fatal("no ACK at once for a segment of two full-sized ones")
	}
	ack := wire.TCP(buf[20:n])
	if want := wire.TCP(tcp).Seq().Add(uint32(len(data))); ack.Ack() != want {
		t.Fatalf("ACK %v, want %v", ack.Ack(), want)
	}
	got := make([]byte, 8000)
	if n, err := p.b.Read(sid, got); err != OK || !bytes.Equal(got[:n], data) {
		t.Fatalf("read %d bytes, %v", n, err)
	}
}
