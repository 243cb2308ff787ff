// Package pcap writes capture files in the classic libpcap format that
// Wireshark, tshark and tcpdump read: a 24-byte file header, then one 16-byte
// record header and the packet bytes per packet (the format is specified in
// draft-ietf-opsawg-pcap). Timestamps have nanosecond resolution (the
// 0xa1b23c4d magic number) and come from the host's engine.Time, so a capture of
// a virtual-time run shows virtual time.
package pcap

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/tcpeng/tcpeng/engine"
)

// LinkType is the link-layer header type of every packet of a file
// (the LINKTYPE_ values of the tcpdump.org registry).
type LinkType uint32

// Link types.
const (
	LinkEthernet LinkType = 1   // LINKTYPE_ETHERNET: packets start with an Ethernet header
	LinkRaw      LinkType = 101 // LINKTYPE_RAW: packets are IPv4 or IPv6 datagrams, no link header
)

// MagicNanoseconds is the file magic number of a nanosecond-resolution file.
const MagicNanoseconds = 0xa1b23c4d

// DefaultSnapLen is the snapshot length written in the file header and the
// most bytes of one packet that are recorded (the rest is cut, the original
// length kept). It matches tcpdump's default.
const DefaultSnapLen = 262144

// Writer writes a capture file. It is not safe for concurrent use.
type Writer struct {
	w       io.Writer
	snapLen int
	buf     []byte
	err     error
	packets uint64
}

// NewWriter writes the file header for link type lt to w and returns a Writer
// that records at most snapLen bytes per packet (0: DefaultSnapLen).
func NewWriter(w io.Writer, lt LinkType, snapLen int) (*Writer, error) {
	if snapLen == 0 {
		snapLen = DefaultSnapLen
	}
	if snapLen < 0 || snapLen > DefaultSnapLen {
		return nil, fmt.Errorf("pcap: snapshot length %d is out of range: use 1 to %d", snapLen, DefaultSnapLen)
	}
	if lt != LinkEthernet && lt != LinkRaw {
		return nil, fmt.Errorf("pcap: link type %d is not supported: use LinkRaw (101) or LinkEthernet (1)", lt)
	}
	var h [24]byte
	le := binary.LittleEndian
	le.PutUint32(h[0:], MagicNanoseconds)
	le.PutUint16(h[4:], 2) // version 2.4
	le.PutUint16(h[6:], 4)
	// h[8:16]: reserved (formerly thiszone and sigfigs), zero.
	le.PutUint32(h[16:], uint32(snapLen))
	le.PutUint32(h[20:], uint32(lt))
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("pcap: writing the file header: %w", err)
	}
	return &Writer{w: w, snapLen: snapLen, buf: make([]byte, 0, 16+1500)}, nil
}

// ErrNegativeTime is returned for a packet time before the epoch: pcap times are
// unsigned.
var ErrNegativeTime = errors.New("pcap: packet time is negative: pcap records times from 0 on")

// WritePacket records packet at time t (nanoseconds since the epoch of the
// file: engine.Time 0 is 1970-01-01 00:00:00 UTC). Packets longer than the
// snapshot length are cut, with their original length recorded. After a write
// error every call returns that error.
func (w *Writer) WritePacket(t engine.Time, packet []byte) error {
	if w.err != nil {
		return w.err
	}
	if t < 0 {
		return ErrNegativeTime
	}
	if int64(t)/1e9 > 0xffffffff {
		return fmt.Errorf("pcap: packet time %v is past 2106, the last second a pcap record holds", engine.Duration(t))
	}
	if uint64(len(packet)) > 0xffffffff {
		return errors.New("pcap: packet longer than 4 GiB")
	}
	n := min(len(packet), w.snapLen)
	le := binary.LittleEndian
	b := w.buf[:16]
	le.PutUint32(b[0:], uint32(int64(t)/1e9))
	le.PutUint32(b[4:], uint32(int64(t)%1e9))
	le.PutUint32(b[8:], uint32(n))
	le.PutUint32(b[12:], uint32(len(packet)))
	b = append(b, packet[:n]...)
	if _, err := w.w.Write(b); err != nil {
		w.err = fmt.Errorf("pcap: writing packet %d: %w", w.packets+1, err)
		return w.err
	}
	if cap(b) <= 16+w.snapLen {
		w.buf = b[:0]
	}
	w.packets++
	return nil
}

// Err returns the write error that stopped the writer, or nil.
func (w *Writer) Err() error { return w.err }

// Packets returns the number of packets written.
func (w *Writer) Packets() uint64 { return w.packets }
