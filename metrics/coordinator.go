package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Snapshot phases (the phase label of swarmckpt_snapshot_duration_seconds).
const (
	// PhasePrepare: resolving the stack, taking its lock, creating the record and
	// sending the plans to the nodes.
	PhasePrepare = "prepare"
	// PhaseRun: the algorithm's run until it asks to commit (locks, freezes, dumps).
	PhaseRun = "run"
	// PhaseCommit: checking the cut and committing the record in etcd.
	PhaseCommit = "commit"
	// PhaseTotal: from the request to the commit (committed snapshots only).
	PhaseTotal = "total"
)

// Coordinator is the metrics of a coordinator's snapshots.
type Coordinator struct {
	duration  *prometheus.HistogramVec
	frozen    *prometheus.HistogramVec
	dump      *prometheus.HistogramVec
	bytes     *prometheus.CounterVec
	snapBytes *prometheus.HistogramVec
	outcomes  *prometheus.CounterVec
	failures  *prometheus.CounterVec
}

// NewCoordinator registers the coordinator's metrics on reg.
func NewCoordinator(reg prometheus.Registerer) (*Coordinator, error) {
	m := &Coordinator{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "swarmckpt_snapshot_duration_seconds",
			Help:    "Time a snapshot spent in each phase (prepare, run, commit) and in total until committed, by algorithm.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 16)}, []string{"algorithm", "phase"}),
		frozen: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "swarmckpt_container_frozen_seconds",
			Help:    "How long each container of a committed snapshot was frozen, as its node reported it, by algorithm.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"algorithm"}),
		dump: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "swarmckpt_container_dump_seconds",
			Help:    "How long each container's dump of a committed snapshot took, by algorithm.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"algorithm"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarmckpt_snapshot_image_bytes_total",
			Help: "Bytes of CRIU images of the committed snapshots, by algorithm."}, []string{"algorithm"}),
		snapBytes: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "swarmckpt_snapshot_image_bytes",
			Help:    "Bytes of CRIU images of each committed snapshot, by algorithm.",
			Buckets: prometheus.ExponentialBuckets(1<<20, 4, 10)}, []string{"algorithm"}),
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarmckpt_snapshots_total",
			Help: "Snapshots that ended, by algorithm and result (committed, aborted)."}, []string{"algorithm", "result"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarmckpt_snapshot_failures_total",
			Help: "Aborted snapshots by algorithm and reason (timeout, container-failed, no-worker, node-left, lock-lost, commit, user, coordinator-restart, leadership-lost, refused, other); coordinator-restart counts the snapshots a dead or restarted coordinator left, aborted by the recovery of the one that leads next."},
			[]string{"algorithm", "reason"}),
	}
	for _, c := range []prometheus.Collector{m.duration, m.frozen, m.dump, m.bytes, m.snapBytes, m.outcomes, m.failures} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Phase records that a snapshot of algorithm spent d in phase.
func (m *Coordinator) Phase(algorithm, phase string, d time.Duration) {
	if m == nil {
		return
	}
	m.duration.WithLabelValues(algorithm, phase).Observe(d.Seconds())
}

// Container records one container of a committed snapshot: frozen and dump time.
func (m *Coordinator) Container(algorithm string, frozen, dump time.Duration) {
	if m == nil {
		return
	}
	m.frozen.WithLabelValues(algorithm).Observe(frozen.Seconds())
	m.dump.WithLabelValues(algorithm).Observe(dump.Seconds())
}

// Committed records a committed snapshot of bytes image bytes.
func (m *Coordinator) Committed(algorithm string, bytes int64) {
	if m == nil {
		return
	}
	m.outcomes.WithLabelValues(algorithm, "committed").Inc()
	m.bytes.WithLabelValues(algorithm).Add(float64(bytes))
	m.snapBytes.WithLabelValues(algorithm).Observe(float64(bytes))
}

// Aborted records an aborted snapshot; reason is a class (a short, fixed word), not
// the abort's text.
func (m *Coordinator) Aborted(algorithm, reason string) {
	if m == nil {
		return
	}
	m.outcomes.WithLabelValues(algorithm, "aborted").Inc()
	m.failures.WithLabelValues(algorithm, reason).Inc()
}
