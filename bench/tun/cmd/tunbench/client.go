package main

// The kernel clients: the benchmark starts its own binary as
// `tunbench client MODE ADDR N` inside the namespace, so every socket is the
// namespace's kernel's and no dial pays for entering the namespace. Each mode
// prints one JSON object (clientResult) on stdout.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strconv"
	"time"
)

// clientResult is what a client run measured.
type clientResult struct {
	Mode    string  `json:"mode"`
	Seconds float64 `json:"seconds"`         // the timed part
	Bytes   int64   `json:"bytes,omitempty"` // send, recv
	N       int     `json:"n,omitempty"`     // conns, rtt: iterations timed
	Gbps    float64 `json:"gbps,omitempty"`
	PerSec  float64 `json:"per_sec,omitempty"`
	P50us   float64 `json:"p50_us,omitempty"`
	P99us   float64 `json:"p99_us,omitempty"`
}

// Client modes.
const (
	modeSend      = "send"      // write N bytes to a discard server, half-close, wait for its close
	modeRecv      = "recv"      // read N bytes from a source (chargen), then close
	modeConns     = "conns"     // N sequential lifecycles: connect, write 1 byte, read 1 byte (echo), close
	modeConnClose = "connclose" // N sequential lifecycles: connect, close
	modeRTT       = "rtt"       // 64-byte echo round trips: 1000 warm-up, N timed
)

func clientMain(args []string) int {
	if len(args) != 3 {
		fmt.Fprintln(os.Stderr, "tunbench client: want MODE ADDR N")
		return 2
	}
	n, err := strconv.ParseInt(args[2], 10, 64)
	if err != nil || n <= 0 {
		fmt.Fprintf(os.Stderr, "tunbench client: bad N %q\n", args[2])
		return 2
	}
	r, err := runClient(args[0], args[1], n)
	if err != nil {
		fmt.Fprintf(os.Stderr, "tunbench client %s %s: %v\n", args[0], args[1], err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(r)
	return 0
}

// dial connects to addr; a limit other than 0 is the connection's deadline.
func dial(addr string, limit time.Duration) (*net.TCPConn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	if limit > 0 {
		c.SetDeadline(time.Now().Add(limit))
	}
	return c.(*net.TCPConn), nil
}

// bulk records a transfer of n bytes that started at start.
func (r *clientResult) bulk(start time.Time, n int64) {
	r.Seconds, r.Bytes = time.Since(start).Seconds(), n
	r.Gbps = float64(n) * 8 / r.Seconds / 1e9
}

func runClient(mode, addr string, n int64) (*clientResult, error) {
	r := &clientResult{Mode: mode}
	switch mode {
	case modeSend:
		c, err := dial(addr, 10*time.Minute)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		start := time.Now()
		for left := n; left > 0; {
			w, err := c.Write(buf[:min(int64(len(buf)), left)])
			if err != nil {
				return nil, err
			}
			left -= int64(w)
		}
		c.CloseWrite()
		// The server closes after reading our FIN, that is after the last byte.
		if _, err := io.Copy(io.Discard, c); err != nil {
			return nil, err
		}
		r.bulk(start, n)
	case modeRecv:
		c, err := dial(addr, 10*time.Minute)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		buf := make([]byte, 256<<10)
		var got int64
		var start time.Time
		for got < n {
			k, err := c.Read(buf[:min(int64(len(buf)), n-got)])
			if got == 0 && k > 0 {
				start = time.Now()
			}
			got += int64(k)
			if err != nil {
				return nil, fmt.Errorf("after %d bytes: %w", got, err)
			}
		}
		r.bulk(start, n)
	case modeConns, modeConnClose:
		b := []byte{'x'}
		lat := make([]time.Duration, 0, n)
		start := time.Now()
		for range n {
			t0 := time.Now()
			limit := time.Duration(0)
			if mode == modeConns {
				limit = 10 * time.Second
			}
			c, err := dial(addr, limit)
			if err != nil {
				return nil, err
			}
			if mode == modeConns {
				if _, err := c.Write(b); err != nil {
					c.Close()
					return nil, err
				}
				if _, err := io.ReadFull(c, b); err != nil {
					c.Close()
					return nil, err
				}
			}
			c.Close()
			lat = append(lat, time.Since(t0))
		}
		r.Seconds, r.N = time.Since(start).Seconds(), int(n)
		r.PerSec = float64(n) / r.Seconds
		r.P50us, r.P99us = percentiles(lat)
	case modeRTT:
		c, err := dial(addr, 10*time.Minute)
		if err != nil {
			return nil, err
		}
		defer c.Close()
		msg, back := make([]byte, 64), make([]byte, 64)
		for i := range msg {
			msg[i] = byte(i)
		}
		lat := make([]time.Duration, 0, n)
		start := time.Now()
		for i := range 1000 + n {
			t0 := time.Now()
			if _, err := c.Write(msg); err != nil {
				return nil, err
			}
			if _, err := io.ReadFull(c, back); err != nil {
				return nil, err
			}
			if i == 999 {
				start = time.Now()
			}
			if i >= 1000 {
				lat = append(lat, time.Since(t0))
			}
		}
		r.Seconds, r.N = time.Since(start).Seconds(), int(n)
		r.P50us, r.P99us = percentiles(lat)
	default:
		return nil, errors.New("unknown mode " + mode)
	}
	return r, nil
}

// percentiles returns the median and the 99th percentile in microseconds.
func percentiles(d []time.Duration) (p50, p99 float64) {
	if len(d) == 0 {
		return 0, 0
	}
	slices.Sort(d)
	at := func(q float64) float64 { return float64(d[int(q*float64(len(d)-1))]) / 1e3 }
	return at(0.5), at(0.99)
}
