package offload

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/engine/wire"
)

var (
	addrA = netip.MustParseAddr("10.0.0.1")
	addrB = netip.MustParseAddr("10.0.0.2")
)

func config(addr netip.Addr, seed uint64, mtu int) engine.Config {
	return engine.Config{Addrs: []netip.Addr{addr}, Seed: seed, MTU: mtu, SendBuffer: 256 << 10, RecvBuffer: 256 << 10}
}

// wireLog is what crossed the link in one run.
type wireLog struct {
	a, b     [][]byte // frames A and B sent, in order
	received []byte   // the bytes B's application read
	cut      Stats    // A's offload.Engine, if any
}

// exchange runs A sending size bytes to B in writes of random sizes (Nagle on,
// so short tails wait), then closing. With offloadA, A's stack has
// Config.SegmentOffload behind an Engine; B is a plain stack. Every dropEvery-th
// frame of A (counted after cutting) is lost, so that SACK recovery and
// timeouts run too.
func exchange(t testing.TB, offloadA bool, mtu, size, dropEvery int) wireLog {
	t.Helper()
	ca := config(addrA, 1, mtu)
	ca.SegmentOffload = offloadA
	sa, err := engine.New(ca)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := engine.New(config(addrB, 2, mtu))
	if err != nil {
		t.Fatal(err)
	}
	var ea engine.Engine = sa
	var oa *Engine
	if offloadA {
		oa = New(sa, mtu)
		ea = oa
	}
	lid, _ := sb.Listen(netip.AddrPortFrom(addrB, 80), 0)
	now := engine.Time(0)
	cid, e := sa.Dial(now, netip.AddrPort{}, netip.AddrPortFrom(addrB, 80))
	if e != engine.OK {
		t.Fatal(e)
	}
	src := make([]byte, size)
	rng := rand.New(rand.NewPCG(7, 8))
	for i := range src {
		src[i] = byte(rng.Uint32())
	}
	var log wireLog
	var bid engine.ConnID
	sent, shut, bdone := 0, false, false
	var toA, toB [][]byte
	var outA, outB engine.Output
	buf := make([]byte, 1<<16)
	count := 0
	for range 200000 {
		// A's application: writes of 1 to 20000 bytes.
		for sent < size {
			n, _ := sa.Write(cid, src[sent:min(size, sent+1+rng.IntN(20000))])
			if n == 0 {
				break
			}
			sent += n
		}
		if sent == size && !shut {
			sa.Close(cid)
			shut = true
		}
		if bid == 0 {
			bid, _ = sb.Accept(lid)
		}
		if bid != 0 && !bdone {
			for {
				n, err := sb.Read(bid, buf)
				log.received = append(log.received, buf[:n]...)
				if err == engine.ErrEOF {
					sb.Close(bid)
					bdone = true
				}
				if err != engine.OK {
					break
				}
			}
		}
		ea.Step(&engine.Input{Now: now, Frames: toA}, &outA)
		sb.Step(&engine.Input{Now: now, Frames: toB}, &outB)
		toA, toB = toA[:0], toB[:0]
		for _, f := range outA.Frames {
			if len(f) > mtu {
				t.Fatalf("A sent a frame of %d bytes on a link of MTU %d", len(f), mtu)
			}
			c := bytes.Clone(f)
			log.a = append(log.a, c)
			count++
			if dropEvery > 0 && count%dropEvery == 0 {
				continue
			}
			toB = append(toB, c)
		}
		for _, f := range outB.Frames {
			c := bytes.Clone(f)
			log.b = append(log.b, c)
			toA = append(toA, c)
		}
		if len(toA)+len(toB) == 0 {
			d := min(outA.Deadline, outB.Deadline)
			if d == engine.Never {
				break
			}
			now = max(now, d)
		}
	}
	if !bytes.Equal(log.received, src) {
		t.Fatalf("B read %d bytes, not the %d A sent", len(log.received), size)
	}
	if oa != nil {
		log.cut = oa.Stats()
	}
	return log
}

func sum(frames [][]byte) [32]byte {
	h := sha256.New()
	for _, f := range frames {
		var n [4]byte
		binary.BigEndian.PutUint32(n[:], uint32(len(f)))
		h.Write(n[:])
		h.Write(f)
	}
	return [32]byte(h.Sum(nil))
}

// TestCutIsTheSegments: a stack with Config.SegmentOffload behind Engine puts
// on the link, byte for byte, the frames the same stack sends without it,
// through slow start, Nagle's algorithm, loss recovery, timeouts and the close;
// at an odd segment size too (MTU 1501: pieces of 1449 bytes with the
// timestamps option, so joined payloads start at odd offsets).
func TestCutIsTheSegments(t *testing.T) {
	for _, tc := range []struct {
		mtu, size, drop int
	}{
		{1500, 3 << 20, 0},
		{1500, 3 << 20, 97},
		{1501, 1 << 20, 41},
		{576, 1 << 20, 0},
		{9000, 2 << 20, 13},
	} {
		plain := exchange(t, false, tc.mtu, tc.size, tc.drop)
		off := exchange(t, true, tc.mtu, tc.size, tc.drop)
		if len(plain.a) != len(off.a) || sum(plain.a) != sum(off.a) || sum(plain.b) != sum(off.b) {
			for i := range min(len(plain.a), len(off.a)) {
				if !bytes.Equal(plain.a[i], off.a[i]) {
					t.Errorf("MTU %d, drop %d: A's frame %d differs:\n plain % x\n   cut % x", tc.mtu, tc.drop, i,
						plain.a[i][:min(60, len(plain.a[i]))], off.a[i][:min(60, len(off.a[i]))])
					break
				}
			}
			t.Fatalf("MTU %d, drop %d: A sent %d frames without offload, %d with", tc.mtu, tc.drop, len(plain.a), len(off.a))
		}
		if off.cut.Cut == 0 || off.cut.CutInto < 2*off.cut.Cut || off.cut.Dropped != 0 {
			t.Fatalf("MTU %d: offload %+v: nothing was cut", tc.mtu, off.cut)
		}
		t.Logf("MTU %d, drop %d: %d frames of A, %d of them from %d cut", tc.mtu, tc.drop, len(off.a), off.cut.CutInto, off.cut.Cut)
	}
}

// pieces returns the frames a stack with segmentation offload sends first
// (its SYN, ACK and the first flight, cut), for the join tests.
func pieces(t testing.TB, mtu int) [][]byte {
	t.Helper()
	var train [][]byte
	l := exchange(t, true, mtu, 200000, 0)
	for _, f := range l.a {
		if len(f) == mtu {
			train = append(train, f)
		}
	}
	return train
}

// TestJoin: consecutive full-sized segments join into one frame whose
// checksum verifies, whose payload is theirs, and which carries the last one's
// PSH; one corrupted byte in any of them makes the joined checksum fail.
func TestJoin(t *testing.T) {
	for _, mtu := range []int{1500, 1501, 576} {
		all := pieces(t, mtu)
		if len(all) < 12 {
			t.Fatalf("MTU %d: %d full-sized frames", mtu, len(all))
		}
		in := all[2:12]
		var p Planner
		p.Plan(in)
		if p.Trains() != 1 || p.Train(0).Count() != 10 {
			t.Fatalf("MTU %d: %d trains, the first of %d frames", mtu, p.Trains(), p.Train(0).Count())
		}
		tr := p.Train(0)
		ipHL, tcpHL := tr.HeaderLens()
		hl := ipHL + tcpHL
		dst := make([]byte, tr.Len())
		if n, _ := p.Join(0, dst[:tr.Len()-1]); n != 0 {
			t.Fatalf("Join into a short buffer wrote %d bytes", n)
		}
		if n, valid := p.Join(0, dst); n != 10*(mtu-hl)+hl || n != tr.Len() || !valid {
			t.Fatalf("MTU %d: joined %d bytes (valid %v), want %d", mtu, n, valid, 10*(mtu-hl)+hl)
		}
		ip, err := wire.ParseIPv4(dst)
		if err != nil || !ip.ChecksumValid() || len(ip) != len(dst) {
			t.Fatalf("MTU %d: joined IPv4 header: %v", mtu, err)
		}
		if !wire.TCP(dst[ipHL:]).ChecksumValid(addrA, addrB) {
			t.Fatalf("MTU %d: the joined TCP checksum does not verify", mtu)
		}
		var payload []byte
		for _, f := range in {
			payload = append(payload, f[hl:]...)
		}
		if !bytes.Equal(dst[hl:], payload) || !bytes.Equal(dst[ipHL:ipHL+12], in[0][ipHL:ipHL+12]) {
			t.Fatalf("MTU %d: the joined frame is not the first header and every payload", mtu)
		}
		// Corrupt one payload byte of each frame in turn, and one header byte.
		for i := range in {
			for _, at := range []int{hl + 1 + i, ipHL + 14} {
				bad := make([][]byte, len(in))
				for j := range in {
					bad[j] = bytes.Clone(in[j])
				}
				bad[i][at] ^= 0x20
				p.Plan(bad)
				if p.Trains() != 1 {
					continue // the header change split the train: nothing joined to check
				}
				if _, valid := p.Join(0, dst); valid || wire.TCP(dst[ipHL:]).ChecksumValid(addrA, addrB) {
					t.Fatalf("MTU %d: byte %d of frame %d corrupted, and the join says valid %v, or the joined checksum still verifies", mtu, at, i, valid)
				}
			}
		}
	}
}

// TestEngineJoins: frames that arrive in one batch reach the engine joined.
func TestEngineJoins(t *testing.T) {
	in := pieces(t, 1500)[2:8]
	rec := &recorder{}
	e := New(rec, 1500)
	e.Step(&engine.Input{Frames: in}, &engine.Output{})
	if len(rec.in) != 1 || len(rec.in[0]) != 20+32+6*1448 {
		t.Fatalf("the engine got %d frames", len(rec.in))
	}
	if st := e.Stats(); st.Joined != 6 || st.JoinedInto != 1 {
		t.Fatalf("stats %+v", st)
	}
}

// recorder is an engine that keeps what it is given and sends out frames.
type recorder struct {
	in  [][]byte
	out [][]byte
}

func (r *recorder) Step(in *engine.Input, out *engine.Output) {
	r.in = r.in[:0]
	for _, f := range in.Frames {
		r.in = append(r.in, bytes.Clone(f))
	}
	out.Frames = append(out.Frames[:0], r.out...)
}

// TestEngineAllocs: in steady state, joining and cutting allocate nothing.
func TestEngineAllocs(t *testing.T) {
	all := pieces(t, 1500)
	in := all[2:40]
	var p Planner
	p.Plan(all[2:12])
	super := make([]byte, p.Train(0).Len())
	p.Join(0, super)
	rec := &recorder{out: [][]byte{super, all[0]}}
	e := New(rec, 1500)
	var out engine.Output
	ein := &engine.Input{Frames: in}
	e.Step(ein, &out)
	e.Step(ein, &out)
	if len(out.Frames) != 11 {
		t.Fatalf("%d frames out, want 10 pieces and a frame", len(out.Frames))
	}
	for i, f := range out.Frames[:10] {
		if !bytes.Equal(f, all[2+i]) {
			t.Fatalf("piece %d is not the frame that was joined", i)
		}
	}
	rec.in = make([][]byte, 0, 8)
	// The recorder clones what it gets: measure the wrapper alone.
	plain := &nop{out: rec.out}
	e = New(plain, 1500)
	e.Step(ein, &out)
	e.Step(ein, &out)
	if a := testing.AllocsPerRun(100, func() { e.Step(ein, &out) }); a != 0 {
		t.Fatalf("%v allocations per Step", a)
	}
}

type nop struct{ out [][]byte }

func (n *nop) Step(in *engine.Input, out *engine.Output) {
	out.Frames = append(out.Frames[:0], n.out...)
}

// TestCutRefuses: what cannot be cut is dropped and counted, not passed on
// longer than the MTU.
func TestCutRefuses(t *testing.T) {
	long := make([]byte, 3000)
	long[0] = 0x45 // an IPv4 header that does not parse as a whole packet
	e := New(&nop{out: [][]byte{long, make([]byte, 100)}}, 1500)
	var out engine.Output
	e.Step(&engine.Input{}, &out)
	if len(out.Frames) != 1 || len(out.Frames[0]) != 100 || e.Stats().Dropped != 1 {
		t.Fatalf("%d frames out, stats %+v", len(out.Frames), e.Stats())
	}
	if _, err := NewSuperMTU(long, 1500); err != ErrSuper {
		t.Fatalf("NewSuperMTU: %v", err)
	}
	all := pieces(t, 1500)
	if _, err := NewSuperMTU(all[3], 50); err != ErrSuper {
		t.Fatalf("NewSuperMTU with an MTU below the headers: %v", err)
	}
}

// TestVerify: with Verify, frames whose IPv4 header or TCP checksum fails
// never reach the engine, and are counted; a train with a bad frame goes
// unjoined, its good frames alone.
func TestVerify(t *testing.T) {
	all := pieces(t, 1500)
	in := make([][]byte, 10)
	for i := range in {
		in[i] = bytes.Clone(all[2+i])
	}
	in[1][5] ^= 1   // the IPv4 ID (not compared with DF set): the header checksum fails
	in[3][100] ^= 1 // payload: the TCP checksum fails
	in[6][8]--      // TTL: the IPv4 header checksum fails, and the train ends
	rec := &recorder{}
	e := New(rec, 1500)
	e.Verify = true
	e.Step(&engine.Input{Frames: in}, &engine.Output{})
	// 0-5 are a train with bad frames: 0, 2, 4 and 5 go alone; 6 is dropped;
	// 7-9 join.
	if len(rec.in) != 5 || e.Stats().BadChecksum != 3 || e.Stats().Joined != 3 || len(rec.in[4]) != 20+32+3*1448 {
		t.Fatalf("the engine got %d frames, stats %+v", len(rec.in), e.Stats())
	}
	for i, f := range rec.in {
		if !checksumsOK(f) {
			t.Fatalf("frame %d the engine got has a bad checksum", i)
		}
	}
	// Without Verify everything goes on: 0-5 join (the bad checksums are for
	// the engine to find), 6 alone (its TTL differs), 7-9 join.
	e.Verify = false
	e.Step(&engine.Input{Frames: in}, &engine.Output{})
	if e.Stats().BadChecksum != 3 || len(rec.in) != 3 || len(rec.in[0]) != 20+32+6*1448 || checksumsOK(rec.in[0]) {
		t.Fatalf("without Verify: %d frames, stats %+v", len(rec.in), e.Stats())
	}
}
