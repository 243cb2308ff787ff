// Package app is the scripted application that host/pipe and host/sim run on
// their engines, generic in the handle H (their Host) through which it issues
// commands.
package app

import "github.com/tcpeng/tcpeng/engine"

// App scripts one engine. Its driver calls Start once, before the first Step;
// after each Step of the engine it calls Result for each command the Step ran
// (in order), then Event for each event. Commands issued through the handle
// run at the engine's next Step, at the same virtual instant.
type App[H any] interface {
	Start(h H)
	// Result answers a command the App issued. c points into the driver's
	// memory and is valid only during the call; c.Data is the App's own slice
	// (for OpRead, filled with r.N bytes).
	Result(h H, c *engine.Command, r engine.Result)
	Event(h H, ev engine.Event)
}

// Funcs adapts functions to an App; nil fields do nothing.
type Funcs[H any] struct {
	OnStart  func(h H)
	OnResult func(h H, c *engine.Command, r engine.Result)
	OnEvent  func(h H, ev engine.Event)
}

// Start calls OnStart.
func (f Funcs[H]) Start(h H) {
	if f.OnStart != nil {
		f.OnStart(h)
	}
}

// Result calls OnResult.
func (f Funcs[H]) Result(h H, c *engine.Command, r engine.Result) {
	if f.OnResult != nil {
		f.OnResult(h, c, r)
	}
}

// Event calls OnEvent.
func (f Funcs[H]) Event(h H, ev engine.Event) {
	if f.OnEvent != nil {
		f.OnEvent(h, ev)
	}
}
