//go:build race

package main

// Under the race detector the engine runs about ten times slower: the
// kernel transfers shrink so the tests stay within minutes.
const (
	defaultEchoBytes = 8 << 20
	defaultLossBytes = 2 << 20
	defaultIperf     = 16 << 20
)
