package engine

import (
	"encoding/binary"
	"net/netip"

	"github.com/tcpeng/tcpeng/engine/internal/siphash"
)

// tuple is a connection's 4-tuple.
type tuple struct {
	local, remote netip.AddrPort
}

// connTable maps 4-tuples to slot indices: open addressing with linear probing
// over a power-of-two array, hashed with keyed SipHash so that a peer cannot
// choose tuples that collide. Lookups never scan more than the probe sequence,
// and the table grows (doubling) only when connections are added.
type connTable struct {
	key     siphash.Key
	entries []uint32 // slot index + 1; 0 empty; tombstone deleted
	used    int      // live entries
	dead    int      // tombstones
	last    uint32   // slot index + 1 of the last lookup hit: bulk flows skip the hash
}

const tombstone = ^uint32(0)

func (t *connTable) hash(tp *tuple) uint64 {
	var b [36]byte
	l, r := tp.local.Addr().As16(), tp.remote.Addr().As16()
	copy(b[0:16], l[:])
	copy(b[16:32], r[:])
	binary.LittleEndian.PutUint16(b[32:], tp.local.Port())
	binary.LittleEndian.PutUint16(b[34:], tp.remote.Port())
	return siphash.Sum64(t.key, b[:])
}

// lookup returns the slot index of tp, looking entries up with at.
func (t *connTable) lookup(tp *tuple, at func(uint32) *tuple) (uint32, bool) {
	if len(t.entries) == 0 {
		return 0, false
	}
	if t.last != 0 && *at(t.last - 1) == *tp {
		return t.last - 1, true
	}
	mask := uint64(len(t.entries) - 1)
	for i := t.hash(tp) & mask; ; i = (i + 1) & mask {
		e := t.entries[i]
		if e == 0 {
			return 0, false
		}
		if e != tombstone && *at(e - 1) == *tp {
			t.last = e
			return e - 1, true
		}
	}
}

// insert adds tp at slot index idx; tp must not be present.
func (t *connTable) insert(tp *tuple, idx uint32, at func(uint32) *tuple) {
	if (t.used+t.dead+1)*4 > len(t.entries)*3 {
		t.rehash(at)
	}
	mask := uint64(len(t.entries) - 1)
	for i := t.hash(tp) & mask; ; i = (i + 1) & mask {
		if e := t.entries[i]; e == 0 || e == tombstone {
			if e == tombstone {
				t.dead--
			}
			t.entries[i] = idx + 1
			t.used++
			return
		}
	}
}

// remove deletes tp, which is at slot index idx.
func (t *connTable) remove(tp *tuple, idx uint32) {
	if len(t.entries) == 0 {
		return
	}
	mask := uint64(len(t.entries) - 1)
	for i := t.hash(tp) & mask; ; i = (i + 1) & mask {
		e := t.entries[i]
		if e == 0 {
			return
		}
		if e == idx+1 {
			if t.last == e {
				t.last = 0
			}
			t.entries[i] = tombstone
			t.used--
			t.dead++
			return
		}
	}
}

// rehash rebuilds the table without tombstones, doubling it if it is over half full.
func (t *connTable) rehash(at func(uint32) *tuple) {
	n := max(len(t.entries), 16)
	if (t.used+1)*2 > n {
		n *= 2
	}
	old := t.entries
	t.entries = make([]uint32, n)
	t.used, t.dead, t.last = 0, 0, 0
	for _, e := range old {
		if e != 0 && e != tombstone {
			t.insert(at(e-1), e-1, at)
		}
	}
}

// timerHeap is an indexed binary min-heap of slot indices ordered by their
// deadlines: the stack's next deadline is the top, and a connection's position is
// kept in its slot so that a changed deadline is fixed in O(log n).
type timerHeap struct {
	h []uint32
}

func (s *Stack) heapLess(i, j int) bool {
	return s.slots[s.heap.h[i]].deadline < s.slots[s.heap.h[j]].deadline
}

func (s *Stack) heapSwap(i, j int) {
	h := s.heap.h
	h[i], h[j] = h[j], h[i]
	s.slots[h[i]].heapIdx = int32(i)
	s.slots[h[j]].heapIdx = int32(j)
}

func (s *Stack) heapUp(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !s.heapLess(i, p) {
			return
		}
		s.heapSwap(i, p)
		i = p
	}
}

func (s *Stack) heapDown(i int) {
	n := len(s.heap.h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && s.heapLess(r, l) {
			m = r
		}
		if !s.heapLess(m, i) {
			return
		}
		s.heapSwap(i, m)
		i = m
	}
}

// setDeadline places slot idx in the heap at deadline d, or removes it for Never.
func (s *Stack) setDeadline(idx uint32, d Time) {
	sl := &s.slots[idx]
	if sl.deadline == d && (d == Never) == (sl.heapIdx < 0) {
		return
	}
	sl.deadline = d
	switch {
	case d == Never && sl.heapIdx >= 0:
		i := int(sl.heapIdx)
		last := len(s.heap.h) - 1
		s.heapSwap(i, last)
		s.heap.h = s.heap.h[:last]
		sl.heapIdx = -1
		if i < last {
			s.heapDown(i)
			s.heapUp(i)
		}
	case d == Never:
	case sl.heapIdx < 0:
		sl.heapIdx = int32(len(s.heap.h))
		s.heap.h = append(s.heap.h, idx)
		s.heapUp(int(sl.heapIdx))
	default:
		s.heapDown(int(sl.heapIdx))
		s.heapUp(int(sl.heapIdx))
	}
}

// queue is a FIFO of slot indices, each present at most once (the slot's flag
// says so), so its length is bounded by the number of slots.
type queue struct {
	buf        []uint32
	head, size int
}

func (q *queue) push(v uint32) {
	if q.size == len(q.buf) {
		nb := make([]uint32, max(16, 2*len(q.buf)))
		for i := range q.size {
			nb[i] = q.buf[(q.head+i)%len(q.buf)]
		}
		q.buf, q.head = nb, 0
	}
	q.buf[(q.head+q.size)%len(q.buf)] = v
	q.size++
}

func (q *queue) peek() (uint32, bool) {
	if q.size == 0 {
		return 0, false
	}
	return q.buf[q.head], true
}

func (q *queue) pop() (uint32, bool) {
	if q.size == 0 {
		return 0, false
	}
	v := q.buf[q.head]
	q.head = (q.head + 1) % len(q.buf)
	q.size--
	return v, true
}
