package wire

import (
	"encoding/binary"
	"net/netip"
)

// MAC is an IEEE 802 MAC-48 address.
type MAC [6]byte

// BroadcastMAC is ff:ff:ff:ff:ff:ff.
var BroadcastMAC = MAC{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

const hexDigits = "0123456789abcdef"

// String formats m as six colon-separated lowercase hex bytes.
func (m MAC) String() string {
	var b [17]byte
	for i, x := range m {
		if i > 0 {
			b[i*3-1] = ':'
		}
		b[i*3], b[i*3+1] = hexDigits[x>>4], hexDigits[x&0xf]
	}
	return string(b[:])
}

// EtherType values used by tcpeng.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86dd
	EtherTypeVLAN = 0x8100 // IEEE 802.1Q customer tag
	EtherTypeQinQ = 0x88a8 // IEEE 802.1ad service tag
)

// Ethernet header sizes.
const (
	EthernetHeaderLen = 14
	vlanTagLen        = 4
	maxVLANTags       = 2 // an 802.1ad service tag followed by an 802.1Q tag
)

// Ethernet is a view of an Ethernet II frame (without preamble or FCS). Up to two
// VLAN tags (802.1ad then 802.1Q) between the source address and the EtherType
// are skipped: EtherType and Payload describe what follows them.
type Ethernet []byte

// ParseEthernet validates b as an Ethernet II frame. It fails with ErrShort if b
// ends inside the header or a VLAN tag, and with ErrUnsupported for an 802.3
// length field (EtherType below 0x0600) instead of an EtherType.
func ParseEthernet(b []byte) (Ethernet, error) {
	if len(b) < EthernetHeaderLen {
		return nil, ErrShort
	}
	e := Ethernet(b)
	off := 12
	for range maxVLANTags {
		t := binary.BigEndian.Uint16(b[off:])
		if t != EtherTypeVLAN && t != EtherTypeQinQ {
			break
		}
		off += vlanTagLen
		if len(b) < off+2 {
			return nil, ErrShort
		}
	}
	if binary.BigEndian.Uint16(b[off:]) < 0x0600 {
		return nil, ErrUnsupported
	}
	return e, nil
}

// Dst returns the destination address.
func (e Ethernet) Dst() MAC { return MAC(e[0:6]) }

// Src returns the source address.
func (e Ethernet) Src() MAC { return MAC(e[6:12]) }

// typeOffset returns the offset of the EtherType after any VLAN tags.
func (e Ethernet) typeOffset() int {
	off := 12
	for range maxVLANTags {
		t := binary.BigEndian.Uint16(e[off:])
		if (t != EtherTypeVLAN && t != EtherTypeQinQ) || len(e) < off+vlanTagLen+2 {
			break
		}
		off += vlanTagLen
	}
	return off
}

// EtherType returns the type of the payload, after any VLAN tags.
func (e Ethernet) EtherType() uint16 { return binary.BigEndian.Uint16(e[e.typeOffset():]) }

// VLAN returns the VLAN identifier of the innermost tag, and whether there is one.
func (e Ethernet) VLAN() (id uint16, ok bool) {
	off := e.typeOffset()
	if off == 12 {
		return 0, false
	}
	return binary.BigEndian.Uint16(e[off-2:]) & 0x0fff, true
}

// HeaderLen returns the header length including VLAN tags.
func (e Ethernet) HeaderLen() int { return e.typeOffset() + 2 }

// Payload returns the bytes after the header (including any link-layer padding).
func (e Ethernet) Payload() []byte { return e[e.HeaderLen():] }

// PutEthernet writes an untagged Ethernet II header into b and returns its length
// (EthernetHeaderLen).
func PutEthernet(b []byte, dst, src MAC, etherType uint16) int {
	_ = b[EthernetHeaderLen-1]
	copy(b[0:6], dst[:])
	copy(b[6:12], src[:])
	binary.BigEndian.PutUint16(b[12:], etherType)
	return EthernetHeaderLen
}

// ARP operations (RFC 826).
const (
	ARPRequest = 1
	ARPReply   = 2
)

// ARPLen is the length of an ARP packet for IPv4 over Ethernet.
const ARPLen = 28

// ARP is a view of an ARP packet for IPv4 over Ethernet (RFC 826).
type ARP []byte

// ParseARP validates b as an ARP packet with hardware type Ethernet (1), protocol
// type IPv4 and address lengths 6 and 4. It fails with ErrShort on fewer than
// ARPLen bytes and with ErrUnsupported for any other hardware or protocol.
func ParseARP(b []byte) (ARP, error) {
	if len(b) < ARPLen {
		return nil, ErrShort
	}
	if binary.BigEndian.Uint16(b[0:]) != 1 || binary.BigEndian.Uint16(b[2:]) != EtherTypeIPv4 || b[4] != 6 || b[5] != 4 {
		return nil, ErrUnsupported
	}
	return ARP(b[:ARPLen]), nil
}

// Op returns the operation (ARPRequest, ARPReply, or another value).
func (a ARP) Op() uint16 { return binary.BigEndian.Uint16(a[6:]) }

// SenderMAC returns the sender hardware address.
func (a ARP) SenderMAC() MAC { return MAC(a[8:14]) }

// SenderIP returns the sender protocol address.
func (a ARP) SenderIP() netip.Addr { return netip.AddrFrom4([4]byte(a[14:18])) }

// TargetMAC returns the target hardware address.
func (a ARP) TargetMAC() MAC { return MAC(a[18:24]) }

// TargetIP returns the target protocol address.
func (a ARP) TargetIP() netip.Addr { return netip.AddrFrom4([4]byte(a[24:28])) }

// PutARP writes an ARP packet for IPv4 over Ethernet into b and returns ARPLen.
// senderIP and targetIP must be IPv4 addresses.
func PutARP(b []byte, op uint16, senderMAC MAC, senderIP netip.Addr, targetMAC MAC, targetIP netip.Addr) int {
	_ = b[ARPLen-1]
	binary.BigEndian.PutUint16(b[0:], 1)
	binary.BigEndian.PutUint16(b[2:], EtherTypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], op)
	copy(b[8:14], senderMAC[:])
	s, t := senderIP.As4(), targetIP.As4()
	copy(b[14:18], s[:])
	copy(b[18:24], targetMAC[:])
	copy(b[24:28], t[:])
	return ARPLen
}
