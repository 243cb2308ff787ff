package main

// What serve and forward share: the engine from the factory, a link that
// records every frame to a pcap file, CPU profiles, address flags.

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/tcpeng/tcpeng/engine"
	"github.com/tcpeng/tcpeng/host"
	"github.com/tcpeng/tcpeng/host/forward"
	"github.com/tcpeng/tcpeng/host/pcap"
)

// newEngine makes an engine of the kind named (see engines.go) with a random
// seed and ISN key.
func newEngine(kind string, cfg engine.Config) (engine.Engine, error) {
	k, ok := engineKinds[kind]
	if !ok {
		return nil, errors.New(engineMissing(kind))
	}
	var seed [8]byte
	rand.Read(seed[:])
	rand.Read(cfg.Key[:])
	for _, b := range seed {
		cfg.Seed = cfg.Seed<<8 | uint64(b)
	}
	return k.new(cfg)
}

// engineMissing says why --engine kind cannot run.
func engineMissing(kind string) string {
	return fmt.Sprintf("--engine %q is not known: give one of %s", kind, engineNames())
}

// trustChecksums says whether the TUN device may leave out checksums (the
// SkipChecksums of host/tun) for a run capturing to pcapFile. serve and
// forward run the engine with engine.Config.TrustLink: every frame from a TUN
// device was written by the local kernel, which never corrupts it, so the
// engine does not verify checksums. The kernel hands its TCP packets over with
// partial checksums (offloads on), which the device would complete only for a
// verifier; it leaves them partial unless a capture is written, whose frames
// must carry correct checksums (tshark checks them).
func trustChecksums(pcapFile string) bool { return pcapFile == "" }

// partialChecksums says whether the engine may leave its TCP checksums for
// the device to finish (engine.Config.PartialChecksums): with offloads on,
// host/tun writes every TCP packet with NEEDS_CSUM, and the kernel sums
// nothing for its local receivers. A capture must see full checksums.
func partialChecksums(offload bool, pcapFile string) bool { return offload && pcapFile == "" }

// wholeBuffer and wholeBatch size the driver's read buffers for a device with
// tun.Config.Whole: with offloads a frame may be a whole 64 KiB super-packet.
// Without offloads, the defaults (0).
func wholeBuffer(offload bool) int {
	if offload {
		return 65535
	}
	return 0
}

func wholeBatch(offload bool) int {
	if offload {
		return 16
	}
	return 0
}

// parsePrefix parses "10.7.0.2/24" (or a bare address, taken with /def) as
// an IPv4 address with its prefix length.
func parsePrefix(flag, s string, def int) (netip.Prefix, error) {
	var p netip.Prefix
	var err error
	if strings.Contains(s, "/") {
		p, err = netip.ParsePrefix(s)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil {
			p = netip.PrefixFrom(a, def)
		}
	}
	switch {
	case err != nil:
		return p, fmt.Errorf("--%s %q is not an IPv4 address with a prefix length: give one like 10.7.0.2/24", flag, s)
	case !p.Addr().Is4():
		return p, fmt.Errorf("--%s %s is not IPv4: the engine speaks IPv4 for now; give one like 10.7.0.2/24", flag, s)
	case p.Bits() < 1 || p.Bits() > 30:
		return p, fmt.Errorf("--%s %s: the prefix length must be 1 to 30 (it must hold two hosts)", flag, s)
	case p.Addr().IsUnspecified() || p.Addr().IsMulticast() || p.Addr().IsLoopback() || p.Addr() == p.Masked().Addr():
		return p, fmt.Errorf("--%s %s cannot be a host's address: give a unicast address that is not the network's", flag, s)
	}
	return p, nil
}

// parseAddr4 parses a plain IPv4 address.
func parseAddr4(flag, s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() || a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("--%s %q is not a unicast IPv4 address: give one like 10.0.2.2", flag, s)
	}
	return a, nil
}

// pcapLink records every frame read from and written to a link, with the wall
// clock's time.
type pcapLink struct {
	host.Link
	mu  sync.Mutex
	f   *os.File
	bw  *bufio.Writer
	w   *pcap.Writer
	err error
	rd  [][]byte // the frames of the last read (reads come from one goroutine at a time)
}

// newPcapLink creates path and wraps l. Close closes both.
func newPcapLink(l host.Link, path string) (*pcapLink, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--pcap: %v", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	w, err := pcap.NewWriter(bw, pcap.LinkRaw, 0)
	if err != nil {
		f.Close()
		os.Remove(path)
		return nil, err
	}
	return &pcapLink{Link: l, f: f, bw: bw, w: w}, nil
}

func (l *pcapLink) record(frames [][]byte) {
	now := engine.Time(time.Now().UnixNano())
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil || l.f == nil {
		return
	}
	for _, f := range frames {
		if err := l.w.WritePacket(now, f); err != nil {
			l.err = err
			return
		}
	}
}

func (l *pcapLink) ReadBatch(bufs [][]byte, sizes []int) (int, error) {
	n, err := l.Link.ReadBatch(bufs, sizes)
	l.recordRead(bufs, sizes, n)
	return n, err
}

// TryReadBatch and Fd make a pcapLink over a TUN device a forward.Link.
func (l *pcapLink) TryReadBatch(bufs [][]byte, sizes []int) (int, error) {
	n, err := l.Link.(forward.Link).TryReadBatch(bufs, sizes)
	l.recordRead(bufs, sizes, n)
	return n, err
}

func (l *pcapLink) Fd() int { return l.Link.(forward.Link).Fd() }

func (l *pcapLink) recordRead(bufs [][]byte, sizes []int, n int) {
	l.rd = l.rd[:0]
	for i := range n {
		l.rd = append(l.rd, bufs[i][:sizes[i]])
	}
	if n > 0 {
		l.record(l.rd)
	}
	clear(l.rd) // the caller's buffers
}

func (l *pcapLink) WriteBatch(frames [][]byte) error {
	l.record(frames)
	return l.Link.WriteBatch(frames)
}

// Close closes the link, then flushes and closes the file.
func (l *pcapLink) Close() error {
	err := l.Link.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f != nil {
		if ferr := l.bw.Flush(); ferr != nil && l.err == nil {
			l.err = ferr
		}
		if ferr := l.f.Close(); ferr != nil && l.err == nil {
			l.err = ferr
		}
		l.f = nil
	}
	return err
}

// Err returns the first error writing the file.
func (l *pcapLink) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// startProfile starts a CPU profile into path; the returned function stops it.
func startProfile(path string) (func(), error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("--cpuprofile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("--cpuprofile: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// oneLine makes an error fit one line.
func oneLine(err error) string {
	return strings.ReplaceAll(err.Error(), "\n", " ")
}
