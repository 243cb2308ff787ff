package main

import (
	"sort"
	"strings"

	"github.com/tcpeng/tcpeng/engine"
)

// engineKind makes engines of one implementation from a Config. Every kind
// drives the same narrow waist (engine.Engine), so the demo and the pipe do not
// care which one runs.
type engineKind struct {
	about string
	new   func(cfg engine.Config) (engine.Engine, error)
}

// engineKinds are the engines --engine chooses from. The WebAssembly engine
// registers here as "wasm" (wasmengine.go).
var engineKinds = map[string]engineKind{
	"native": {
		about: "the Go engine built into this program",
		new: func(cfg engine.Config) (engine.Engine, error) {
			s, err := engine.New(cfg)
			if err != nil {
				return nil, err
			}
			return s, nil
		},
	},
}

// engineHelp describes each kind, for -h.
func engineHelp() string {
	var b []string
	for _, n := range strings.Split(engineNames(), ", ") {
		b = append(b, n+" ("+engineKinds[n].about+")")
	}
	return strings.Join(b, "; ")
}

// engineNames lists the kinds, sorted, for help and errors.
func engineNames() string {
	var names []string
	for n := range engineKinds {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}
