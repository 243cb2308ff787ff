package linuxconf

import (
	"encoding/binary"
	"errors"
	"net/netip"

	"github.com/tcpeng/tcpeng/engine"
	"golang.org/x/sys/unix"
)

// Linux TCP states (include/net/tcp_states.h) as sock_diag reports them.
const (
	linuxEstablished = 1 + iota
	linuxSynSent
	linuxSynRecv
	linuxFinWait1
	linuxFinWait2
	linuxTimeWait
	linuxClose
	linuxCloseWait
	linuxLastAck
	linuxListen
	linuxClosing
	linuxNewSynRecv
)

// diagStates asks for every state but LISTEN (the runner does not need the
// listener's, and asking for it makes the kernel walk the global listening
// hash) and TCP_BOUND_INACTIVE (bit 13, sockets that are only bound): bits 1
// to 12 without bit 10.
const diagStates = 0x1ffe &^ (1 << linuxListen)

// engineState maps a Linux TCP state onto the script's state names.
func engineState(s uint8) (engine.State, bool) {
	switch s {
	case linuxEstablished:
		return engine.StateEstablished, true
	case linuxSynSent:
		return engine.StateSynSent, true
	case linuxSynRecv, linuxNewSynRecv:
		return engine.StateSynReceived, true
	case linuxFinWait1:
		return engine.StateFinWait1, true
	case linuxFinWait2:
		return engine.StateFinWait2, true
	case linuxTimeWait:
		return engine.StateTimeWait, true
	case linuxClose:
		return engine.StateClosed, true
	case linuxCloseWait:
		return engine.StateCloseWait, true
	case linuxLastAck:
		return engine.StateLastAck, true
	case linuxListen:
		return engine.StateListen, true
	case linuxClosing:
		return engine.StateClosing, true
	}
	return 0, false
}

// diagSock is one TCP socket of the namespace.
type diagSock struct {
	local, remote netip.AddrPort
	state         engine.State
}

// Sizes of the sock_diag structures (linux/inet_diag.h).
const (
	sizeofSockID   = 48 // inet_diag_sockid
	sizeofReqV2    = 8 + sizeofSockID
	sizeofDiagMsg  = 4 + sizeofSockID + 20
	maxDiagSockets = 1024 // a namespace of one script never holds more
)

// dumpTCP lists the IPv4 TCP sockets of the namespace of the sock_diag socket
// fd (SOCK_DIAG_BY_FAMILY dump), into out (reused).
func dumpTCP(fd int, buf []byte, out []diagSock) ([]diagSock, error) {
	out = out[:0]
	req := make([]byte, unix.SizeofNlMsghdr+sizeofReqV2)
	binary.NativeEndian.PutUint32(req[0:], uint32(len(req)))
	binary.NativeEndian.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], 1)
	r := req[unix.SizeofNlMsghdr:]
	r[0] = unix.AF_INET
	r[1] = unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(r[4:], diagStates)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return out, err
	}
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return out, err
		}
		var done bool
		if out, done, err = parseDiag(buf[:n], out); done || err != nil {
			return out, err
		}
	}
}

// parseDiag appends the IPv4 sockets of one read of a sock_diag dump to out,
// and reports whether the dump is done.
func parseDiag(b []byte, out []diagSock) ([]diagSock, bool, error) {
	for len(b) >= unix.SizeofNlMsghdr {
		l := int(binary.NativeEndian.Uint32(b[0:]))
		typ := binary.NativeEndian.Uint16(b[4:])
		if l < unix.SizeofNlMsghdr || l > len(b) {
			return out, true, errors.New("sock_diag: malformed answer")
		}
		m := b[unix.SizeofNlMsghdr:l]
		b = b[min((l+3)&^3, len(b)):]
		switch typ {
		case unix.NLMSG_DONE:
			return out, true, nil
		case unix.NLMSG_ERROR:
			if len(m) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(m)); code != 0 {
					return out, true, unix.Errno(-code)
				}
			}
			return out, true, nil
		case unix.SOCK_DIAG_BY_FAMILY:
			if len(m) < sizeofDiagMsg || m[0] != unix.AF_INET || len(out) >= maxDiagSockets {
				continue
			}
			st, ok := engineState(m[1])
			if !ok {
				continue
			}
			id := m[4:]
			src, _ := netip.AddrFromSlice(id[4:8])
			dst, _ := netip.AddrFromSlice(id[20:24])
			out = append(out, diagSock{
				local:  netip.AddrPortFrom(src, binary.BigEndian.Uint16(id[0:])),
				remote: netip.AddrPortFrom(dst, binary.BigEndian.Uint16(id[2:])),
				state:  st,
			})
		}
	}
	return out, false, nil
}
