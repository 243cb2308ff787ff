package pipe

import "github.com/tcpeng/tcpeng/engine"

// Queue holds the frames in flight on one direction of a wire, ordered by
// arrival time; frames due at the same time leave in the order they were
// pushed, so a wire without reordering impairments never reorders. It holds at
// most its limit of frames: Push refuses the rest, like a router's full queue.
// It keeps its own copies of the frames and reuses their memory.
type Queue struct {
	limit int
	items []queued // a binary min-heap on (at, seq)
	seq   uint64
	free  [][]byte // buffers of popped frames, for reuse (at most limit)
}

type queued struct {
	at   engine.Time
	seq  uint64
	data []byte
}

// NewQueue returns an empty queue holding at most limit frames.
func NewQueue(limit int) (*Queue, error) {
	if limit <= 0 {
		return nil, errQueueLimit
	}
	return &Queue{limit: limit}, nil
}

// Len returns the number of frames held.
func (q *Queue) Len() int { return len(q.items) }

// Limit returns the most frames the queue holds.
func (q *Queue) Limit() int { return q.limit }

// Push queues a copy of data to arrive at time at. It returns false, keeping
// nothing, when the queue is full.
func (q *Queue) Push(at engine.Time, data []byte) bool {
	if len(q.items) >= q.limit {
		return false
	}
	var buf []byte
	if n := len(q.free); n > 0 {
		buf = q.free[n-1][:0]
		q.free = q.free[:n-1]
	}
	buf = append(buf, data...)
	q.items = append(q.items, queued{at: at, seq: q.seq, data: buf})
	q.seq++
	q.up(len(q.items) - 1)
	return true
}

// Next returns the arrival time of the earliest frame, or engine.Never.
func (q *Queue) Next() engine.Time {
	if len(q.items) == 0 {
		return engine.Never
	}
	return q.items[0].at
}

// Pop removes the earliest frame if it is due at now, and returns it. The bytes
// stay valid until Recycle is called with them (or forever, if never).
func (q *Queue) Pop(now engine.Time) ([]byte, bool) {
	if len(q.items) == 0 || q.items[0].at > now {
		return nil, false
	}
	top := q.items[0]
	last := len(q.items) - 1
	q.items[0] = q.items[last]
	q.items[last] = queued{}
	q.items = q.items[:last]
	if last > 0 {
		q.down(0)
	}
	return top.data, true
}

// Recycle gives the memory of a popped frame back for reuse.
func (q *Queue) Recycle(b []byte) {
	if len(q.free) < q.limit && cap(b) > 0 {
		q.free = append(q.free, b)
	}
}

func (q *Queue) less(i, j int) bool {
	a, b := &q.items[i], &q.items[j]
	return a.at < b.at || (a.at == b.at && a.seq < b.seq)
}

func (q *Queue) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			return
		}
		q.items[i], q.items[p] = q.items[p], q.items[i]
		i = p
	}
}

func (q *Queue) down(i int) {
	n := len(q.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			return
		}
		q.items[i], q.items[m] = q.items[m], q.items[i]
		i = m
	}
}
