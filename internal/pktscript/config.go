package pktscript

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tcpeng/tcpeng/engine"
)

// configKey maps one "config" key onto engine.Config.
type configKey struct {
	kind  byte // 'i' integer, 'd' duration, 'b' on/off, 'a' duration or "off"
	apply func(c *engine.Config, i int, d time.Duration, b bool)
	doc   string
}

// configKeys lists every key of the "config" directive, with the engine.Config
// field it sets. The Linux runner maps the same keys onto sysctls, socket
// options and route attributes where Linux has them.
var configTable = map[string]configKey{
	"mtu":                {'i', func(c *engine.Config, i int, _ time.Duration, _ bool) { c.MTU = i }, "MTU (bytes); the MSS offered is MTU-40"},
	"sndbuf":             {'i', func(c *engine.Config, i int, _ time.Duration, _ bool) { c.SendBuffer = i }, "SendBuffer (bytes)"},
	"rcvbuf":             {'i', func(c *engine.Config, i int, _ time.Duration, _ bool) { c.RecvBuffer = i }, "RecvBuffer (bytes)"},
	"backlog":            {'i', func(c *engine.Config, i int, _ time.Duration, _ bool) { c.Backlog = i }, "Backlog, the default listen backlog"},
	"max-conns":          {'i', func(c *engine.Config, i int, _ time.Duration, _ bool) { c.MaxConns = i }, "MaxConns"},
	"msl":                {'d', func(c *engine.Config, _ int, d time.Duration, _ bool) { c.MSL = engine.Duration(d) }, "MSL; TIME_WAIT lasts 2×MSL"},
	"initial-rto":        {'d', func(c *engine.Config, _ int, d time.Duration, _ bool) { c.InitialRTO = engine.Duration(d) }, "InitialRTO"},
	"min-rto":            {'d', func(c *engine.Config, _ int, d time.Duration, _ bool) { c.MinRTO = engine.Duration(d) }, "MinRTO"},
	"max-rto":            {'d', func(c *engine.Config, _ int, d time.Duration, _ bool) { c.MaxRTO = engine.Duration(d) }, "MaxRTO"},
	"delayed-ack":        {'a', func(c *engine.Config, _ int, d time.Duration, _ bool) { c.DelayedAck = engine.Duration(d) }, "DelayedAck, or off"},
	"keepalive-idle":     {'d', func(c *engine.Config, _ int, d time.Duration, _ bool) { c.KeepaliveIdle = engine.Duration(d) }, "KeepaliveIdle"},
	"keepalive-interval": {'d', func(c *engine.Config, _ int, d time.Duration, _ bool) { c.KeepaliveInterval = engine.Duration(d) }, "KeepaliveInterval"},
	"keepalive-count":    {'i', func(c *engine.Config, i int, _ time.Duration, _ bool) { c.KeepaliveCount = i }, "KeepaliveCount"},
	"max-retries":        {'i', func(c *engine.Config, i int, _ time.Duration, _ bool) { c.MaxRetries = i }, "MaxRetries (R2)"},
	"syn-retries":        {'i', func(c *engine.Config, i int, _ time.Duration, _ bool) { c.SynRetries = i }, "SynRetries"},
	"fin-wait2-timeout":  {'d', func(c *engine.Config, _ int, d time.Duration, _ bool) { c.FinWait2Timeout = engine.Duration(d) }, "FinWait2Timeout"},
	"window-scale":       {'b', func(c *engine.Config, _ int, _ time.Duration, b bool) { c.NoWindowScale = !b }, "on|off (NoWindowScale)"},
	"timestamps":         {'b', func(c *engine.Config, _ int, _ time.Duration, b bool) { c.NoTimestamps = !b }, "on|off (NoTimestamps); off unless a script turns it on"},
	"max-out-of-order":   {'i', func(c *engine.Config, i int, _ time.Duration, _ bool) { c.MaxOutOfOrder = i }, "MaxOutOfOrder"},
	"seed":               {'i', func(c *engine.Config, i int, _ time.Duration, _ bool) { c.Seed = uint64(i) }, "Seed"},
}

func configKeys() string {
	keys := make([]string, 0, len(configTable))
	for k := range configTable {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return strings.Join(keys, " ")
}

// ConfigKeys returns the "config" keys with what each sets, sorted.
func ConfigKeys() map[string]string {
	m := make(map[string]string, len(configTable))
	for k, v := range configTable {
		m[k] = v.doc
	}
	return m
}

// apply sets the engine.Config field of the setting.
func (s Setting) apply(c *engine.Config) error {
	k, ok := configTable[s.Key]
	if !ok {
		return fmt.Errorf("unknown config key %q: expected one of %s", s.Key, configKeys())
	}
	switch k.kind {
	case 'i':
		v, err := strconv.Atoi(s.Value)
		if err != nil || v < 0 || v > 1<<30 {
			return fmt.Errorf("config %s %q: expected a whole number from 0 to %d", s.Key, s.Value, 1<<30)
		}
		k.apply(c, v, 0, false)
	case 'd', 'a':
		if k.kind == 'a' && s.Value == "off" {
			k.apply(c, 0, -1, false)
			return nil
		}
		d, err := time.ParseDuration(s.Value)
		if err != nil || d <= 0 || d > MaxTime {
			alt := ""
			if k.kind == 'a' {
				alt = ", or off"
			}
			return fmt.Errorf("config %s %q: expected a positive duration such as 200ms or 30s%s", s.Key, s.Value, alt)
		}
		k.apply(c, 0, d, false)
	case 'b':
		if s.Value != "on" && s.Value != "off" {
			return fmt.Errorf("config %s %q: expected on or off", s.Key, s.Value)
		}
		k.apply(c, 0, 0, s.Value == "on")
	}
	return nil
}

// EngineConfig returns the engine configuration the script asks for: the local
// address, seed 1, state tracing on, and the config directives applied in order
// over engine.Config's defaults.
func (s *Script) EngineConfig() (engine.Config, error) {
	// Timestamps (RFC 7323) are off unless the script turns them on: most
	// scripts write their options without them.
	c := engine.Config{Addrs: []netip.Addr{s.Local.Addr()}, Seed: 1, TraceStates: true, NoTimestamps: true}
	for _, set := range s.Config {
		if err := set.apply(&c); err != nil {
			return c, &Error{Pos: set.Pos, Msg: err.Error()}
		}
	}
	return c, nil
}
