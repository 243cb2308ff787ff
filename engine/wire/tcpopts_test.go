package wire

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestParseOptions(t *testing.T) {
	tests := []struct {
		name string
		opts string
		want Options
		ok   bool
	}{
		{"empty", "", Options{}, true},
		{"EOL", "00", Options{}, true},
		{"NOPs", "01010101", Options{}, true},
		{"MSS", "020405b4", Options{Present: HasMSS, MSS: 1460}, true},
		{"MSS 0 and 65535", "02040000 0204ffff", Options{Present: HasMSS, MSS: 0xffff}, true},
		{"window scale 0", "010303 00", Options{Present: HasWindowScale, WindowScale: 0}, true},
		{"window scale 14", "01 03030e", Options{Present: HasWindowScale, WindowScale: 14}, true},
		{"SACK permitted", "01010402", Options{Present: HasSACKPermitted}, true},
		{"timestamps", "0101080a 01020304 05060708", Options{Present: HasTimestamps, TSVal: 0x01020304, TSEcr: 0x05060708}, true},
		{"timestamps, extreme values", "080a ffffffff 00000000 0000", Options{Present: HasTimestamps, TSVal: 0xffffffff}, true},
		{
			"Linux SYN", "020405b4 0402080a 0000abcd 00000000 01030307",
			Options{Present: HasMSS | HasSACKPermitted | HasTimestamps | HasWindowScale, MSS: 1460, WindowScale: 7, TSVal: 0xabcd}, true,
		},
		{
			"Linux SYN without timestamps", "020405b4 01010402 01030307",
			Options{Present: HasMSS | HasSACKPermitted | HasWindowScale, MSS: 1460, WindowScale: 7}, true,
		},
		{"SACK, 1 block", "0101050a 00000064 000000c8", sackOpts(1, 100, 200), true},
		{"SACK, 2 blocks", "01010512 00000064 000000c8 0000012c 00000190", sackOpts(2, 100, 200, 300, 400), true},
		{"SACK, 3 blocks", "0101051a 00000064 000000c8 0000012c 00000190 000001f4 00000258", sackOpts(3, 100, 200, 300, 400, 500, 600), true},
		{
			"SACK, 4 blocks", "0101 0522 00000064 000000c8 0000012c 00000190 000001f4 00000258 000002bc 00000320",
			sackOpts(4, 100, 200, 300, 400, 500, 600, 700, 800), true,
		},
		{
			"SACK across 2^32", "0101050a ffffff00 00000100",
			Options{Present: HasSACK, NumSACK: 1, SACK: [4]SACKBlock{{0xffffff00, 0x100}}}, true,
		},
		{
			// Only possible in a buffer longer than a TCP header allows: blocks past
			// the fourth are skipped.
			"SACK, 5 blocks", "052a" + "00000001 00000002 00000003 00000004 00000005 00000006 00000007 00000008 00000009 0000000a",
			sackOpts(4, 1, 2, 3, 4, 5, 6, 7, 8), true,
		},
		{
			"timestamps and SACK", "0101080a 00000001 00000002 0101051a 00000064 000000c8 0000012c 00000190 000001f4 00000258",
			Options{Present: HasTimestamps | HasSACK, TSVal: 1, TSEcr: 2, NumSACK: 3, SACK: [4]SACKBlock{{100, 200}, {300, 400}, {500, 600}}}, true,
		},
		{"EOL ends the walk; garbage after it is ignored", "020405b4 00 ff 01 02", Options{Present: HasMSS, MSS: 1460}, true},
		{"EOL before an option", "00 020405b4 000000", Options{}, true},
		{"unknown kind skipped by its length (MPTCP)", "1e0c 0000000000000000 0000 020405b4", Options{Present: HasMSS, MSS: 1460}, true},
		{"unknown kind of length 2 (TFO cookie request)", "2202 01030302", Options{Present: HasWindowScale, WindowScale: 2}, true},
		{"experimental kind 254", "fe04 f989 01030309", Options{Present: HasWindowScale, WindowScale: 9}, true},
		{"obsolete echo kind 6", "0606 01020304 0402", Options{Present: HasSACKPermitted}, true},
		{"unknown kind filling the rest", "01 fe0a 0000000000000000", Options{}, true},
		{"a later duplicate wins", "02040100 02040200", Options{Present: HasMSS, MSS: 0x200}, true},
		{
			"a later SACK replaces the blocks", "0101050a 00000001 00000002 0101050a 00000003 00000004",
			sackOpts(1, 3, 4), true,
		},

		// Malformed: the walk stops and keeps what was parsed.
		{"kind with no length byte", "020405b4 03", Options{Present: HasMSS, MSS: 1460}, false},
		{"unknown kind with no length byte", "01 fe", Options{}, false},
		{"length 0", "020405b4 1e00 0000", Options{Present: HasMSS, MSS: 1460}, false},
		{"length 1", "01030307 1e01 020405b4", Options{Present: HasWindowScale, WindowScale: 7}, false},
		{"length past the end", "020405b4 1e09 000000", Options{Present: HasMSS, MSS: 1460}, false},
		{"MSS of length 3", "01030307 020305", Options{Present: HasWindowScale, WindowScale: 7}, false},
		{"MSS of length 5", "020505b400 01030307", Options{}, false},
		{"MSS cut short", "020405", Options{}, false},
		{"window scale of length 2", "0302 020405b4", Options{}, false},
		{"window scale of length 4", "03040700 020405b4", Options{}, false},
		{"SACK permitted of length 3", "040300 020405b4", Options{}, false},
		{"timestamps of length 8", "020405b4 0808 0000000100000002", Options{Present: HasMSS, MSS: 1460}, false},
		{"timestamps of length 11", "080b 00000001 00000002 00", Options{}, false},
		{"timestamps cut short", "01 01 080a 00000001 000000", Options{}, false},
		{"SACK of length 2", "0502 020405b4", Options{}, false},
		{"SACK of length 9", "0509 00000001 000000", Options{}, false},
		{"SACK of length 17 (not 8n+2)", "0101 0511 00000001 00000002 00000003 000000", Options{}, false},
		{"SACK of length 11", "050b 00000001 00000002 000000", Options{}, false},
		{"SACK past the end", "0101 0512 00000001 00000002", Options{}, false},
		{
			"malformed after SACK keeps the blocks", "0101050a 00000064 000000c8 0101 0803 00",
			sackOpts(1, 100, 200), false,
		},
	}
	for _, tt := range tests {
		b := hexBytes(t, tt.opts)
		o, ok := ParseOptions(b)
		if o != tt.want || ok != tt.ok {
			t.Errorf("%s: ParseOptions(%x) = %+v, %v; want %+v, %v", tt.name, b, o, ok, tt.want, tt.ok)
		}
	}
}

// sackOpts returns Options holding n SACK blocks with the given edges.
func sackOpts(n int, edges ...uint32) Options {
	o := Options{Present: HasSACK, NumSACK: uint8(n)}
	for i := range n {
		o.SACK[i] = SACKBlock{Seq(edges[2*i]), Seq(edges[2*i+1])}
	}
	return o
}

func TestOptionsHasShift(t *testing.T) {
	o := Options{Present: HasMSS | HasTimestamps}
	for _, c := range []struct {
		mask uint8
		want bool
	}{
		{HasMSS, true}, {HasTimestamps, true}, {HasMSS | HasTimestamps, true}, {0, true},
		{HasSACK, false}, {HasMSS | HasSACK, false}, {HasWindowScale, false}, {HasSACKPermitted, false},
	} {
		if got := o.Has(c.mask); got != c.want {
			t.Errorf("Has(%#02x) = %v, want %v", c.mask, got, c.want)
		}
	}
	// RFC 7323 §2.3: a shift above 14 is used as 14.
	for _, c := range []struct{ ws, want uint8 }{{0, 0}, {1, 1}, {7, 7}, {13, 13}, {14, 14}, {15, 14}, {16, 14}, {100, 14}, {255, 14}} {
		o := Options{Present: HasWindowScale, WindowScale: c.ws}
		if got := o.Shift(); got != c.want {
			t.Errorf("WindowScale %d: Shift = %d, want %d", c.ws, got, c.want)
		}
		// Parsed from the wire the same way.
		p, ok := ParseOptions([]byte{OptNOP, OptWindowScale, 3, c.ws})
		if !ok || p.WindowScale != c.ws || p.Shift() != c.want {
			t.Errorf("parsed window scale %d: %+v, %v, Shift %d", c.ws, p, ok, p.Shift())
		}
	}
}

// TestOptionsPutLayouts checks the exact bytes Put writes for the combinations
// Linux sends, and where SACK blocks are dropped to stay within 40 bytes.
func TestOptionsPutLayouts(t *testing.T) {
	all := Options{MSS: 1460, WindowScale: 7, TSVal: 0x01020304, TSEcr: 0x05060708, NumSACK: 4,
		SACK: [4]SACKBlock{{100, 200}, {300, 400}, {500, 600}, {700, 800}}}
	with := func(present uint8, numSACK uint8) Options {
		o := all
		o.Present, o.NumSACK = present, numSACK
		return o
	}
	const (
		mss   = "020405b4"
		ts    = "080a 01020304 05060708"
		ws    = "01030307"
		blk1  = "00000064 000000c8"
		blk12 = blk1 + "0000012c 00000190"
		blk3  = blk12 + "000001f4 00000258"
		blk4  = blk3 + "000002bc 00000320"
	)
	tests := []struct {
		name string
		o    Options
		want string
	}{
		{"none", with(0, 4), ""},
		{"MSS", with(HasMSS, 4), mss},
		{"window scale", with(HasWindowScale, 4), ws},
		{"SACK permitted", with(HasSACKPermitted, 4), "01010402"},
		{"timestamps", with(HasTimestamps, 4), "0101" + ts},
		{"SACK permitted and timestamps", with(HasSACKPermitted|HasTimestamps, 4), "0402" + ts},
		{"Linux SYN", with(HasMSS|HasSACKPermitted|HasTimestamps|HasWindowScale, 4), mss + "0402" + ts + ws},
		{"Linux SYN, no SACK", with(HasMSS|HasTimestamps|HasWindowScale, 4), mss + "0101" + ts + ws},
		{"Linux SYN, no timestamps", with(HasMSS|HasSACKPermitted|HasWindowScale, 4), mss + "01010402" + ws},
		{"Linux SYN, neither", with(HasMSS|HasWindowScale, 4), mss + ws},
		{"SACK, 1 block", with(HasSACK, 1), "0101050a" + blk1},
		{"SACK, 2 blocks", with(HasSACK, 2), "01010512" + blk12},
		{"SACK, 3 blocks", with(HasSACK, 3), "0101051a" + blk3},
		{"SACK, 4 blocks (36 bytes)", with(HasSACK, 4), "01010522" + blk4},
		{"SACK with more than 4 blocks counted", with(HasSACK, 9), "01010522" + blk4},
		{"SACK with no blocks", with(HasSACK, 0), ""},
		{"timestamps and 1 block", with(HasTimestamps|HasSACK, 1), "0101" + ts + "0101050a" + blk1},
		{"timestamps and 3 blocks (40 bytes)", with(HasTimestamps|HasSACK, 3), "0101" + ts + "0101051a" + blk3},
		{"timestamps and 4 blocks: 3 fit", with(HasTimestamps|HasSACK, 4), "0101" + ts + "0101051a" + blk3},
		{"MSS and 4 blocks (40 bytes)", with(HasMSS|HasSACK, 4), mss + "01010522" + blk4},
		{"MSS, window scale and 4 blocks: 3 fit", with(HasMSS|HasWindowScale|HasSACK, 4), mss + ws + "0101051a" + blk3},
		{
			"everything: 2 blocks fit (40 bytes)", with(HasMSS|HasSACKPermitted|HasTimestamps|HasWindowScale|HasSACK, 4),
			mss + "0402" + ts + ws + "01010512" + blk12,
		},
		{
			"everything but SACK permitted: 2 blocks fit", with(HasMSS|HasTimestamps|HasWindowScale|HasSACK, 3),
			mss + "0101" + ts + ws + "01010512" + blk12,
		},
	}
	for _, tt := range tests {
		want := hexBytes(t, tt.want)
		b := bytes.Repeat([]byte{0xee}, 64)
		n := tt.o.Put(b)
		if n != len(want) || !bytes.Equal(b[:n], want) {
			t.Errorf("%s: Put = %d, %x; want %d, %x", tt.name, n, b[:n], len(want), want)
		}
		if l := tt.o.Len(); l != n {
			t.Errorf("%s: Len = %d, Put wrote %d", tt.name, l, n)
		}
		if !bytes.Equal(b[n:], bytes.Repeat([]byte{0xee}, 64-n)) {
			t.Errorf("%s: Put wrote past its length: %x", tt.name, b)
		}
		if p, ok := ParseOptions(b[:n]); !ok || p != putExpected(tt.o) {
			t.Errorf("%s: parsed back as %+v, %v; want %+v", tt.name, p, ok, putExpected(tt.o))
		}
	}
	// Every subset of options with 0 to 4 SACK blocks fits in 40 bytes, is a
	// multiple of 4, fills exactly Len bytes and parses back.
	for present := range uint8(32) {
		for k := range uint8(MaxSACKBlocks + 1) {
			o := with(present, k)
			n := o.Len()
			if n > TCPMaxOptionLen || n%4 != 0 {
				t.Errorf("present %05b, %d blocks: Len = %d", present, k, n)
			}
			b := make([]byte, TCPMaxOptionLen)
			if got := o.Put(b); got != n {
				t.Errorf("present %05b, %d blocks: Put = %d, Len = %d", present, k, got, n)
			}
			if p, ok := ParseOptions(b[:n]); !ok || p != putExpected(o) {
				t.Errorf("present %05b, %d blocks: parsed back as %+v, %v; want %+v", present, k, p, ok, putExpected(o))
			}
			// Put into exactly TCPMaxOptionLen bytes never panics.
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Errorf("present %05b, %d blocks: Put into 40 bytes panicked: %v", present, k, r)
					}
				}()
				o.Put(make([]byte, TCPMaxOptionLen)[:n:n])
			}()
		}
	}
}

// TestOptionsRoundTrip checks Parse(Put(o)) on random options and that a second
// Put of the parsed value is identical.
func TestOptionsRoundTrip(t *testing.T) {
	r := newRand(60)
	for range 20000 {
		o := randOptions(r)
		b := make([]byte, TCPMaxOptionLen)
		n := o.Put(b)
		p, ok := ParseOptions(b[:n])
		if !ok || p != putExpected(o) {
			t.Fatalf("Put(%+v) = %x parsed as %+v, %v; want %+v", o, b[:n], p, ok, putExpected(o))
		}
		b2 := make([]byte, TCPMaxOptionLen)
		if n2 := p.Put(b2); n2 != n || !bytes.Equal(b[:n], b2[:n2]) {
			t.Fatalf("second Put differs: %x vs %x", b[:n], b2[:n2])
		}
	}
}

// randOptions returns options with random presence bits and values, including
// values in fields that are not present (Put must ignore them).
func randOptions(r *rand.Rand) Options {
	o := Options{
		Present:     uint8(r.Uint32N(32)),
		NumSACK:     uint8(r.Uint32N(MaxSACKBlocks + 1)),
		MSS:         uint16(r.Uint32()),
		WindowScale: uint8(r.Uint32()),
		TSVal:       r.Uint32(),
		TSEcr:       r.Uint32(),
	}
	for i := range o.SACK {
		o.SACK[i] = SACKBlock{Seq(r.Uint32()), Seq(r.Uint32())}
	}
	return o
}

// putExpected returns what ParseOptions gives for the bytes o.Put writes: the
// present fields only, and the SACK blocks that fit.
func putExpected(o Options) Options {
	var p Options
	if o.Has(HasMSS) {
		p.Present |= HasMSS
		p.MSS = o.MSS
	}
	if o.Has(HasWindowScale) {
		p.Present |= HasWindowScale
		p.WindowScale = o.WindowScale
	}
	if o.Has(HasSACKPermitted) {
		p.Present |= HasSACKPermitted
	}
	if o.Has(HasTimestamps) {
		p.Present |= HasTimestamps
		p.TSVal, p.TSEcr = o.TSVal, o.TSEcr
	}
	if o.Has(HasSACK) && o.NumSACK > 0 {
		used := 0
		if o.Has(HasMSS) {
			used += 4
		}
		if o.Has(HasTimestamps) {
			used += 12
		} else if o.Has(HasSACKPermitted) {
			used += 4
		}
		if o.Has(HasWindowScale) {
			used += 4
		}
		k := min(int(o.NumSACK), MaxSACKBlocks, (TCPMaxOptionLen-used-4)/8)
		if k > 0 {
			p.Present |= HasSACK
			p.NumSACK = uint8(k)
			copy(p.SACK[:], o.SACK[:k])
		}
	}
	return p
}
