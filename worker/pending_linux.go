package worker

import (
	"context"

	"github.com/swarmckpt/swarmckpt/cut"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/pendingconn"
)

// pendingConnects returns the ports of the sockets set's images hold in SYN_SENT:
// connects CRIU brings back pending, whose SYN it sends during the restore, into the
// network lock (package pendingconn). Unreadable images give none (the restore says why).
func pendingConnects(set string) []pendingconn.Ports {
	socks, err := cut.ReadSockets("", imageset.ImagesPath(set))
	if err != nil {
		return nil
	}
	var out []pendingconn.Ports
	for _, s := range socks {
		if cut.TCPState(s.State) == cut.TCPSynSent {
			out = append(out, pendingconn.Ports{Local: s.Local.Port(), Remote: s.Remote.Port()})
		}
	}
	return out
}

// notePending remembers the pending connects of container id, restored locked, for its
// unlock.
func (w *Worker) notePending(id string, ps []pendingconn.Ports) {
	w.pendingMu.Lock()
	defer w.pendingMu.Unlock()
	if w.pending == nil {
		w.pending = map[string][]pendingconn.Ports{}
	}
	w.pending[id] = ps
}

// takePending returns and forgets what notePending remembered for container id.
func (w *Worker) takePending(id string) []pendingconn.Ports {
	w.pendingMu.Lock()
	defer w.pendingMu.Unlock()
	ps := w.pending[id]
	delete(w.pending, id)
	return ps
}

// failPending ends the pending connects ps of restored container c at once, now that
// its network is open (else each would wait for its SYN's retransmission, 1 s or
// more): the application sees ECONNRESET and connects again. Logged, never fatal: the
// connects still complete on their own, only later.
func (w *Worker) failPending(ctx context.Context, c container.Ref, ps []pendingconn.Ports) {
	if len(ps) == 0 || c.Pid == 0 {
		return
	}
	failed, err := pendingconn.Fail(ctx, c.Pid, ps)
	if err != nil {
		w.log.Warn("could not end every pending connect of a restored container; those complete on their SYN's retransmission (1 s or more)", "container", c.Name, "err", err)
	}
	if len(failed) > 0 {
		w.log.Info("pending connects of a restored container ended at once (their SYN went out into the restore's network lock); the application sees ECONNRESET and connects again",
			"container", c.Name, "connects", len(failed), "of", len(ps))
	}
}
