package abi

import (
	"bytes"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tcpeng/tcpeng/engine"
)

// The schema written as Go types for github.com/vmihailenco/msgpack/v5, a
// reference MessagePack codec: the guest's codec must read what it writes and
// write what it reads, byte for byte where both use the smallest forms. Every
// struct but mpConfig is encoded as an array (marshal).

type mpConfig struct {
	Addrs              [][]byte `msgpack:"addrs,omitempty"`
	MTU                int64    `msgpack:"mtu,omitempty"`
	Seed               uint64   `msgpack:"seed,omitempty"`
	Key                []byte   `msgpack:"key,omitempty"`
	SendBuffer         int64    `msgpack:"sendBuffer,omitempty"`
	RecvBuffer         int64    `msgpack:"recvBuffer,omitempty"`
	MaxConns           int64    `msgpack:"maxConns,omitempty"`
	Backlog            int64    `msgpack:"backlog,omitempty"`
	EphemeralLow       int64    `msgpack:"ephemeralLow,omitempty"`
	EphemeralHigh      int64    `msgpack:"ephemeralHigh,omitempty"`
	MSL                int64    `msgpack:"msl,omitempty"`
	InitialRTO         int64    `msgpack:"initialRTO,omitempty"`
	MinRTO             int64    `msgpack:"minRTO,omitempty"`
	MaxRTO             int64    `msgpack:"maxRTO,omitempty"`
	DelayedAck         int64    `msgpack:"delayedAck,omitempty"`
	KeepaliveIdle      int64    `msgpack:"keepaliveIdle,omitempty"`
	KeepaliveInterval  int64    `msgpack:"keepaliveInterval,omitempty"`
	KeepaliveCount     int64    `msgpack:"keepaliveCount,omitempty"`
	MaxRetries         int64    `msgpack:"maxRetries,omitempty"`
	SynRetries         int64    `msgpack:"synRetries,omitempty"`
	FinWait2Timeout    int64    `msgpack:"finWait2Timeout,omitempty"`
	InvalidAckInterval int64    `msgpack:"invalidAckInterval,omitempty"`
	NoWindowScale      bool     `msgpack:"noWindowScale,omitempty"`
	NoSACK             bool     `msgpack:"noSACK,omitempty"`
	NoTimestamps       bool     `msgpack:"noTimestamps,omitempty"`
	MaxOutOfOrder      int64    `msgpack:"maxOutOfOrder,omitempty"`
	Forward            bool     `msgpack:"forward,omitempty"`
	TraceStates        bool     `msgpack:"traceStates,omitempty"`
	TrustLink          bool     `msgpack:"trustLink,omitempty"`
	PartialChecksums   bool     `msgpack:"partialChecksums,omitempty"`
	SegmentOffload     bool     `msgpack:"segmentOffload,omitempty"`
	OutputBuffer       int64    `msgpack:"outputBuffer,omitempty"`
	MaxFreeChunks      int64    `msgpack:"maxFreeChunks,omitempty"`
}

type mpAddr struct {
	IP   []byte
	Port uint16
}

type mpCommand struct {
	Op     uint8
	Conn   uint32
	Addr   *mpAddr
	Local  *mpAddr
	Data   []byte
	N      int64
	Option uint8
	Value  int64
}

type mpRequest struct {
	Now      int64
	Frames   [][]byte
	Commands []mpCommand
}

type mpResult struct {
	Conn          uint32
	N             int64
	Err           uint8
	Data          []byte
	Local, Remote *mpAddr
}

type mpEvent struct {
	Kind     uint8
	Conn     uint32
	Err      uint8
	From, To uint8
}

type mpResponse struct {
	Status   uint8
	Message  string
	Deadline int64
	Results  []mpResult
	Events   []mpEvent
	Frames   [][]byte
}

// marshal encodes v with the reference codec, integers in their smallest form
// when compact. Structs are arrays (the step messages), but for the Config.
func marshal(t testing.TB, v any, compact bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(compact)
	_, cfg := v.(*mpConfig)
	enc.UseArrayEncodedStructs(!cfg)
	if err := enc.Encode(v); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func unmarshal(t testing.TB, b []byte, v any) {
	t.Helper()
	if err := msgpack.Unmarshal(b, v); err != nil {
		t.Fatalf("the reference codec cannot read %x: %v", b, err)
	}
}

func addrBytes(a netip.Addr) []byte {
	if a.Is4() {
		v := a.As4()
		return v[:]
	}
	if a.IsValid() {
		v := a.As16()
		return v[:]
	}
	return []byte{}
}

func toMPConfig(c *engine.Config) mpConfig {
	m := mpConfig{
		MTU: int64(c.MTU), Seed: c.Seed, SendBuffer: int64(c.SendBuffer), RecvBuffer: int64(c.RecvBuffer),
		MaxConns: int64(c.MaxConns), Backlog: int64(c.Backlog), EphemeralLow: int64(c.EphemeralLow),
		EphemeralHigh: int64(c.EphemeralHigh), MSL: int64(c.MSL), InitialRTO: int64(c.InitialRTO),
		MinRTO: int64(c.MinRTO), MaxRTO: int64(c.MaxRTO), DelayedAck: int64(c.DelayedAck),
		KeepaliveIdle: int64(c.KeepaliveIdle), KeepaliveInterval: int64(c.KeepaliveInterval),
		KeepaliveCount: int64(c.KeepaliveCount), MaxRetries: int64(c.MaxRetries), SynRetries: int64(c.SynRetries),
		FinWait2Timeout: int64(c.FinWait2Timeout), InvalidAckInterval: int64(c.InvalidAckInterval), NoWindowScale: c.NoWindowScale, NoSACK: c.NoSACK, NoTimestamps: c.NoTimestamps, MaxOutOfOrder: int64(c.MaxOutOfOrder), Forward: c.Forward,
		TraceStates: c.TraceStates, TrustLink: c.TrustLink, PartialChecksums: c.PartialChecksums, SegmentOffload: c.SegmentOffload, OutputBuffer: int64(c.OutputBuffer), MaxFreeChunks: int64(c.MaxFreeChunks),
	}
	for _, a := range c.Addrs {
		m.Addrs = append(m.Addrs, addrBytes(a))
	}
	if c.Key != [16]byte{} {
		m.Key = append([]byte(nil), c.Key[:]...)
	}
	return m
}

func toMPAddr(ap netip.AddrPort) *mpAddr {
	if !ap.Addr().IsValid() && ap.Port() == 0 {
		return nil
	}
	m := &mpAddr{Port: ap.Port()}
	if ap.Addr().IsValid() {
		m.IP = addrBytes(ap.Addr())
	}
	return m
}

func toMPRequest(in *engine.Input) mpRequest {
	m := mpRequest{Now: int64(in.Now), Frames: in.Frames}
	if m.Frames == nil {
		m.Frames = [][]byte{}
	}
	m.Commands = []mpCommand{}
	for _, c := range in.Commands {
		mc := mpCommand{Op: uint8(c.Op), Conn: uint32(c.Conn), Addr: toMPAddr(c.Addr), Local: toMPAddr(c.Local),
			Data: c.Data, N: int64(c.N), Option: uint8(c.Option), Value: c.Value}
		if c.Op == engine.OpRead {
			mc.Data, mc.N = nil, int64(len(c.Data))
		}
		m.Commands = append(m.Commands, mc)
	}
	return m
}

func toMPResponse(out *engine.Output, cmds []engine.Command) mpResponse {
	m := mpResponse{Deadline: int64(out.Deadline), Results: []mpResult{}, Events: []mpEvent{}, Frames: out.Frames}
	if m.Frames == nil {
		m.Frames = [][]byte{}
	}
	for i, r := range out.Results {
		mr := mpResult{Conn: uint32(r.Conn), N: int64(r.N), Err: uint8(r.Err), Local: toMPAddr(r.Local), Remote: toMPAddr(r.Remote)}
		if cmds[i].Op == engine.OpRead && r.N > 0 {
			mr.Data = cmds[i].Data[:r.N]
		}
		m.Results = append(m.Results, mr)
	}
	for _, e := range out.Events {
		m.Events = append(m.Events, mpEvent{Kind: uint8(e.Kind), Conn: uint32(e.Conn), Err: uint8(e.Err), From: uint8(e.From), To: uint8(e.To)})
	}
	return m
}

// randomAddrPort returns the zero AddrPort, a port alone, an IPv4 or an IPv6
// address and port.
func randomAddrPort(r *rand.Rand) netip.AddrPort {
	port := uint16(r.Uint32())
	switch r.IntN(4) {
	case 0:
		return netip.AddrPort{}
	case 1:
		return netip.AddrPortFrom(netip.Addr{}, port)
	case 2:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(r.Uint32()), byte(r.Uint32())}), port)
	}
	var a [16]byte
	for i := range a {
		a[i] = byte(r.Uint32())
	}
	return netip.AddrPortFrom(netip.AddrFrom16(a), port)
}

// randomInt returns integers of every encoded size and sign.
func randomInt(r *rand.Rand) int64 {
	switch r.IntN(6) {
	case 0:
		return int64(r.IntN(128))
	case 1:
		return -int64(r.IntN(33))
	case 2:
		return int64(r.Int32()) - 1<<30
	case 3:
		return r.Int64()
	case 4:
		return -r.Int64()
	}
	return []int64{math.MaxInt64, math.MinInt64, 0, 127, 128, 255, 256, 65535, 65536, -32, -33, -128, -129, -32768, -32769}[r.IntN(15)]
}

func randomBytes(r *rand.Rand, max int) []byte {
	switch r.IntN(5) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	b := make([]byte, r.IntN(max+1))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randomInput(r *rand.Rand) engine.Input {
	in := engine.Input{Now: engine.Time(randomInt(r))}
	for range r.IntN(20) {
		f := randomBytes(r, []int{1600, 1600, 1600, 70000}[r.IntN(4)])
		if f == nil {
			f = []byte{}
		}
		in.Frames = append(in.Frames, f)
	}
	for range r.IntN(20) {
		c := engine.Command{Op: engine.Op(r.IntN(12)), Conn: engine.ConnID(r.Uint32()), Addr: randomAddrPort(r),
			Local: randomAddrPort(r), Data: randomBytes(r, 300), N: int(randomInt(r)), Option: engine.Option(r.Uint32()), Value: randomInt(r)}
		if c.Op == engine.OpRead {
			c.N = 0
			if c.Data == nil {
				c.Data = []byte{}
			}
		}
		in.Commands = append(in.Commands, c)
	}
	return in
}

// wire returns the request as the guest decodes it: reads carry N, not data.
func wire(in engine.Input) engine.Input {
	out := engine.Input{Now: in.Now, Frames: in.Frames}
	for _, c := range in.Commands {
		if c.Op == engine.OpRead {
			c.N, c.Data = len(c.Data), nil
		}
		out.Commands = append(out.Commands, c)
	}
	return out
}

func sameInput(t *testing.T, what string, got, want engine.Input) {
	t.Helper()
	if got.Now != want.Now || len(got.Frames) != len(want.Frames) || len(got.Commands) != len(want.Commands) {
		t.Fatalf("%s: now %d/%d, %d/%d frames, %d/%d commands", what, got.Now, want.Now,
			len(got.Frames), len(want.Frames), len(got.Commands), len(want.Commands))
	}
	for i := range got.Frames {
		if !bytes.Equal(got.Frames[i], want.Frames[i]) {
			t.Fatalf("%s: frame %d differs", what, i)
		}
	}
	for i := range got.Commands {
		g, w := got.Commands[i], want.Commands[i]
		if !bytes.Equal(g.Data, w.Data) || (g.Data == nil) != (w.Data == nil) {
			t.Fatalf("%s: command %d (%v) data %x (nil %v), want %x (nil %v)", what, i, g.Op, g.Data, g.Data == nil, w.Data, w.Data == nil)
		}
		g.Data, w.Data = nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Fatalf("%s: command %d %+v, want %+v", what, i, g, w)
		}
	}
}

func TestRequestAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	for i := range 300 {
		in := randomInput(r)
		ours := AppendRequest(nil, &in)
		if len(ours) > RequestSize(&in) {
			t.Fatalf("input %d: %d bytes, RequestSize said at most %d", i, len(ours), RequestSize(&in))
		}
		ref := toMPRequest(&in)
		if theirs := marshal(t, &ref, true); !bytes.Equal(ours, theirs) {
			t.Fatalf("input %d: our encoding\n%x\nthe reference's\n%x", i, ours, theirs)
		}
		// The reference reads ours.
		var back mpRequest
		unmarshal(t, ours, &back)
		if !reflect.DeepEqual(normalizeReq(back), normalizeReq(ref)) {
			t.Fatalf("input %d: the reference read %+v, want %+v", i, back, ref)
		}
		// We read the reference's, in both integer forms.
		for _, compact := range []bool{true, false} {
			var got engine.Input
			if err := DecodeRequest(marshal(t, &ref, compact), &got); err != nil {
				t.Fatalf("input %d (compact %v): %v", i, compact, err)
			}
			sameInput(t, "input "+itoa(i), got, wire(in))
		}
	}
}

// normalizeReq makes empty and nil byte slices compare equal.
func normalizeReq(m mpRequest) mpRequest {
	m.Frames = append([][]byte(nil), m.Frames...)
	m.Commands = append([]mpCommand(nil), m.Commands...)
	for i := range m.Commands {
		for _, a := range []**mpAddr{&m.Commands[i].Addr, &m.Commands[i].Local} {
			if *a != nil {
				c := **a
				*a = &c
			}
		}
	}
	for i := range m.Frames {
		if len(m.Frames[i]) == 0 {
			m.Frames[i] = nil
		}
	}
	for i := range m.Commands {
		if len(m.Commands[i].Data) == 0 {
			m.Commands[i].Data = nil
		}
		for _, a := range []*mpAddr{m.Commands[i].Addr, m.Commands[i].Local} {
			if a != nil && len(a.IP) == 0 {
				a.IP = nil
			}
		}
	}
	return m
}

func randomOutput(r *rand.Rand) (engine.Output, []engine.Command) {
	out := engine.Output{Deadline: engine.Time(randomInt(r))}
	var cmds []engine.Command
	for range r.IntN(20) {
		f := randomBytes(r, []int{1600, 1600, 1600, 70000}[r.IntN(4)])
		if f == nil {
			f = []byte{}
		}
		out.Frames = append(out.Frames, f)
	}
	for range r.IntN(20) {
		c := engine.Command{Op: engine.Op(1 + r.IntN(9))}
		res := engine.Result{Conn: engine.ConnID(r.Uint32()), N: r.IntN(1 << 20), Err: engine.Error(r.IntN(16)),
			Local: randomAddrPort(r), Remote: randomAddrPort(r)}
		if c.Op == engine.OpRead {
			c.Data = randomBytes(r, 3000)
			res.N = 0
			if len(c.Data) > 0 {
				res.N = r.IntN(len(c.Data) + 1)
			}
		}
		cmds = append(cmds, c)
		out.Results = append(out.Results, res)
	}
	for range r.IntN(20) {
		out.Events = append(out.Events, engine.Event{Kind: engine.EventKind(r.IntN(11)), Conn: engine.ConnID(r.Uint32()),
			Err: engine.Error(r.IntN(16)), From: engine.State(r.IntN(11)), To: engine.State(r.IntN(11))})
	}
	return out, cmds
}

func TestResponseAgainstReference(t *testing.T) {
	r := rand.New(rand.NewPCG(2, 2))
	for i := range 300 {
		out, cmds := randomOutput(r)
		ours := AppendResponse(nil, StatusOK, "", &out, cmds)
		ref := toMPResponse(&out, cmds)
		if theirs := marshal(t, &ref, true); !bytes.Equal(ours, theirs) {
			t.Fatalf("output %d: our encoding\n%x\nthe reference's\n%x", i, ours, theirs)
		}
		for _, compact := range []bool{true, false} {
			// The host side decodes into fresh read buffers of the same sizes.
			hostCmds := make([]engine.Command, len(cmds))
			for j, c := range cmds {
				hostCmds[j] = engine.Command{Op: c.Op, Data: make([]byte, len(c.Data))}
			}
			var got engine.Output
			resp, err := DecodeResponse(marshal(t, &ref, compact), &got, hostCmds)
			if err != nil || resp.Status != StatusOK || len(resp.Message) != 0 {
				t.Fatalf("output %d: %+v %v", i, resp, err)
			}
			if got.Deadline != out.Deadline || !reflect.DeepEqual(got.Results, out.Results) ||
				!reflect.DeepEqual(got.Events, out.Events) || len(got.Frames) != len(out.Frames) {
				t.Fatalf("output %d: decoded %+v, want %+v", i, got, out)
			}
			for j := range got.Frames {
				if !bytes.Equal(got.Frames[j], out.Frames[j]) {
					t.Fatalf("output %d: frame %d differs", i, j)
				}
			}
			for j, c := range cmds {
				if c.Op == engine.OpRead && !bytes.Equal(hostCmds[j].Data[:got.Results[j].N], c.Data[:out.Results[j].N]) {
					t.Fatalf("output %d: read %d copied wrong bytes", i, j)
				}
			}
		}
	}
	// Status responses.
	b := AppendStatus(nil, StatusBadConfig, "tcpeng: no address")
	var m struct {
		Status  uint8
		Message string
	}
	unmarshal(t, b, &m)
	if m.Status != uint8(StatusBadConfig) || m.Message != "tcpeng: no address" {
		t.Fatalf("status: %+v", m)
	}
	if !bytes.Equal(b, marshal(t, &m, true)) {
		t.Fatalf("status encoding %x differs from the reference's", b)
	}
}

// fullConfig sets every field of engine.Config, so that a field added to it
// and forgotten by the encoder fails TestConfigAgainstReference.
func fullConfig() engine.Config {
	return engine.Config{
		Addrs: []netip.Addr{netip.MustParseAddr("10.7.0.2"), netip.MustParseAddr("fd00::2"), netip.MustParseAddr("::ffff:10.1.2.3")},
		MTU:   9000, Seed: math.MaxUint64, Key: [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SendBuffer: 1 << 22, RecvBuffer: 1 << 21, MaxConns: 1000, Backlog: 5, EphemeralLow: 1000, EphemeralHigh: 65535,
		MSL: 30 * engine.Second, InitialRTO: engine.Second, MinRTO: 200 * engine.Millisecond, MaxRTO: 120 * engine.Second,
		DelayedAck: -1, KeepaliveIdle: 7200 * engine.Second, KeepaliveInterval: 75 * engine.Second, KeepaliveCount: 9,
		MaxRetries: 15, SynRetries: 6, FinWait2Timeout: 60 * engine.Second, InvalidAckInterval: 500 * engine.Millisecond, NoWindowScale: true, NoSACK: true, MaxOutOfOrder: 32, Forward: true,
		TraceStates: true, OutputBuffer: 1 << 20, MaxFreeChunks: 1024, NoTimestamps: true, TrustLink: true,
		PartialChecksums: true, SegmentOffload: true,
	}
}

func TestConfigAgainstReference(t *testing.T) {
	full := fullConfig()
	// (NoTimestamps and TrustLink were once missing from the encoder, which
	// wrote them as integers; the guest refuses those, so an engine with
	// either set failed to start in WebAssembly.)
	fv := reflect.ValueOf(full)
	for i := range fv.NumField() {
		if fv.Field(i).IsZero() {
			t.Fatalf("the full config leaves engine.Config.%s zero: set it", fv.Type().Field(i).Name)
		}
	}
	for i, c := range []engine.Config{{}, {Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}, Seed: 1}, full} {
		ours := AppendConfig(nil, &c)
		ref := toMPConfig(&c)
		if theirs := marshal(t, &ref, true); !bytes.Equal(ours, theirs) {
			t.Fatalf("config %d: our encoding\n%x\nthe reference's\n%x", i, ours, theirs)
		}
		var back mpConfig
		unmarshal(t, ours, &back)
		if !reflect.DeepEqual(back, ref) {
			t.Fatalf("config %d: the reference read %+v, want %+v", i, back, ref)
		}
		for _, compact := range []bool{true, false} {
			got, err := DecodeConfig(marshal(t, &ref, compact))
			if err != nil || !reflect.DeepEqual(got, c) {
				t.Fatalf("config %d: decoded %+v (%v), want %+v", i, got, err, c)
			}
		}
	}
}

// TestSchemaCoversEngineTypes fails when a type that crosses the boundary
// gains a field the ABI does not carry: add it to messages.go, README.md and
// the mp* type here.
func TestSchemaCoversEngineTypes(t *testing.T) {
	for _, p := range []struct {
		engine, abi any
		own         string // the ABI's own fields
	}{
		{engine.Config{}, mpConfig{}, ""},
		{engine.Command{}, mpCommand{}, ""},
		{engine.Result{}, mpResult{}, "Data"}, // a read's bytes
		{engine.Event{}, mpEvent{}, ""},
		{engine.Input{}, mpRequest{}, ""},
		{engine.Output{}, mpResponse{}, "Status Message"},
	} {
		et, mt := reflect.TypeOf(p.engine), reflect.TypeOf(p.abi)
		var got, want []string
		for i := range mt.NumField() {
			if n := mt.Field(i).Name; !slices.Contains(strings.Fields(p.own), n) {
				got = append(got, n)
			}
		}
		for i := range et.NumField() {
			want = append(want, et.Field(i).Name)
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("engine.%s has the fields %v; the ABI carries %v", et.Name(), want, got)
		}
	}
}

func TestDecodeConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		msg  any
		want string
	}{
		{map[string]any{"mtu": 1500, "colour": 1}, `unknown Config key "colour"`},
		{map[string]any{"key": []byte{1, 2}}, "Config.Key has 2 bytes: want 16"},
		{map[string]any{"addrs": [][]byte{{1, 2, 3}}}, "an address has 3 bytes: want 4 or 16"},
		{map[string]any{"mtu": "big"}, "want an integer, got a string"},
		{map[string]any{"mtu": int64(1) << 40}, "Config value 1099511627776 is out of range"},
		{map[string]any{"ephemeralLow": 70000}, "Config.EphemeralLow 70000 is out of range 0..65535"},
		{map[string]any{"seed": -1}, "want a non-negative integer, got -1"},
		{map[string]any{"traceStates": 1}, "want a boolean, got an integer"},
		{[]int{1}, "want a map, got an array"},
	} {
		_, err := DecodeConfig(marshal(t, tc.msg, true))
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
			t.Errorf("%v: error %v, want it to say %q", tc.msg, err, tc.want)
		}
	}
	// nil values are zero values: the defaults.
	c, err := DecodeConfig(marshal(t, map[string]any{"mtu": nil, "addrs": nil, "key": nil, "traceStates": nil}, true))
	if err != nil || !reflect.DeepEqual(c, engine.Config{}) {
		t.Fatalf("nil values: %+v %v", c, err)
	}
}

// TestDecodeTolerance: a newer minor version's extra elements are skipped,
// missing trailing ones are zero.
func TestDecodeTolerance(t *testing.T) {
	type cmdExtra struct {
		Op, Conn int
		Addr     *mpAddr
		Local    *mpAddr
		Data     []byte
		N        int
		Option   int
		Value    int
		Extra1   map[string]any
		Extra2   []any
		Extra3   float64
	}
	msg := []any{int64(5), [][]byte{{1}}, []any{
		cmdExtra{Op: 4, Conn: 9, Data: []byte("hi"), Extra1: map[string]any{"x": []any{1, "y", 2.5, nil, true}}, Extra2: []any{[]byte{1}}, Extra3: 1.5},
		[]any{6, 3}, // shutdown on 3: the rest missing
	}, "a fourth element"}
	var in engine.Input
	if err := DecodeRequest(marshal(t, msg, true), &in); err != nil {
		t.Fatal(err)
	}
	want := engine.Input{Now: 5, Frames: [][]byte{{1}}, Commands: []engine.Command{
		{Op: engine.OpWrite, Conn: 9, Data: []byte("hi")}, {Op: engine.OpShutdown, Conn: 3},
	}}
	sameInput(t, "tolerant", in, want)
}
