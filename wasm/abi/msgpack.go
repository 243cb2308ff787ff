package abi

// A MessagePack codec for the types this schema uses: nil, booleans, integers,
// bin, str (map keys and messages), arrays and maps. It follows the MessagePack
// specification (github.com/msgpack/msgpack/blob/master/spec.md): the encoder
// writes every integer and header in its smallest form, as reference encoders
// do; the decoder accepts every form, and skips values of the other types
// (floats, ext) where the schema allows extra fields.

// MessagePack format bytes.
const (
	mpNil      = 0xc0
	mpFalse    = 0xc2
	mpTrue     = 0xc3
	mpBin8     = 0xc4
	mpBin16    = 0xc5
	mpBin32    = 0xc6
	mpExt8     = 0xc7
	mpExt16    = 0xc8
	mpExt32    = 0xc9
	mpFloat32  = 0xca
	mpFloat64  = 0xcb
	mpUint8    = 0xcc
	mpUint16   = 0xcd
	mpUint32   = 0xce
	mpUint64   = 0xcf
	mpInt8     = 0xd0
	mpInt16    = 0xd1
	mpInt32    = 0xd2
	mpInt64    = 0xd3
	mpFixExt1  = 0xd4
	mpFixExt16 = 0xd8
	mpStr8     = 0xd9
	mpStr16    = 0xda
	mpStr32    = 0xdb
	mpArray16  = 0xdc
	mpArray32  = 0xdd
	mpMap16    = 0xde
	mpMap32    = 0xdf
)

func appendNil(b []byte) []byte { return append(b, mpNil) }

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, mpTrue)
	}
	return append(b, mpFalse)
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 0x80:
		return append(b, byte(v))
	case v <= 0xff:
		return append(b, mpUint8, byte(v))
	case v <= 0xffff:
		return append(b, mpUint16, byte(v>>8), byte(v))
	case v <= 0xffffffff:
		return append(b, mpUint32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, mpUint64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// putU32 is appendUint for values that fit 32 bits, small enough for the
// compiler to inline: function calls are dear in Go's WebAssembly.
func putU32(b []byte, v uint32) []byte {
	switch {
	case v < 0x80:
		return append(b, byte(v))
	case v <= 0xff:
		return append(b, mpUint8, byte(v))
	case v <= 0xffff:
		return append(b, mpUint16, byte(v>>8), byte(v))
	}
	return append(b, mpUint32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

func appendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0:
		return appendUint(b, uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= -0x80:
		return append(b, mpInt8, byte(v))
	case v >= -0x8000:
		return append(b, mpInt16, byte(v>>8), byte(v))
	case v >= -0x80000000:
		return append(b, mpInt32, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	}
	return append(b, mpInt64, byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32),
		byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendBinHeader writes the header of an n-byte bin.
func appendBinHeader(b []byte, n int) []byte {
	switch {
	case n <= 0xff:
		return append(b, mpBin8, byte(n))
	case n <= 0xffff:
		return append(b, mpBin16, byte(n>>8), byte(n))
	}
	return append(b, mpBin32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// appendBin writes p as a bin, or nil when p is nil.
func appendBin(b, p []byte) []byte {
	if p == nil {
		return appendNil(b)
	}
	return append(appendBinHeader(b, len(p)), p...)
}

func appendArray(b []byte, n int) []byte { return appendHeader(b, n, 0x90, mpArray16, mpArray32) }

func appendMap(b []byte, n int) []byte { return appendHeader(b, n, 0x80, mpMap16, mpMap32) }

// appendHeader writes the header of an array or a map of n elements: fix is
// the high nibble of its fix form, c16 and c32 the bytes of its 16- and 32-bit
// forms (decoder.header reads it).
func appendHeader(b []byte, n int, fix, c16, c32 byte) []byte {
	switch {
	case n < 16:
		return append(b, fix|byte(n))
	case n <= 0xffff:
		return append(b, c16, byte(n>>8), byte(n))
	}
	return append(b, c32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= 0xff:
		b = append(b, mpStr8, byte(n))
	case n <= 0xffff:
		b = append(b, mpStr16, byte(n>>8), byte(n))
	default:
		b = append(b, mpStr32, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

// Size bounds of encoded values, for hosts that size a buffer before encoding.
const (
	maxIntSize    = 9 // an int64 or uint64
	maxHeaderSize = 5 // an array, map, bin or str header
)

// decoder reads MessagePack from b. The first error sticks: later reads return
// zero values, and err says what was wrong and where.
type decoder struct {
	b   []byte
	i   int
	err *Error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = &Error{Offset: d.i, Msg: what}
		d.i = len(d.b) // stop every later read
	}
}

// failType reports an unexpected value at the current byte.
func (d *decoder) failType(want string) {
	if d.i < len(d.b) {
		d.fail("want " + want + ", got " + typeName(d.b[d.i]))
	} else {
		d.fail("want " + want + ", got the end of the message")
	}
}

// typeName names the MessagePack type of a format byte.
func typeName(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= mpUint8 && c <= mpInt64):
		return "an integer"
	case c <= 0x8f || c == mpMap16 || c == mpMap32:
		return "a map"
	case c <= 0x9f || c == mpArray16 || c == mpArray32:
		return "an array"
	case c <= 0xbf || (c >= mpStr8 && c <= mpStr32):
		return "a string"
	case c == mpNil:
		return "nil"
	case c == mpFalse || c == mpTrue:
		return "a boolean"
	case c >= mpBin8 && c <= mpBin32:
		return "a bin"
	case c == mpFloat32 || c == mpFloat64:
		return "a float"
	case c == 0xc1:
		return "the unused byte 0xc1"
	}
	return "an ext"
}

// need reports whether n more bytes are there, failing if not.
func (d *decoder) need(n int) bool {
	if n < 0 || n > len(d.b)-d.i {
		d.fail("truncated: a length of " + itoa(n) + " bytes runs past the end of the message")
		return false
	}
	return true
}

func (d *decoder) be(n int) uint64 {
	if !d.need(n) {
		return 0
	}
	var v uint64
	for _, c := range d.b[d.i : d.i+n] {
		v = v<<8 | uint64(c)
	}
	d.i += n
	return v
}

// isNil consumes a nil if one is next.
func (d *decoder) isNil() bool {
	if d.i < len(d.b) && d.b[d.i] == mpNil {
		d.i++
		return true
	}
	return false
}

// int reads any integer into an int64; nil reads as 0. The positive fixint
// is read inline: function calls are dear in Go's WebAssembly.
func (d *decoder) int() int64 {
	if i := d.i; uint(i) < uint(len(d.b)) {
		if c := d.b[i]; c < 0x80 {
			d.i = i + 1
			return int64(c)
		}
	}
	return d.intSlow()
}

func (d *decoder) intSlow() int64 {
	if d.i >= len(d.b) {
		d.failType("an integer")
		return 0
	}
	at, c := d.i, d.b[d.i]
	switch {
	case c <= 0x7f:
		d.i++
		return int64(c)
	case c >= 0xe0:
		d.i++
		return int64(int8(c))
	}
	switch c {
	case mpNil:
		d.i++
		return 0
	case mpUint8, mpUint16, mpUint32, mpUint64:
		d.i++
		v := d.be(1 << (c - mpUint8))
		if v > 1<<63-1 {
			d.i = at
			d.fail("integer " + utoa(v) + " overflows int64")
			return 0
		}
		return int64(v)
	case mpInt8:
		d.i++
		return int64(int8(d.be(1)))
	case mpInt16:
		d.i++
		return int64(int16(d.be(2)))
	case mpInt32:
		d.i++
		return int64(int32(d.be(4)))
	case mpInt64:
		d.i++
		return int64(d.be(8))
	}
	d.failType("an integer")
	return 0
}

// uint reads a non-negative integer; nil reads as 0.
func (d *decoder) uint() uint64 {
	if d.i < len(d.b) {
		if c := d.b[d.i]; c == mpUint64 {
			d.i++
			return d.be(8)
		}
	}
	at := d.i
	v := d.int()
	if v < 0 {
		d.i = at
		d.fail("want a non-negative integer, got " + itoa(int(v)))
		return 0
	}
	return uint64(v)
}

// intRange reads an integer in [lo, hi] (lo <= 0): a positive fixint inline.
func (d *decoder) intRange(lo, hi int64, what string) int64 {
	if i := d.i; uint(i) < uint(len(d.b)) {
		if c := int64(d.b[i]); c <= min(0x7f, hi) {
			d.i = i + 1
			return c
		}
	}
	return d.intRangeSlow(lo, hi, what)
}

func (d *decoder) intRangeSlow(lo, hi int64, what string) int64 {
	at := d.i
	v := d.int()
	if d.err == nil && (v < lo || v > hi) {
		d.i = at
		d.fail(what + " " + itoa(int(v)) + " is out of range " + itoa(int(lo)) + ".." + itoa(int(hi)))
		return 0
	}
	return v
}

// bool reads a boolean; nil reads as false.
func (d *decoder) bool() bool {
	if d.i < len(d.b) {
		switch d.b[d.i] {
		case mpTrue:
			d.i++
			return true
		case mpFalse, mpNil:
			d.i++
			return false
		}
	}
	d.failType("a boolean")
	return false
}

// bin reads a bin as a view into the message; nil reads as nil.
func (d *decoder) bin() []byte {
	// The common cases inline: function calls are dear in Go's WebAssembly.
	b, i := d.b, d.i
	if i+3 <= len(b) {
		var n int
		switch b[i] {
		case mpBin8:
			n, i = int(b[i+1]), i+2
		case mpBin16:
			n, i = int(b[i+1])<<8|int(b[i+2]), i+3
		default:
			return d.binSlow()
		}
		if n <= len(b)-i {
			d.i = i + n
			return b[i : i+n : i+n]
		}
	}
	return d.binSlow()
}

func (d *decoder) binSlow() []byte {
	if d.i >= len(d.b) {
		d.failType("a bin")
		return nil
	}
	var n int
	switch d.b[d.i] {
	case mpNil:
		d.i++
		return nil
	case mpBin8:
		d.i++
		n = int(d.be(1))
	case mpBin16:
		d.i++
		n = int(d.be(2))
	case mpBin32:
		d.i++
		n = int(d.be(4))
	default:
		d.failType("a bin")
		return nil
	}
	return d.view(n)
}

// view returns the next n bytes of the message, or nil if fewer are left.
func (d *decoder) view(n int) []byte {
	if !d.need(n) {
		return nil
	}
	p := d.b[d.i : d.i+n : d.i+n]
	d.i += n
	return p
}

// str reads a string as a view into the message.
func (d *decoder) str() []byte {
	if d.i >= len(d.b) {
		d.failType("a string")
		return nil
	}
	c := d.b[d.i]
	var n int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		d.i++
		n = int(c & 0x1f)
	case c == mpStr8:
		d.i++
		n = int(d.be(1))
	case c == mpStr16:
		d.i++
		n = int(d.be(2))
	case c == mpStr32:
		d.i++
		n = int(d.be(4))
	case c == mpNil:
		d.i++
		return nil
	default:
		d.failType("a string")
		return nil
	}
	return d.view(n)
}

// array reads an array header and returns its length; nil reads as an empty
// array. The length is checked against the bytes left (each element takes at
// least one byte) before the caller allocates anything for it. A fixarray is
// read inline.
func (d *decoder) array() int {
	if i := d.i; uint(i) < uint(len(d.b)) {
		if c := d.b[i]; c&0xf0 == 0x90 && int(c&0x0f) < len(d.b)-i {
			d.i = i + 1
			return int(c & 0x0f)
		}
	}
	return d.arraySlow()
}

func (d *decoder) arraySlow() int {
	n := d.header(0x90, mpArray16, mpArray32, "an array")
	if n > len(d.b)-d.i {
		d.fail("an array of " + itoa(n) + " elements is longer than the " + itoa(len(d.b)-d.i) + " bytes left")
		return 0
	}
	return n
}

// mapLen reads a map header and returns its number of pairs; nil reads as an
// empty map.
func (d *decoder) mapLen() int {
	n := d.header(0x80, mpMap16, mpMap32, "a map")
	if n > (len(d.b)-d.i)/2 {
		d.fail("a map of " + itoa(n) + " pairs is longer than the " + itoa(len(d.b)-d.i) + " bytes left")
		return 0
	}
	return n
}

// header reads the header of an array or a map and returns its length: fix
// is the high nibble of its fix form (0x90 arrays, 0x80 maps), c16 and c32 the
// bytes of its 16- and 32-bit forms. nil reads as empty; anything else fails
// as not being what, and reads as 0.
func (d *decoder) header(fix, c16, c32 byte, what string) int {
	if d.i >= len(d.b) {
		d.failType(what)
		return 0
	}
	c := d.b[d.i]
	switch {
	case c&0xf0 == fix:
		d.i++
		return int(c & 0x0f)
	case c == c16:
		d.i++
		return int(d.be(2))
	case c == c32:
		d.i++
		return int(d.be(4))
	case c == mpNil:
		d.i++
		return 0
	}
	d.failType(what)
	return 0
}

// skipN skips n values (extra fields a newer minor version appended).
func (d *decoder) skipN(n int) {
	for ; n > 0 && d.err == nil; n-- {
		d.skip(0)
	}
}

// skip skips one value of any type, nested at most maxDepth deep.
func (d *decoder) skip(depth int) {
	if depth > maxDepth {
		d.fail("values nested more than " + itoa(maxDepth) + " deep")
		return
	}
	if d.i >= len(d.b) {
		d.failType("a value")
		return
	}
	c := d.b[d.i]
	switch {
	case c <= 0x7f || c >= 0xe0 || c == mpNil || c == mpFalse || c == mpTrue:
		d.i++
	case c <= 0x8f || c == mpMap16 || c == mpMap32:
		n := d.mapLen()
		for ; n > 0 && d.err == nil; n-- {
			d.skip(depth + 1)
			d.skip(depth + 1)
		}
	case c <= 0x9f || c == mpArray16 || c == mpArray32:
		n := d.array()
		for ; n > 0 && d.err == nil; n-- {
			d.skip(depth + 1)
		}
	case c <= 0xbf || (c >= mpStr8 && c <= mpStr32):
		d.str()
	case c >= mpBin8 && c <= mpBin32:
		d.bin()
	case c >= mpUint8 && c <= mpInt64:
		d.i++
		if n := 1 << ((c - mpUint8) & 3); d.need(n) {
			d.i += n
		}
	case c == mpFloat32:
		d.i++
		if d.need(4) {
			d.i += 4
		}
	case c == mpFloat64:
		d.i++
		if d.need(8) {
			d.i += 8
		}
	case c >= mpFixExt1 && c <= mpFixExt16:
		d.i++
		n := 1 + 1<<(c-mpFixExt1) // type byte and data
		if d.need(n) {
			d.i += n
		}
	case c >= mpExt8 && c <= mpExt32:
		d.i++
		n := int(d.be(1 << (c - mpExt8)))
		if d.need(n + 1) {
			d.i += n + 1
		}
	default:
		d.failType("a value")
	}
}

// Error is a malformed message: what was wrong, and the byte offset where.
type Error struct {
	Offset int
	Msg    string
}

func (e *Error) Error() string {
	return "abi: malformed message at byte " + itoa(e.Offset) + ": " + e.Msg
}

func utoa(v uint64) string {
	if v <= 1<<63-1 {
		return itoa(int(v))
	}
	return itoa(int(v/10)) + itoa(int(v%10))
}
