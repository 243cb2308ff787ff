package abi

import (
	"net/netip"

	"github.com/tcpeng/tcpeng/engine"
)

// The messages (README.md, "Messages"). Config is a map with string keys; the
// per-step request and response are arrays of fixed positions, so that a minor
// version can append fields. Every decoder here takes nil for a field's zero
// value, ignores elements past the ones it knows, and takes missing trailing
// elements as zero.

// Config map keys, in the order of engine.Config's fields.
const (
	keyAddrs             = "addrs"
	keyMTU               = "mtu"
	keySeed              = "seed"
	keyKey               = "key"
	keySendBuffer        = "sendBuffer"
	keyRecvBuffer        = "recvBuffer"
	keyMaxConns          = "maxConns"
	keyBacklog           = "backlog"
	keyEphemeralLow      = "ephemeralLow"
	keyEphemeralHigh     = "ephemeralHigh"
	keyMSL               = "msl"
	keyInitialRTO        = "initialRTO"
	keyMinRTO            = "minRTO"
	keyMaxRTO            = "maxRTO"
	keyDelayedAck        = "delayedAck"
	keyKeepaliveIdle     = "keepaliveIdle"
	keyKeepaliveInterval = "keepaliveInterval"
	keyKeepaliveCount    = "keepaliveCount"
	keyMaxRetries        = "maxRetries"
	keySynRetries        = "synRetries"
	keyFinWait2Timeout   = "finWait2Timeout"
	keyInvalidAck        = "invalidAckInterval"
	keyNoWindowScale     = "noWindowScale"
	keyNoSACK            = "noSACK"
	keyNoTimestamps      = "noTimestamps"
	keyMaxOutOfOrder     = "maxOutOfOrder"
	keyForward           = "forward"
	keyTraceStates       = "traceStates"
	keyTrustLink         = "trustLink"
	keyPartialChecksums  = "partialChecksums"
	keySegmentOffload    = "segmentOffload"
	keyOutputBuffer      = "outputBuffer"
	keyMaxFreeChunks     = "maxFreeChunks"
)

// AppendConfig appends the init message for c: a map holding the fields of c
// that are not zero (a missing key means the engine's default).
//
// An address is sent as its 4 or 16 bytes; an invalid address, or one with a
// zone, is sent as an empty bin, which the engine rejects.
func AppendConfig(b []byte, c *engine.Config) []byte {
	type kv struct {
		key    string
		v      int64
		isBool bool // a boolean field: written as true (MessagePack), never as 1
	}
	num := func(k string, v int64) kv { return kv{key: k, v: v} }
	flag := func(k string, v bool) kv { return kv{key: k, v: b2i(v), isBool: true} }
	fields := [...]kv{
		num(keyMTU, int64(c.MTU)),
		num(keySeed, 0), // placeholder: a uint64, written below
		num(keyKey, 0),  // placeholder: a bin
		num(keySendBuffer, int64(c.SendBuffer)),
		num(keyRecvBuffer, int64(c.RecvBuffer)),
		num(keyMaxConns, int64(c.MaxConns)),
		num(keyBacklog, int64(c.Backlog)),
		num(keyEphemeralLow, int64(c.EphemeralLow)),
		num(keyEphemeralHigh, int64(c.EphemeralHigh)),
		num(keyMSL, int64(c.MSL)),
		num(keyInitialRTO, int64(c.InitialRTO)),
		num(keyMinRTO, int64(c.MinRTO)),
		num(keyMaxRTO, int64(c.MaxRTO)),
		num(keyDelayedAck, int64(c.DelayedAck)),
		num(keyKeepaliveIdle, int64(c.KeepaliveIdle)),
		num(keyKeepaliveInterval, int64(c.KeepaliveInterval)),
		num(keyKeepaliveCount, int64(c.KeepaliveCount)),
		num(keyMaxRetries, int64(c.MaxRetries)),
		num(keySynRetries, int64(c.SynRetries)),
		num(keyFinWait2Timeout, int64(c.FinWait2Timeout)),
		num(keyInvalidAck, int64(c.InvalidAckInterval)),
		flag(keyNoWindowScale, c.NoWindowScale),
		flag(keyNoSACK, c.NoSACK),
		flag(keyNoTimestamps, c.NoTimestamps),
		num(keyMaxOutOfOrder, int64(c.MaxOutOfOrder)),
		flag(keyForward, c.Forward),
		flag(keyTraceStates, c.TraceStates),
		flag(keyTrustLink, c.TrustLink),
		flag(keyPartialChecksums, c.PartialChecksums),
		flag(keySegmentOffload, c.SegmentOffload),
		num(keyOutputBuffer, int64(c.OutputBuffer)),
		num(keyMaxFreeChunks, int64(c.MaxFreeChunks)),
	}
	hasKey := c.Key != [16]byte{}
	n := 0
	if len(c.Addrs) > 0 {
		n++
	}
	for _, f := range fields {
		switch {
		case f.key == keySeed && c.Seed != 0, f.key == keyKey && hasKey, f.v != 0:
			n++
		}
	}
	b = appendMap(b, n)
	if len(c.Addrs) > 0 {
		b = appendStr(b, keyAddrs)
		b = appendArray(b, len(c.Addrs))
		for _, a := range c.Addrs {
			b = appendAddr(b, a)
		}
	}
	for _, f := range fields {
		switch {
		case f.key == keySeed:
			if c.Seed != 0 {
				b = appendUint(appendStr(b, keySeed), c.Seed)
			}
		case f.key == keyKey:
			if hasKey {
				b = appendBin(appendStr(b, keyKey), c.Key[:])
			}
		case f.v == 0:
		case f.isBool:
			b = appendBool(appendStr(b, f.key), true)
		default:
			b = appendInt(appendStr(b, f.key), f.v)
		}
	}
	return b
}

func b2i(v bool) int64 {
	if v {
		return 1
	}
	return 0
}

// appendAddr writes an address as a bin of its 4 or 16 bytes, or an empty bin
// for an address that cannot cross (invalid, or with a zone).
func appendAddr(b []byte, a netip.Addr) []byte {
	switch {
	case a.Is4():
		v := a.As4()
		return append(appendBinHeader(b, 4), v[:]...)
	case a.IsValid() && a.Zone() == "":
		v := a.As16()
		return append(appendBinHeader(b, 16), v[:]...)
	}
	return appendBinHeader(b, 0)
}

// decodeAddr reads an address: a bin of 4 or 16 bytes; an empty bin or nil is
// the invalid address.
func (d *decoder) addr() netip.Addr {
	at := d.i
	p := d.bin()
	switch len(p) {
	case 0:
		return netip.Addr{}
	case 4:
		return netip.AddrFrom4([4]byte(p))
	case 16:
		return netip.AddrFrom16([16]byte(p))
	}
	d.i = at
	d.fail("an address has " + itoa(len(p)) + " bytes: want 4 or 16")
	return netip.Addr{}
}

// DecodeConfig decodes an init message.
func DecodeConfig(b []byte) (engine.Config, error) {
	var c engine.Config
	d := decoder{b: b}
	n := d.mapLen()
	for ; n > 0 && d.err == nil; n-- {
		at := d.i
		k := d.str()
		switch string(k) {
		case keyAddrs:
			m := d.array()
			if m > MaxAddrs {
				d.fail("Config.Addrs holds " + itoa(m) + " addresses: at most " + itoa(MaxAddrs))
				break
			}
			if m > 0 {
				c.Addrs = make([]netip.Addr, 0, m)
			}
			for ; m > 0 && d.err == nil; m-- {
				c.Addrs = append(c.Addrs, d.addr())
			}
		case keySeed:
			c.Seed = d.uint()
		case keyKey:
			p := d.bin()
			switch len(p) {
			case 0:
			case 16:
				c.Key = [16]byte(p)
			default:
				d.fail("Config.Key has " + itoa(len(p)) + " bytes: want 16")
			}
		case keyMTU:
			c.MTU = d.cint()
		case keySendBuffer:
			c.SendBuffer = d.cint()
		case keyRecvBuffer:
			c.RecvBuffer = d.cint()
		case keyMaxConns:
			c.MaxConns = d.cint()
		case keyBacklog:
			c.Backlog = d.cint()
		case keyEphemeralLow:
			c.EphemeralLow = uint16(d.intRange(0, 0xffff, "Config.EphemeralLow"))
		case keyEphemeralHigh:
			c.EphemeralHigh = uint16(d.intRange(0, 0xffff, "Config.EphemeralHigh"))
		case keyMSL:
			c.MSL = engine.Duration(d.int())
		case keyInitialRTO:
			c.InitialRTO = engine.Duration(d.int())
		case keyMinRTO:
			c.MinRTO = engine.Duration(d.int())
		case keyMaxRTO:
			c.MaxRTO = engine.Duration(d.int())
		case keyDelayedAck:
			c.DelayedAck = engine.Duration(d.int())
		case keyKeepaliveIdle:
			c.KeepaliveIdle = engine.Duration(d.int())
		case keyKeepaliveInterval:
			c.KeepaliveInterval = engine.Duration(d.int())
		case keyKeepaliveCount:
			c.KeepaliveCount = d.cint()
		case keyMaxRetries:
			c.MaxRetries = d.cint()
		case keySynRetries:
			c.SynRetries = d.cint()
		case keyFinWait2Timeout:
			c.FinWait2Timeout = engine.Duration(d.int())
		case keyInvalidAck:
			c.InvalidAckInterval = engine.Duration(d.int())
		case keyNoWindowScale:
			c.NoWindowScale = d.bool()
		case keyNoSACK:
			c.NoSACK = d.bool()
		case keyNoTimestamps:
			c.NoTimestamps = d.bool()
		case keyMaxOutOfOrder:
			c.MaxOutOfOrder = d.cint()
		case keyForward:
			c.Forward = d.bool()
		case keyTraceStates:
			c.TraceStates = d.bool()
		case keyTrustLink:
			c.TrustLink = d.bool()
		case keyPartialChecksums:
			c.PartialChecksums = d.bool()
		case keySegmentOffload:
			c.SegmentOffload = d.bool()
		case keyOutputBuffer:
			c.OutputBuffer = d.cint()
		case keyMaxFreeChunks:
			c.MaxFreeChunks = d.cint()
		default:
			if d.err == nil {
				d.i = at
				d.fail("unknown Config key " + quote(k) + ": the host is newer than this module; rebuild the module")
			}
		}
	}
	if d.err != nil {
		return engine.Config{}, d.err
	}
	return c, nil
}

// cint reads a count or size of the Config: an integer that fits 32 bits, so
// that the guest and 32-bit hosts read the same value; the engine checks the
// range it accepts.
func (d *decoder) cint() int {
	return int(d.intRange(-1<<31, 1<<31-1, "Config value"))
}

// quote returns k in double quotes, or a placeholder for a key that is long
// or not printable ASCII.
func quote(k []byte) string {
	if len(k) > 64 {
		return "(a key of " + itoa(len(k)) + " bytes)"
	}
	for _, c := range k {
		if c < 0x20 || c > 0x7e {
			return "(a key that is not printable ASCII)"
		}
	}
	return `"` + string(k) + `"`
}

// RequestSize returns an upper bound of the bytes AppendRequest writes for in:
// RequestOverhead, plus FrameOverhead and the length of each frame, plus
// CommandOverhead and the length of each command's Data (but a read's).
func RequestSize(in *engine.Input) int {
	n := RequestOverhead
	for _, f := range in.Frames {
		n += FrameOverhead + len(f)
	}
	for i := range in.Commands {
		n += CommandOverhead
		if c := &in.Commands[i]; c.Op != engine.OpRead {
			n += len(c.Data)
		}
	}
	return n
}

// Bounds of a step message's parts, for hosts that size or split a request.
const (
	// RequestOverhead bounds the array headers and the time.
	RequestOverhead = 1 + maxIntSize + 2*maxHeaderSize
	// FrameOverhead bounds a frame's bin header.
	FrameOverhead = maxHeaderSize
	// CommandOverhead bounds a command other than its data: the array header,
	// op, conn, two addresses ([bin 16, port]), data header, n, option, value.
	CommandOverhead = 1 + 2 + 5 + 2*(1+2+16+3) + maxHeaderSize + maxIntSize + 2 + maxIntSize
)

// AppendRequest appends the step message for in:
//
//	[now, [frame...], [command...]]
//	command: [op, conn, addr, local, data, n, option, value]
//
// For OpRead, n is the most bytes to read, len(Command.Data), and data is nil:
// the bytes come back in the result. For the other operations n is Command.N and
// data is Command.Data.
func AppendRequest(b []byte, in *engine.Input) []byte {
	b = appendArray(b, 3)
	b = appendInt(b, int64(in.Now))
	b = appendArray(b, len(in.Frames))
	for _, f := range in.Frames {
		b = append(appendBinHeader(b, len(f)), f...)
	}
	b = appendArray(b, len(in.Commands))
	for i := range in.Commands {
		c := &in.Commands[i]
		b = append(b, 0x98) // an array of 8
		b = putU32(b, uint32(c.Op))
		b = putU32(b, uint32(c.Conn))
		if c.Addr == (netip.AddrPort{}) && c.Local == (netip.AddrPort{}) {
			b = append(b, mpNil, mpNil)
		} else {
			b = appendAddrPort(b, c.Addr)
			b = appendAddrPort(b, c.Local)
		}
		if c.Op == engine.OpRead {
			b = appendNil(b)
			b = appendInt(b, int64(len(c.Data)))
		} else {
			b = appendBin(b, c.Data)
			b = appendInt(b, int64(c.N))
		}
		b = putU32(b, uint32(c.Option))
		if c.Value >= 0 && c.Value < 0x80 {
			b = append(b, byte(c.Value))
		} else {
			b = appendInt(b, c.Value)
		}
	}
	return b
}

// appendAddrPort writes nil for the zero AddrPort, else [ip, port].
func appendAddrPort(b []byte, ap netip.AddrPort) []byte {
	a := ap.Addr()
	if !a.IsValid() && ap.Port() == 0 {
		return appendNil(b)
	}
	b = appendArray(b, 2)
	if a.IsValid() {
		b = appendAddr(b, a)
	} else {
		b = appendNil(b)
	}
	return appendUint(b, uint64(ap.Port()))
}

func (d *decoder) addrPort() netip.AddrPort {
	if d.isNil() {
		return netip.AddrPort{}
	}
	n := d.array()
	var a netip.Addr
	var port uint16
	if n > 0 {
		a = d.addr()
	}
	if n > 1 {
		port = uint16(d.intRange(0, 0xffff, "port"))
	}
	d.skipN(n - 2)
	return netip.AddrPortFrom(a, port)
}

// DecodeRequest decodes a step message into in, reusing in's slices. Frames and
// write data are views into b. A read's Data is nil and its N the most bytes
// to read (the guest gives it a buffer before running the engine).
func DecodeRequest(b []byte, in *engine.Input) error {
	d := decoder{b: b}
	in.Now, in.Frames, in.Commands = 0, in.Frames[:0], in.Commands[:0]
	n := d.array()
	if n > 0 {
		in.Now = engine.Time(d.int())
	}
	if n > 1 {
		m := d.array()
		if m > MaxFrames {
			d.fail(itoa(m) + " frames in one step: at most " + itoa(MaxFrames))
		}
		in.Frames = d.frames(in.Frames, m)
	}
	if n > 2 {
		m := d.array()
		if m > MaxCommands {
			d.fail(itoa(m) + " commands in one step: at most " + itoa(MaxCommands))
		}
		for ; m > 0 && d.err == nil; m-- {
			in.Commands = append(in.Commands, engine.Command{})
			c := &in.Commands[len(in.Commands)-1]
			if !d.commandFast(c) {
				d.command(c)
			}
			if c.Op == engine.OpRead {
				c.Data = nil // a read's bytes come back in the result; data sent along is ignored
			}
		}
	}
	d.skipN(n - 3)
	if d.err == nil && d.i != len(b) {
		d.fail("the message ends " + itoa(len(b)-d.i) + " bytes before the buffer")
	}
	if d.err != nil {
		in.Frames, in.Commands = in.Frames[:0], in.Commands[:0]
		return d.err
	}
	return nil
}

// frames appends m frames (bins) to fs. The loop is the hot path of the
// guest: bin8 and bin16 headers are read inline.
func (d *decoder) frames(fs [][]byte, m int) [][]byte {
	fs = fs[:0]
	if d.err != nil {
		return fs
	}
	b, i := d.b, d.i
	for ; m > 0; m-- {
		if i+3 <= len(b) && b[i] == mpBin16 {
			n := int(b[i+1])<<8 | int(b[i+2])
			if n <= len(b)-i-3 {
				fs = append(fs, b[i+3:i+3+n:i+3+n])
				i += 3 + n
				continue
			}
		}
		d.i = i
		fs = append(fs, d.bin())
		if d.err != nil {
			return fs
		}
		i = d.i
	}
	d.i = i
	return fs
}

// commandFast decodes, in one call, a command of the shape the encoders here
// write for the usual commands: an array of 8; op, conn, n, option and value
// non-negative integers of at most 32 bits; no addresses; data nil or a bin. It
// reports false, having read nothing and changed nothing, for any other shape,
// which command decodes. (A function call costs about 25 ns in Go's
// WebAssembly; command makes a dozen.)
func (d *decoder) commandFast(c *engine.Command) bool {
	b, i := d.b, d.i
	if i+9 > len(b) || b[i] != 0x98 {
		return false
	}
	i++
	var v [8]uint32
	var data []byte
	for f := range 8 {
		if i >= len(b) {
			return false
		}
		x := b[i]
		switch {
		case f == 2 || f == 3:
			if x != mpNil {
				return false
			}
			i++
			continue
		case f == 4:
			n := 0
			switch {
			case x == mpNil:
				i++
				continue
			case x == mpBin8 && i+2 <= len(b):
				n, i = int(b[i+1]), i+2
			case x == mpBin16 && i+3 <= len(b):
				n, i = int(b[i+1])<<8|int(b[i+2]), i+3
			case x == mpBin32 && i+5 <= len(b):
				n, i = int(uint32(b[i+1])<<24|uint32(b[i+2])<<16|uint32(b[i+3])<<8|uint32(b[i+4])), i+5
			default:
				return false
			}
			if n > len(b)-i {
				return false
			}
			data, i = b[i:i+n:i+n], i+n
			continue
		}
		switch {
		case x < 0x80:
			v[f], i = uint32(x), i+1
		case x == mpUint8 && i+2 <= len(b):
			v[f], i = uint32(b[i+1]), i+2
		case x == mpUint16 && i+3 <= len(b):
			v[f], i = uint32(b[i+1])<<8|uint32(b[i+2]), i+3
		case x == mpUint32 && i+5 <= len(b):
			v[f], i = uint32(b[i+1])<<24|uint32(b[i+2])<<16|uint32(b[i+3])<<8|uint32(b[i+4]), i+5
		default:
			return false
		}
	}
	if v[0] > 0xff || v[6] > 0xff {
		return false
	}
	c.Op, c.Conn, c.Data, c.N = engine.Op(v[0]), engine.ConnID(v[1]), data, int(v[5])
	c.Option, c.Value = engine.Option(v[6]), int64(v[7])
	d.i = i
	return true
}

func (d *decoder) command(c *engine.Command) {
	n := d.array()
	if n > 0 {
		c.Op = engine.Op(d.intRange(0, 0xff, "op"))
	}
	if n > 1 {
		c.Conn = engine.ConnID(d.intRange(0, 0xffffffff, "conn"))
	}
	if n > 2 {
		c.Addr = d.addrPort()
	}
	if n > 3 {
		c.Local = d.addrPort()
	}
	if n > 4 {
		c.Data = d.bin()
	}
	if n > 5 {
		c.N = int(d.int())
	}
	if n > 6 {
		c.Option = engine.Option(d.intRange(0, 0xff, "option"))
	}
	if n > 7 {
		c.Value = d.int()
	}
	d.skipN(n - 8)
}

// AppendStatus appends a response that carries only a status and a message:
// the answer to init, and to a step that did nothing.
//
//	[status, message]
func AppendStatus(b []byte, s Status, msg string) []byte {
	b = appendArray(b, 2)
	b = appendUint(b, uint64(s))
	return appendStr(b, clip(msg))
}

func clip(msg string) string {
	if len(msg) > MaxMessage {
		return msg[:MaxMessage]
	}
	return msg
}

// AppendResponse appends a step response for out, the output of a step that ran
// cmds:
//
//	[status, message, deadline, [result...], [event...], [frame...]]
//	result: [conn, n, err, data, local, remote]
//	event:  [kind, conn, err, from, to]
//
// A result's data holds the bytes an OpRead read (n of them); it is nil for
// the other operations. local and remote are addresses as in a command (nil or
// [ip, port]): a listen's, dial's or accept's new connection's own and its peer's.
func AppendResponse(b []byte, s Status, msg string, out *engine.Output, cmds []engine.Command) []byte {
	b = appendArray(b, 6)
	b = appendUint(b, uint64(s))
	b = appendStr(b, clip(msg))
	b = appendInt(b, int64(out.Deadline))
	b = appendArray(b, len(out.Results))
	for i, r := range out.Results {
		b = append(b, 0x96) // an array of 6
		b = putU32(b, uint32(r.Conn))
		if r.N >= 0 && r.N <= 0xffffffff {
			b = putU32(b, uint32(r.N))
		} else {
			b = appendInt(b, int64(r.N))
		}
		b = putU32(b, uint32(r.Err))
		if i < len(cmds) && cmds[i].Op == engine.OpRead && r.N > 0 && r.N <= len(cmds[i].Data) {
			b = appendBin(b, cmds[i].Data[:r.N])
		} else {
			b = appendNil(b)
		}
		if r.Local == (netip.AddrPort{}) && r.Remote == (netip.AddrPort{}) {
			b = append(b, mpNil, mpNil)
		} else {
			b = appendAddrPort(b, r.Local)
			b = appendAddrPort(b, r.Remote)
		}
	}
	b = appendArray(b, len(out.Events))
	for _, e := range out.Events {
		b = append(b, 0x95) // an array of 5
		b = putU32(b, uint32(e.Kind))
		b = putU32(b, uint32(e.Conn))
		b = putU32(b, uint32(e.Err))
		b = putU32(b, uint32(e.From))
		b = putU32(b, uint32(e.To))
	}
	b = appendArray(b, len(out.Frames))
	for _, f := range out.Frames {
		b = append(appendBinHeader(b, len(f)), f...)
	}
	return b
}

// Response is the head of a decoded response.
type Response struct {
	Status Status
	// Message says what went wrong when Status is not StatusOK. It is a view
	// into the response, valid as long as it.
	Message []byte
}

// DecodeStatus decodes the status and message that begin every response.
func DecodeStatus(b []byte) (Response, error) {
	d := decoder{b: b}
	var r Response
	n := d.array()
	if n > 0 {
		r.Status = Status(d.intRange(0, 0xff, "status"))
	}
	if n > 1 {
		r.Message = d.str()
	}
	if d.err != nil {
		return Response{}, d.err
	}
	return r, nil
}

// DecodeResponse decodes a step response into out, reusing its slices; frames
// are views into b. cmds are the commands of the request: the bytes each OpRead
// read are copied into its Data, and Results[i].N says how many. A response
// whose results do not answer cmds one for one is malformed.
func DecodeResponse(b []byte, out *engine.Output, cmds []engine.Command) (Response, error) {
	d := decoder{b: b}
	var r Response
	out.Frames, out.Results, out.Events = out.Frames[:0], out.Results[:0], out.Events[:0]
	out.Deadline = engine.Never
	n := d.array()
	if n > 0 {
		r.Status = Status(d.intRange(0, 0xff, "status"))
	}
	if n > 1 {
		r.Message = d.str()
	}
	if n > 2 {
		out.Deadline = engine.Time(d.int())
	}
	if n > 3 {
		m := d.array()
		if r.Status == StatusOK && m != len(cmds) {
			d.fail(itoa(m) + " results answer " + itoa(len(cmds)) + " commands")
		}
		for i := 0; i < m && d.err == nil; i++ {
			out.Results = append(out.Results, engine.Result{})
			d.result(&out.Results[i], cmds, i)
		}
	}
	if n > 4 {
		m := d.array()
		for ; m > 0 && d.err == nil; m-- {
			out.Events = append(out.Events, d.event())
		}
	}
	if n > 5 {
		m := d.array()
		for ; m > 0 && d.err == nil; m-- {
			out.Frames = append(out.Frames, d.bin())
		}
	}
	d.skipN(n - 6)
	if d.err != nil {
		out.Frames, out.Results, out.Events = out.Frames[:0], out.Results[:0], out.Events[:0]
		return Response{}, d.err
	}
	return r, nil
}

func (d *decoder) result(r *engine.Result, cmds []engine.Command, i int) {
	n := d.array()
	if n > 0 {
		r.Conn = engine.ConnID(d.intRange(0, 0xffffffff, "conn"))
	}
	if n > 1 {
		r.N = int(d.intRange(0, 1<<31-1, "n"))
	}
	if n > 2 {
		r.Err = engine.Error(d.intRange(0, 0xff, "err"))
	}
	if n > 3 {
		at := d.i
		p := d.bin()
		if p != nil || (i < len(cmds) && cmds[i].Op == engine.OpRead && r.N > 0) {
			if i >= len(cmds) || cmds[i].Op != engine.OpRead || len(p) != r.N || len(p) > len(cmds[i].Data) {
				d.i = at
				d.fail("result " + itoa(i) + " carries " + itoa(len(p)) + " bytes that do not answer its command")
				return
			}
			copy(cmds[i].Data, p)
		}
	}
	if n > 4 {
		r.Local = d.addrPort()
	}
	if n > 5 {
		r.Remote = d.addrPort()
	}
	d.skipN(n - 6)
}

func (d *decoder) event() engine.Event {
	var e engine.Event
	n := d.array()
	if n > 0 {
		e.Kind = engine.EventKind(d.intRange(0, 0xff, "event kind"))
	}
	if n > 1 {
		e.Conn = engine.ConnID(d.intRange(0, 0xffffffff, "conn"))
	}
	if n > 2 {
		e.Err = engine.Error(d.intRange(0, 0xff, "err"))
	}
	if n > 3 {
		e.From = engine.State(d.intRange(0, 0xff, "state"))
	}
	if n > 4 {
		e.To = engine.State(d.intRange(0, 0xff, "state"))
	}
	d.skipN(n - 5)
	return e
}
