// Package engine is tcpeng's sans-I/O TCP/IP stack. It consumes raw frames and the
// current time and produces frames, socket events and its next deadline; it never
// reads a clock, opens a socket, starts a goroutine or makes a system call.
package engine
