package pipe

import (
	"flag"
	"fmt"
	"net/netip"
	"testing"

	"github.com/tcpeng/tcpeng/engine"
)

// Issue 3's integrity tests: 1 MiB each way over the pipe, checked by SHA-256,
// both ends reaching CLOSED. -pipe.seeds runs more seeds (default 1 keeps
// `make test` short).
var seeds = flag.Int("pipe.seeds", 1, "seeds per integrity test")

const mib = 1 << 20

func TestIntegrity1MiBEachWay(t *testing.T) {
	transfer(t, [2]Impairments{}, 1, mib, mib)
}

func TestIntegrity1MiBEachWayLoss5Percent(t *testing.T) {
	link := Impairments{Loss: 0.05, Delay: 5 * engine.Millisecond}
	for seed := range uint64(*seeds) {
		p, _ := transfer(t, [2]Impairments{link, link}, seed+1, mib, mib)
		if st := p.Stats(); st.Links[A].Lost == 0 || st.Links[B].Lost == 0 {
			t.Errorf("seed %d: no frame lost (A>B %d, B>A %d): the test does not test loss", seed+1, st.Links[A].Lost, st.Links[B].Lost)
		}
	}
}

func TestIntegrity1MiBEachWayReordering(t *testing.T) {
	link := Impairments{Reorder: 0.1, ReorderDelay: 3 * engine.Millisecond, Delay: 5 * engine.Millisecond, Jitter: engine.Millisecond}
	for seed := range uint64(*seeds) {
		p, _ := transfer(t, [2]Impairments{link, link}, seed+1, mib, mib)
		if st := p.Stats(); st.Links[A].Reordered == 0 || st.Links[B].Reordered == 0 {
			t.Errorf("seed %d: nothing reordered: the test does not test reordering", seed+1)
		}
	}
}

func TestIntegrityLossReorderDuplicate(t *testing.T) {
	link := Impairments{Loss: 0.02, Duplicate: 0.02, Reorder: 0.05, Delay: 2 * engine.Millisecond, Jitter: engine.Millisecond}
	for seed := range uint64(*seeds) {
		transfer(t, [2]Impairments{link, link}, seed+1, 256<<10, 256<<10)
	}
}

// TestIntegritySweep runs many seeds over harsher wires; it runs only with
// -pipe.sweep (go test ./host/pipe -run Sweep -pipe.sweep -pipe.seeds 100).
var sweep = flag.Bool("pipe.sweep", false, "run the long integrity sweep")

func TestIntegritySweep(t *testing.T) {
	if !*sweep {
		t.Skip("the sweep runs with -pipe.sweep")
	}
	links := []Impairments{
		{Loss: 0.1, Delay: 5 * engine.Millisecond},
		{Loss: 0.25, Delay: engine.Millisecond},
		{Reorder: 0.3, ReorderDelay: 5 * engine.Millisecond, Delay: engine.Millisecond, Jitter: 2 * engine.Millisecond},
		{Duplicate: 0.2, Delay: engine.Millisecond},
		{Loss: 0.05, Duplicate: 0.05, Reorder: 0.1, Delay: 20 * engine.Millisecond, Jitter: 10 * engine.Millisecond},
		{Loss: 0.05},
	}
	configs := []func(*engine.Config){
		nil,
		func(c *engine.Config) { c.SendBuffer, c.RecvBuffer = 8192, 4096 }, // windows, SWS avoidance, persist
		func(c *engine.Config) { c.MTU, c.NoWindowScale, c.DelayedAck = 576, true, -1 },
	}
	for k, mod := range configs {
		for i, link := range links {
			for seed := range uint64(*seeds) {
				t.Run(fmt.Sprintf("config%d/link%d/seed%d", k, i, seed+1), func(t *testing.T) {
					transferWith(t, mod, [2]Impairments{link, link}, seed+1, 300_000, 200_000)
				})
			}
		}
	}
}

// BenchmarkTransfer1MiB measures a 1 MiB transfer each way over a perfect
// wire, handshake and close included: the cost of the engines plus the pipe.
func BenchmarkTransfer1MiB(b *testing.B) {
	b.SetBytes(2 * mib)
	dataA, dataB := randomBytes(mib, 1), randomBytes(mib, 2)
	b.ReportAllocs()
	for b.Loop() {
		pa := newPeer(dataA, server, netip.AddrPort{})
		pb := newPeer(dataB, netip.AddrPort{}, server)
		p, err := New(Config{Engines: stacks(b, nil), Apps: [2]App{pa, pb}})
		if err != nil {
			b.Fatal(err)
		}
		if err := p.Run(engine.Time(3600 * engine.Second)); err != nil {
			b.Fatal(err)
		}
		if !pa.closedEv || !pb.closedEv {
			b.Fatal("the transfer did not finish")
		}
	}
}
