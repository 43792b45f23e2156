package sim

import (
	"github.com/swarmckpt/swarmckpt/algorithms/uncoordinated"
)

// rollback computes the recovery line of an algorithm whose coordinator keeps a
// checkpoint history (uncoordinated), with that algorithm's own RecoveryLine function;
// nil for the others.
func (r *runner) rollback() *Rollback {
	hc, ok := r.procs[r.coord].m.(interface{ History() uncoordinated.History })
	if !ok || !r.procs[r.coord].alive {
		return nil
	}
	h := hc.History()
	line, err := uncoordinated.RecoveryLine(r.req, h)
	if err != nil {
		return &Rollback{Err: err.Error()}
	}
	rb := &Rollback{Total: line.Total, Max: line.Max}
	for id, n := range line.RolledBack {
		if n > 0 {
			rb.Containers++
		}
		if line.Index[id] < 0 {
			rb.ToInitial++
		}
	}
	return rb
}
