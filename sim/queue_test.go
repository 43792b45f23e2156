package sim

import (
	"container/heap"
	"math/rand/v2"
	"testing"
)

// TestQueueOrder: interleaved pushes (in-order bursts that take the lane, and random
// times that take the heap) and pops come out by (time, insertion order), as a plain
// scan for the minimum says.
func TestQueueOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var q queue
	var ref []event // what the queue should hold
	now := Time(0)
	for step := 0; step < 20000; step++ {
		switch k := rng.IntN(10); {
		case k < 2: // a burst in time order from now on (a fan-out)
			at := now
			for range rng.IntN(8) {
				at += Time(rng.IntN(3))
				q.push(event{at: at, a: int32(step)})
				ref = append(ref, event{at: at, seq: q.seq, a: int32(step)})
			}
		case k < 4: // any time from now on, often equal to another
			at := now + Time(rng.IntN(100))
			q.push(event{at: at, a: int32(step)})
			ref = append(ref, event{at: at, seq: q.seq, a: int32(step)})
		default:
			if len(ref) == 0 {
				if q.len() != 0 {
					t.Fatalf("step %d: queue holds %d events, want 0", step, q.len())
				}
				continue
			}
			m := 0
			for i := range ref {
				if before(&ref[i], &ref[m]) {
					m = i
				}
			}
			got := q.pop()
			if got != ref[m] {
				t.Fatalf("step %d: popped %+v, want %+v", step, got, ref[m])
			}
			now = got.at
			ref[m] = ref[len(ref)-1]
			ref = ref[:len(ref)-1]
		}
		if q.len() != len(ref) {
			t.Fatalf("step %d: len %d, want %d", step, q.len(), len(ref))
		}
	}
}

// refHeap is container/heap's binary heap, the reference for long runs.
type refHeap []event

func (h refHeap) Len() int           { return len(h) }
func (h refHeap) Less(i, j int) bool { return before(&h[i], &h[j]) }
func (h refHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *refHeap) Push(x any)        { *h = append(*h, x.(event)) }
func (h *refHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

// TestQueueLongLane: a fan-out long enough for the lane to be compacted while other
// events (earlier ones, on the heap) interleave with it; every pop is the one
// container/heap gives.
func TestQueueLongLane(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var q queue
	ref := &refHeap{}
	push := func(at Time) {
		q.push(event{at: at})
		heap.Push(ref, event{at: at, seq: q.seq})
	}
	pop := func(i int) {
		if got, want := q.pop(), heap.Pop(ref).(event); got != want {
			t.Fatalf("push %d: popped %+v, want %+v", i, got, want)
		}
	}
	for i := range 300000 {
		push(Time(10 * i))
		if i%7 == 0 {
			push(Time(10*i - rng.IntN(5000))) // earlier than the lane's end: the heap
		}
		if i%3 == 0 {
			pop(i)
		}
	}
	for q.len() > 0 {
		pop(-1)
	}
	if ref.Len() != 0 {
		t.Fatalf("the queue is empty, the reference holds %d", ref.Len())
	}
}
