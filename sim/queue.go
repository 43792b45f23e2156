package sim

// Time is simulated time in microseconds since the start of a run.
type Time int64

// Common durations in simulated time.
const (
	Microsecond Time = 1
	Millisecond Time = 1000
	Second      Time = 1000 * Millisecond
)

// Millis renders t in milliseconds.
func (t Time) Millis() float64 { return float64(t) / float64(Millisecond) }

type evKind uint8

const (
	evDeliver   evKind = iota + 1 // a control message arrives: c = message slot
	evDone                        // proc a's current action finished: b = proc gen
	evDiskCheck                   // host a's disk (b=0) or CPUs (b=1) may have finished a job: c = pool version
	evTick                        // logical clock tick of every algorithm instance
	evFault                       // fault number a starts (b=0) or ends (b=1)
	evDumpIO                      // container a's dump starts writing pages: b = proc gen
	evRound                       // the next round's snapshot request
	evDumpSeize                   // CRIU seizes container a (Config.DumpStartMs): b = proc gen
	evSlot                        // proc a got a slot of its node's worker (Config.WorkerSlots): b = proc gen
)

// event is a value type: the queue holds no pointers, so pushing allocates only when
// the backing slice grows.
type event struct {
	at   Time
	seq  uint64 // insertion order: equal times pop in FIFO order (determinism)
	kind evKind
	a, b int32
	c    int64
}

// queue is a min-priority queue of events ordered by (at, seq): a 4-ary heap plus a
// sorted lane. An event no earlier than the lane's last one is appended to the lane
// (O(1)), any other goes to the heap; pop takes the smaller of the two heads. Bursts
// pushed in time order, like a coordinator's fan-out of a million messages, so skip the
// heap. Since seq makes the order total, the pop order is that of any priority queue.
type queue struct {
	ev   []event // 4-ary heap
	lane []event // sorted by (at, seq); live from head
	head int
	seq  uint64
}

func before(a, b *event) bool {
	if a.at != b.at {
		return a.at < b.at
	}
	return a.seq < b.seq
}

func (q *queue) push(e event) {
	q.seq++
	e.seq = q.seq
	if n := len(q.lane); n == q.head || e.at >= q.lane[n-1].at {
		q.lane = append(q.lane, e)
		return
	}
	q.ev = append(q.ev, e)
	i := len(q.ev) - 1
	for i > 0 {
		p := (i - 1) / 4
		if !before(&e, &q.ev[p]) {
			break
		}
		q.ev[i] = q.ev[p]
		i = p
	}
	q.ev[i] = e
}

func (q *queue) len() int { return len(q.ev) + len(q.lane) - q.head }

func (q *queue) pop() event {
	if q.head < len(q.lane) && (len(q.ev) == 0 || before(&q.lane[q.head], &q.ev[0])) {
		e := q.lane[q.head]
		q.head++
		switch {
		case q.head == len(q.lane):
			q.lane, q.head = q.lane[:0], 0
		case q.head >= 1<<16 && q.head*2 >= len(q.lane):
			n := copy(q.lane, q.lane[q.head:])
			q.lane, q.head = q.lane[:n], 0
		}
		return e
	}
	top := q.ev[0]
	n := len(q.ev) - 1
	last := q.ev[n]
	q.ev = q.ev[:n]
	if n == 0 {
		return top
	}
	i := 0
	for {
		c := 4*i + 1
		if c >= n {
			break
		}
		m := c
		for k := c + 1; k < c+4 && k < n; k++ {
			if before(&q.ev[k], &q.ev[m]) {
				m = k
			}
		}
		if !before(&q.ev[m], &last) {
			break
		}
		q.ev[i] = q.ev[m]
		i = m
	}
	q.ev[i] = last
	return top
}
