package linuxconf

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tcpeng/tcpeng/internal/pktscript"
)

// Sysctl is one per-namespace kernel setting: a path under /proc/sys and its
// value.
type Sysctl struct {
	Key   string // "net/ipv4/tcp_timestamps"
	Value string
}

// KernelConfig is how the Linux side of a script is configured: what the
// runner writes to the namespace's sysctls, the route to the peer's
// attributes, the socket options of every socket it makes, and what of the
// script's configuration Linux cannot mirror.
type KernelConfig struct {
	Sysctls []Sysctl
	MTU     int // the TUN device's MTU; the kernel's MSS is MTU-40

	// RouteAttrs are `ip route` attributes of the route to the peer
	// ("quickack 1"); empty: the plain route.
	RouteAttrs []string

	// RcvBuf and SndBuf are SO_RCVBUF and SO_SNDBUF for every socket the
	// runner makes, set before listen or connect (0: not set, the
	// tcp_rmem/tcp_wmem defaults apply). Linux doubles the value and counts
	// its own overhead in it (socket(7)). RcvBuf also sets TCP_WINDOW_CLAMP,
	// so that the window Linux offers is at most RcvBuf bytes, as tcpeng's
	// (Config.RecvBuffer bounds the window).
	RcvBuf, SndBuf int
	// Backlog is the listen backlog when a listen line names none.
	Backlog int
	// Keepalive are TCP_KEEPIDLE, TCP_KEEPINTVL (seconds) and TCP_KEEPCNT,
	// set with SO_KEEPALIVE by "setopt keepalive 1".
	KeepIdle, KeepIntvl, KeepCnt int

	// Unmapped lists the config settings Linux cannot mirror, with why.
	Unmapped []string
}

// baseSysctls configure a namespace's TCP like tcpeng's defaults
// (engine.Config): the features tcpeng does not have are off, the limits and
// timers it has are set to its values. Script config lines override some of
// them (see Configure).
var baseSysctls = []Sysctl{
	{"net/ipv4/tcp_timestamps", "0"},              // scripts run without timestamps unless "config timestamps on" (RFC 7323 §3)
	{"net/ipv4/tcp_sack", "1"},                    // RFC 2018, on in tcpeng (Config.NoSACK false)
	{"net/ipv4/tcp_dsack", "0"},                   // tcpeng sends no D-SACK blocks (RFC 2883)
	{"net/ipv4/tcp_window_scaling", "1"},          // RFC 7323, on unless "config window-scale off"
	{"net/ipv4/tcp_ecn", "0"},                     // tcpeng does not do ECN (RFC 3168)
	{"net/ipv4/tcp_congestion_control", "reno"},   // RFC 5681 with NewReno/RFC 6675 recovery, not CUBIC or BBR
	{"net/ipv4/tcp_early_retrans", "0"},           // no tail loss probe
	{"net/ipv4/tcp_recovery", "0"},                // no RACK: duplicate-ACK threshold loss detection
	{"net/ipv4/tcp_frto", "0"},                    // no F-RTO (RFC 5682)
	{"net/ipv4/tcp_comp_sack_nr", "0"},            // one ACK per out-of-order segment, no SACK compression
	{"net/ipv4/tcp_invalid_ratelimit", "0"},       // no rate limit on ACKs to unacceptable segments
	{"net/ipv4/tcp_syncookies", "0"},              // tcpeng drops SYNs past the backlog
	{"net/ipv4/tcp_syn_linear_timeouts", "0"},     // RFC 6298 §5.5 doubling from the first SYN retransmission
	{"net/ipv4/tcp_slow_start_after_idle", "0"},   // tcpeng keeps cwnd over idle periods
	{"net/ipv4/tcp_autocorking", "0"},             // only Nagle holds small segments
	{"net/ipv4/tcp_no_metrics_save", "1"},         // no RTT or ssthresh carried between connections
	{"net/ipv4/tcp_moderate_rcvbuf", "0"},         // a fixed receive buffer, as tcpeng's
	{"net/ipv4/tcp_rmem", "4096 1048576 1048576"}, // Config.RecvBuffer: 1 MiB (window scale 5)
	{"net/ipv4/tcp_wmem", "4096 1048576 1048576"}, // Config.SendBuffer: 1 MiB
	{"net/ipv4/tcp_rto_min_us", "200000"},         // Config.MinRTO 200 ms
	{"net/ipv4/tcp_rto_max_ms", "60000"},          // Config.MaxRTO 60 s (Linux's default is 120 s)
	{"net/ipv4/tcp_syn_retries", "6"},             // Config.SynRetries 6
	{"net/ipv4/tcp_synack_retries", "6"},          // the same count for SYN-ACKs (Linux's default is 5)
	{"net/ipv4/tcp_retries2", "15"},               // Config.MaxRetries 15
	{"net/ipv4/tcp_orphan_retries", "15"},         // the same after close() (Linux's default is 8)
	{"net/ipv4/tcp_fin_timeout", "60"},            // Config.FinWait2Timeout 60 s
	{"net/ipv4/tcp_keepalive_time", "7200"},       // Config.KeepaliveIdle 2 h
	{"net/ipv4/tcp_keepalive_intvl", "75"},        // Config.KeepaliveInterval 75 s
	{"net/ipv4/tcp_keepalive_probes", "9"},        // Config.KeepaliveCount 9
}

// setSysctl replaces or appends a setting.
func (k *KernelConfig) setSysctl(key, value string) {
	for i := range k.Sysctls {
		if k.Sysctls[i].Key == key {
			k.Sysctls[i].Value = value
			return
		}
	}
	k.Sysctls = append(k.Sysctls, Sysctl{key, value})
}

// seconds rounds a duration up to whole seconds (at least 1), the unit of
// the keepalive and FIN-WAIT-2 sysctls.
func seconds(d time.Duration) int {
	return max(1, int((d+time.Second-1)/time.Second))
}

// Configure maps a script's config lines onto the kernel. Keys Linux cannot
// mirror are listed in Unmapped; the script still runs, and the lines that
// depend on them show the difference.
func Configure(s *pktscript.Script) (KernelConfig, error) {
	k := KernelConfig{MTU: 1500, Backlog: 128, KeepIdle: 7200, KeepIntvl: 75, KeepCnt: 9}
	k.Sysctls = append(k.Sysctls, baseSysctls...)
	for _, set := range s.Config {
		v := set.Value
		num := func() (int, error) {
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return 0, fmt.Errorf("%s: config %s %q: expected a whole number", set.Pos, set.Key, v)
			}
			return n, nil
		}
		dur := func() (time.Duration, error) {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return 0, fmt.Errorf("%s: config %s %q: expected a duration", set.Pos, set.Key, v)
			}
			return d, nil
		}
		unmapped := func(why string) { k.Unmapped = append(k.Unmapped, set.Key+" "+v+": "+why) }
		var err error
		var n int
		var d time.Duration
		switch set.Key {
		case "mtu", "rcvbuf", "sndbuf", "backlog":
			field := map[string]*int{"mtu": &k.MTU, "rcvbuf": &k.RcvBuf, "sndbuf": &k.SndBuf, "backlog": &k.Backlog}[set.Key]
			if n, err = num(); err == nil {
				*field = n
			}
		case "min-rto":
			if d, err = dur(); err == nil {
				k.setSysctl("net/ipv4/tcp_rto_min_us", strconv.FormatInt(d.Microseconds(), 10))
			}
		case "max-rto":
			if d, err = dur(); err == nil {
				// The sysctl takes 1000 to 120000 ms.
				ms := min(max(d.Milliseconds(), 1000), 120000)
				k.setSysctl("net/ipv4/tcp_rto_max_ms", strconv.FormatInt(ms, 10))
				if time.Duration(ms)*time.Millisecond != d {
					unmapped(fmt.Sprintf("tcp_rto_max_ms takes 1 s to 120 s; set to %d ms", ms))
				}
			}
		case "syn-retries":
			if n, err = num(); err == nil {
				k.setSysctl("net/ipv4/tcp_syn_retries", strconv.Itoa(n))
				k.setSysctl("net/ipv4/tcp_synack_retries", strconv.Itoa(n))
			}
		case "max-retries":
			if n, err = num(); err == nil {
				// Linux turns tcp_retries2 into a time budget (as if the RTO
				// started at 200 ms and doubled), not a count.
				k.setSysctl("net/ipv4/tcp_retries2", strconv.Itoa(n))
				k.setSysctl("net/ipv4/tcp_orphan_retries", strconv.Itoa(n))
			}
		case "fin-wait2-timeout":
			if d, err = dur(); err == nil {
				k.setSysctl("net/ipv4/tcp_fin_timeout", strconv.Itoa(seconds(d)))
				if d%time.Second != 0 {
					unmapped("tcp_fin_timeout counts whole seconds")
				}
			}
		case "keepalive-idle", "keepalive-interval":
			if d, err = dur(); err == nil {
				sec := seconds(d)
				if set.Key == "keepalive-idle" {
					k.KeepIdle = sec
					k.setSysctl("net/ipv4/tcp_keepalive_time", strconv.Itoa(sec))
				} else {
					k.KeepIntvl = sec
					k.setSysctl("net/ipv4/tcp_keepalive_intvl", strconv.Itoa(sec))
				}
				if d%time.Second != 0 {
					unmapped("Linux's keepalive timers count whole seconds")
				}
			}
		case "keepalive-count":
			if n, err = num(); err == nil {
				k.KeepCnt = n
				k.setSysctl("net/ipv4/tcp_keepalive_probes", strconv.Itoa(n))
			}
		case "window-scale":
			on := "1"
			if v == "off" {
				on = "0"
			}
			k.setSysctl("net/ipv4/tcp_window_scaling", on)
		case "timestamps":
			on := "0"
			if v == "on" {
				on = "1"
			}
			k.setSysctl("net/ipv4/tcp_timestamps", on)
		case "delayed-ack":
			if v == "off" {
				// RTAX_QUICKACK: every segment is acknowledged at once, for good.
				k.RouteAttrs = append(k.RouteAttrs, "quickack", "1")
			} else {
				unmapped("Linux's delayed-ACK timer adapts between 40 and 200 ms; no setting fixes it")
			}
		case "msl":
			unmapped("Linux's TIME_WAIT is a fixed 60 s (TCP_TIMEWAIT_LEN)")
		case "initial-rto":
			unmapped("Linux's initial RTO is a fixed 1 s (TCP_TIMEOUT_INIT)")
		case "max-conns":
			unmapped("no per-namespace connection limit")
		case "max-out-of-order":
			unmapped("Linux bounds out-of-order data by memory, not by ranges")
		case "seed":
			// tcpeng's random choices only; nothing to mirror.
		default:
			return k, fmt.Errorf("%s: config key %q has no Linux mapping in internal/linuxconf: add it to Configure", set.Pos, set.Key)
		}
		if err != nil {
			return k, err
		}
	}
	return k, nil
}

// String lists the settings that differ from a fresh namespace's defaults, in
// one line per group, for reports.
func (k KernelConfig) String() string {
	var parts []string
	for _, s := range k.Sysctls {
		parts = append(parts, strings.TrimPrefix(strings.ReplaceAll(s.Key, "/", "."), "net.ipv4.")+"="+s.Value)
	}
	sort.Strings(parts)
	out := "sysctl " + strings.Join(parts, " ")
	if k.MTU != 1500 {
		out += "; mtu " + strconv.Itoa(k.MTU)
	}
	if len(k.RouteAttrs) > 0 {
		out += "; route " + strings.Join(k.RouteAttrs, " ")
	}
	if k.RcvBuf != 0 {
		out += "; SO_RCVBUF and TCP_WINDOW_CLAMP " + strconv.Itoa(k.RcvBuf)
	}
	if k.SndBuf != 0 {
		out += "; SO_SNDBUF " + strconv.Itoa(k.SndBuf)
	}
	return out
}
