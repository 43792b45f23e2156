package policy

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/algorithms/registry"
)

// Label keys (exact names: docs/policy.md, the examples and the tests use them).
const (
	KeyEnable    = "swarmckpt.enable"
	KeyAlgorithm = "swarmckpt.algorithm"
	KeyTimeout   = "swarmckpt.timeout"
	KeySchedule  = "swarmckpt.schedule"
	KeyRetain    = "swarmckpt.retain"
	KeyReplicas  = "swarmckpt.replicas"
	KeyExclude   = "swarmckpt.exclude"
	KeyMode      = "swarmckpt.mode"
	KeyMigration = "swarmckpt.migration"
	KeyOnDrain   = "swarmckpt.on-drain"
	// KeyOnNodeLoss: what the loss of a node does to the stack (nodeloss.go).
	KeyOnNodeLoss = "swarmckpt.on-node-loss"
)

// Prefix starts every policy label.
const Prefix = "swarmckpt."

// stackWide are the keys whose value is one for the whole stack: services that set
// them must agree.
var stackWide = []string{KeyEnable, KeyAlgorithm, KeyTimeout, KeySchedule, KeyRetain, KeyReplicas, KeyMode, KeyMigration, KeyOnDrain, KeyOnNodeLoss}

// Keys returns every known label key, sorted.
func Keys() []string {
	k := append(slices.Clone(stackWide), KeyExclude)
	sort.Strings(k)
	return k
}

// ErrLabel is wrapped by every *LabelError.
var ErrLabel = errors.New("policy: bad swarmckpt label")

// LabelError is one malformed or conflicting label.
type LabelError struct {
	// Service (or "a, b" for a conflict) that carries the label.
	Service string `json:"service"`
	Key     string `json:"key"`
	Value   string `json:"value"`
	// Problem says what is wrong and what is allowed.
	Problem string `json:"problem"`
}

func (e *LabelError) Error() string {
	return fmt.Sprintf("service %s: label %s=%q: %s", e.Service, e.Key, e.Value, e.Problem)
}

// Unwrap makes errors.Is(err, ErrLabel) hold.
func (e *LabelError) Unwrap() error { return ErrLabel }

// Service is one service of a stack with its deploy labels.
type Service struct {
	Name   string
	Labels map[string]string
}

// Policy is a stack's effective policy.
type Policy struct {
	Stack string `json:"stack"`
	// Enabled is false when the stack says swarmckpt.enable=false: the labels are
	// checked but nothing is scheduled.
	Enabled   bool          `json:"enabled"`
	Algorithm string        `json:"algorithm,omitempty"`
	Timeout   time.Duration `json:"timeout,omitempty"`
	Schedule  string        `json:"schedule,omitempty"`
	// Retain is how many committed scheduled snapshots are kept (0: all).
	Retain int `json:"retain,omitempty"`
	// Replicas is on how many nodes every image set is kept (1: its own node only).
	Replicas  int    `json:"replicas,omitempty"`
	Mode      string `json:"mode,omitempty"`
	Migration string `json:"migration,omitempty"`
	// OnDrain is what a drain of a node does to the stack's tasks there: "migrate"
	// (checkpointed while swarm's stop is held, restored as swarm's replacement:
	// docs/drain.md); "" lets swarm restart them fresh.
	OnDrain string `json:"on_drain,omitempty"`
	// OnNodeLoss is what the loss of a node that ran a container of the stack does:
	// "restore" (the whole stack rolled back to its latest snapshot whose sets all
	// have a copy on a live node, in its Mode: docs/policy.md "Node loss"); "" nothing.
	OnNodeLoss string `json:"on_node_loss,omitempty"`
	// Excluded are the services labelled swarmckpt.exclude=true (sorted): left out of
	// the stack's snapshots, recreated fresh by its restores.
	Excluded []string `json:"excluded,omitempty"`
	// From names, per label key, the services that set it (sorted).
	From map[string][]string `json:"from"`
}

// MaxReplicas bounds swarmckpt.replicas.
const MaxReplicas = 16

// Values allowed for the enumerated keys.
var (
	Modes      = []string{"exact", "swarm"}
	Migrations = []string{"cold", "direct", "post-copy", "pre-copy"}
	OnDrains   = []string{OnDrainMigrate}
	OnNodeLoss = []string{OnNodeLossRestore}
)

// OnNodeLossRestore: a lost node's stacks are restored on the live nodes.
const OnNodeLossRestore = "restore"

// OnDrainMigrate: a drained node's tasks of the stack move with their memory.
const OnDrainMigrate = "migrate"

// Derive computes the policy of stack from its services' labels. A stack none of
// whose services carries a swarmckpt.* label has no policy (nil, nil). Every
// malformed or conflicting label is reported (errors.Join of *LabelError, each
// matching ErrLabel), and then no policy is returned: a policy is applied whole or
// not at all.
func Derive(stack string, services []Service) (*Policy, error) { return DeriveOn(stack, services, 0) }

// DeriveOn is Derive on a cluster of live nodes with a live worker: a replicas label
// above that is one more label error (live 0: unknown, not checked).
func DeriveOn(stack string, services []Service, live int) (*Policy, error) {
	svcs := slices.Clone(services)
	sort.Slice(svcs, func(i, j int) bool { return svcs[i].Name < svcs[j].Name })
	known := Keys()
	type setting struct{ service, value string }
	byKey := map[string][]setting{}
	var errs []error
	for _, s := range svcs {
		keys := make([]string, 0, len(s.Labels))
		for k := range s.Labels {
			if strings.HasPrefix(k, Prefix) {
				keys = append(keys, k)
			}
		}
		sort.Strings(keys)
		for _, k := range keys {
			v := s.Labels[k]
			if !slices.Contains(known, k) {
				errs = append(errs, &LabelError{Service: s.Name, Key: k, Value: v,
					Problem: "unknown swarmckpt label (known: " + strings.Join(known, ", ") + "): fix its name or remove it"})
				continue
			}
			byKey[k] = append(byKey[k], setting{s.Name, v})
		}
	}
	if len(byKey) == 0 && len(errs) == 0 {
		return nil, nil
	}
	p := &Policy{Stack: stack, Enabled: true, Replicas: 1, From: map[string][]string{}}
	for _, k := range stackWide {
		set := byKey[k]
		if len(set) == 0 {
			continue
		}
		var names []string
		for _, st := range set {
			names = append(names, st.service)
			if st.value != set[0].value {
				errs = append(errs, &LabelError{Service: set[0].service + ", " + st.service, Key: k, Value: set[0].value,
					Problem: fmt.Sprintf("conflict: service %s says %q; services of one stack must agree on a stack-wide label: give it the same value on every service that carries it, or keep it on one", st.service, st.value)})
			}
		}
		p.From[k] = names
		if err := p.apply(k, set[0].service, set[0].value); err != nil {
			errs = append(errs, err)
		}
	}
	if live > 0 && p.Replicas > live {
		errs = append(errs, &LabelError{Service: strings.Join(p.From[KeyReplicas], ", "), Key: KeyReplicas, Value: strconv.Itoa(p.Replicas),
			Problem: fmt.Sprintf("more copies than nodes: the cluster has %d nodes with a live worker, and each copy of an image set needs its own node: lower it to at most %d, or add nodes", live, live)})
	}
	for _, st := range byKey[KeyExclude] {
		p.From[KeyExclude] = append(p.From[KeyExclude], st.service)
		switch b, err := strconv.ParseBool(st.value); {
		case err != nil:
			errs = append(errs, &LabelError{Service: st.service, Key: KeyExclude, Value: st.value, Problem: "not a boolean: use true or false"})
		case b:
			p.Excluded = append(p.Excluded, st.service)
		}
	}
	if p.Retain > 0 && p.Schedule == "" && len(errs) == 0 {
		errs = append(errs, &LabelError{Service: strings.Join(p.From[KeyRetain], ", "), Key: KeyRetain, Value: strconv.Itoa(p.Retain),
			Problem: "retain counts scheduled snapshots, and this stack has no " + KeySchedule + ": add a schedule or remove retain"})
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// apply sets key k of p from value v (carried by service).
func (p *Policy) apply(k, service, v string) error {
	bad := func(problem string) error {
		return &LabelError{Service: service, Key: k, Value: v, Problem: problem}
	}
	switch k {
	case KeyEnable:
		b, err := strconv.ParseBool(v)
		if err != nil {
			return bad("not a boolean: use true or false")
		}
		p.Enabled = b
	case KeyAlgorithm:
		if _, err := registry.Lookup(v); err != nil {
			return bad("unknown algorithm: use one of " + strings.Join(registry.Names(), ", "))
		}
		p.Algorithm = v
	case KeyTimeout:
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return bad("not a positive Go duration: use e.g. 90s or 2m")
		}
		p.Timeout = d
	case KeySchedule:
		if _, err := ParseSchedule(v); err != nil {
			return bad(err.Error())
		}
		p.Schedule = v
	case KeyRetain:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return bad("not a whole number of at least 1: use e.g. \"3\" (leave the label out to keep every scheduled snapshot)")
		}
		p.Retain = n
	case KeyReplicas:
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > MaxReplicas {
			return bad(fmt.Sprintf("not a whole number from 1 to %d: use e.g. \"2\" (the image sets on 2 nodes)", MaxReplicas))
		}
		p.Replicas = n
	case KeyMode:
		if !slices.Contains(Modes, v) {
			return bad("unknown restore mode: use one of " + strings.Join(Modes, ", "))
		}
		p.Mode = v
	case KeyMigration:
		if !slices.Contains(Migrations, v) {
			return bad("unknown migration kind: use one of " + strings.Join(Migrations, ", "))
		}
		p.Migration = v
	case KeyOnDrain:
		if !slices.Contains(OnDrains, v) {
			return bad("unknown on-drain action: use " + strings.Join(OnDrains, ", ") + " (leave the label out for swarm's fresh restart)")
		}
		p.OnDrain = v
	case KeyOnNodeLoss:
		if !slices.Contains(OnNodeLoss, v) {
			return bad("unknown on-node-loss action: use " + strings.Join(OnNodeLoss, ", ") + " (leave the label out to do nothing when a node is lost)")
		}
		p.OnNodeLoss = v
	}
	return nil
}

// Errors splits an error of Derive into its label errors (nil for nil; an error
// that holds none is returned as one LabelError without key).
func Errors(err error) []*LabelError {
	if err == nil {
		return nil
	}
	var out []*LabelError
	var walk func(error)
	walk = func(e error) {
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var le *LabelError
		if errors.As(e, &le) {
			out = append(out, le)
		}
	}
	walk(err)
	if len(out) == 0 {
		out = append(out, &LabelError{Problem: err.Error()})
	}
	return out
}
