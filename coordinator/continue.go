package coordinator

import (
	"context"
	"path/filepath"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// reuser is a coordinator role that reuses the images of earlier snapshots (minimal):
// which snapshot each container's images would come from, and a way to forget one.
type reuser interface {
	ReusableFrom() map[string]string
	DropBase(container string)
}

// newMachine returns the coordinator role of snapshot m. An algorithm that carries
// state across a stack's snapshots (algorithms.Continuer: minimal) continues from the
// record of the stack's last committed snapshot of that algorithm, read from the
// store (etcd), so a restarted or another coordinator continues too; bases whose
// images may be gone (their snapshot was removed and the snapshot continued from does
// not point at them) are dropped (those containers dump afresh). Any failure to read that record starts afresh: it costs dumps, never
// consistency.
func (r *run) newMachine(ctx context.Context, cfg algorithms.Config) algorithms.Machine {
	cont, ok := r.alg.(algorithms.Continuer)
	if !ok {
		return r.alg.NewCoordinator(cfg)
	}
	log := r.s.log.With("snapshot", r.m.ID, "stack", r.m.Stack, "algorithm", r.m.Algorithm)
	hs, err := r.s.cfg.Store.Headers(ctx, r.m.Stack)
	if err != nil {
		log.Warn("cannot list the stack's snapshots: every container dumps afresh", "err", err)
		return r.alg.NewCoordinator(cfg)
	}
	committed := map[string]bool{}
	var last *store.Manifest
	for _, h := range hs {
		if h.State != store.StateCommitted || h.ID == r.m.ID {
			continue
		}
		committed[h.ID] = true
		if h.Algorithm == r.m.Algorithm && (last == nil || h.Epoch > last.Epoch) {
			last = h
		}
	}
	if last == nil {
		return r.alg.NewCoordinator(cfg)
	}
	full, err := r.s.cfg.Store.Get(ctx, last.ID)
	if err != nil {
		log.Warn("cannot read the last committed snapshot's record: every container dumps afresh", "from", last.ID, "err", err)
		return r.alg.NewCoordinator(cfg)
	}
	mach, err := cont.ContinueCoordinator(cfg, full.Record)
	if err != nil {
		log.Warn("cannot continue from the last committed snapshot's record: every container dumps afresh", "from", last.ID, "err", err)
		return r.alg.NewCoordinator(cfg)
	}
	if ru, ok := mach.(reuser); ok {
		// A base is usable while its set is kept: its snapshot is committed, or the
		// snapshot continued from points at it (rm of the base's snapshot kept it).
		pointed := map[string]bool{} // container id + " " + set
		for _, c := range full.Containers {
			if c.Images != nil && filepath.Base(c.Images.Dir) != "" {
				pointed[c.ContainerID+" "+filepath.Base(c.Images.Dir)] = true
			}
		}
		keyOf := map[string]string{}
		for _, c := range full.Containers {
			keyOf[c.ContainerID] = c.Key()
		}
		for c, snap := range ru.ReusableFrom() {
			if !committed[snap] && !pointed[c+" "+node.SetID(snap, keyOf[c])] {
				log.Info("base snapshot is gone: the container dumps afresh", "container", c, "base", snap)
				ru.DropBase(c)
			}
		}
	}
	log.Debug("coordinator role continued", "from", last.ID)
	return mach
}
