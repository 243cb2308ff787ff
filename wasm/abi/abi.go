// Package abi is the message schema between the tcpeng WebAssembly module
// (wasm/guest) and its hosts (bindings/wazero, the JavaScript binding, or any
// WebAssembly runtime): the exports, their versioned MessagePack messages, the
// buffer ownership rules and the error model. README.md in this directory is the
// specification; this package is its Go implementation, shared by the guest and
// the Go hosts.
//
// The codec is written for this schema only: no reflection, no fmt, no
// encoding/json, so that the guest stays small (README.md, "Codec"). The
// decoder takes hostile input: every length is checked against the bytes that
// remain before anything is allocated, every count against a limit, and no input
// makes it panic.
package abi

// The ABI version. A host checks it at load time by calling the abi_version
// export, which returns Major<<16 | Minor: Major must equal the host's, and
// Minor must be at least the one the host needs. A minor version only appends
// fields to arrays or adds map keys; a major version changes the meaning or the
// order of existing ones.
const (
	Major = 1
	Minor = 2 // 1.1: the Config key partialChecksums; 1.2: segmentOffload
)

// Version is the value abi_version returns.
const Version = Major<<16 | Minor

// VersionString formats an abi_version value as "major.minor".
func VersionString(v uint32) string {
	return itoa(int(v>>16)) + "." + itoa(int(v&0xffff))
}

// Compatible reports whether a module reporting abi_version v can be driven by
// a host built against this package.
func Compatible(v uint32) bool { return v>>16 == Major && v&0xffff >= Minor }

// Limits of one call. A request over MaxRequest cannot be placed in the guest
// (alloc returns 0); counts over MaxFrames or MaxCommands are malformed.
const (
	// MaxRequest is the largest request buffer alloc hands out, in bytes.
	MaxRequest = 32 << 20
	// MaxFrames is the most frames one step request may carry.
	MaxFrames = 1 << 16
	// MaxCommands is the most commands one step request may carry.
	MaxCommands = 1 << 16
	// MaxReadTotal bounds the bytes all OpRead commands of one step return
	// together; a read past it is shortened (a short read, which Read's
	// contract allows).
	MaxReadTotal = 16 << 20
	// MaxAddrs is the most addresses a Config may carry.
	MaxAddrs = 64
	// MaxMessage is the longest message string a response carries, in bytes.
	MaxMessage = 1024
	// maxDepth bounds the nesting of values the decoder skips.
	maxDepth = 16
)

// Status is the first field of every response: whether the call did its work.
type Status uint8

// Statuses.
const (
	// StatusOK: the call did its work.
	StatusOK Status = iota
	// StatusMalformed: the request could not be decoded (the message says
	// where). Nothing was executed; the engine is unchanged and keeps working.
	StatusMalformed
	// StatusPanic: the guest recovered a panic (the message carries it). Its
	// engine was discarded: the host calls init again and reports every
	// connection as aborted.
	StatusPanic
	// StatusNoEngine: step was called before a successful init, or after a panic.
	StatusNoEngine
	// StatusBadConfig: init decoded the config but the engine rejected it (the
	// message is the engine's error).
	StatusBadConfig
	numStatus
)

var statusNames = [...]string{"ok", "malformed", "panic", "no-engine", "bad-config"}

// String returns the status's name.
func (s Status) String() string {
	if s < numStatus {
		return statusNames[s]
	}
	return "status-" + itoa(int(s))
}

// Debug fault kinds, the argument of the debug_fault export (for hosts' tests).
const (
	// DebugPanic makes the guest panic inside the export; the panic is
	// recovered and answered with StatusPanic.
	DebugPanic = 1
	// DebugTrap makes the guest execute the unreachable instruction: a trap.
	DebugTrap = 2
)

// Export names.
const (
	ExportVersion    = "abi_version"
	ExportAlloc      = "alloc"
	ExportInit       = "init"
	ExportStep       = "step"
	ExportDebugFault = "debug_fault"
	ExportInitialize = "_initialize"
	ExportMemory     = "memory"
)

// Pack packs a response pointer and length into the i64 the exports return.
func Pack(ptr, n uint32) uint64 { return uint64(ptr)<<32 | uint64(n) }

// Unpack splits an export's i64 result into the response pointer and length.
func Unpack(v uint64) (ptr, n uint32) { return uint32(v >> 32), uint32(v) }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b [20]byte
	i := len(b)
	neg := n < 0
	u := uint64(n)
	if neg {
		u = uint64(-n)
	}
	for u > 0 {
		i--
		b[i] = byte('0' + u%10)
		u /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}
