package wire

import (
	"bytes"
	"encoding/binary"
	"strconv"
	"testing"
)

func TestUDP(t *testing.T) {
	tests := []struct {
		name     string
		dgram    string
		viewLen  int
		checksum uint16
		v4ok     bool // ChecksumValid from 10.7.0.1 to 10.7.0.2
		v6ok     bool // ChecksumValid from fd00::1 to fd00::2
		payload  string
	}{
		{"IPv4 checksum", "3039 0035 000c f690 61626364", 12, 0xf690, true, false, "61626364"},
		{"IPv6 checksum", "3039 0035 000c 109d 61626364", 12, 0x109d, false, true, "61626364"},
		{"odd length", "3039 0035 000b f6f6 616263", 11, 0xf6f6, true, false, "616263"},
		{"no checksum: valid over IPv4 only", "3039 0035 000c 0000 61626364", 12, 0, true, false, "61626364"},
		{"trailing bytes are trimmed", "3039 0035 000c f690 61626364 ffffffff", 12, 0xf690, true, false, "61626364"},
		{"header only", "3039 0035 0008 0000", 8, 0, true, false, ""},
		{"bad checksum", "3039 0035 000c f691 61626364", 12, 0xf691, false, false, "61626364"},
	}
	for _, tt := range tests {
		u, err := ParseUDP(hexBytes(t, tt.dgram))
		wantErr(t, tt.name, err, nil)
		if len(u) != tt.viewLen || u.SrcPort() != 12345 || u.DstPort() != 53 || u.Length() != tt.viewLen ||
			u.Checksum() != tt.checksum || !bytes.Equal(u.Payload(), hexBytes(t, tt.payload)) {
			t.Errorf("%s: len %d ports %d>%d length %d checksum %#04x payload %x",
				tt.name, len(u), u.SrcPort(), u.DstPort(), u.Length(), u.Checksum(), u.Payload())
		}
		if got := u.ChecksumValid(v4a, v4b); got != tt.v4ok {
			t.Errorf("%s: ChecksumValid over IPv4 = %v, want %v", tt.name, got, tt.v4ok)
		}
		if got := u.ChecksumValid(v6a, v6b); got != tt.v6ok {
			t.Errorf("%s: ChecksumValid over IPv6 = %v, want %v", tt.name, got, tt.v6ok)
		}
	}
}

func TestUDPBad(t *testing.T) {
	b := hexBytes(t, "3039 0035 000c f690 61626364")
	for n := range UDPHeaderLen {
		_, err := ParseUDP(b[:n])
		wantErr(t, "cut to "+strconv.Itoa(n), err, ErrShort)
	}
	for n := UDPHeaderLen; n < len(b); n++ {
		_, err := ParseUDP(b[:n])
		wantErr(t, "payload cut to "+strconv.Itoa(n), err, ErrTotalLength)
	}
	for _, l := range []int{0, 1, 7, 13, 0xffff} {
		bad := bytes.Clone(b)
		binary.BigEndian.PutUint16(bad[4:], uint16(l))
		_, err := ParseUDP(bad)
		wantErr(t, "length field "+strconv.Itoa(l), err, ErrTotalLength)
	}
}

func TestPutUDP(t *testing.T) {
	b := hexBytes(t, "eeeeeeeeeeeeeeee 61626364")
	if n := PutUDP(b, 12345, 53, len(b)); n != UDPHeaderLen {
		t.Fatalf("PutUDP = %d", n)
	}
	if want := hexBytes(t, "3039 0035 000c 0000 61626364"); !bytes.Equal(b, want) {
		t.Fatalf("PutUDP wrote %x, want %x", b, want)
	}
	SetUDPChecksum(b, v4a, v4b)
	if got := binary.BigEndian.Uint16(b[6:]); got != 0xf690 {
		t.Fatalf("SetUDPChecksum over IPv4 = %#04x, want 0xf690", got)
	}
	SetUDPChecksum(b, v6a, v6b)
	if got := binary.BigEndian.Uint16(b[6:]); got != 0x109d {
		t.Fatalf("SetUDPChecksum over IPv6 = %#04x, want 0x109d", got)
	}
	// A computed checksum of 0 is sent as 0xffff (RFC 768), which verifies.
	// Choose the last payload word so that the datagram sums to 0xffff.
	for _, p := range [][2]string{{"10.7.0.1", "10.7.0.2"}, {"fd00::1", "fd00::2"}} {
		src, dst := mustAddr(p[0]), mustAddr(p[1])
		d := hexBytes(t, "3039 0035 000e 0000 61626364 0000")
		w := ^Checksum(d, PseudoHeaderChecksum(ProtoUDP, src, dst, len(d)))
		binary.BigEndian.PutUint16(d[12:], w)
		SetUDPChecksum(d, src, dst)
		if got := UDP(d).Checksum(); got != 0xffff {
			t.Errorf("%v: zero checksum sent as %#04x, want 0xffff", src, got)
		}
		if !UDP(d).ChecksumValid(src, dst) {
			t.Errorf("%v: 0xffff checksum does not verify", src)
		}
	}
	r := newRand(40)
	for n := UDPHeaderLen; n < 300; n++ {
		d := randBytes(r, n)
		PutUDP(d, uint16(r.Uint32()), uint16(r.Uint32()), n)
		for _, p := range [][2]string{{"10.7.0.1", "10.7.0.2"}, {"fd00::1", "fe80::1122:33ff:fe44:5566"}} {
			src, dst := mustAddr(p[0]), mustAddr(p[1])
			SetUDPChecksum(d, src, dst)
			u, err := ParseUDP(d)
			wantErr(t, "round trip", err, nil)
			if !u.ChecksumValid(src, dst) || u.Checksum() == 0 || u.Length() != n {
				t.Fatalf("%d bytes over %v: checksum %#04x valid %v", n, src, u.Checksum(), u.ChecksumValid(src, dst))
			}
		}
	}
	assertPanics(t, "PutUDP into 7 bytes", func() { PutUDP(make([]byte, 7), 1, 2, 8) })
}
