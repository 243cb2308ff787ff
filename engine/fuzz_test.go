package engine

import (
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// FuzzHandleFrame feeds arbitrary frames to a stack that has a listener and an
// established connection, between commands and timers: no input may panic it,
// and its bookkeeping must stay consistent. The seeds are real segments of the
// connection, with and without fixed checksums, so the fuzzer starts past the
// validation gates.
func FuzzHandleFrame(f *testing.F) {
	p := newPair(f, nil)
	p.b.Listen(netip.AddrPortFrom(addrB, 80), 0)
	cid, _ := p.a.Dial(p.now, netip.AddrPort{}, netip.AddrPortFrom(addrB, 80))
	var seeds [][]byte
	p.drop = func(side int, fr []byte) bool {
		if side == 0 {
			seeds = append(seeds, append([]byte(nil), fr...))
		}
		return false
	}
	p.run(p.now.Add(Second))
	p.a.Write(cid, []byte("some data for the fuzzer to mangle"))
	p.a.Shutdown(cid)
	p.run(p.now.Add(Second))
	for _, s := range seeds {
		f.Add(s, true)
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, frame []byte, fix bool) {
		q := newPair(t, nil)
		lid, _ := q.b.Listen(netip.AddrPortFrom(addrB, 80), 0)
		qc, _ := q.a.Dial(q.now, netip.AddrPort{}, netip.AddrPortFrom(addrB, 80))
		q.run(q.now.Add(Second))
		sid, _ := q.b.Accept(lid)
		if fix {
			fixChecksums(frame)
		}
		for i := range 3 {
			q.b.HandleFrame(q.now, frame)
			q.b.Write(sid, []byte("reply"))
			q.run(q.now.Add(Duration(i+1) * Second))
		}
		q.a.Close(qc)
		q.b.Close(sid)
		q.run(q.now.Add(300 * Second))
		if st := q.b.Stats(); st.Conns > 2 { // the listener and at most one connection the frame opened
			t.Fatalf("%d slots left after every close and timeout", st.Conns)
		}
	})
}

// fixChecksums makes the IPv4 header and TCP checksums of frame valid, if it
// parses far enough, so that mutations reach the state machine.
func fixChecksums(frame []byte) {
	ip, err := wire.ParseIPv4(frame)
	if err != nil {
		return
	}
	frame[10], frame[11] = 0, 0
	binary.BigEndian.PutUint16(frame[10:], ^wire.Checksum(frame[:ip.HeaderLen()], 0))
	if ip.Protocol() == wire.ProtoTCP && len(ip.Payload()) >= wire.TCPMinHeaderLen {
		wire.SetTCPChecksum(ip.Payload(), ip.Src(), ip.Dst())
	}
}
