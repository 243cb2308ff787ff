// Package wire holds zero-copy views over the bytes of the packets tcpeng reads
// and writes: Ethernet II, ARP, IPv4, IPv6 with its extension headers, ICMPv4,
// ICMPv6, UDP and TCP with its options, and the Internet checksum.
//
// A view is a named []byte. It is made only by its Parse function, the view's
// one validation gate: Parse checks every length the accessors rely on, so that
// afterwards no accessor can read out of range or panic. A view built by a plain
// conversion (wire.IPv4(b)) skips the gate and has no such guarantee.
//
// Parse functions, accessors and Put builders do not allocate. Builders write
// into a buffer the caller provides and return the number of bytes written; a
// buffer too small for the header is a programming error and panics with an
// index error, as a copy into a short slice would.
package wire

import "errors"

// Errors returned by the validation gates. Each is matched with errors.Is.
var (
	// ErrShort: the buffer is shorter than the fixed part of the header.
	ErrShort = errors.New("wire: buffer shorter than the header")
	// ErrVersion: the IP version field does not match the parser.
	ErrVersion = errors.New("wire: wrong IP version")
	// ErrHeaderLength: a header length field is below the minimum or runs past the buffer
	// (IPv4 IHL, TCP data offset, an IPv6 extension header's length).
	ErrHeaderLength = errors.New("wire: header length field out of range")
	// ErrTotalLength: a total or payload length field is smaller than the header or larger
	// than the buffer (IPv4 total length, IPv6 payload length, UDP length).
	ErrTotalLength = errors.New("wire: length field inconsistent with the buffer")
	// ErrUnsupported: a well-formed header of a kind this package does not handle
	// (ARP for other than IPv4 over Ethernet).
	ErrUnsupported = errors.New("wire: unsupported header variant")
	// ErrTooManyHeaders: an IPv6 extension-header chain longer than MaxIPv6ExtHeaders.
	ErrTooManyHeaders = errors.New("wire: too many IPv6 extension headers")
	// ErrExtHeaderOrder: an IPv6 hop-by-hop options header anywhere but first.
	ErrExtHeaderOrder = errors.New("wire: IPv6 hop-by-hop header not first")
)
