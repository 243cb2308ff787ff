package pcap_test

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host/pcap"
	"github.com/tcpeng/tcpeng/host/pcap/pcaptest"
	"github.com/tcpeng/tcpeng/host/pipe"
)

func TestGoldenBytes(t *testing.T) {
	var b bytes.Buffer
	w, err := pcap.NewWriter(&b, pcap.LinkRaw, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(engine.Time(3*engine.Second+250*engine.Microsecond+7), []byte{0x45, 0, 0, 20}); err != nil {
		t.Fatal(err)
	}
	want := "4d3cb2a1" + "0200" + "0400" + "00000000" + "00000000" + "00000400" + "65000000" + // file header
		"03000000" + "97d00300" + "04000000" + "04000000" + "45000014" // record: 3 s, 250007 ns, 4 of 4 bytes
	if got := hex.EncodeToString(b.Bytes()); got != want {
		t.Fatalf("bytes\n got %s\nwant %s", got, want)
	}
	if w.Packets() != 1 {
		t.Fatalf("packets %d", w.Packets())
	}
}

func TestSnapLenCuts(t *testing.T) {
	var b bytes.Buffer
	w, err := pcap.NewWriter(&b, pcap.LinkEthernet, 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(0, []byte{1, 2, 3, 4, 5, 6}); err != nil {
		t.Fatal(err)
	}
	want := "4d3cb2a1020004000000000000000000" + "04000000" + "01000000" +
		"00000000" + "00000000" + "04000000" + "06000000" + "01020304"
	if got := hex.EncodeToString(b.Bytes()); got != want {
		t.Fatalf("bytes\n got %s\nwant %s", got, want)
	}
}

type failWriter struct{ n int }

func (f *failWriter) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk full")
	}
	f.n--
	return len(p), nil
}

func TestErrors(t *testing.T) {
	for _, tc := range []struct {
		lt   pcap.LinkType
		snap int
		want string
	}{
		{pcap.LinkRaw, -1, "snapshot length -1 is out of range"},
		{pcap.LinkRaw, pcap.DefaultSnapLen + 1, "snapshot length 262145 is out of range"},
		{pcap.LinkType(105), 0, "link type 105 is not supported"},
	} {
		if _, err := pcap.NewWriter(&bytes.Buffer{}, tc.lt, tc.snap); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewWriter(%d, %d): %v, want %q", tc.lt, tc.snap, err, tc.want)
		}
	}
	if _, err := pcap.NewWriter(&failWriter{}, pcap.LinkRaw, 0); err == nil || err.Error() != "pcap: writing the file header: disk full" {
		t.Errorf("header write error: %v", err)
	}
	w, err := pcap.NewWriter(&failWriter{n: 1}, pcap.LinkRaw, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WritePacket(-1, nil); err != pcap.ErrNegativeTime {
		t.Errorf("negative time: %v", err)
	}
	if err := w.WritePacket(engine.Time(1<<62), nil); err == nil || !strings.Contains(err.Error(), "past 2106") {
		t.Errorf("time past 2106: %v", err)
	}
	err = w.WritePacket(0, []byte{1})
	if err == nil || err.Error() != "pcap: writing packet 1: disk full" {
		t.Fatalf("write error: %v", err)
	}
	if err2 := w.WritePacket(0, []byte{1}); err2 != err {
		t.Fatalf("the error is not sticky: %v", err2)
	}
}

// exchange runs an echo exchange over a pipe with loss, reordering and
// duplication and calls record for every frame sent.
func exchange(t *testing.T, record func(f *pipe.Frame)) {
	t.Helper()
	addrs := []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")}
	var es [2]engine.Engine
	for i := range es {
		s, err := engine.New(engine.Config{Addrs: addrs[i : i+1], Seed: uint64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		es[i] = s
	}
	srv := netip.AddrPortFrom(addrs[1], 7)
	msg := bytes.Repeat([]byte("tcpeng "), 20000)
	var got int
	client := &pipe.Endpoint{Dial: srv, OnOpen: func(h *pipe.Host, s *pipe.Stream) {
		_ = s.Write(msg)
		s.OnData = func(s *pipe.Stream, b []byte) {
			if got += len(b); got == len(msg) {
				s.Close()
			}
		}
	}}
	server := &pipe.Endpoint{Listen: srv, OnOpen: func(h *pipe.Host, s *pipe.Stream) {
		s.OnData = func(s *pipe.Stream, b []byte) { _ = s.Write(bytes.Clone(b)) }
		s.OnEOF = func(s *pipe.Stream) { s.Close() }
	}}
	link := pipe.Impairments{Loss: 0.05, Reorder: 0.05, Duplicate: 0.02, Delay: 5 * engine.Millisecond}
	p, err := pipe.New(pipe.Config{Engines: es, Apps: [2]pipe.App{client, server}, Links: [2]pipe.Impairments{link, link}, Seed: 9, OnFrame: record})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(engine.Time(3600 * engine.Second)); err != nil {
		t.Fatal(err)
	}
	if got != len(msg) {
		t.Fatalf("echo: %d of %d bytes", got, len(msg))
	}
}

// TestTsharkReadsEngineExchange writes every frame of a real exchange and has
// tshark check the file: no bad checksum, nothing malformed.
func TestTsharkReadsEngineExchange(t *testing.T) {
	file := filepath.Join(t.TempDir(), "exchange.pcap")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcap.NewWriter(f, pcap.LinkRaw, 0)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, func(fr *pipe.Frame) {
		if err := w.WritePacket(fr.Time, fr.Data); err != nil {
			t.Fatal(err)
		}
	})
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	lines := pcaptest.Check(t, file, int(w.Packets()))
	if !strings.Contains(strings.Join(lines, "\n"), "[TCP Retransmission]") {
		t.Errorf("tshark saw no retransmission in an exchange with 5%% loss:\n%s", strings.Join(lines, "\n"))
	}
}

// TestTsharkEthernet wraps the frames of the same exchange in Ethernet headers.
func TestTsharkEthernet(t *testing.T) {
	file := filepath.Join(t.TempDir(), "ethernet.pcap")
	var b bytes.Buffer
	w, err := pcap.NewWriter(&b, pcap.LinkEthernet, 0)
	if err != nil {
		t.Fatal(err)
	}
	frame := make([]byte, 0, 1600)
	exchange(t, func(fr *pipe.Frame) {
		// Destination, source (locally administered), EtherType IPv4.
		frame = append(frame[:0], 2, 0, 0, 0, 0, byte(fr.From.Peer())+1, 2, 0, 0, 0, 0, byte(fr.From)+1, 0x08, 0x00)
		frame = append(frame, fr.Data...)
		if err := w.WritePacket(fr.Time, frame); err != nil {
			t.Fatal(err)
		}
	})
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pcaptest.Check(t, file, int(w.Packets()))
}

// recorder is a testing.TB that records errors instead of failing.
type recorder struct {
	testing.TB
	errs []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}
func (r *recorder) Fatalf(format string, args ...any) {
	r.Errorf(format, args...)
	runtime.Goexit()
}
func (r *recorder) Helper() {}

// TestCheckCatchesBadChecksum: the checker itself fails on a corrupted TCP
// checksum, so a passing check means something.
func TestCheckCatchesBadChecksum(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.pcap")
	var b bytes.Buffer
	w, _ := pcap.NewWriter(&b, pcap.LinkRaw, 0)
	n := 0
	exchange(t, func(fr *pipe.Frame) {
		data := bytes.Clone(fr.Data)
		if n++; n == 3 {
			data[20+16] ^= 0xff // the TCP checksum of the third frame
		}
		_ = w.WritePacket(fr.Time, data)
	})
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &recorder{TB: t}
	done := make(chan struct{})
	go func() { // Check runs on its own goroutine so that Fatalf's Goexit ends only it.
		defer close(done)
		pcaptest.Check(r, file, int(w.Packets()))
	}()
	<-done
	if len(r.errs) == 0 || !strings.Contains(strings.Join(r.errs, "\n"), "packet 3: IP checksum status \"1\", TCP checksum status \"0\"") {
		t.Fatalf("the checker did not report the bad checksum of packet 3: %q", r.errs)
	}
}
