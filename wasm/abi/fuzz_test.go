package abi

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
)

// seedMessages are the seeds of FuzzDecode: every message of the schema, and
// broken ones.
func seedMessages() [][]byte {
	in := engine.Input{Now: 1_000_000, Frames: [][]byte{{0x45, 0, 0, 20}, {}}, Commands: []engine.Command{
		{Op: engine.OpListen, Addr: netip.AddrPortFrom(addrB, 7), N: 4},
		{Op: engine.OpDial, Addr: netip.AddrPortFrom(addrB, 7), Local: netip.AddrPortFrom(netip.Addr{}, 4000)},
		{Op: engine.OpWrite, Conn: 1 << 20, Data: []byte("hello")},
		{Op: engine.OpRead, Conn: 1 << 20, Data: make([]byte, 100)},
		{Op: engine.OpSetOption, Conn: 1 << 20, Option: engine.OptNoDelay, Value: 1},
		{Op: engine.OpDial, Addr: netip.MustParseAddrPort("[fd00::1]:80")},
	}}
	out := engine.Output{Deadline: engine.Never, Frames: [][]byte{{0x45, 1, 2}},
		Results: []engine.Result{{Conn: 1 << 20}, {Conn: 2<<20 | 1}, {N: 5}, {N: 3}, {Err: engine.ErrInvalid}, {}},
		Events:  []engine.Event{{Kind: engine.EventState, Conn: 3, From: engine.StateListen, To: engine.StateSynReceived}, {Kind: engine.EventReset, Conn: 1, Err: engine.ErrRefused}},
	}
	cmds := append([]engine.Command(nil), in.Commands...)
	copy(cmds[3].Data, "abc")
	cfg := engine.Config{Addrs: []netip.Addr{addrA, netip.MustParseAddr("fd00::1")}, Seed: 9, Key: [16]byte{1}, MTU: 9000, TraceStates: true, DelayedAck: -1}
	return [][]byte{
		AppendRequest(nil, &in),
		AppendRequest(nil, &engine.Input{}),
		AppendResponse(nil, StatusOK, "", &out, cmds),
		AppendStatus(nil, StatusBadConfig, "tcpeng: Config.MTU 10 is out of range"),
		AppendConfig(nil, &cfg),
		{},
		{0xc1},
		{0x93, 0x00, 0xdd, 0xff, 0xff, 0xff, 0xff},
		{0x93, 0x00, 0x91, 0xc6, 0xff, 0xff, 0xff, 0xff},
		{0x93, 0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x90, 0x90},
		{0x81, 0xa3, 'm', 't', 'u', 0xcb, 0, 0, 0, 0, 0, 0, 0, 0},
		{0x93, 0x00, 0x90, 0x91, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f},
	}
}

var writeSeeds = flag.Bool("write-seeds", false, "write the seeds of FuzzDecode into testdata/fuzz/FuzzDecode")

// TestWriteSeeds keeps testdata/fuzz/FuzzDecode in step with seedMessages.
func TestWriteSeeds(t *testing.T) {
	if !*writeSeeds {
		t.Skip("run with -write-seeds to rewrite the seed corpus")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, m := range seedMessages() {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(m)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, "seed-"+strconv.Itoa(i)), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// FuzzDecode feeds any bytes to every decoder and to a Guest with a live
// engine. Nothing may panic (the Guest would answer StatusPanic); what decodes
// must encode back to what decodes the same; every response must decode.
func FuzzDecode(f *testing.F) {
	for _, m := range seedMessages() {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var in engine.Input
		if err := DecodeRequest(b, &in); err == nil {
			again := in
			again.Commands = append([]engine.Command(nil), in.Commands...)
			reads := true
			for i := range again.Commands {
				if c := &again.Commands[i]; c.Op == engine.OpRead {
					if c.N < 0 || c.N > 1<<16 {
						reads = false
						break
					}
					c.Data, c.N = make([]byte, c.N), 0
				}
			}
			if reads {
				var back engine.Input
				if err := DecodeRequest(AppendRequest(nil, &again), &back); err != nil {
					t.Fatalf("re-encoded request does not decode: %v", err)
				}
				sameInput(t, "round trip", back, in)
			}
		}
		if c, err := DecodeConfig(b); err == nil {
			back, err := DecodeConfig(AppendConfig(nil, &c))
			if err != nil {
				t.Fatalf("re-encoded config does not decode: %v", err)
			}
			for i, a := range c.Addrs { // an address with a zone cannot be decoded, so none here
				if !a.IsValid() {
					c.Addrs[i] = netip.Addr{}
				}
			}
			if !reflect.DeepEqual(back, c) {
				t.Fatalf("config round trip: %+v, want %+v", back, c)
			}
		}
		var out engine.Output
		cmds := []engine.Command{{Op: engine.OpRead, Data: make([]byte, 16)}, {Op: engine.OpWrite}, {Op: engine.OpListen}}
		DecodeResponse(b, &out, cmds)
		DecodeStatus(b)

		g := initGuest(t, engine.Config{Addrs: []netip.Addr{addrA, addrB}, OutputBuffer: 1 << 16, SendBuffer: 1 << 16, RecvBuffer: 1 << 16})
		for range 2 { // twice: the engine keeps working after what the first did
			resp := g.Step(b)
			r, err := DecodeResponse(resp, &out, nil)
			if err != nil {
				r, err = DecodeStatus(resp)
			}
			if err != nil || r.Status == StatusPanic || r.Status == StatusNoEngine {
				t.Fatalf("guest answered %v %q (%v)", r.Status, r.Message, err)
			}
		}
	})
}
