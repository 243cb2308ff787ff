package host

import (
	"net"
	"syscall"

	"github.com/tcpeng/tcpeng/engine"
)

// codeError is an engine error code as the net package's callers expect it:
// errors.Is matches both the engine code (engine.ErrReset) and the errno a
// kernel socket would give (syscall.ECONNRESET); errors.As finds the
// syscall.Errno; Timeout reports ETIMEDOUT.
type codeError engine.Error

// errnos maps engine codes to the errno of the same meaning.
var errnos = [...]syscall.Errno{
	engine.ErrClosed:       syscall.EPIPE, // a Write after CloseWrite
	engine.ErrNotConnected: syscall.ENOTCONN,
	engine.ErrRefused:      syscall.ECONNREFUSED,
	engine.ErrReset:        syscall.ECONNRESET,
	engine.ErrTimedOut:     syscall.ETIMEDOUT,
	engine.ErrAborted:      syscall.ECONNABORTED,
	engine.ErrInvalid:      syscall.EINVAL,
	engine.ErrAddrInUse:    syscall.EADDRINUSE,
	engine.ErrAddrNotAvail: syscall.EADDRNOTAVAIL,
	engine.ErrLimit:        syscall.ENOBUFS,
	engine.ErrUnreachable:  syscall.EHOSTUNREACH,
	engine.ErrNotListening: syscall.EINVAL,
}

// codeErr returns the error for an engine code that is not OK, ErrEOF or
// ErrWouldBlock.
func codeErr(code engine.Error) error {
	switch code {
	case codeClosed, engine.ErrNoConn:
		return net.ErrClosed
	}
	return codeError(code)
}

func (e codeError) Error() string { return engine.Error(e).Error() }

// Unwrap returns the matching errno (0 if there is none).
func (e codeError) Unwrap() error {
	if int(e) < len(errnos) && errnos[e] != 0 {
		return errnos[e]
	}
	return nil
}

// Is matches the engine code itself.
func (e codeError) Is(target error) bool {
	t, ok := target.(engine.Error)
	return ok && t == engine.Error(e)
}

// Timeout reports whether the connection timed out (retransmissions or
// keepalives ran out).
func (e codeError) Timeout() bool { return engine.Error(e) == engine.ErrTimedOut }
