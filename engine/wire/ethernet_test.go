package wire

import (
	"bytes"
	"strconv"
	"testing"
)

func TestMACString(t *testing.T) {
	tests := []struct {
		m    MAC
		want string
	}{
		{MAC{}, "00:00:00:00:00:00"},
		{BroadcastMAC, "ff:ff:ff:ff:ff:ff"},
		{MAC{0x02, 0x42, 0xac, 0x11, 0x00, 0x0a}, "02:42:ac:11:00:0a"},
		{MAC{0x01, 0x23, 0x45, 0x67, 0x89, 0xab}, "01:23:45:67:89:ab"},
	}
	for _, tt := range tests {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("%v: String = %q, want %q", [6]byte(tt.m), got, tt.want)
		}
	}
}

func TestEthernet(t *testing.T) {
	tests := []struct {
		name      string
		frame     string
		etherType uint16
		vlan      uint16
		hasVLAN   bool
		hdrLen    int
		payload   string
	}{
		{
			name:      "untagged IPv4",
			frame:     "ffffffffffff 020000000001 0800 4500",
			etherType: EtherTypeIPv4, hdrLen: 14, payload: "4500",
		},
		{
			name:      "untagged ARP, header only",
			frame:     "ffffffffffff 020000000001 0806",
			etherType: EtherTypeARP, hdrLen: 14, payload: "",
		},
		{
			name:      "802.1Q tag, priority 5, VLAN 100",
			frame:     "020000000002 020000000001 8100 a064 86dd 6000",
			etherType: EtherTypeIPv6, vlan: 100, hasVLAN: true, hdrLen: 18, payload: "6000",
		},
		{
			name:      "802.1Q tag with DEI and VLAN 4095",
			frame:     "020000000002 020000000001 8100 1fff 0800",
			etherType: EtherTypeIPv4, vlan: 0xfff, hasVLAN: true, hdrLen: 18, payload: "",
		},
		{
			name:      "802.1ad then 802.1Q: the inner VLAN is reported",
			frame:     "020000000002 020000000001 88a8 0064 8100 00c8 0800 aa",
			etherType: EtherTypeIPv4, vlan: 200, hasVLAN: true, hdrLen: 22, payload: "aa",
		},
		{
			name:      "a third tag is not skipped: it is the EtherType",
			frame:     "020000000002 020000000001 8100 0001 8100 0002 8100 0003 0800",
			etherType: EtherTypeVLAN, vlan: 2, hasVLAN: true, hdrLen: 22, payload: "0003 0800",
		},
		{
			name:      "an unknown EtherType is not an error",
			frame:     "020000000002 020000000001 88cc 0102",
			etherType: 0x88cc, hdrLen: 14, payload: "0102",
		},
		{
			name:      "smallest EtherType",
			frame:     "020000000002 020000000001 0600",
			etherType: 0x0600, hdrLen: 14, payload: "",
		},
	}
	for _, tt := range tests {
		b := hexBytes(t, tt.frame)
		e, err := ParseEthernet(b)
		wantErr(t, tt.name, err, nil)
		if len(e) != len(b) {
			t.Errorf("%s: view length %d, want %d", tt.name, len(e), len(b))
		}
		if got := e.Dst(); got != MAC(b[0:6]) {
			t.Errorf("%s: Dst = %v", tt.name, got)
		}
		if got := e.Src(); got != MAC(b[6:12]) {
			t.Errorf("%s: Src = %v", tt.name, got)
		}
		if got := e.EtherType(); got != tt.etherType {
			t.Errorf("%s: EtherType = %#04x, want %#04x", tt.name, got, tt.etherType)
		}
		id, ok := e.VLAN()
		if id != tt.vlan || ok != tt.hasVLAN {
			t.Errorf("%s: VLAN = %d, %v, want %d, %v", tt.name, id, ok, tt.vlan, tt.hasVLAN)
		}
		if got := e.HeaderLen(); got != tt.hdrLen {
			t.Errorf("%s: HeaderLen = %d, want %d", tt.name, got, tt.hdrLen)
		}
		if got, want := e.Payload(), hexBytes(t, tt.payload); !bytes.Equal(got, want) {
			t.Errorf("%s: Payload = %x, want %x", tt.name, got, want)
		}
	}
}

func TestEthernetBad(t *testing.T) {
	untagged := hexBytes(t, "020000000002 020000000001 0800")
	for n := range len(untagged) {
		_, err := ParseEthernet(untagged[:n])
		wantErr(t, "untagged frame cut to "+strconv.Itoa(n), err, ErrShort)
	}
	// One tag: the tag must be followed by a full EtherType.
	tagged := hexBytes(t, "020000000002 020000000001 8100 0064 0800")
	for n := range len(tagged) {
		_, err := ParseEthernet(tagged[:n])
		wantErr(t, "tagged frame cut to "+strconv.Itoa(n), err, ErrShort)
	}
	double := hexBytes(t, "020000000002 020000000001 88a8 0064 8100 00c8 86dd")
	for n := range len(double) {
		_, err := ParseEthernet(double[:n])
		wantErr(t, "double-tagged frame cut to "+strconv.Itoa(n), err, ErrShort)
	}
	// 802.3 length fields (below 0x0600) are not EtherTypes.
	for _, f := range []string{
		"020000000002 020000000001 0000",
		"020000000002 020000000001 05dc aaaa03",
		"020000000002 020000000001 05ff",
		"020000000002 020000000001 8100 0064 05dc",
		"020000000002 020000000001 88a8 0064 8100 00c8 0026",
	} {
		_, err := ParseEthernet(hexBytes(t, f))
		wantErr(t, f, err, ErrUnsupported)
	}
}

func TestPutEthernet(t *testing.T) {
	b := make([]byte, EthernetHeaderLen+2)
	for i := range b {
		b[i] = 0xee
	}
	if n := PutEthernet(b, BroadcastMAC, macA, EtherTypeARP); n != EthernetHeaderLen {
		t.Fatalf("PutEthernet = %d, want %d", n, EthernetHeaderLen)
	}
	if want := hexBytes(t, "ffffffffffff 020000000001 0806 eeee"); !bytes.Equal(b, want) {
		t.Fatalf("PutEthernet wrote %x, want %x", b, want)
	}
	e, err := ParseEthernet(b)
	wantErr(t, "ParseEthernet", err, nil)
	if e.Dst() != BroadcastMAC || e.Src() != macA || e.EtherType() != EtherTypeARP {
		t.Errorf("round trip: %v %v %#04x", e.Dst(), e.Src(), e.EtherType())
	}
	assertPanics(t, "PutEthernet into 13 bytes", func() { PutEthernet(make([]byte, 13), macA, macB, EtherTypeIPv4) })
}

// An ARP request for 10.7.0.2 from 10.7.0.1, followed by the 18 bytes of padding
// that fill a minimum-size Ethernet frame (the view drops them).
const arpRequestHex = "0001 0800 06 04 0001 020000000001 0a070001 000000000000 0a070002" +
	"000000000000000000000000000000000000"

func TestARP(t *testing.T) {
	b := hexBytes(t, arpRequestHex)
	a, err := ParseARP(b)
	wantErr(t, "ParseARP", err, nil)
	if len(a) != ARPLen {
		t.Errorf("view length %d, want %d (padding dropped)", len(a), ARPLen)
	}
	if a.Op() != ARPRequest {
		t.Errorf("Op = %d, want %d", a.Op(), ARPRequest)
	}
	if a.SenderMAC() != macA {
		t.Errorf("SenderMAC = %v", a.SenderMAC())
	}
	if a.SenderIP() != v4a {
		t.Errorf("SenderIP = %v", a.SenderIP())
	}
	if a.TargetMAC() != (MAC{}) {
		t.Errorf("TargetMAC = %v", a.TargetMAC())
	}
	if a.TargetIP() != v4b {
		t.Errorf("TargetIP = %v", a.TargetIP())
	}
	// Build the same request and a reply, and parse them back.
	out := make([]byte, ARPLen)
	if n := PutARP(out, ARPRequest, macA, v4a, MAC{}, v4b); n != ARPLen {
		t.Fatalf("PutARP = %d", n)
	}
	if !bytes.Equal(out, b[:ARPLen]) {
		t.Fatalf("PutARP wrote %x, want %x", out, b[:ARPLen])
	}
	PutARP(out, ARPReply, macB, v4b, macA, v4a)
	r, err := ParseARP(out)
	wantErr(t, "ParseARP(reply)", err, nil)
	if r.Op() != ARPReply || r.SenderMAC() != macB || r.SenderIP() != v4b || r.TargetMAC() != macA || r.TargetIP() != v4a {
		t.Errorf("reply round trip: op %d %v %v %v %v", r.Op(), r.SenderMAC(), r.SenderIP(), r.TargetMAC(), r.TargetIP())
	}
	// Other operations (RARP, InARP) parse; Op reports them.
	out[7] = 3
	if r, err := ParseARP(out); err != nil || r.Op() != 3 {
		t.Errorf("op 3: %v, %v", r, err)
	}
	assertPanics(t, "PutARP into 27 bytes", func() { PutARP(make([]byte, 27), ARPRequest, macA, v4a, MAC{}, v4b) })
}

func TestARPBad(t *testing.T) {
	b := hexBytes(t, arpRequestHex)[:ARPLen]
	for n := range ARPLen {
		_, err := ParseARP(b[:n])
		wantErr(t, "ARP cut to "+strconv.Itoa(n), err, ErrShort)
	}
	for _, c := range []struct {
		name string
		i    int
		v    byte
	}{
		{"hardware type 6 (IEEE 802)", 1, 6},
		{"hardware type 0x0101", 0, 1},
		{"protocol type IPv6", 2, 0x86},
		{"protocol type 0x0801", 3, 0x01},
		{"hardware length 8", 4, 8},
		{"hardware length 0", 4, 0},
		{"protocol length 16", 5, 16},
		{"protocol length 0", 5, 0},
	} {
		bad := bytes.Clone(b)
		bad[c.i] = c.v
		_, err := ParseARP(bad)
		wantErr(t, c.name, err, ErrUnsupported)
	}
	// A short packet is ErrShort even when its header is also unsupported.
	bad := bytes.Clone(b)
	bad[1] = 6
	_, err := ParseARP(bad[:27])
	wantErr(t, "short and unsupported", err, ErrShort)
}

// assertPanics fails unless f panics (a builder given a too-small buffer).
func assertPanics(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", what)
		}
	}()
	f()
}
