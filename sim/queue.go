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

// queue is a binary min-heap of events ordered by (at, seq).
type queue struct {
	ev  []event
	seq uint64
}

func (q *queue) less(i, j int) bool {
	if q.ev[i].at != q.ev[j].at {
		return q.ev[i].at < q.ev[j].at
	}
	return q.ev[i].seq < q.ev[j].seq
}

func (q *queue) push(e event) {
	q.seq++
	e.seq = q.seq
	q.ev = append(q.ev, e)
	i := len(q.ev) - 1
	for i > 0 {
		p := (i - 1) / 2
		if !q.less(i, p) {
			break
		}
		q.ev[i], q.ev[p] = q.ev[p], q.ev[i]
		i = p
	}
}

func (q *queue) len() int { return len(q.ev) }

func (q *queue) pop() event {
	top := q.ev[0]
	n := len(q.ev) - 1
	q.ev[0] = q.ev[n]
	q.ev = q.ev[:n]
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && q.less(r, l) {
			m = r
		}
		if !q.less(m, i) {
			break
		}
		q.ev[i], q.ev[m] = q.ev[m], q.ev[i]
		i = m
	}
	return top
}
