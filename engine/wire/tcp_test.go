package wire

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"
)

const (
	// A SYN from 10.7.0.1:12345 to 10.7.0.2:80 with the options Linux sends:
	// MSS 1460, SACK permitted, timestamps, NOP, window scale 7.
	tcpSYNHex = "3039 0050 6b8b4567 00000000 a002 faf0 abb5 0000" +
		"020405b4 0402080a 0000abcd 00000000 01030307"
	// A PSH,ACK with "hello" from [fd00::2]:80 to [fd00::1]:12345, timestamps.
	tcpDataHex = "0050 3039 327b23c6 6b8b4568 8018 01f6 4124 0000" +
		"0101080a 00001234 0000abcd 68656c6c6f"
)

func TestTCP(t *testing.T) {
	b := hexBytes(t, tcpSYNHex)
	seg, err := ParseTCP(b)
	wantErr(t, "SYN", err, nil)
	checks := []struct {
		field     string
		got, want any
	}{
		{"len", len(seg), 40},
		{"SrcPort", seg.SrcPort(), uint16(12345)},
		{"DstPort", seg.DstPort(), uint16(80)},
		{"Seq", seg.Seq(), Seq(0x6b8b4567)},
		{"Ack", seg.Ack(), Seq(0)},
		{"HeaderLen", seg.HeaderLen(), 40},
		{"Flags", seg.Flags(), FlagSYN},
		{"Window", seg.Window(), uint16(64240)},
		{"Checksum", seg.Checksum(), uint16(0xabb5)},
		{"Urgent", seg.Urgent(), uint16(0)},
		{"Options", string(seg.Options()), string(b[20:40])},
		{"Payload", len(seg.Payload()), 0},
		{"ChecksumValid", seg.ChecksumValid(v4a, v4b), true},
		{"ChecksumValid reversed", seg.ChecksumValid(v4b, mustAddr("10.7.0.3")), false},
		{"Segment", seg.Segment(), Segment{Seq: 0x6b8b4567, Window: 64240, Flags: FlagSYN, Len: 0, Opts: Options{
			Present: HasMSS | HasSACKPermitted | HasTimestamps | HasWindowScale, MSS: 1460, WindowScale: 7, TSVal: 0xabcd}}},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("SYN: %s = %v, want %v", c.field, c.got, c.want)
		}
	}

	b = hexBytes(t, tcpDataHex)
	seg, err = ParseTCP(b)
	wantErr(t, "data", err, nil)
	checks = []struct {
		field     string
		got, want any
	}{
		{"len", len(seg), 37},
		{"SrcPort", seg.SrcPort(), uint16(80)},
		{"DstPort", seg.DstPort(), uint16(12345)},
		{"Seq", seg.Seq(), Seq(0x327b23c6)},
		{"Ack", seg.Ack(), Seq(0x6b8b4568)},
		{"HeaderLen", seg.HeaderLen(), 32},
		{"Flags", seg.Flags(), FlagPSH | FlagACK},
		{"Window", seg.Window(), uint16(502)},
		{"Checksum", seg.Checksum(), uint16(0x4124)},
		{"Payload", string(seg.Payload()), "hello"},
		{"ChecksumValid", seg.ChecksumValid(v6b, v6a), true},
		{"ChecksumValid over IPv4", seg.ChecksumValid(v4b, v4a), false},
		{"Segment", seg.Segment(), Segment{Seq: 0x327b23c6, Ack: 0x6b8b4568, Window: 502, Flags: FlagPSH | FlagACK, Len: 5,
			Opts: Options{Present: HasTimestamps, TSVal: 0x1234, TSEcr: 0xabcd}}},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("data: %s = %v, want %v", c.field, c.got, c.want)
		}
	}
	s := seg.Segment()
	if s.SeqLen() != 5 || s.End() != 0x327b23cb {
		t.Errorf("data: SeqLen %d End %#x", s.SeqLen(), uint32(s.End()))
	}

	// The header's four reserved bits and the AE (old NS) bit are not flags.
	b = hexBytes(t, "0001 0002 00000000 00000000 5fff 0000 0000 0000")
	seg, err = ParseTCP(b)
	wantErr(t, "every bit set", err, nil)
	if seg.Flags() != 0xff || seg.HeaderLen() != 20 {
		t.Errorf("every bit set: flags %#02x header %d", uint8(seg.Flags()), seg.HeaderLen())
	}

	// A malformed option ends the walk in Segment; what came before is kept.
	b = hexBytes(t, "0001 0002 00000001 00000002 7010 0400 0000 0000 020405b4 0304 0e00 01010101")
	seg, err = ParseTCP(b)
	wantErr(t, "malformed option", err, nil)
	if got := seg.Segment(); got.Opts != (Options{Present: HasMSS, MSS: 1460}) || got.Len != 4 || got.Seq != 1 || got.Ack != 2 {
		t.Errorf("malformed option: Segment = %+v", got)
	}
}

func TestTCPBad(t *testing.T) {
	b := hexBytes(t, tcpDataHex)
	for n := range TCPMinHeaderLen {
		_, err := ParseTCP(b[:n])
		wantErr(t, "cut to "+strconv.Itoa(n), err, ErrShort)
	}
	// The header is 32 bytes: cutting into it is a data offset past the buffer.
	for n := TCPMinHeaderLen; n < 32; n++ {
		_, err := ParseTCP(b[:n])
		wantErr(t, "options cut to "+strconv.Itoa(n), err, ErrHeaderLength)
	}
	// Cutting the payload is fine: the IP layer decides the segment's length.
	for n := 32; n <= len(b); n++ {
		seg, err := ParseTCP(b[:n])
		wantErr(t, "payload cut to "+strconv.Itoa(n), err, nil)
		if len(seg.Payload()) != n-32 || seg.Segment().Len != n-32 {
			t.Errorf("payload cut to %d: payload %d", n, len(seg.Payload()))
		}
	}
	for off := range 5 {
		bad := bytes.Clone(b)
		bad[12] = byte(off<<4) | bad[12]&0xf
		_, err := ParseTCP(bad)
		wantErr(t, "data offset "+strconv.Itoa(off), err, ErrHeaderLength)
	}
	for _, c := range []struct {
		off, n int
	}{{10, 39}, {15, 59}, {6, 23}} {
		bad := bytes.Clone(b)
		for len(bad) < c.n {
			bad = append(bad, 1)
		}
		bad = bad[:c.n]
		bad[12] = byte(c.off << 4)
		_, err := ParseTCP(bad)
		wantErr(t, "data offset "+strconv.Itoa(c.off)+" in "+strconv.Itoa(c.n)+" bytes", err, ErrHeaderLength)
		bad = append(bad, 1)
		_, err = ParseTCP(bad)
		wantErr(t, "data offset "+strconv.Itoa(c.off)+" in "+strconv.Itoa(len(bad))+" bytes", err, nil)
	}
}

func TestFlagsString(t *testing.T) {
	tests := []struct {
		f    Flags
		want string
	}{
		{0, "none"},
		{FlagFIN, "FIN"},
		{FlagSYN, "SYN"},
		{FlagRST, "RST"},
		{FlagPSH, "PSH"},
		{FlagACK, "ACK"},
		{FlagURG, "URG"},
		{FlagECE, "ECE"},
		{FlagCWR, "CWR"},
		{FlagSYN | FlagACK, "SYN,ACK"},
		{FlagFIN | FlagACK, "FIN,ACK"},
		{FlagPSH | FlagACK, "PSH,ACK"},
		{FlagRST | FlagACK, "RST,ACK"},
		{FlagFIN | FlagPSH | FlagACK, "FIN,PSH,ACK"},
		{FlagSYN | FlagECE | FlagCWR, "SYN,ECE,CWR"},               // an ECN-setup SYN (RFC 3168 §6.1.1)
		{FlagSYN | FlagACK | FlagECE, "SYN,ACK,ECE"},               // an ECN-setup SYN-ACK
		{FlagACK | FlagCWR, "ACK,CWR"},                             // congestion window reduced
		{FlagSYN | FlagFIN, "SYN,FIN"},                             // SYN first whatever the bit order
		{FlagURG | FlagPSH | FlagACK, "PSH,ACK,URG"},               // bit order after SYN,FIN
		{0xff, "SYN,FIN,RST,PSH,ACK,URG,ECE,CWR"},                  // the longest string
		{FlagFIN | FlagSYN | FlagRST, "SYN,FIN,RST"},               // an impossible combination still prints
		{FlagECE | FlagCWR, "ECE,CWR"},                             // no SYN: CWR and ECE only
		{FlagSYN | FlagRST | FlagURG | FlagCWR, "SYN,RST,URG,CWR"}, // every other flag
	}
	for _, tt := range tests {
		if got := tt.f.String(); got != tt.want {
			t.Errorf("Flags(%#02x).String() = %q, want %q", uint8(tt.f), got, tt.want)
		}
	}
	// Every one of the 256 values: the names of exactly the set bits.
	names := map[string]Flags{"FIN": FlagFIN, "SYN": FlagSYN, "RST": FlagRST, "PSH": FlagPSH,
		"ACK": FlagACK, "URG": FlagURG, "ECE": FlagECE, "CWR": FlagCWR}
	for v := 1; v < 256; v++ {
		var got Flags
		s := Flags(v).String()
		for len(s) > 0 {
			name := s
			if i := bytes.IndexByte([]byte(s), ','); i >= 0 {
				name, s = s[:i], s[i+1:]
			} else {
				s = ""
			}
			g, ok := names[name]
			if !ok || got&g != 0 {
				t.Fatalf("Flags(%#02x).String() = %q: bad or repeated name %q", v, Flags(v).String(), name)
			}
			got |= g
		}
		if got != Flags(v) {
			t.Fatalf("Flags(%#02x).String() = %q names %#02x", v, Flags(v).String(), uint8(got))
		}
	}
}

func TestFlagsHas(t *testing.T) {
	f := FlagSYN | FlagACK
	for _, c := range []struct {
		g    Flags
		want bool
	}{
		{FlagSYN, true}, {FlagACK, true}, {FlagSYN | FlagACK, true}, {0, true},
		{FlagFIN, false}, {FlagSYN | FlagFIN, false}, {FlagECE, false}, {0xff, false},
	} {
		if got := f.Has(c.g); got != c.want {
			t.Errorf("(SYN,ACK).Has(%v) = %v, want %v", c.g, got, c.want)
		}
	}
	if !Flags(0xff).Has(FlagCWR|FlagECE) || Flags(0x3f).Has(FlagCWR) {
		t.Error("Has with ECE and CWR")
	}
}

func TestPutTCP(t *testing.T) {
	want := hexBytes(t, tcpSYNHex)
	b := make([]byte, 60)
	for i := range b {
		b[i] = 0xee
	}
	o := Options{Present: HasMSS | HasSACKPermitted | HasTimestamps | HasWindowScale, MSS: 1460, WindowScale: 7, TSVal: 0xabcd}
	n := PutTCP(b, TCPHeader{SrcPort: 12345, DstPort: 80, Seq: 0x6b8b4567, Flags: FlagSYN, Window: 64240}, &o)
	if n != 40 {
		t.Fatalf("PutTCP = %d, want 40", n)
	}
	if b[16] != 0 || b[17] != 0 {
		t.Fatalf("PutTCP left checksum %x, want 0", b[16:18])
	}
	SetTCPChecksum(b[:n], v4a, v4b)
	if !bytes.Equal(b[:n], want) {
		t.Fatalf("SYN built as\n%x, want\n%x", b[:n], want)
	}

	want = hexBytes(t, tcpDataHex)
	b = make([]byte, len(want))
	o = Options{Present: HasTimestamps, TSVal: 0x1234, TSEcr: 0xabcd}
	n = PutTCP(b, TCPHeader{SrcPort: 80, DstPort: 12345, Seq: 0x327b23c6, Ack: 0x6b8b4568, Flags: FlagPSH | FlagACK, Window: 502}, &o)
	copy(b[n:], "hello")
	SetTCPChecksum(b, v6b, v6a)
	if n != 32 || !bytes.Equal(b, want) {
		t.Fatalf("data segment built as\n%x, want\n%x", b, want)
	}

	// No options.
	b = make([]byte, 20)
	if n := PutTCP(b, TCPHeader{SrcPort: 1, DstPort: 2, Seq: 3, Ack: 4, Flags: FlagRST | FlagACK, Window: 5, Urgent: 6}, nil); n != 20 {
		t.Fatalf("PutTCP without options = %d", n)
	}
	if want := hexBytes(t, "0001 0002 00000003 00000004 5014 0005 0000 0006"); !bytes.Equal(b, want) {
		t.Fatalf("PutTCP without options wrote %x, want %x", b, want)
	}
	// Empty options are the same as none.
	if n := PutTCP(b, TCPHeader{}, &Options{}); n != 20 || b[12] != 0x50 {
		t.Fatalf("PutTCP with empty options = %d, offset byte %#02x", n, b[12])
	}

	// Random headers and options: build, parse, compare.
	r := newRand(50)
	buf := make([]byte, 60+64)
	for range 5000 {
		h := TCPHeader{
			SrcPort: uint16(r.Uint32()), DstPort: uint16(r.Uint32()),
			Seq: Seq(r.Uint32()), Ack: Seq(r.Uint32()),
			Flags: Flags(r.Uint32()), Window: uint16(r.Uint32()), Urgent: uint16(r.Uint32()),
		}
		o := randOptions(r)
		n := PutTCP(buf, h, &o)
		if n != 20+o.Len() || n > TCPMaxHeaderLen || n%4 != 0 {
			t.Fatalf("PutTCP(%+v) = %d", o, n)
		}
		pl := int(r.Uint32N(64))
		src, dst := netip.AddrFrom4([4]byte(randBytes(r, 4))), netip.AddrFrom16([16]byte(randBytes(r, 16)))
		if pl%2 == 0 {
			dst = netip.AddrFrom4([4]byte(randBytes(r, 4)))
		} else {
			src = netip.AddrFrom16([16]byte(randBytes(r, 16)))
		}
		SetTCPChecksum(buf[:n+pl], src, dst)
		seg, err := ParseTCP(buf[:n+pl])
		wantErr(t, "round trip", err, nil)
		got := TCPHeader{seg.SrcPort(), seg.DstPort(), seg.Seq(), seg.Ack(), seg.Flags(), seg.Window(), seg.Urgent()}
		if got != h || seg.HeaderLen() != n || len(seg.Payload()) != pl || !seg.ChecksumValid(src, dst) {
			t.Fatalf("round trip: %+v, want %+v", got, h)
		}
		s := seg.Segment()
		if s.Seq != h.Seq || s.Ack != h.Ack || s.Window != h.Window || s.Flags != h.Flags || s.Len != pl {
			t.Fatalf("Segment = %+v for %+v", s, h)
		}
		if want := putExpected(o); s.Opts != want {
			t.Fatalf("options: parsed %+v, want %+v", s.Opts, want)
		}
	}
	assertPanics(t, "PutTCP into 19 bytes", func() { PutTCP(make([]byte, 19), TCPHeader{}, nil) })
	assertPanics(t, "PutTCP with options into 20 bytes", func() {
		PutTCP(make([]byte, 20), TCPHeader{}, &Options{Present: HasMSS, MSS: 1})
	})
}
