// Package workload holds the in-process workloads of BENCH.md (W1 bulk, W2
// connrate, W3 idlemem, W4 pingpong), written once against net.Conn and
// net.Listener so that the same code drives every stack, and the measuring
// helpers (CPU time, Go mallocs, heap) that every column shares.
package workload

import (
	"runtime"
	"slices"
	"syscall"
	"time"
)

// Metrics are one run's figures, by name (see the Metric* constants).
type Metrics map[string]float64

// Names of the figures. Each workload fills the ones BENCH.md asks for.
const (
	MetricGbps          = "gbit_per_s"      // W1
	MetricCPUPerGiB     = "cpu_s_per_gib"   // W1
	MetricMallocsPerMiB = "mallocs_per_mib" // W1
	MetricSeconds       = "seconds"         // every workload: the timed span

	MetricConnPerSec     = "conn_per_s"            // W2
	MetricCPUPerConn     = "cpu_us_per_conn"       // W2
	MetricMallocsPerConn = "mallocs_per_conn"      // W2
	MetricP50Lifecycle   = "p50_lifecycle_us"      // W2
	MetricP99Lifecycle   = "p99_lifecycle_us"      // W2
	MetricMaxLifecycle   = "max_lifecycle_us"      // W2
	MetricStalls         = "lifecycles_over_100ms" // W2: lifecycles that waited for a retransmission or worse

	MetricBytesPerPair      = "bytes_per_pair"      // W3: (HeapInuse+StackInuse) delta per connection pair
	MetricHeapPerPair       = "heap_bytes_per_pair" // W3: the HeapInuse part
	MetricStackPerPair      = "stack_bytes_per_pair"
	MetricGoroutinesPerConn = "goroutines_per_conn" // W3: per connection (one pair of ends)

	MetricMedianRTT  = "median_rtt_us"  // W4
	MetricP99RTT     = "p99_rtt_us"     // W4
	MetricMallocsRTT = "mallocs_per_rt" // W4
)

// Snapshot is the state of the process at one instant: wall clock, CPU time
// (getrusage, user+sys), and the Go allocator's counters.
type Snapshot struct {
	Wall    time.Time
	CPU     time.Duration
	Mallocs uint64
}

// cpuTime returns the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Begin takes a snapshot at the start of a timed span: allocator first (it
// stops the world), then CPU, then the clock, so the span's clock and CPU leave
// the snapshot's own cost out.
func Begin() Snapshot {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := Snapshot{Mallocs: ms.Mallocs, CPU: cpuTime()}
	s.Wall = time.Now()
	return s
}

// End takes a snapshot at the end of a timed span, in the reverse order of Begin.
func End() Snapshot {
	s := Snapshot{Wall: time.Now()}
	s.CPU = cpuTime()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.Mallocs = ms.Mallocs
	return s
}

// Span is the difference between two snapshots.
type Span struct {
	Wall, CPU time.Duration
	Mallocs   uint64
}

// Since returns the span from b to e.
func Since(b, e Snapshot) Span {
	return Span{Wall: e.Wall.Sub(b.Wall), CPU: e.CPU - b.CPU, Mallocs: e.Mallocs - b.Mallocs}
}

// Memory returns HeapInuse+StackInuse after two garbage collections (the
// second one frees what the first one's finalizers released), and the number of
// goroutines.
func Memory() (heap, stack uint64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapInuse, ms.StackInuse, runtime.NumGoroutine()
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of samples by the
// nearest-rank method, sorting samples in place.
func Percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	slices.Sort(samples)
	rank := int(p/100*float64(len(samples))+0.999999) - 1
	rank = min(max(rank, 0), len(samples)-1)
	return samples[rank]
}

// Micros converts a duration to microseconds as a float.
func Micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }

// BulkMetrics fills W1's figures from a span that moved n bytes.
func BulkMetrics(sp Span, n int64) Metrics {
	gib := float64(n) / (1 << 30)
	return Metrics{
		MetricGbps:          float64(n) * 8 / sp.Wall.Seconds() / 1e9,
		MetricCPUPerGiB:     sp.CPU.Seconds() / gib,
		MetricMallocsPerMiB: float64(sp.Mallocs) / (float64(n) / (1 << 20)),
		MetricSeconds:       sp.Wall.Seconds(),
	}
}

// ConnMetrics fills W2's figures from a span of n lifecycles and their durations.
func ConnMetrics(sp Span, lat []time.Duration) Metrics {
	n := float64(len(lat))
	stalls := 0
	for _, d := range lat {
		if d > 100*time.Millisecond {
			stalls++
		}
	}
	return Metrics{
		MetricStalls:         float64(stalls),
		MetricMaxLifecycle:   Micros(Percentile(lat, 100)),
		MetricConnPerSec:     n / sp.Wall.Seconds(),
		MetricCPUPerConn:     Micros(sp.CPU) / n,
		MetricMallocsPerConn: float64(sp.Mallocs) / n,
		MetricP50Lifecycle:   Micros(Percentile(lat, 50)),
		MetricP99Lifecycle:   Micros(Percentile(lat, 99)),
		MetricSeconds:        sp.Wall.Seconds(),
	}
}

// IdleMetrics fills W3's figures from the memory before and after n pairs.
func IdleMetrics(heap0, stack0 uint64, g0 int, heap1, stack1 uint64, g1, n int) Metrics {
	dh := float64(int64(heap1) - int64(heap0))
	ds := float64(int64(stack1) - int64(stack0))
	return Metrics{
		MetricBytesPerPair:      (dh + ds) / float64(n),
		MetricHeapPerPair:       dh / float64(n),
		MetricStackPerPair:      ds / float64(n),
		MetricGoroutinesPerConn: float64(g1-g0) / float64(n),
	}
}

// PingMetrics fills W4's figures from the round trips of a span.
func PingMetrics(sp Span, rtt []time.Duration) Metrics {
	return Metrics{
		MetricMedianRTT:  Micros(Percentile(rtt, 50)),
		MetricP99RTT:     Micros(Percentile(rtt, 99)),
		MetricMallocsRTT: float64(sp.Mallocs) / float64(len(rtt)),
		MetricSeconds:    sp.Wall.Seconds(),
	}
}
