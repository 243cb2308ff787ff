package host

// A Link carries raw frames (IP packets in TUN mode) between a Driver's engine
// and the world: a TUN device (host/tun), an in-memory pair (host/memlink), a
// simulated network. Its batch methods follow wireguard-go's TUN interface, so
// that a driver moves many frames per call.
//
// A Driver calls ReadBatch from one goroutine and WriteBatch from another; a
// Link must allow that. Close may be called from any goroutine.
type Link interface {
	// ReadBatch blocks until at least one frame arrives, puts up to len(bufs) frames into bufs
	// (each buffer at least MTU bytes), stores their lengths in sizes and returns how many.
	// It returns net.ErrClosed (or an error wrapping it) after Close.
	//
	// A link may exchange buffers instead of copying into them: after the call,
	// bufs[i] may be another buffer of the same length and capacity, and the link
	// keeps the one passed in. Callers read frames from bufs[i] after the call and
	// pass in only buffers they are done with (memlink does this; a TUN copies).
	ReadBatch(bufs [][]byte, sizes []int) (int, error)
	// WriteBatch sends frames; it does not retain them after it returns.
	WriteBatch(frames [][]byte) error
	// MTU returns the largest frame.
	MTU() int
	// Close releases the link; a ReadBatch blocked in another goroutine must return.
	Close() error
}
