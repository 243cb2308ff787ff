package wire

import "encoding/binary"

// TCP option kinds (RFC 9293 §3.2, RFC 7323, RFC 2018).
const (
	OptEOL           = 0
	OptNOP           = 1
	OptMSS           = 2
	OptWindowScale   = 3
	OptSACKPermitted = 4
	OptSACK          = 5
	OptTimestamps    = 8
)

// MaxWindowShift is the largest window scale shift used (RFC 7323 §2.3): a larger
// value received is taken as 14.
const MaxWindowShift = 14

// MaxSACKBlocks is the most SACK blocks an options field can carry (RFC 2018 §3).
const MaxSACKBlocks = 4

// Which options an Options value carries.
const (
	HasMSS uint8 = 1 << iota
	HasWindowScale
	HasSACKPermitted
	HasTimestamps
	HasSACK
)

// SACKBlock is one SACK block: the bytes from Left up to but not including Right.
type SACKBlock struct{ Left, Right Seq }

// Options is the parsed form of the TCP options tcpeng understands. Present says
// which fields hold values.
type Options struct {
	Present      uint8 // HasMSS | HasWindowScale | ...
	NumSACK      uint8 // SACK blocks in SACK
	MSS          uint16
	WindowScale  uint8 // the shift as received; see Shift
	TSVal, TSEcr uint32
	SACK         [MaxSACKBlocks]SACKBlock
}

// Has reports whether every option in the mask is present.
func (o *Options) Has(mask uint8) bool { return o.Present&mask == mask }

// Shift returns the window scale shift to use: the received value clamped to
// MaxWindowShift (RFC 7323 §2.3).
func (o *Options) Shift() uint8 { return min(o.WindowScale, MaxWindowShift) }

// ParseOptions parses a TCP options field. Unknown kinds are skipped by their
// length. EOL ends the walk. A malformed option (a length below 2 or past the end,
// or a known kind with the wrong length) ends the walk too: what was parsed before
// it is returned with ok false. It does not allocate.
func ParseOptions(b []byte) (o Options, ok bool) {
	for len(b) > 0 {
		kind := b[0]
		if kind == OptEOL {
			return o, true
		}
		if kind == OptNOP {
			b = b[1:]
			continue
		}
		if len(b) < 2 {
			return o, false
		}
		n := int(b[1])
		if n < 2 || n > len(b) {
			return o, false
		}
		v := b[2:n]
		switch kind {
		case OptMSS:
			if n != 4 {
				return o, false
			}
			o.MSS = binary.BigEndian.Uint16(v)
			o.Present |= HasMSS
		case OptWindowScale:
			if n != 3 {
				return o, false
			}
			o.WindowScale = v[0]
			o.Present |= HasWindowScale
		case OptSACKPermitted:
			if n != 2 {
				return o, false
			}
			o.Present |= HasSACKPermitted
		case OptTimestamps:
			if n != 10 {
				return o, false
			}
			o.TSVal = binary.BigEndian.Uint32(v[0:])
			o.TSEcr = binary.BigEndian.Uint32(v[4:])
			o.Present |= HasTimestamps
		case OptSACK:
			if (n-2)%8 != 0 || n == 2 {
				return o, false
			}
			o.NumSACK = 0
			o.SACK = [MaxSACKBlocks]SACKBlock{} // a repeated SACK option replaces the first
			for i := 0; i+8 <= len(v) && int(o.NumSACK) < MaxSACKBlocks; i += 8 {
				o.SACK[o.NumSACK] = SACKBlock{Seq(binary.BigEndian.Uint32(v[i:])), Seq(binary.BigEndian.Uint32(v[i+4:]))}
				o.NumSACK++
			}
			o.Present |= HasSACK
		}
		b = b[n:]
	}
	return o, true
}

// Len returns the number of bytes Put writes: the options in the layout Put uses,
// padded to a multiple of 4. SACK blocks that do not fit in the 40-byte options
// field next to the other options are left out.
func (o *Options) Len() int {
	n := 0
	if o.Has(HasMSS) {
		n += 4
	}
	if o.Has(HasTimestamps) || o.Has(HasSACKPermitted) {
		if o.Has(HasTimestamps) {
			n += 12 // SACK-permitted fills the padding before timestamps, or two NOPs do
		} else {
			n += 4
		}
	}
	if o.Has(HasWindowScale) {
		n += 4
	}
	if k := o.sackBlocks(n); k > 0 {
		n += 4 + 8*k
	}
	return n
}

// sackBlocks returns how many SACK blocks fit after used bytes of other options.
func (o *Options) sackBlocks(used int) int {
	if !o.Has(HasSACK) {
		return 0
	}
	return min(int(o.NumSACK), MaxSACKBlocks, (TCPMaxOptionLen-used-4)/8)
}

// Put writes the options into b in the layout Linux uses, each 4-byte aligned:
// MSS; SACK-permitted and timestamps (NOP NOP before timestamps when there is no
// SACK-permitted, NOP NOP before SACK-permitted when there are no timestamps);
// NOP and window scale; NOP NOP and SACK blocks. It returns Len().
func (o *Options) Put(b []byte) int {
	n := 0
	if o.Has(HasMSS) {
		b[0], b[1] = OptMSS, 4
		binary.BigEndian.PutUint16(b[2:], o.MSS)
		n = 4
	}
	switch {
	case o.Has(HasTimestamps):
		if o.Has(HasSACKPermitted) {
			b[n], b[n+1] = OptSACKPermitted, 2
		} else {
			b[n], b[n+1] = OptNOP, OptNOP
		}
		b[n+2], b[n+3] = OptTimestamps, 10
		binary.BigEndian.PutUint32(b[n+4:], o.TSVal)
		binary.BigEndian.PutUint32(b[n+8:], o.TSEcr)
		n += 12
	case o.Has(HasSACKPermitted):
		b[n], b[n+1], b[n+2], b[n+3] = OptNOP, OptNOP, OptSACKPermitted, 2
		n += 4
	}
	if o.Has(HasWindowScale) {
		b[n], b[n+1], b[n+2], b[n+3] = OptNOP, OptWindowScale, 3, o.WindowScale
		n += 4
	}
	if k := o.sackBlocks(n); k > 0 {
		b[n], b[n+1], b[n+2], b[n+3] = OptNOP, OptNOP, OptSACK, uint8(2+8*k)
		n += 4
		for i := range k {
			binary.BigEndian.PutUint32(b[n:], uint32(o.SACK[i].Left))
			binary.BigEndian.PutUint32(b[n+4:], uint32(o.SACK[i].Right))
			n += 8
		}
	}
	return n
}
