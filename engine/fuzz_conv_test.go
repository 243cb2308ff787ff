package engine

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// FuzzConversation drives a connection between two engines through a program
// the fuzzer writes, three bytes an operation: the wire's (deliver, drop,
// duplicate, reorder, cut a segment in two, alter a byte of a frame in flight
// with or without mending its checksums), the applications' (write, read,
// shutdown, close, abort, accept, set an option, dial again) and the clock's.
// It reaches what FuzzHandleFrame cannot with one frame: a connection with
// data, losses and closes in flight both ways.
//
//   - No operation panics either engine.
//   - Unless a frame was altered or a side moved to a new connection, each
//     side reads exactly the bytes the other wrote, in order, and an end of
//     stream only after all of them: losing, repeating, reordering and
//     re-cutting segments never corrupts a stream.
//   - After both applications close everything and the clock runs on, neither
//     engine keeps a connection: every state ends.
//   - The program run through the fine-grained methods (HandleFrame,
//     HandleTimeout, Execute, PollFrame) and run through Step gives the same
//     frames, byte for byte: Step is what it says it is, and the engine is
//     deterministic.
func FuzzConversation(f *testing.F) {
	for _, seed := range [][]byte{
		{opWrite, 4, 0, opDeliver, 0, 0, opDeliver | sideB, 0, 0, opRead | sideB, 255, 0},
		{opWrite, 40, 0, opDrop | sideB, 0, 0, opDeliver | sideB, 0, 0, opTime, 1, 0, opDeliver | sideB, 0, 0, opRead | sideB, 255, 0},
		{opWrite | sideB, 8, 0, opDup, 0, 0, opReorder, 0, 0, opDeliver, 0, 0, opRead, 10, 0, opShutdown | sideB, 0, 0, opDeliver, 0, 0, opRead, 255, 0},
		{opWrite, 20, 0, opAlter | sideB, 0, 33, opDeliver | sideB, 0, 0, opClose, 0, 0, opAbort | sideB, 0, 0},
		{opWrite, 40, 0, opSplit | sideB, 0, 7, opSplit | sideB, 1, 0, opReorder | sideB, 0, 0, opDrop | sideB, 0, 0, opDeliver | sideB, 0, 0, opTime, 1, 0, opDeliver | sideB, 0, 0, opRead | sideB, 255, 0},
		// Half a segment arrives, its ACK is lost, the whole segment is sent
		// again: it overlaps what was taken by 7 bytes.
		{opWrite, 40, 0, opSplit | sideB, 0, 6, opReorder | sideB, 0, 0, opDrop | sideB, 0, 0, opDeliver | sideB, 0, 0,
			opDrop, 0, 0, opDrop, 0, 0, opTime, 3, 232, opDeliver | sideB, 0, 0, opRead | sideB, 255, 0},
		{opOption, 3, 0, opWrite, 255, 15, opDeliver | sideB, 0, 0, opTime, 0, 200, opDeliver, 0, 0, opDial, 0, 0, opDeliver | sideB, 0, 0, opAccept | sideB, 0, 0},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, prog []byte) {
		if len(prog) > 3*400 {
			prog = prog[:3*400]
		}
		h1, h2 := sha256.New(), sha256.New()
		runConversation(t, prog, false, h1)
		runConversation(t, prog, true, h2)
		if !bytes.Equal(h1.Sum(nil), h2.Sum(nil)) {
			t.Fatal("the program gave other frames through Step than through the fine-grained methods")
		}
	})
}

// Operations: the low 4 bits choose the operation, bit 7 the side it concerns
// (A, the dialer, or B, the listener); two argument bytes follow.
const (
	opDeliver  = iota // the frames in flight to the side reach it
	opDrop            // the first frame in flight to the side is lost
	opDup             // ... arrives twice
	opReorder         // ... goes behind the others
	opAlter           // ... has a byte changed; bit 6: checksums mended after
	opWrite           // the side's application writes (args: length)
	opRead            // the side's application reads (args: length)
	opShutdown        // the side's application shuts its sending half down
	opClose           // the side's application closes its connection
	opAbort           // the side's application resets its connection
	opAccept          // B accepts from its listener
	opOption          // the side's application sets an option
	opDial            // A dials B again (the newest connection is the one used)
	opTime            // the clock moves on (args: milliseconds)
	opSplit           // the first frame in flight to the side is cut in two segments (args: where)
	numConvOps

	sideB = 0x80
	mend  = 0x40
)

// conversation is one run of a program.
type conversation struct {
	t       *testing.T
	st      [2]*Stack
	conn    [2]ConnID   // the connection each side's operations use
	all     [2][]ConnID // every connection each side's application has had
	lid     ConnID
	now     Time
	flight  [2][][]byte // frames on their way to side i
	wrote   [2]int      // bytes side i's application has written
	read    [2]int      // bytes side i's application has read
	altered bool        // a frame was altered, or a side changed connection: streams are not compared
	sum     hash.Hash
	buf     []byte // PollFrame's
	wbuf    [8192]byte
	rbuf    [65536]byte
	stepped bool // every turn is one Step
	out     Output
	dl      [2]Time // each side's deadline after its last turn
}

// maxFlight bounds the frames in flight each way; past it the oldest are lost.
const maxFlight = 512

// stream is the byte at offset i of what side's application writes.
func stream(side, i int) byte { return byte(i*7 + i>>8 + side*101) }

func runConversation(t *testing.T, prog []byte, stepped bool, sum hash.Hash) {
	c := &conversation{t: t, sum: sum, buf: make([]byte, 65536), stepped: stepped}
	for i, a := range []netip.Addr{addrA, addrB} {
		// A small output buffer: Step fills it often, and allocates less.
		s, err := New(Config{Addrs: []netip.Addr{a}, Seed: uint64(i + 1), OutputBuffer: 16 << 10})
		if err != nil {
			t.Fatal(err)
		}
		c.st[i] = s
	}
	c.lid = c.exec(1, Command{Op: OpListen, Addr: netip.AddrPortFrom(addrB, 80)}).Conn
	c.conn[0] = c.exec(0, Command{Op: OpDial, Addr: netip.AddrPortFrom(addrB, 80)}).Conn
	c.settle(Second)
	c.conn[1] = c.exec(1, Command{Op: OpAccept, Conn: c.lid}).Conn
	c.all = [2][]ConnID{{c.conn[0]}, {c.conn[1]}}
	for ; len(prog) >= 3; prog = prog[3:] {
		c.do(prog[0], prog[1], prog[2])
	}
	// The end: both applications close everything; the clock runs until no
	// timer is left.
	for {
		r := c.exec(1, Command{Op: OpAccept, Conn: c.lid})
		if r.Err != OK {
			break
		}
		c.exec(1, Command{Op: OpClose, Conn: r.Conn})
	}
	for side, ids := range c.all {
		for _, id := range ids {
			c.exec(side, Command{Op: OpClose, Conn: id})
		}
	}
	c.exec(1, Command{Op: OpClose, Conn: c.lid})
	c.settle(4 * 3600 * Second)
	for i, s := range c.st {
		if n := s.Stats().Conns; n != 0 {
			t.Fatalf("side %c keeps %d connections after every close and 4 hours", 'A'+i, n)
		}
	}
}

// turn gives side its frames, runs its timers, executes cmd (if any) and takes
// what it sends onto the wire: through Step, or through the fine-grained
// methods in the order Step documents.
func (c *conversation) turn(side int, frames [][]byte, cmd *Command) Result {
	s := c.st[side]
	var r Result
	if c.stepped {
		in := Input{Now: c.now, Frames: frames}
		if cmd != nil {
			in.Commands = []Command{*cmd}
		}
		for {
			s.Step(&in, &c.out)
			if cmd != nil && len(in.Commands) > 0 {
				r = c.out.Results[0]
			}
			size := 0
			for _, fr := range c.out.Frames {
				c.send(side, fr)
				size += len(fr)
			}
			c.dl[side] = c.out.Deadline
			if size+s.cfg.MTU <= s.cfg.OutputBuffer {
				return r
			}
			in = Input{Now: c.now} // the output buffer was full: the rest follows
		}
	}
	for _, fr := range frames {
		s.HandleFrame(c.now, fr)
	}
	s.HandleTimeout(c.now)
	if cmd != nil {
		r = s.Execute(c.now, cmd)
	}
	for {
		n := s.PollFrame(c.buf)
		if n == 0 {
			break
		}
		c.send(side, c.buf[:n])
	}
	for {
		if _, ok := s.PollEvent(); !ok {
			break
		}
	}
	c.dl[side] = s.PollDeadline()
	return r
}

// exec runs one command on side, then lets the other side take its turn.
func (c *conversation) exec(side int, cmd Command) Result {
	r := c.turn(side, nil, &cmd)
	c.turn(1-side, nil, nil)
	return r
}

func (c *conversation) do(op, a, b byte) {
	side := int(op >> 7)
	id := c.conn[side]
	arg := int(a)<<8 | int(b)
	fl := &c.flight[side]
	switch op & 0x0f % numConvOps {
	case opDeliver:
		c.deliver(side)
		return
	case opDrop:
		if len(*fl) > 0 {
			*fl = (*fl)[1:]
		}
	case opDup:
		if len(*fl) > 0 && len(*fl) < maxFlight {
			*fl = append(*fl, append([]byte(nil), (*fl)[0]...))
		}
	case opReorder:
		if len(*fl) > 1 {
			*fl = append((*fl)[1:], (*fl)[0])
		}
	case opAlter:
		if len(*fl) > 0 && len((*fl)[0]) > 0 {
			fr := (*fl)[0]
			fr[arg%len(fr)] ^= a | 1
			if op&mend != 0 {
				fixChecksums(fr)
			}
			c.altered = true
		}
	case opWrite:
		n := arg%8192 + 1
		data := c.wbuf[:n]
		for i := range data {
			data[i] = stream(side, c.wrote[side]+i)
		}
		r := c.exec(side, Command{Op: OpWrite, Conn: id, Data: data})
		w, err := r.N, r.Err
		if w < 0 || w > n || (err != OK && w != 0) {
			c.t.Fatalf("side %c: Write of %d bytes gave %d, %v", 'A'+side, n, w, err)
		}
		c.wrote[side] += w
		return
	case opRead:
		c.readSome(side, arg%len(c.rbuf)+1)
		return
	case opShutdown:
		c.exec(side, Command{Op: OpShutdown, Conn: id})
		return
	case opClose:
		c.exec(side, Command{Op: OpClose, Conn: id})
		return
	case opAbort:
		c.exec(side, Command{Op: OpAbort, Conn: id})
		return
	case opAccept:
		c.adopt(1, c.exec(1, Command{Op: OpAccept, Conn: c.lid}))
		return
	case opOption:
		opts := [...]Option{OptNoDelay, OptKeepalive, OptSendBuffer, OptRecvBuffer}
		c.exec(side, Command{Op: OpSetOption, Conn: id, Option: opts[int(a)%len(opts)], Value: int64(b) << int(a>>4)})
		return
	case opDial:
		c.adopt(0, c.exec(0, Command{Op: OpDial, Addr: netip.AddrPortFrom(addrB, 80)}))
		return
	case opSplit:
		if len(*fl) > 0 && len(*fl) < maxFlight {
			if a, b, ok := splitSegment((*fl)[0], arg); ok {
				*fl = append([][]byte{a, b}, (*fl)[1:]...)
			}
		}
	case opTime:
		c.now = c.now.Add(Duration(arg) * Millisecond)
	}
	// The wire's operations and the clock's: both sides take a turn.
	c.turn(0, nil, nil)
	c.turn(1, nil, nil)
}

// adopt makes a new connection (a successful accept or dial) the one side's
// operations use.
func (c *conversation) adopt(side int, r Result) {
	if r.Err != OK {
		return
	}
	c.conn[side], c.read[side], c.wrote[side] = r.Conn, 0, 0
	c.all[side] = append(c.all[side], r.Conn)
	c.altered = true // the two ends may now be of different connections
}

// readSome reads up to n bytes on side and checks them against what the other
// side wrote.
func (c *conversation) readSome(side, n int) {
	rbuf := c.rbuf[:n]
	r := c.exec(side, Command{Op: OpRead, Conn: c.conn[side], Data: rbuf})
	got, err := r.N, r.Err
	if got < 0 || got > n {
		c.t.Fatalf("side %c: Read of %d bytes gave %d", 'A'+side, n, got)
	}
	if c.altered {
		return
	}
	other := 1 - side
	for i, x := range rbuf[:got] {
		if off := c.read[side] + i; off >= c.wrote[other] || x != stream(other, off) {
			c.t.Fatalf("side %c read byte %d as %#x: the other side wrote %d bytes, that one %#x",
				'A'+side, off, x, c.wrote[other], stream(other, off))
		}
	}
	c.read[side] += got
	if err == ErrEOF && c.read[side] != c.wrote[other] {
		c.t.Fatalf("side %c: end of stream after %d bytes of the %d written", 'A'+side, c.read[side], c.wrote[other])
	}
}

// splitSegment cuts a TCP segment's payload at 1 + at%(len-1) into two valid
// segments, as a middlebox that re-segments may: the second's sequence number
// follows the first's payload; the first keeps SYN, the second FIN and PSH.
// Reordered, repeated or lost, the halves overlap retransmissions partly.
func splitSegment(fr []byte, at int) (first, second []byte, ok bool) {
	ip, err := wire.ParseIPv4(fr)
	if err != nil || ip.Protocol() != wire.ProtoTCP || ip.IsFragment() {
		return nil, nil, false
	}
	tcp, err := wire.ParseTCP(ip.Payload())
	if err != nil || len(tcp.Payload()) < 2 {
		return nil, nil, false
	}
	hl := ip.HeaderLen() + tcp.HeaderLen()
	k := 1 + at%(len(tcp.Payload())-1)
	first = append([]byte(nil), fr[:hl+k]...)
	second = append(append([]byte(nil), fr[:hl]...), fr[hl+k:]...)
	first[ip.HeaderLen()+13] &^= byte(wire.FlagFIN | wire.FlagPSH)
	second[ip.HeaderLen()+13] &^= byte(wire.FlagSYN)
	binary.BigEndian.PutUint32(second[ip.HeaderLen()+4:], uint32(tcp.Seq().Add(uint32(k))))
	for _, f := range [][]byte{first, second} {
		binary.BigEndian.PutUint16(f[2:], uint16(len(f)))
		wire.PutIPv4Checksum(f[:ip.HeaderLen()])
		wire.SetTCPChecksum(f[ip.HeaderLen():], ip.Src(), ip.Dst())
	}
	return first, second, true
}

// deliver hands side the frames in flight to it, then lets the other side
// take its turn.
func (c *conversation) deliver(side int) {
	fl := c.flight[side]
	c.flight[side] = nil
	c.turn(side, fl, nil)
	c.turn(1-side, nil, nil)
}

// send puts a frame side sent on the wire, hashing it.
func (c *conversation) send(side int, fr []byte) {
	var l [4]byte
	binary.BigEndian.PutUint32(l[:], uint32(len(fr)))
	c.sum.Write(l[:])
	c.sum.Write(fr)
	fl := &c.flight[1-side]
	if len(*fl) == maxFlight {
		*fl = (*fl)[1:]
	}
	*fl = append(*fl, append([]byte(nil), fr...))
}

// settle delivers frames and moves the clock to each deadline until nothing
// is left to do or limit has passed.
func (c *conversation) settle(limit Duration) {
	end := c.now.Add(limit)
	for range 1_000_000 {
		if len(c.flight[0])+len(c.flight[1]) > 0 {
			c.deliver(0)
			c.deliver(1)
			continue
		}
		d := min(c.dl[0], c.dl[1])
		if d == Never || d > end {
			return
		}
		c.now = max(c.now, d)
		c.turn(0, nil, nil)
		c.turn(1, nil, nil)
	}
	c.t.Fatalf("no end after a million rounds: %d and %d connections", c.st[0].Stats().Conns, c.st[1].Stats().Conns)
}
