package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Agent is the metrics of a node agent (the node side of the control plane): its
// container actions and node operations, and the holds (network locks, freezes) it
// took through its worker.
type Agent struct {
	ops     *prometheus.HistogramVec
	results *prometheus.CounterVec
	holding *prometheus.GaugeVec
	holds   *prometheus.CounterVec
	held    *prometheus.HistogramVec
}

// Hold kinds (the what label of the agent's hold metrics).
const (
	HoldLock   = "lock"
	HoldFreeze = "freeze"
)

// NewAgent registers the agent's metrics on reg.
func NewAgent(reg prometheus.Registerer) (*Agent, error) {
	m := &Agent{
		ops: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "swarmckpt_agent_operation_seconds",
			Help:    "Duration of the agent's container actions (lock, unlock, freeze, thaw, dump) and node operations (send, restore, drop, verify, ...), failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}, []string{"op"}),
		results: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarmckpt_agent_operations_total",
			Help: "The agent's container actions and node operations by op and result (ok, or the error's class: not_found, invalid_argument, conflict, failed_precondition, unavailable, internal)."},
			[]string{"op", "result"}),
		holding: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "swarmckpt_agent_holds",
			Help: "Containers this agent holds now, by what (lock: network-locked, freeze: frozen)."}, []string{"what"}),
		holds: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "swarmckpt_agent_holds_total",
			Help: "Holds this agent took, by what (lock, freeze)."}, []string{"what"}),
		held: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "swarmckpt_agent_held_seconds",
			Help:    "How long each hold lasted, from the lock or freeze to its release by this agent, by what (lock, freeze).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18)}, []string{"what"}),
	}
	for _, c := range []prometheus.Collector{m.ops, m.results, m.holding, m.holds, m.held} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Op records one operation of duration d with its result ("ok" or an error class).
func (m *Agent) Op(op string, d time.Duration, result string) {
	if m == nil {
		return
	}
	m.ops.WithLabelValues(op).Observe(d.Seconds())
	m.results.WithLabelValues(op, result).Inc()
}

// Held records that a hold (what: HoldLock, HoldFreeze) was taken.
func (m *Agent) Held(what string) {
	if m == nil {
		return
	}
	m.holds.WithLabelValues(what).Inc()
	m.holding.WithLabelValues(what).Inc()
}

// Released records that a hold taken d ago was released.
func (m *Agent) Released(what string, d time.Duration) {
	if m == nil {
		return
	}
	m.holding.WithLabelValues(what).Dec()
	m.held.WithLabelValues(what).Observe(d.Seconds())
}
