package wazero

import "github.com/tcpeng/tcpeng/engine"

// translator maps the IDs of the application to those of the guest's engine
// once the engine has been restarted. A new engine hands out IDs from the
// start again, so without it an ID the application still holds (reported
// aborted, not yet closed) could come back naming a new connection. Before the
// first restart IDs pass unchanged and no translator exists.
//
// Every table is bounded: dead by the IDs held at the restarts, toGuest by the
// IDs the application holds, toApp by those and the guest's connections still
// closing.
type translator struct {
	dead    map[engine.ConnID]struct{}      // application IDs of a lost engine, not yet closed
	toGuest map[engine.ConnID]engine.ConnID // application ID -> guest ID
	toApp   map[engine.ConnID]appEntry      // guest ID -> application ID
	next    engine.ConnID                   // the last application ID handed out
}

// appEntry is the application's side of a guest ID.
type appEntry struct {
	id     engine.ConnID
	closed bool // EventClosed was reported
}

func newTranslator() *translator {
	return &translator{
		dead:    map[engine.ConnID]struct{}{},
		toGuest: map[engine.ConnID]engine.ConnID{},
		toApp:   map[engine.ConnID]appEntry{},
	}
}

// reset forgets the guest's IDs (its engine was replaced); dead IDs stay.
func (t *translator) reset() {
	clear(t.toGuest)
	clear(t.toApp)
}

// toGuestID returns the guest ID for the application's id, or the result to
// answer locally: an ID of a lost engine can only be closed (OK); any other
// command on it gets ErrAborted, and an unknown ID ErrNoConn.
func (t *translator) toGuestID(op engine.Op, id engine.ConnID) (engine.ConnID, engine.Result, bool) {
	if _, ok := t.dead[id]; ok {
		if op == engine.OpClose || op == engine.OpAbort {
			delete(t.dead, id)
			return 0, engine.Result{}, false
		}
		return 0, engine.Result{Err: engine.ErrAborted}, false
	}
	if g, ok := t.toGuest[id]; ok {
		return g, engine.Result{}, true
	}
	return 0, engine.Result{Err: engine.ErrNoConn}, false
}

// newID gives a new guest ID an application ID that no ID in use has.
func (t *translator) newID(g engine.ConnID) engine.ConnID {
	if old, ok := t.toApp[g]; ok { // the guest reused an ID whose end we missed
		delete(t.toGuest, old.id)
	}
	id := t.newUnmapped()
	t.toGuest[id] = g
	t.toApp[g] = appEntry{id: id}
	return id
}

// appID returns the application ID of a guest ID an event names.
func (t *translator) appID(g engine.ConnID) engine.ConnID {
	if e, ok := t.toApp[g]; ok {
		return e.id
	}
	// An ID the application never saw (cannot happen with the engine's event
	// rules): give it one that names nothing of the application's.
	return t.newUnmapped()
}

func (t *translator) newUnmapped() engine.ConnID {
	for {
		t.next++
		id := t.next
		if id == 0 {
			continue
		}
		if _, ok := t.dead[id]; ok {
			continue
		}
		if _, ok := t.toGuest[id]; ok {
			continue
		}
		return id
	}
}

// closed records that guest ID g reached CLOSED: once released it is gone.
func (t *translator) closed(g engine.ConnID) {
	e, ok := t.toApp[g]
	if !ok {
		return
	}
	if _, held := t.toGuest[e.id]; held {
		e.closed = true
		t.toApp[g] = e
		return
	}
	delete(t.toApp, g)
}

// release records that the application closed or aborted its ID. A listener
// is gone at once; a connection may still report EventClosed.
func (t *translator) release(id engine.ConnID, listener bool) {
	g, ok := t.toGuest[id]
	if !ok {
		return
	}
	delete(t.toGuest, id)
	if listener || t.toApp[g].closed {
		delete(t.toApp, g)
	}
}
