package worker

import (
	"context"

	"github.com/swarmckpt/swarmckpt/criuimg"
	"github.com/swarmckpt/swarmckpt/cut"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/pendingconn"
)

// Pending connects of restored containers (package pendingconn): a SYN sent while the
// restored container is network-locked (CRIU's re-sent SYN of a socket dumped in
// SYN_SENT, or a connect the application started since) is dropped, and the kernel
// sends it again only after 1 s (then 3 s). The worker ends such connects at once when
// the network opens, so the application connects again without waiting.

// pendingConnects returns the ports of the sockets set's images hold in SYN_SENT.
// Unreadable images give none (the restore says why).
func pendingConnects(set string) []pendingconn.Ports {
	socks, err := criuimg.ReadSockets("", imageset.ImagesPath(set))
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

// markRestored notes that container id was restored network-locked: its unlock ends the
// connects pending then.
func (w *Worker) markRestored(id string) {
	if !w.p.EndPendingConnects {
		return
	}
	w.pendingMu.Lock()
	defer w.pendingMu.Unlock()
	if w.restoredLocked == nil {
		w.restoredLocked = map[string]bool{}
	}
	w.restoredLocked[id] = true
}

// restoredPending returns the connects pending in c if it is a container restored
// network-locked (nil otherwise): taken right before its unlock, every one of them sent
// its SYN into the lock.
func (w *Worker) restoredPending(c container.Ref) map[uint64]pendingconn.Ports {
	w.pendingMu.Lock()
	restored := w.restoredLocked[c.ID]
	w.pendingMu.Unlock()
	if !restored || c.Pid == 0 {
		return nil
	}
	ps, err := pendingconn.SynSent(c.Pid)
	if err != nil {
		w.log.Warn("could not list the pending connects of a restored container; they complete on their SYN's retransmission (1 s or more)", "container", c.Name, "err", err)
	}
	return ps
}

// unlocked forgets c's restored mark once it is fully unlocked and ends the connects
// that were pending before its unlock (restoredPending) and still are.
func (w *Worker) unlocked(ctx context.Context, c container.Ref, pending map[uint64]pendingconn.Ports) {
	w.pendingMu.Lock()
	delete(w.restoredLocked, c.ID)
	w.pendingMu.Unlock()
	if len(pending) == 0 {
		return
	}
	failed, err := pendingconn.FailInodes(ctx, c.Pid, pending)
	w.logEnded(c, len(failed), len(pending), err)
}

// failPendingNow ends at once the connects of a container restored without a lock of
// ours whose images held them in SYN_SENT (CRIU's own restore lock dropped their SYN).
func (w *Worker) failPendingNow(ctx context.Context, c container.Ref, ps []pendingconn.Ports) {
	if !w.p.EndPendingConnects || len(ps) == 0 || c.Pid == 0 {
		return
	}
	failed, err := pendingconn.Fail(ctx, c.Pid, ps)
	w.logEnded(c, len(failed), len(ps), err)
}

// logEnded logs what ending pending connects did. Never fatal: a connect not ended
// completes on its SYN's retransmission, only later.
func (w *Worker) logEnded(c container.Ref, ended, of int, err error) {
	if err != nil {
		w.log.Warn("could not end every pending connect of a restored container; those complete on their SYN's retransmission (1 s or more)", "container", c.Name, "err", err)
	}
	if ended > 0 {
		w.log.Info("pending connects of a restored container ended at once (their SYN went out into the restore's network lock); the application sees ECONNRESET and connects again",
			"container", c.Name, "connects", ended, "of", of)
	}
}
