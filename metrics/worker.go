package metrics

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Worker is the metrics of a worker (a node's data plane).
type Worker struct {
	ops      *prometheus.HistogramVec
	failures *prometheus.CounterVec
	frozen   prometheus.Histogram
	bytes    prometheus.Counter

	mu       sync.Mutex
	frozenAt map[string]time.Time // container -> when this worker froze it
}

// NewWorker registers the worker's metrics on reg.
func NewWorker(reg prometheus.Registerer) (*Worker, error) {
	m := &Worker{
		ops: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "swarmckpt_worker_operation_seconds",
			Help:    "Duration of the worker's API operations (lock, freeze, dump, thaw, restore, send, ...), failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}, []string{"op"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarmckpt_worker_operation_failures_total",
			Help: "Worker API operations that failed, by operation."}, []string{"op"}),
		frozen: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "swarmckpt_worker_frozen_seconds",
			Help:    "How long containers stayed frozen on this node, from the freeze to the thaw or the end of the dump that stopped them.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "swarmckpt_worker_image_bytes_total",
			Help: "Bytes of the CRIU image sets this worker dumped."}),
		frozenAt: map[string]time.Time{},
	}
	for _, c := range []prometheus.Collector{m.ops, m.failures, m.frozen, m.bytes} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Op records one API operation of duration d; failed when err is not nil.
func (m *Worker) Op(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.ops.WithLabelValues(op).Observe(d.Seconds())
	if err != nil {
		m.failures.WithLabelValues(op).Inc()
	}
}

// Frozen records that container was frozen at t (the first freeze counts).
func (m *Worker) Frozen(container string, t time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.frozenAt[container]; !ok {
		m.frozenAt[container] = t
	}
}

// Released records that container is no longer frozen at t (thawed, or stopped by
// its dump); nothing when it was not frozen by this worker.
func (m *Worker) Released(container string, t time.Time) {
	if m == nil {
		return
	}
	m.mu.Lock()
	at, ok := m.frozenAt[container]
	delete(m.frozenAt, container)
	m.mu.Unlock()
	if ok {
		m.frozen.Observe(t.Sub(at).Seconds())
	}
}

// Dumped records an image set of bytes bytes.
func (m *Worker) Dumped(bytes int64) {
	if m == nil {
		return
	}
	m.bytes.Add(float64(bytes))
}
