package offload

import (
	"encoding/binary"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
)

// FuzzOffload feeds hostile frames to both halves: the planner and Join (the
// receive side) and the cutter (the send side, as Engine meets frames of its
// engine). Nothing panics, joined frames have the length their train says,
// and no piece is longer than the MTU.
//
//	go test -run '^$' -fuzz FuzzOffload -fuzzminimizetime 5s ./host/offload
//
// (The seeds are frames of a real exchange at MTU 576: minimizing a new
// input of kilobytes would otherwise stall the fuzzer for minutes.)
func FuzzOffload(f *testing.F) {
	var b []byte
	for _, p := range pieces(f, 576)[2:5] {
		b = binary.BigEndian.AppendUint16(b, uint16(len(p)))
		b = append(b, p...)
	}
	f.Add(uint16(576), b)
	f.Add(uint16(300), b)
	f.Add(uint16(576), []byte{0, 40, 0x45, 0, 0, 40})
	f.Fuzz(func(t *testing.T, mtu uint16, data []byte) {
		var frames [][]byte
		for len(data) >= 2 {
			n := int(binary.BigEndian.Uint16(data))
			data = data[2:]
			n = min(n, len(data))
			frames = append(frames, data[:n:n])
			data = data[n:]
		}
		var p Planner
		p.Plan(frames)
		total := 0
		for i := range p.Trains() {
			tr := p.Train(i)
			total += tr.Count()
			dst := make([]byte, tr.Len())
			if n, _ := p.Join(i, dst); n != tr.Len() {
				t.Fatalf("joined %d bytes of a train of %d", n, tr.Len())
			}
		}
		empty := 0
		for _, fr := range frames {
			if len(fr) == 0 {
				empty++
			}
		}
		if total+empty != len(frames) {
			t.Fatalf("trains hold %d frames of %d (%d empty)", total, len(frames), empty)
		}
		m := max(int(mtu), 1)
		e := New(&nop{out: frames}, m)
		e.Verify = mtu%2 == 1
		var out engine.Output
		e.Step(&engine.Input{Frames: frames}, &out)
		for _, fr := range out.Frames {
			if len(fr) > m {
				t.Fatalf("a frame of %d bytes left for an MTU of %d", len(fr), m)
			}
		}
	})
}
