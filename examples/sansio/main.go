// Command sansio drives two tcpeng engines by hand: no goroutines, no sockets,
// a virtual clock. A dials B, sends a line, and prints what B received.
package main

import (
	"fmt"
	"net/netip"

	"github.com/tcpeng/tcpeng/engine"
)

func main() {
	a, _ := engine.New(engine.Config{Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.1")}})
	b, _ := engine.New(engine.Config{Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}})
	server := netip.MustParseAddrPort("10.0.0.2:80")

	var now engine.Time
	var inA, inB engine.Input
	var outA, outB engine.Output
	// step runs both engines once; each one's frames go to the other.
	step := func(cmdA, cmdB []engine.Command) {
		inA.Now, inA.Commands = now, cmdA
		a.Step(&inA, &outA)
		inB.Now, inB.Frames, inB.Commands = now, outA.Frames, cmdB
		b.Step(&inB, &outB)
		inA.Frames = append(inA.Frames[:0], outB.Frames...)
		now += engine.Time(engine.Millisecond)
	}

	step(nil, []engine.Command{{Op: engine.OpListen, Addr: server}})
	listener := outB.Results[0].Conn
	step([]engine.Command{{Op: engine.OpDial, Addr: server}}, nil)
	conn := outA.Results[0].Conn
	step(nil, nil) // the SYN-ACK reaches A, A's ACK reaches B

	step([]engine.Command{{Op: engine.OpWrite, Conn: conn, Data: []byte("hello over tcpeng\n")}},
		[]engine.Command{{Op: engine.OpAccept, Conn: listener}})
	accepted := outB.Results[0].Conn
	buf := make([]byte, 100)
	step(nil, []engine.Command{{Op: engine.OpRead, Conn: accepted, Data: buf}})
	fmt.Printf("B read %q\n", buf[:outB.Results[0].N])
}
