package tun

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// A small rtnetlink client (RFC 3549; linux/rtnetlink.h): just the messages a
// TUN device needs, built by hand. Netlink headers and attributes are in the
// host's byte order.

// rtnl is a NETLINK_ROUTE socket. It belongs to the network namespace it was
// opened in, whatever thread uses it later.
type rtnl struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	buf []byte
	msg []byte
}

// newRTNL wraps the NETLINK_ROUTE socket fd (made with
// socket(AF_NETLINK, SOCK_RAW, NETLINK_ROUTE) in the right namespace).
func newRTNL(fd int) (*rtnl, error) {
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, err
	}
	// Extended acks carry the kernel's reason text; capped acks leave out the
	// echoed request. Both are best effort (Linux 4.12+).
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_CAP_ACK, 1)
	// The kernel always answers; the timeout only guards against a bug.
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
	return &rtnl{fd: fd, buf: make([]byte, 1<<16)}, nil
}

func (c *rtnl) close() error { return unix.Close(c.fd) }

// nlError is a netlink error answer: the errno and the kernel's text, if any.
type nlError struct {
	errno unix.Errno
	msg   string
}

func (e *nlError) Error() string {
	if e.msg != "" {
		return e.errno.Error() + " (" + e.msg + ")"
	}
	return e.errno.Error()
}

func (e *nlError) Unwrap() error { return e.errno }

// message building

func (c *rtnl) begin(typ, flags uint16) {
	c.msg = append(c.msg[:0], make([]byte, unix.SizeofNlMsghdr)...)
	binary.NativeEndian.PutUint16(c.msg[4:], typ)
	binary.NativeEndian.PutUint16(c.msg[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
}

func (c *rtnl) raw(b ...byte) { c.msg = append(c.msg, b...) }

func (c *rtnl) u32(v uint32) { c.msg = binary.NativeEndian.AppendUint32(c.msg, v) }

// attr appends a route attribute (struct rtattr), padded to 4 bytes.
func (c *rtnl) attr(typ uint16, data []byte) {
	l := unix.SizeofRtAttr + len(data)
	c.msg = binary.NativeEndian.AppendUint16(c.msg, uint16(l))
	c.msg = binary.NativeEndian.AppendUint16(c.msg, typ)
	c.msg = append(c.msg, data...)
	for len(c.msg)%4 != 0 {
		c.msg = append(c.msg, 0)
	}
}

func (c *rtnl) attrU32(typ uint16, v uint32) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	c.attr(typ, b[:])
}

func (c *rtnl) attrAddr(typ uint16, a netip.Addr) { c.attr(typ, a.AsSlice()) }

// do sends the message built and returns the answers before the ack (for a
// get request), or the error the kernel acked with.
func (c *rtnl) do() ([][]byte, error) {
	c.seq++
	binary.NativeEndian.PutUint32(c.msg[0:], uint32(len(c.msg)))
	binary.NativeEndian.PutUint32(c.msg[8:], c.seq)
	if err := unix.Sendto(c.fd, c.msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	var answers [][]byte
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		b := c.buf[:n]
		for len(b) >= unix.SizeofNlMsghdr {
			l := int(binary.NativeEndian.Uint32(b[0:]))
			typ := binary.NativeEndian.Uint16(b[4:])
			flags := binary.NativeEndian.Uint16(b[6:])
			seq := binary.NativeEndian.Uint32(b[8:])
			if l < unix.SizeofNlMsghdr || l > len(b) {
				return nil, errors.New("malformed netlink answer")
			}
			m := b[unix.SizeofNlMsghdr:l]
			b = b[min(nlAlign(l), len(b)):]
			if seq != c.seq {
				continue // a stale answer
			}
			switch typ {
			case unix.NLMSG_ERROR:
				if len(m) < 4 {
					return nil, errors.New("malformed netlink error")
				}
				code := int32(binary.NativeEndian.Uint32(m))
				if code == 0 {
					return answers, nil
				}
				return nil, &nlError{errno: unix.Errno(-code), msg: extAckMsg(m, flags)}
			case unix.NLMSG_DONE:
				return answers, nil
			default:
				answers = append(answers, append([]byte(nil), m...))
			}
		}
	}
}

func nlAlign(n int) int { return (n + 3) &^ 3 }

// extAckMsg returns NLMSGERR_ATTR_MSG of an extended ack, or "".
func extAckMsg(m []byte, flags uint16) string {
	if flags&unix.NLM_F_ACK_TLVS == 0 || len(m) < 4+unix.SizeofNlMsghdr {
		return ""
	}
	off := 4 + unix.SizeofNlMsghdr // error code and the (capped) request header
	if flags&unix.NLM_F_CAPPED == 0 {
		off = 4 + int(binary.NativeEndian.Uint32(m[4:]))
	}
	for attrs := m[min(nlAlign(off), len(m)):]; len(attrs) >= 4; {
		l := int(binary.NativeEndian.Uint16(attrs))
		typ := binary.NativeEndian.Uint16(attrs[2:])
		if l < 4 || l > len(attrs) {
			break
		}
		if typ == unix.NLMSGERR_ATTR_MSG {
			return strings.TrimRight(string(attrs[4:l]), "\x00\n")
		}
		attrs = attrs[min(nlAlign(l), len(attrs)):]
	}
	return ""
}

// parseAttrs calls fn for each attribute of b.
func parseAttrs(b []byte, fn func(typ uint16, data []byte)) {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			return
		}
		fn(binary.NativeEndian.Uint16(b[2:])&^unix.NLA_F_NESTED, b[4:l])
		b = b[min(nlAlign(l), len(b)):]
	}
}

// link operations

// linkInfo is what getLink learns of a device.
type linkInfo struct {
	index  int
	mtu    int
	txqlen int
	flags  uint32
	kind   string // IFLA_INFO_KIND: "tun", "veth", ... ("" for a plain device)
}

func (c *rtnl) ifinfomsg(index int, flags, change uint32) {
	var b [unix.SizeofIfInfomsg]byte
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	c.raw(b[:]...)
}

// getLink looks a device up by name (index 0) or index. ENODEV if there is none.
func (c *rtnl) getLink(name string, index int) (linkInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.begin(unix.RTM_GETLINK, 0)
	c.ifinfomsg(index, 0, 0)
	if index == 0 {
		c.attr(unix.IFLA_IFNAME, append([]byte(name), 0))
	}
	ans, err := c.do()
	if err != nil {
		return linkInfo{}, err
	}
	for _, m := range ans {
		if len(m) < unix.SizeofIfInfomsg {
			continue
		}
		li := linkInfo{
			index: int(int32(binary.NativeEndian.Uint32(m[4:]))),
			flags: binary.NativeEndian.Uint32(m[8:]),
		}
		parseAttrs(m[unix.SizeofIfInfomsg:], func(typ uint16, data []byte) {
			switch typ {
			case unix.IFLA_MTU:
				if len(data) >= 4 {
					li.mtu = int(binary.NativeEndian.Uint32(data))
				}
			case unix.IFLA_TXQLEN:
				if len(data) >= 4 {
					li.txqlen = int(binary.NativeEndian.Uint32(data))
				}
			case unix.IFLA_LINKINFO:
				parseAttrs(data, func(typ uint16, data []byte) {
					if typ == unix.IFLA_INFO_KIND {
						li.kind = strings.TrimRight(string(data), "\x00")
					}
				})
			}
		})
		return li, nil
	}
	return linkInfo{}, unix.ENODEV
}

// setMTU sets a device's MTU (RTM_SETLINK with IFLA_MTU).
func (c *rtnl) setMTU(index, mtu int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.begin(unix.RTM_SETLINK, 0)
	c.ifinfomsg(index, 0, 0)
	c.attrU32(unix.IFLA_MTU, uint32(mtu))
	_, err := c.do()
	return err
}

// setTxQueueLen sets a device's transmit queue length (RTM_SETLINK with
// IFLA_TXQLEN).
func (c *rtnl) setTxQueueLen(index, n int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.begin(unix.RTM_SETLINK, 0)
	c.ifinfomsg(index, 0, 0)
	c.attrU32(unix.IFLA_TXQLEN, uint32(n))
	_, err := c.do()
	return err
}

// setUp brings a device up or down (RTM_SETLINK, IFF_UP in ifi_change).
func (c *rtnl) setUp(index int, up bool) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var flags uint32
	if up {
		flags = unix.IFF_UP
	}
	c.begin(unix.RTM_SETLINK, 0)
	c.ifinfomsg(index, flags, unix.IFF_UP)
	_, err := c.do()
	return err
}

// delLink deletes a device (RTM_DELLINK).
func (c *rtnl) delLink(index int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.begin(unix.RTM_DELLINK, 0)
	c.ifinfomsg(index, 0, 0)
	_, err := c.do()
	return err
}

// addresses

func family(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// addr adds (RTM_NEWADDR, failing if it exists) or deletes (RTM_DELADDR) the
// address p on device index, as `ip addr add|del P dev DEV` does: IFA_LOCAL and
// IFA_ADDRESS both p's address; IPv6 addresses skip duplicate address detection
// (IFA_F_NODAD: a TUN link has no neighbours).
func (c *rtnl) addr(add bool, index int, p netip.Prefix) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if add {
		c.begin(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	} else {
		c.begin(unix.RTM_DELADDR, 0)
	}
	a := p.Addr()
	var fl uint8
	if a.Is6() {
		fl = unix.IFA_F_NODAD
	}
	c.raw(family(a), uint8(p.Bits()), fl, unix.RT_SCOPE_UNIVERSE)
	c.u32(uint32(index))
	c.attrAddr(unix.IFA_LOCAL, a)
	c.attrAddr(unix.IFA_ADDRESS, a)
	if add && a.Is6() {
		c.attrU32(unix.IFA_FLAGS, unix.IFA_F_NODAD)
	}
	_, err := c.do()
	return err
}

// route adds (RTM_NEWROUTE, failing if it exists) or deletes (RTM_DELROUTE) a
// route to r.Dst through device index in the main table, as `ip route add|del
// DST [via GW] dev DEV [metric M]` does (protocol boot; scope link without a
// gateway).
func (c *rtnl) route(add bool, index int, r Route) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	scope := uint8(unix.RT_SCOPE_NOWHERE) // delete: any scope
	if add {
		c.begin(unix.RTM_NEWROUTE, unix.NLM_F_CREATE|unix.NLM_F_EXCL)
		scope = unix.RT_SCOPE_LINK
		if r.Gateway.IsValid() {
			scope = unix.RT_SCOPE_UNIVERSE
		}
	} else {
		c.begin(unix.RTM_DELROUTE, 0)
	}
	dst := r.Dst.Masked()
	c.raw(family(dst.Addr()), uint8(dst.Bits()), 0, 0, unix.RT_TABLE_MAIN, unix.RTPROT_BOOT, scope, unix.RTN_UNICAST)
	c.u32(0)
	if dst.Bits() > 0 {
		c.attrAddr(unix.RTA_DST, dst.Addr())
	}
	c.attrU32(unix.RTA_OIF, uint32(index))
	if r.Gateway.IsValid() {
		c.attrAddr(unix.RTA_GATEWAY, r.Gateway)
	}
	if r.Metric != 0 {
		c.attrU32(unix.RTA_PRIORITY, r.Metric)
	}
	_, err := c.do()
	return err
}
