// Package linuxconf plays the packet scripts of internal/pktscript against
// the Linux kernel, and compares the result with tcpeng's: the differential
// conformance test of issue 4. TestLinuxDifferential runs every script on
// both and prints a table (script, rule, Linux, tcpeng, verdict), with
// -linuxconf.write into RESULTS.md.
//
// # The model
//
// Each script runs in a fresh network namespace (made from a parent namespace
// whose net.ipv4.tcp_child_ehash_entries gives it a small TCP hash of its own,
// so that sock_diag dumps are cheap). In it a TUN device (host/tun) carries
// the peer: the kernel owns the script's local address, the route to the
// remote address goes through the device. The runner writes the segments the
// script injects (built by pktscript.Peer) to the device at their script
// times, in real time, and reads what the kernel sends. Socket calls become
// system calls on non-blocking sockets made in the namespace: listen (bind,
// listen), connect (bind, connect), accept, write (send with MSG_NOSIGNAL),
// read (recv; 0 is end of file), shutdown (SHUT_WR), close, abort (SO_LINGER
// 0, then close), setopt (TCP_NODELAY, SO_KEEPALIVE with TCP_KEEPIDLE,
// TCP_KEEPINTVL and TCP_KEEPCNT, SO_SNDBUF, SO_RCVBUF), close-listener.
// Every socket has SO_REUSEADDR, so that a closed connection's port does not
// block the next listen or connect on it (tcpeng frees it at once).
//
// # The kernel's configuration
//
// Configure sets the namespace's sysctls to tcpeng's defaults (engine.Config):
// no timestamps, no D-SACK, no ECN, Reno congestion control, no tail loss
// probe, no RACK, no F-RTO, no SACK compression, no rate limit on ACKs to
// unacceptable segments, no SYN cookies, exponential SYN backoff from the
// first retransmission, no slow start after idle, no autocorking, no cached
// metrics, 1 MiB buffers, RTO from 200 ms to 60 s, 6 SYN and SYN-ACK
// retries, 15 retries, FIN-WAIT-2 and keepalive timers as tcpeng's. A
// script's config lines override them where Linux has a setting: min-rto
// (tcp_rto_min_us), max-rto (tcp_rto_max_ms), syn-retries (tcp_syn_retries
// and tcp_synack_retries), max-retries (tcp_retries2 and
// tcp_orphan_retries), fin-wait2-timeout, keepalive-*, window-scale, mtu
// (the device's MTU), rcvbuf (SO_RCVBUF and TCP_WINDOW_CLAMP), sndbuf
// (SO_SNDBUF), backlog, and delayed-ack off (the route's quickack attribute,
// set with iproute2's ip). Linux has nothing for msl (TIME_WAIT is 60 s),
// initial-rto (1 s), delayed-ack with a time, max-conns and
// max-out-of-order: the run notes them, and the lines that depend on them
// show the difference. net.core.rmem_max is not per namespace, so Linux
// offers window scale 7 where tcpeng offers 5.
//
// # Normalization
//
// Sequence and acknowledgment numbers are relative to the kernel's initial
// sequence number, learned from its SYN or SYN-ACK, and ports are the
// script's (pktscript.Peer does both). Beyond that the runner compares what
// pktscript's matcher compares, with these exceptions, each a documented
// difference of policy rather than of protocol:
//
//   - PSH on a segment that carries data is not compared (RFC 9293 §3.9.1
//     leaves it to the sender; Linux sets it at the end of each GSO burst).
//   - Quick ACKs: a pure ACK that acknowledges exactly the peer's data
//     segment written at most 20 ms before, where the script has no ACK
//     (tcpeng delays it or lets data carry it), is Linux's quick-ACK mode at
//     the start of a connection (tcp_incr_quickack). The runner skips it and
//     records it as a timing difference. It skips one only where it would
//     otherwise fail the script, and takes it back if the expected segment
//     never comes.
//   - Errors are sticky: tcpeng reports a connection's failure to every later
//     call, Linux to the first (SO_ERROR, or the call's errno) and then says
//     EPIPE, ENOTCONN or end of file. The runner keeps the first error of
//     each socket and reports it for those. SO_ERROR EPIPE (Linux's error for
//     a reset in CLOSE-WAIT) counts as a reset.
//   - Errno values map to the script's error names: EAGAIN wouldblock, EPIPE
//     closed, ENOTCONN notconn, ECONNREFUSED refused, ECONNRESET reset,
//     ETIMEDOUT timedout, ECONNABORTED aborted, EADDRINUSE addrinuse,
//     EADDRNOTAVAIL addrnotavail, EHOSTUNREACH unreachable, EBADF noconn,
//     ENOBUFS limit; a call on a socket the script closed is noconn.
//
// # Time
//
// Script time 0 is the start of the run. An expectation is met in time if
// it comes within Base (10 ms) plus Frac (2%) of the interval since the
// previous, earlier line either way, plus LateFrac (12.5%) of that interval
// late: Linux's timers run on jiffies (4 ms at HZ=250), and its timer wheel
// fires a far timer up to an eighth of its length late. Lines at the same
// time share the tolerance of the first. A segment or event outside the
// tolerance is a timing difference, reported apart from content
// differences; the runner waits for a late one up to half the interval (at
// least 300 ms) past the tolerance before it calls it missing. When the
// runner itself is late for an action (it waited for a late segment, or the
// host stalled it), the script's clock moves by the delay. A segment the
// kernel sent just before a call or a quiet period that the next
// expectations want is early, not unexpected.
//
// # Events
//
// The runner samples every 2 ms: poll(2) on the sockets the application
// holds, and a sock_diag dump of the namespace's TCP sockets, which sees
// connections before accept (request sockets), after close (orphans,
// TIME_WAIT) and their states. connected is POLLOUT on a connecting socket;
// acceptable is POLLIN rising on the listener; readable POLLIN rising;
// peer-closed POLLRDHUP rising without POLLERR; writable POLLOUT rising after
// it was clear; reset and error come from SO_ERROR when POLLERR shows
// (ECONNRESET and EPIPE reset, ECONNREFUSED refused, ETIMEDOUT timedout);
// state FROM->TO is a change of the flow's state between two samples, and
// closed is the flow's socket disappearing. A change faster than the sampling
// interval shows as a jump; an expected transition matches a jump that a
// path of at most three legal transitions explains (SYN_RCVD->CLOSE_WAIT
// shows both SYN_RCVD->ESTABLISHED and ESTABLISHED->CLOSE_WAIT).
//
// Policy for events Linux cannot show: an event that needs a descriptor
// (connected, readable, writable, peer-closed, reset, error) on a flow the
// application holds no socket for (not accepted yet, or closed) cannot be
// asked of the kernel. The runner skips such a line and lists it in
// Result.Unobservable and the report; it does not count as a difference. The
// engine's fault event has no kernel counterpart and is skipped the same way.
//
// # Real time and the verdict
//
// A script that needs more real time than the budget (65 s by default) is
// skipped; a trailing quiet period ("> none until T" at the end) is checked
// for at most 3 s. Scripts run a few at a time, the longest first. One that
// does not pass and needs at most 10 s runs again and the better run counts
// (the second tells a stall of the host from a difference; the report notes
// when the runs disagreed). See Decide for the verdicts.
package linuxconf
