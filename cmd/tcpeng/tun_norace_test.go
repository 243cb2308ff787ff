//go:build !race

package main

const (
	defaultEchoBytes = 100 << 20
	defaultLossBytes = 100 << 20
	defaultIperf     = 256 << 20
)
