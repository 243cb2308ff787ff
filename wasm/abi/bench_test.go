package abi

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tcpeng/tcpeng/engine"
)

// The codec benchmarks behind README.md's choice of codec: this package's
// schema-specific codec against the reflection-based reference codec
// (vmihailenco/msgpack/v5), on one batch: 64 frames of 1500 bytes and 4
// commands in, 64 frames, 4 results and 8 events out. Run them natively and
// inside the guest (README.md, "Codec", says how).

func batch() (engine.Input, engine.Output, []engine.Command) {
	frame := bytes.Repeat([]byte{0x45}, 1500)
	in := engine.Input{Now: 123_456_789_000}
	out := engine.Output{Deadline: 123_456_789_000 + 40_000_000}
	for range 64 {
		in.Frames = append(in.Frames, frame)
		out.Frames = append(out.Frames, frame)
	}
	in.Commands = []engine.Command{
		{Op: engine.OpWrite, Conn: 1 << 20, Data: bytes.Repeat([]byte("x"), 1024)},
		{Op: engine.OpRead, Conn: 1 << 20, Data: make([]byte, 2048)},
		{Op: engine.OpDial, Addr: netip.AddrPortFrom(addrB, 80)},
		{Op: engine.OpSetOption, Conn: 1 << 20, Option: engine.OptNoDelay, Value: 1},
	}
	for range in.Commands {
		out.Results = append(out.Results, engine.Result{Conn: 2 << 20, N: 1024})
	}
	out.Results[1].N = 2048
	for i := range 8 {
		out.Events = append(out.Events, engine.Event{Kind: engine.EventReadable, Conn: engine.ConnID(i)})
	}
	return in, out, in.Commands
}

func BenchmarkDecodeRequest(b *testing.B) {
	in, _, _ := batch()
	msg := AppendRequest(nil, &in)
	b.Run("codec=schema", func(b *testing.B) {
		var got engine.Input
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			if err := DecodeRequest(msg, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("codec=reflect", func(b *testing.B) {
		b.SetBytes(int64(len(msg)))
		b.ReportAllocs()
		for b.Loop() {
			var got mpRequest
			if err := msgpack.Unmarshal(msg, &got); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkEncodeResponse(b *testing.B) {
	_, out, cmds := batch()
	buf := AppendResponse(nil, StatusOK, "", &out, cmds)
	b.Run("codec=schema", func(b *testing.B) {
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			buf = AppendResponse(buf[:0], StatusOK, "", &out, cmds)
		}
	})
	b.Run("codec=reflect", func(b *testing.B) {
		var w bytes.Buffer
		enc := msgpack.NewEncoder(&w)
		enc.UseCompactInts(true)
		enc.UseArrayEncodedStructs(true)
		b.SetBytes(int64(len(buf)))
		b.ReportAllocs()
		for b.Loop() {
			w.Reset()
			m := toMPResponse(&out, cmds)
			if err := enc.Encode(&m); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkDecodeResponse is the host's side: frames stay views, the read's
// bytes are copied into the command's buffer.
func BenchmarkDecodeResponse(b *testing.B) {
	_, out, cmds := batch()
	msg := AppendResponse(nil, StatusOK, "", &out, cmds)
	var got engine.Output
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeResponse(msg, &got, cmds); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeRequest(b *testing.B) {
	in, _, _ := batch()
	buf := make([]byte, RequestSize(&in))
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendRequest(buf[:0], &in)
	}
}
