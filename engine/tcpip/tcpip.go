// Package tcpip holds the small types shared by the engine's layers: the host's
// time, durations, and the error codes that cross the engine's API. Package
// engine re-exports them; users need not import this package.
package tcpip

import "strconv"

// Time is a monotonic instant in nanoseconds, supplied by the host. The engine never
// reads a clock: every call that depends on time takes the current Time, and a host
// converts its own clock (time.Now, performance.now, a simulator's virtual clock).
// Only differences between Times matter; the origin is the host's choice.
type Time int64

// Never is the Time of a deadline that does not exist.
const Never Time = 1<<63 - 1

// Add returns t+d, saturating at Never.
func (t Time) Add(d Duration) Time {
	if d > 0 && t > Never-Time(d) {
		return Never
	}
	return t + Time(d)
}

// Sub returns the duration t-u.
func (t Time) Sub(u Time) Duration { return Duration(t - u) }

// Duration is a span of Time in nanoseconds. It converts to and from time.Duration
// with a plain conversion.
type Duration int64

// Common durations.
const (
	Nanosecond  Duration = 1
	Microsecond          = 1000 * Nanosecond
	Millisecond          = 1000 * Microsecond
	Second               = 1000 * Millisecond
	Minute               = 60 * Second
	Hour                 = 60 * Minute
)

// String formats d like time.Duration does for the common cases ("200ms", "1.5s").
func (d Duration) String() string {
	switch {
	case d == 0:
		return "0s"
	case d%Second == 0:
		return strconv.FormatInt(int64(d/Second), 10) + "s"
	case d%Millisecond == 0:
		return strconv.FormatInt(int64(d/Millisecond), 10) + "ms"
	case d >= Second:
		return strconv.FormatFloat(float64(d)/float64(Second), 'f', -1, 64) + "s"
	case d >= Millisecond:
		return strconv.FormatFloat(float64(d)/float64(Millisecond), 'f', -1, 64) + "ms"
	case d%Microsecond == 0:
		return strconv.FormatInt(int64(d/Microsecond), 10) + "µs"
	}
	return strconv.FormatInt(int64(d), 10) + "ns"
}

// Error is an error code returned by the engine's commands and carried by its
// events. The zero value means success; it is never returned as an error.
// Codes are stable: they cross the WebAssembly ABI as integers.
type Error uint8

// The error codes.
const (
	OK              Error = iota
	ErrWouldBlock         // nothing to read or no room to write now: wait for EventReadable or EventWritable
	ErrEOF                // the peer finished sending and every byte has been read
	ErrClosed             // the connection was shut down or closed on this side
	ErrNotConnected       // the connection is not established yet, or is a listener
	ErrRefused            // the peer answered the SYN with a reset (nothing listens there)
	ErrReset              // the peer reset the connection
	ErrTimedOut           // the peer stopped acknowledging: retransmissions or keepalives ran out
	ErrAborted            // the connection was aborted on this side
	ErrInvalid            // an argument is not valid for this command
	ErrNoConn             // no connection or listener has this ID (never existed, or closed)
	ErrAddrInUse          // the local address and port are taken
	ErrAddrNotAvail       // no usable local address, or no free ephemeral port
	ErrLimit              // a table is full (connections, listeners): retry later or raise the limit
	ErrUnreachable        // the destination is unreachable (ICMP)
	ErrNotListening       // the ID is not a listener
	numErrors
)

var errorText = [numErrors]string{
	OK:              "ok",
	ErrWouldBlock:   "operation would block: wait for a readable or writable event",
	ErrEOF:          "EOF: the peer closed its side and every byte was read",
	ErrClosed:       "connection closed on this side",
	ErrNotConnected: "connection not established",
	ErrRefused:      "connection refused: the peer answered with a reset",
	ErrReset:        "connection reset by peer",
	ErrTimedOut:     "connection timed out: the peer stopped acknowledging",
	ErrAborted:      "connection aborted on this side",
	ErrInvalid:      "invalid argument",
	ErrNoConn:       "no such connection (closed, or never opened)",
	ErrAddrInUse:    "address already in use",
	ErrAddrNotAvail: "address not available: no local address or free port",
	ErrLimit:        "limit reached: a table of the stack is full",
	ErrUnreachable:  "destination unreachable",
	ErrNotListening: "not a listener",
}

// Error returns a sentence saying what went wrong.
func (e Error) Error() string {
	if e < numErrors {
		return "tcpeng: " + errorText[e]
	}
	return "tcpeng: error " + strconv.Itoa(int(e))
}

// Err returns e as an error, or nil for OK.
func (e Error) Err() error {
	if e == OK {
		return nil
	}
	return e
}

// Valid reports whether e is a known code.
func (e Error) Valid() bool { return e < numErrors }
