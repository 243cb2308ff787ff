package main

// The gVisor column of the serve job: `tunbench gvisor-serve NS TUN MTU` opens
// a TUN device in namespace NS (IFF_TUN|IFF_NO_PI, no virtio-net header: no
// GSO, as embedders run it), gives the kernel side 10.7.0.1/24, and serves
// echo (7), discard (9) and chargen (19) at 10.7.0.2 from gVisor's netstack
// on link/fdbased, with the settings of BENCH.md (SACK, receive-buffer
// moderation, 4 KiB / 1 MiB / 8 MiB receive and 4 KiB / 1 MiB / 6 MiB send
// buffers, CUBIC, RACK off, Nagle off, checksums computed and verified). It
// prints "ready" and runs until SIGTERM.

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/tcpeng/tcpeng/host/netns"
	"github.com/tcpeng/tcpeng/internal/chargen"
	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
)

func gvisorMain(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "tunbench gvisor-serve: want NS TUN MTU")
		return 2
	}
	ns, name := args[0], args[1]
	mtu, err := strconv.Atoi(args[2])
	if err != nil {
		fmt.Fprintln(os.Stderr, "tunbench gvisor-serve: bad MTU")
		return 2
	}
	if err := gvisorServe(ns, name, mtu); err != nil {
		fmt.Fprintf(os.Stderr, "tunbench gvisor-serve: %v\n", err)
		return 1
	}
	return 0
}

// openTUN creates the device in ns and returns its non-blocking descriptor.
func openTUN(ns, name string) (int, error) {
	fd := -1
	err := netns.Do(ns, func() error {
		var err error
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_TUN_EXCL)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		return unix.SetNonblock(fd, true)
	})
	if err != nil && fd >= 0 {
		unix.Close(fd)
	}
	return fd, err
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %v: %v: %s", args, err, out)
	}
	return nil
}

func gvisorServe(ns, name string, mtu int) error {
	fd, err := openTUN(ns, name)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for _, a := range [][]string{
		{"-n", ns, "link", "set", name, "mtu", strconv.Itoa(mtu), "txqueuelen", "4096"},
		{"-n", ns, "addr", "add", "10.7.0.1/24", "dev", name},
		{"-n", ns, "link", "set", name, "up"},
	} {
		if err := ip(a...); err != nil {
			return err
		}
	}
	ep, err := fdbased.New(&fdbased.Options{FDs: []int{fd}, MTU: uint32(mtu)})
	if err != nil {
		return err
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	defer s.Close()
	sack := tcpip.TCPSACKEnabled(true)
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	cubic := tcpip.CongestionControlOption("cubic")
	recovery := tcpip.TCPRecovery(0) // RACK off
	delay := tcpip.TCPDelayEnabled(false)
	for _, o := range []tcpip.SettableTransportProtocolOption{
		&sack, &moderate, &cubic, &recovery, &delay,
		&tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20},
		&tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 6 << 20},
	} {
		if err := s.SetTransportProtocolOption(tcp.ProtocolNumber, o); err != nil {
			return fmt.Errorf("setting %T: %s", o, err)
		}
	}
	if err := s.CreateNIC(1, ep); err != nil {
		return fmt.Errorf("CreateNIC: %s", err)
	}
	addr := tcpip.AddrFrom4([4]byte{10, 7, 0, 2})
	if err := s.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: addr.WithPrefix()}, stack.AddressProperties{}); err != nil {
		return fmt.Errorf("AddProtocolAddress: %s", err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})
	for port, handle := range map[uint16]func(net.Conn){7: echoConn, 9: discardConn, 19: chargenConn} {
		ln, err := gonet.ListenTCP(s, tcpip.FullAddress{NIC: 1, Addr: addr, Port: port}, ipv4.ProtocolNumber)
		if err != nil {
			return err
		}
		defer ln.Close()
		go serveLoop(ln, handle)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	fmt.Println("ready")
	<-sig
	return nil
}

func serveLoop(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go handle(c)
	}
}

// The services, as tcpeng serve runs them (cmd/tcpeng/services.go): echo
// passes on the half-close, discard closes after the FIN, chargen writes
// 128 KiB blocks until the client goes.

func echoConn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 128<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err == io.EOF {
			c.(interface{ CloseWrite() error }).CloseWrite()
			return
		}
		if err != nil {
			return
		}
	}
}

func discardConn(c net.Conn) {
	defer c.Close()
	buf := make([]byte, 128<<10)
	for {
		if _, err := c.Read(buf); err != nil {
			return
		}
	}
}

func chargenConn(c net.Conn) {
	go func() {
		io.Copy(io.Discard, c)
		c.Close()
	}()
	for {
		if _, err := c.Write(chargen.Data); err != nil {
			c.Close()
			return
		}
	}
}
