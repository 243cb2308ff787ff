package tcp

import (
	"math/bits"

	"github.com/tcpeng/tcpeng/engine/wire"
)

// ChunkSize is the unit in which connection buffers hold bytes. A connection's
// send and receive buffers take chunks from the stack's Pool when bytes arrive
// and give them back as soon as the bytes are consumed, so an idle connection
// holds no buffer memory however large its configured buffers are.
const ChunkSize = 16 << 10

type chunk [ChunkSize]byte

// Pool is a bounded free list of chunks, and of the chunk tables of rings,
// shared by the connections of one stack. It is not safe for concurrent use
// (nothing in the engine is).
type Pool struct {
	free   []*chunk
	max    int
	tables [tableSizes]tableList // free chunk tables, by length
	ntab   int                   // tables held

	// Allocated counts chunks taken from the Go heap (the pool was empty).
	Allocated uint64
}

// tableSizes bounds the distinct table lengths the pool keeps: a stack's
// connections mostly share two buffer sizes (send and receive), so a few lists
// searched in order beat a map (a lookup in a small map[int] takes 23 ns in
// WebAssembly under wazero and 3 ns natively; this scan 7 ns and 1 ns).
// Tables of other lengths go to the garbage collector.
const tableSizes = 4

// tableList is the free tables of one length.
type tableList struct {
	n    int // the tables' length; 0: the list is unused
	list [][]*chunk
}

// NewPool returns a pool that keeps up to maxFree unused chunks, and as many
// chunk tables, for reuse; what is returned beyond that is left to the garbage
// collector.
func NewPool(maxFree int) *Pool { return &Pool{max: maxFree} }

// getTable returns an all-nil chunk table of n slots.
func (p *Pool) getTable(n int) []*chunk {
	for i := range p.tables {
		if l := &p.tables[i]; l.n == n && len(l.list) > 0 {
			t := l.list[len(l.list)-1]
			l.list[len(l.list)-1] = nil
			l.list = l.list[:len(l.list)-1]
			p.ntab--
			return t
		}
	}
	return make([]*chunk, n)
}

// putTable keeps an all-nil chunk table for reuse.
func (p *Pool) putTable(t []*chunk) {
	if p.ntab >= p.max {
		return
	}
	var spare *tableList
	for i := range p.tables {
		l := &p.tables[i]
		if l.n == len(t) {
			spare = l
			break
		}
		if spare == nil && len(l.list) == 0 {
			spare = l // an unused list, or an empty one, takes a new length
		}
	}
	if spare == nil {
		return
	}
	if spare.n != len(t) {
		spare.n, spare.list = len(t), spare.list[:0]
	}
	spare.list = append(spare.list, t)
	p.ntab++
}

func (p *Pool) get() *chunk {
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free[n-1] = nil
		p.free = p.free[:n-1]
		return c
	}
	p.Allocated++
	return new(chunk)
}

func (p *Pool) put(c *chunk) {
	if len(p.free) < p.max {
		p.free = append(p.free, c)
	}
}

// Free returns the number of chunks held for reuse.
func (p *Pool) Free() int { return len(p.free) }

// ring is a byte window of fixed capacity over a sequence of chunks: logical
// offset 0 is the oldest byte still held (SND.UNA for the send buffer, RCV.NXT
// for the receive buffer), and bytes may be written at any offset below the
// capacity (the receive buffer writes out-of-order data ahead of offset 0).
// Chunks are taken on the first write into them and returned when consume
// moves past them or release is called.
type ring struct {
	slots []*chunk // a ring of chunk slots; nil until the first write
	head  int      // physical offset of logical offset 0, in [0, len(slots)*ChunkSize)
	cap   int      // logical capacity in bytes
}

// setCap sets the capacity. It may only be called while the ring holds nothing.
func (r *ring) setCap(n int) {
	r.cap = n
	if need := (n+ChunkSize-1)/ChunkSize + 1; len(r.slots) != need {
		r.slots = nil // taken again at the next write
		r.head = 0
	}
}

func (r *ring) size() int { return len(r.slots) * ChunkSize }

// write copies p to logical offset off. off+len(p) must not exceed the capacity.
func (r *ring) write(pool *Pool, off int, p []byte) {
	if len(p) == 0 {
		return
	}
	if r.slots == nil {
		r.slots = pool.getTable((r.cap+ChunkSize-1)/ChunkSize + 1)
	}
	pos := (r.head + off) % r.size()
	for len(p) > 0 {
		i, o := pos/ChunkSize, pos%ChunkSize
		c := r.slots[i]
		if c == nil {
			c = pool.get()
			r.slots[i] = c
		}
		n := copy(c[o:], p)
		p = p[n:]
		pos += n
		if pos == r.size() {
			pos = 0
		}
	}
}

// read copies len(p) bytes from logical offset off into p. The bytes must have
// been written.
func (r *ring) read(off int, p []byte) {
	pos := (r.head + off) % r.size()
	for len(p) > 0 {
		i, o := pos/ChunkSize, pos%ChunkSize
		n := copy(p, r.slots[i][o:])
		p = p[n:]
		pos += n
		if pos == r.size() {
			pos = 0
		}
	}
}

// readSum is read that also returns the one's-complement sum of the bytes
// (wire.Checksum(p, 0)), computed while copying.
func (r *ring) readSum(off int, p []byte) uint16 {
	pos := (r.head + off) % r.size()
	var sum uint16
	odd := false // the next piece starts at an odd offset of p
	for len(p) > 0 {
		i, o := pos/ChunkSize, pos%ChunkSize
		n, s := wire.CopyChecksum(p, r.slots[i][o:], 0)
		if odd {
			s = bits.ReverseBytes16(s) // RFC 1071 §2(B): byte order independence
		}
		sum = wire.ChecksumCombine(sum, s)
		odd = odd != (n%2 == 1)
		p = p[n:]
		pos += n
		if pos == r.size() {
			pos = 0
		}
	}
	return sum
}

// consume drops n bytes from the front, returning the chunks it moves past.
func (r *ring) consume(pool *Pool, n int) {
	if n == 0 {
		return
	}
	size := r.size()
	first := r.head / ChunkSize
	r.head = (r.head + n) % size
	last := r.head / ChunkSize
	for i := first; i != last; i = (i + 1) % len(r.slots) {
		if c := r.slots[i]; c != nil {
			pool.put(c)
			r.slots[i] = nil
		}
	}
}

// release returns every chunk and the chunk table; the ring must hold no bytes
// the caller needs. An idle connection holds no buffer memory at all.
func (r *ring) release(pool *Pool) {
	if r.slots == nil {
		return
	}
	for i, c := range r.slots {
		if c != nil {
			pool.put(c)
			r.slots[i] = nil
		}
	}
	pool.putTable(r.slots)
	r.slots = nil
	r.head = 0
}
