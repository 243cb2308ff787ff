package abi

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/internal/jstest"
)

// canonical is the value the reference codec decodes, in the form
// crosscheck.mjs writes what @msgpack/msgpack decodes: integers as decimal
// strings, bin as hex, str tagged, maps with their keys.
func canonical(t *testing.T, v any) any {
	switch x := v.(type) {
	case nil:
		return nil
	case bool:
		return x
	case string:
		return map[string]any{"s": x}
	case []byte:
		return map[string]any{"b": hex.EncodeToString(x)}
	case []any:
		out := make([]any, len(x))
		for i := range x {
			out[i] = canonical(t, x[i])
		}
		return out
	case map[string]any:
		m := map[string]any{}
		for k, e := range x {
			m[k] = canonical(t, e)
		}
		return map[string]any{"m": m}
	}
	r := reflect.ValueOf(v)
	switch {
	case r.CanInt():
		return map[string]any{"i": strconv.FormatInt(r.Int(), 10)}
	case r.CanUint():
		return map[string]any{"i": strconv.FormatUint(r.Uint(), 10)}
	}
	t.Fatalf("the reference decoded a %T (%v), which the schema never holds", v, v)
	return nil
}

// TestAgainstMsgpackJS checks the codec against @msgpack/msgpack, the codec a
// JavaScript host uses, both ways: what this package encodes (requests,
// responses, configs, statuses) @msgpack/msgpack decodes to the same values as
// vmihailenco/msgpack does, and what @msgpack/msgpack encodes those values back
// to is byte for byte what this package wrote (both write the smallest forms),
// so it decodes here to the same message.
func TestAgainstMsgpackJS(t *testing.T) {
	node, script := jstest.NodeScript(t, filepath.Join("testdata", "js"), "crosscheck.mjs", "@msgpack/msgpack")
	r := rand.New(rand.NewPCG(3, 3))
	var msgs [][]byte
	for range 100 {
		in := randomInput(r)
		msgs = append(msgs, AppendRequest(nil, &in))
		out, cmds := randomOutput(r)
		msgs = append(msgs, AppendResponse(nil, StatusOK, "", &out, cmds))
	}
	full := fullConfig()
	for _, c := range []engine.Config{{}, {Addrs: []netip.Addr{addrA}, Seed: 1}, full} {
		msgs = append(msgs, AppendConfig(nil, &c))
	}
	msgs = append(msgs,
		AppendStatus(nil, StatusBadConfig, "tcpeng: Config.MTU 10 is out of range"),
		AppendStatus(nil, StatusMalformed, "abi: step request: frames: not an array"),
		AppendResponse(nil, StatusOK, "", &engine.Output{Deadline: engine.Never}, nil))

	hexes := make([]string, len(msgs))
	for i, m := range msgs {
		hexes[i] = hex.EncodeToString(m)
	}
	cases := filepath.Join(t.TempDir(), "cases.json")
	b, err := json.Marshal(hexes)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cases, b, 0o644); err != nil {
		t.Fatal(err)
	}
	got, stderr := jstest.Output(t, exec.Command(node, "--no-warnings", script, "codec", cases))
	sc := bufio.NewScanner(bytes.NewReader(got))
	sc.Buffer(nil, 16<<20)
	i := 0
	for ; sc.Scan(); i++ {
		if i >= len(msgs) {
			t.Fatalf("node answered more lines than the %d messages", len(msgs))
		}
		var line struct {
			Value any    `json:"value"`
			Again string `json:"again"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("message %d: node's line %q: %v", i, sc.Bytes(), err)
		}
		var ref any
		if err := msgpack.Unmarshal(msgs[i], &ref); err != nil {
			t.Fatalf("message %d: the reference cannot read it: %v", i, err)
		}
		// Through JSON, so that both sides hold the same Go types.
		want, err := json.Marshal(canonical(t, ref))
		if err != nil {
			t.Fatal(err)
		}
		var wantV any
		if err := json.Unmarshal(want, &wantV); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(line.Value, wantV) {
			gotJ, _ := json.Marshal(line.Value)
			t.Fatalf("message %d (%x):\n@msgpack/msgpack read %s\nvmihailenco read      %s", i, msgs[i], gotJ, want)
		}
		if again := hex.EncodeToString(msgs[i]); line.Again != again {
			t.Fatalf("message %d: @msgpack/msgpack encodes what it read as\n%s\nwe wrote\n%s", i, line.Again, again)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if i != len(msgs) {
		t.Fatalf("node answered %d lines for %d messages\n%s", i, len(msgs), stderr)
	}
	t.Logf("%d messages (100 requests, 100 responses, 3 configs, 3 statuses): same values, same bytes", len(msgs))
}
