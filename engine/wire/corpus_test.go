package wire

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

var writeCorpus = flag.Bool("wire.corpus", false, "rewrite the seed corpora in testdata/fuzz from testdata/golden and the edge cases below")

// TestWriteFuzzCorpus writes the seed corpora of the fuzz targets, one plain
// "go test fuzz v1" file per input: every golden kernel packet, cut down to the
// layer each target parses, and hand-made edge cases. It only runs with
// -wire.corpus:
//
//	go test ./engine/wire -run TestWriteFuzzCorpus -args -wire.corpus
func TestWriteFuzzCorpus(t *testing.T) {
	if !*writeCorpus {
		t.Skip("run with -wire.corpus to rewrite testdata/fuzz")
	}
	seeds := map[string]map[string][]byte{}
	add := func(target, name string, b []byte) {
		if seeds[target] == nil {
			seeds[target] = map[string][]byte{}
		}
		seeds[target][name] = bytes.Clone(b)
	}
	files, ok := loadGolden(t, goldenDir)
	if !ok {
		t.Fatalf("%s is missing", goldenDir)
	}
	for _, g := range files {
		name := "golden-" + g.name
		pkt := g.pkt
		if g.link == "ethernet" {
			add("FuzzEthernet", name, pkt)
			e, err := ParseEthernet(pkt)
			if err != nil {
				t.Fatalf("%s: %v", g.name, err)
			}
			if e.EtherType() == EtherTypeARP {
				add("FuzzARP", name, e.Payload())
				add("FuzzARP", name+"-padded", append(bytes.Clone(e.Payload()), make([]byte, 18)...))
				continue
			}
			pkt = e.Payload()
		} else {
			frame := make([]byte, EthernetHeaderLen, EthernetHeaderLen+len(pkt))
			et := uint16(EtherTypeIPv4)
			if pkt[0]>>4 == 6 {
				et = EtherTypeIPv6
			}
			PutEthernet(frame, macB, macA, et)
			add("FuzzEthernet", name+"-framed", append(frame, pkt...))
		}
		add("FuzzChecksum", name, pkt)
		var proto uint8
		var upper []byte
		switch pkt[0] >> 4 {
		case 4:
			add("FuzzIPv4", name, pkt)
			ip, err := ParseIPv4(pkt)
			if err != nil {
				t.Fatalf("%s: %v", g.name, err)
			}
			if ip.FragmentOffset() != 0 {
				continue
			}
			proto, upper = ip.Protocol(), ip.Payload()
		case 6:
			add("FuzzIPv6", name, pkt)
			ip, err := ParseIPv6(pkt)
			if err != nil {
				t.Fatalf("%s: %v", g.name, err)
			}
			h, err := ip.Walk()
			if err != nil {
				t.Fatalf("%s: %v", g.name, err)
			}
			if h.FragmentOffset != 0 {
				continue
			}
			proto, upper = h.Proto, ip[h.Offset:]
		}
		switch proto {
		case ProtoTCP:
			add("FuzzTCP", name, upper)
			seg, err := ParseTCP(upper)
			if err != nil {
				t.Fatalf("%s: %v", g.name, err)
			}
			add("FuzzTCPOptions", name, seg.Options())
		case ProtoUDP:
			add("FuzzUDP", name, upper)
		case ProtoICMPv4:
			add("FuzzICMPv4", name, upper)
			if m := ICMPv4(upper); m.IsError() {
				add("FuzzIPv4", name+"-quoted", m.Body())
				add("FuzzICMPv4", name+"-cut28", upper[:min(len(upper), 28)])
			}
		case ProtoICMPv6:
			add("FuzzICMPv6", name, upper)
			if m := ICMPv6(upper); m.IsError() {
				add("FuzzIPv6", name+"-quoted", m.Body())
				add("FuzzICMPv6", name+"-cut48", upper[:min(len(upper), 48)])
			}
		}
	}
	for target, cases := range edgeCases(t) {
		for name, b := range cases {
			add(target, "edge-"+name, b)
		}
	}
	n := 0
	for target, cases := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, b := range cases {
			content := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
			if target == "FuzzChecksum" {
				initial := len(b) * 257 % 65536
				if name == "edge-rfc1624" {
					initial = 0x3285 // RFC 1624 §4: the update that gives 0x0000
				}
				content += fmt.Sprintf("uint16(%d)\n", initial)
			}
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	t.Logf("wrote %d seed files", n)
}

// edgeCases returns hand-made inputs at the edges of each parser's checks.
func edgeCases(t *testing.T) map[string]map[string][]byte {
	h := func(s string) []byte { return hexBytes(t, s) }
	syn := h(tcpSYNHex)
	data := h(tcpDataHex)
	udp := h("3039 0035 000c f690 61626364")
	v4 := buildIPv4TCP(TCPHeader{SrcPort: 1, DstPort: 2, Seq: 3, Flags: FlagSYN, Window: 4},
		&Options{Present: HasMSS | HasSACKPermitted | HasTimestamps | HasWindowScale, MSS: 1460, WindowScale: 14}, nil)
	v4opt := h("4f00 003c 0000 0000 4006 4899 0a070001 0a070002" + "01010101010101010101010101010101010101010101010101010101010101010101010101010100")
	mod := func(b []byte, f func(b []byte)) []byte {
		b = bytes.Clone(b)
		f(b)
		return b
	}
	udp6 := []byte{0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00}
	all := Options{Present: HasMSS | HasSACKPermitted | HasTimestamps | HasWindowScale | HasSACK, MSS: 1460,
		WindowScale: 7, TSVal: 1, TSEcr: 2, NumSACK: 4, SACK: [4]SACKBlock{{1, 2}, {3, 4}, {5, 6}, {7, 8}}}
	putOpts := func(o Options) []byte {
		b := make([]byte, TCPMaxOptionLen)
		return b[:o.Put(b)]
	}
	sack4 := all
	sack4.Present = HasSACK
	tsSack := all
	tsSack.Present = HasTimestamps | HasSACK
	return map[string]map[string][]byte{
		"FuzzEthernet": {
			"empty":          nil,
			"13":             h("ffffffffffff 020000000001 08"),
			"header-only":    h("ffffffffffff 020000000001 0806"),
			"vlan-cut16":     h("020000000002 020000000001 8100 0064"),
			"vlan-cut17":     h("020000000002 020000000001 8100 0064 08"),
			"vlan":           h("020000000002 020000000001 8100 a064 86dd 6000"),
			"qinq-cut21":     h("020000000002 020000000001 88a8 0064 8100 00c8 08"),
			"qinq":           h("020000000002 020000000001 88a8 0064 8100 00c8 0800 aa"),
			"three-tags":     h("020000000002 020000000001 8100 0001 8100 0002 8100 0003 0800"),
			"802.3-length":   h("020000000002 020000000001 05dc aaaa03"),
			"802.3-in-vlan":  h("020000000002 020000000001 8100 0064 05ff"),
			"arp-short":      h("ffffffffffff 020000000001 0806 0001 0800 0604 0001"),
			"ipv4-truncated": append(h("020000000002 020000000001 0800"), v4[:30]...),
		},
		"FuzzARP": {
			"empty":     nil,
			"27":        h(arpRequestHex)[:27],
			"request":   h(arpRequestHex),
			"htype6":    mod(h(arpRequestHex), func(b []byte) { b[1] = 6 }),
			"ptype-v6":  mod(h(arpRequestHex), func(b []byte) { b[2], b[3] = 0x86, 0xdd }),
			"hlen8":     mod(h(arpRequestHex), func(b []byte) { b[4] = 8 }),
			"plen16":    mod(h(arpRequestHex), func(b []byte) { b[5] = 16 }),
			"op-rarp":   mod(h(arpRequestHex), func(b []byte) { b[7] = 3 }),
			"reply-min": h(arpRequestHex)[:ARPLen],
		},
		"FuzzIPv4": {
			"empty":           nil,
			"19":              v4[:19],
			"header-only":     v4[:20],
			"syn":             v4,
			"padded":          append(bytes.Clone(v4), make([]byte, 6)...),
			"version6":        mod(v4, func(b []byte) { b[0] = 0x65 }),
			"ihl0":            mod(v4, func(b []byte) { b[0] = 0x40 }),
			"ihl4":            mod(v4, func(b []byte) { b[0] = 0x44 }),
			"ihl15-short":     mod(v4[:40], func(b []byte) { b[0] = 0x4f }),
			"tl0":             mod(v4, func(b []byte) { b[2], b[3] = 0, 0 }),
			"tl19":            mod(v4, func(b []byte) { b[2], b[3] = 0, 19 }),
			"tl-past":         mod(v4, func(b []byte) { b[2], b[3] = 0xff, 0xff }),
			"options-max":     v4opt,
			"fragment-last":   h("4500 0018 0001 1fff 4011 0000 0a070001 0a070002 aabbccdd"),
			"icmp-frag-need":  append(h("4500 0030 0001 0000 4001 0000 0a070002 0a070001"), h(icmpv4FragNeededHex)...),
			"udp-in-ipv4":     append(h("4500 0020 0001 0000 4011 0000 0a070001 0a070002"), udp...),
			"tcp-offset-past": append(h("4500 0028 0001 0000 4006 0000 0a070001 0a070002"), mod(syn[:20], func(b []byte) { b[12] = 0xf0 })...),
		},
		"FuzzIPv6": {
			"empty":          nil,
			"39":             h(ipv6Hex)[:39],
			"header-only":    ipv6Packet(ProtoNoNext),
			"tcp":            h(ipv6Hex),
			"plen-past":      h(ipv6Hex)[:59],
			"version4":       mod(h(ipv6Hex), func(b []byte) { b[0] = 0x4b }),
			"all-ext":        ipv6Packet(ProtoHopByHop, ext(ProtoDstOpts, 1), ext(ProtoRouting, 0), ext(ProtoFragment, 2), fragHdr(ProtoDstOpts, 0, true, 1), ext(ProtoUDP, 0), udp6),
			"eight-ext":      ipv6Packet(ProtoDstOpts, chain(8, ProtoDstOpts, ProtoUDP), udp6),
			"nine-ext":       ipv6Packet(ProtoDstOpts, chain(9, ProtoDstOpts, ProtoUDP), udp6),
			"hbh-second":     ipv6Packet(ProtoDstOpts, ext(ProtoHopByHop, 0), ext(ProtoTCP, 0)),
			"ext-cut":        ipv6Packet(ProtoDstOpts, ext(ProtoTCP, 1)[:8]),
			"ext-7":          ipv6Packet(ProtoRouting, make([]byte, 7)),
			"frag-later":     ipv6Packet(ProtoFragment, fragHdr(ProtoDstOpts, 8, true, 1), []byte{0xff}),
			"frag-atomic":    ipv6Packet(ProtoFragment, fragHdr(ProtoUDP, 0, false, 7), udp6),
			"ext-2048":       ipv6Packet(ProtoDstOpts, ext(ProtoTCP, 255)),
			"icmpv6-ptb":     ipv6Packet(ProtoICMPv6, h(icmpv6PTBHex)),
			"udp":            ipv6Packet(ProtoUDP, h("3039 0035 000c 109d 61626364")),
			"tcp-data":       ipv6Packet(ProtoTCP, data),
			"quoted-partial": h(ipv6Hex)[:44],
		},
		"FuzzICMPv4": {
			"empty":         nil,
			"7":             h(icmpv4EchoHex)[:7],
			"echo":          h(icmpv4EchoHex),
			"frag-needed":   h(icmpv4FragNeededHex),
			"error-cut27":   h(icmpv4FragNeededHex)[:27],
			"error-cut28":   h(icmpv4FragNeededHex)[:28],
			"error-ihl4":    mod(h(icmpv4FragNeededHex), func(b []byte) { b[8] = 0x44 }),
			"error-v6":      mod(h(icmpv4FragNeededHex), func(b []byte) { b[8] = 0x65 }),
			"error-tl19":    mod(h(icmpv4FragNeededHex), func(b []byte) { b[10], b[11] = 0, 19 }),
			"param-problem": h("0c00 0000 14000000"),
			"header-only":   h("0b00 f4ff 00000000"),
		},
		"FuzzICMPv6": {
			"empty":       nil,
			"7":           h(icmpv6EchoHex)[:7],
			"echo":        h(icmpv6EchoHex),
			"ptb":         h(icmpv6PTBHex),
			"error-cut47": h(icmpv6PTBHex)[:47],
			"error-cut48": h(icmpv6PTBHex)[:48],
			"error-v4":    mod(h(icmpv6PTBHex), func(b []byte) { b[8] = 0x45 }),
			"type127":     h("7f00 0000 00000000"),
		},
		"FuzzUDP": {
			"empty":       nil,
			"7":           udp[:7],
			"header-only": h("3039 0035 0008 0000"),
			"v4":          udp,
			"v6":          h("3039 0035 000c 109d 61626364"),
			"no-checksum": h("3039 0035 000c 0000 61626364"),
			"odd":         h("3039 0035 000b f6f6 616263"),
			"len7":        mod(udp, func(b []byte) { b[5] = 7 }),
			"len-past":    mod(udp, func(b []byte) { b[5] = 13 }),
			"trailing":    append(bytes.Clone(udp), 1, 2, 3),
			"checksum-ff": h("0000 0000 0008 ffff"),
		},
		"FuzzTCP": {
			"empty":            nil,
			"19":               syn[:19],
			"syn":              syn,
			"data":             data,
			"offset4":          mod(syn, func(b []byte) { b[12] = 0x40 }),
			"offset15-short":   mod(syn, func(b []byte) { b[12] = 0xf0 }),
			"options-cut":      syn[:30],
			"all-flags":        h("0001 0002 00000000 00000000 5fff 0000 0000 0000"),
			"malformed-option": h("0001 0002 00000001 00000002 7010 0400 0000 0000 020405b4 0304 0e00 01010101"),
			"max-options":      append(h("0001 0002 00000001 00000002 f010 0400 0000 0000"), putOpts(all)...),
		},
		"FuzzTCPOptions": {
			"empty":           nil,
			"eol":             h("00"),
			"linux-syn":       h("020405b4 0402080a 0000abcd 00000000 01030307"),
			"all":             putOpts(all),
			"sack4":           putOpts(sack4),
			"ts-sack":         putOpts(tsSack),
			"sack5":           h("052a 00000001 00000002 00000003 00000004 00000005 00000006 00000007 00000008 00000009 0000000a"),
			"sack-twice":      h("0101 0522 00000001 00000002 00000003 00000004 00000005 00000006 00000007 00000008 0101050a 00000009 0000000a"),
			"wscale255":       h("01 0303ff"),
			"unknown":         h("1e0c 0000000000000000 0000 020405b4"),
			"no-length":       h("020405b4 03"),
			"length0":         h("1e00"),
			"length-past":     h("1e09 000000"),
			"mss-len3":        h("020305"),
			"ts-len11":        h("080b 00000001 00000002 00"),
			"sack-len2":       h("0502"),
			"sack-len17":      h("0511 00000001 00000002 00000003 000000"),
			"nop-run":         bytes.Repeat([]byte{1}, 40),
			"eol-then-junk":   h("00 ff ff ff"),
			"duplicate-mss":   h("02040100 02040200"),
			"sack-then-wrong": h("0101050a 00000064 000000c8 0101 0803 00"),
		},
		"FuzzChecksum": {
			"empty":       nil,
			"one":         h("ff"),
			"rfc1071":     h("0001f203f4f5f6f7"),
			"ffff":        h("ffff"),
			"zeros":       make([]byte, 20),
			"ipv4-header": h("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7"),
			"ff-65":       bytes.Repeat([]byte{0xff}, 65),
			"rfc1624":     h("0000 5555 cd7a"),
		},
	}
}
