package restore

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// preflightTimeout bounds each node's answer to a pre-flight request.
const preflightTimeout = 30 * time.Second

// verifyTimeout bounds each node's re-hash of one image set before a restore (about
// 1 s per GiB here).
const verifyTimeout = 2 * time.Minute

// preflightSkip asks the nodes, before anything is changed, whether the exact restore of
// m onto targets can run: every node involved has a live worker; every image set is
// on its node with every file at its recorded size (and so is a copy already on its
// target, which the restore would use); every
// target node has the container's image and its name free; no container that keeps
// running (anything but the stack's own swarm tasks when the stack is stopped first)
// holds an address the restored containers take, on any live node. It returns one
// error listing every problem with its fix (CodeFailed; CodeNoWorker when only
// workers are missing), nil when all is well. Nodes whose agent is too old to answer
// are skipped with a warning event. The checksum re-hash is left out for the
// containers in hashed (SERVICE.SLOT; nil: none): sets this operation itself hashed as
// they were written (or received) and checked against the manifest at its commit
// (VerifiedAtCommit); their sizes are still checked. With waitReady it waits for the
// targets' network keepers (prepare) before it returns.
func (s *Restores) preflightSkip(ctx context.Context, m *store.Manifest, targets map[string]string, hashed map[string]bool, waitReady bool) error {
	live := map[string]bool{}
	for _, w := range s.live() {
		live[w.Node] = true
	}
	stackName := ""
	if s.cfg.Stopper != nil {
		stackName = m.Stack
	}
	reqs := map[string]*node.PreflightRequest{}
	get := func(n string) *node.PreflightRequest {
		if reqs[n] == nil {
			reqs[n] = &node.PreflightRequest{Stack: stackName}
		}
		return reqs[n]
	}
	var problems []string
	noWorker := 0
	var addrs []node.PreflightAddress
	type where struct{ key, set, src string }
	var sets []where
	for _, c := range m.Containers {
		t, ok := targets[c.Key()]
		if !ok {
			continue
		}
		src := c.Node
		if c.Images != nil && c.Images.Node != "" {
			src = c.Images.Node
		}
		if !live[t] {
			noWorker++
			problems = append(problems, fmt.Sprintf("%s: target node %s has no live worker: start its worker and agent, or restore it elsewhere (--node %s=NODE)", c.Key(), t, c.Key()))
		}
		if !live[src] && src != t {
			noWorker++
			problems = append(problems, fmt.Sprintf("%s: its image set is on node %s, which has no live worker: start its worker and agent there", c.Key(), src))
		}
		set := SetOf(m, c)
		var files []store.File
		if c.Images != nil {
			files = c.Images.Files
		}
		get(src).Sets = append(get(src).Sets, node.PreflightSet{Set: set, Files: files, Target: t, Key: c.Key()})
		if t != src {
			get(t).Sets = append(get(t).Sets, node.PreflightSet{Set: set, Files: files})
		}
		sets = append(sets, where{c.Key(), set, src})
		get(t).Containers = append(get(t).Containers, node.PreflightContainer{Key: c.Key(), Name: ContainerName(m.ID, c), Image: c.Image,
			Volumes: CarriedVolumes(c, t)}) // carryvolumes.go
		for _, ip := range c.IPs {
			addrs = append(addrs, node.PreflightAddress{Key: c.Key(), IP: ip, Networks: c.Networks})
		}
	}
	if len(addrs) > 0 {
		for n := range live {
			get(n).Addresses = addrs
		}
	}
	type answer struct {
		rep node.PreflightReply
		err error
	}
	answers := map[string]answer{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for n, req := range reqs {
		if !live[n] {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := s.askPreflight(ctx, n, req)
			mu.Lock()
			answers[n] = answer{rep, err}
			mu.Unlock()
		}()
	}
	wg.Wait()
	missing := map[string]bool{} // node + "/" + set
	skipped := map[string]bool{}
	for _, n := range slices.Sorted(maps.Keys(answers)) {
		a := answers[n]
		switch {
		case errors.Is(a.err, bus.ErrNoResponders):
			noWorker++
			problems = append(problems, fmt.Sprintf("node %s: no agent answers (its worker or agent is down): start them, or restore elsewhere", n))
			skipped[n] = true
		case a.err != nil:
			problems = append(problems, fmt.Sprintf("node %s: pre-flight check failed: %v (is its agent up?)", n, a.err))
			skipped[n] = true
		case a.rep.Unsupported:
			s.log.Warn("node cannot answer restore pre-flight checks (older agent or worker): not checked", "node", n)
			s.event(ctx, api.Event{ID: m.ID, Node: n, Phase: "preflight", Message: "node " + n + " cannot answer pre-flight checks (older agent or worker): not checked"})
			skipped[n] = true
		case a.rep.Error != "":
			problems = append(problems, fmt.Sprintf("node %s: pre-flight check failed: %s", n, a.rep.Error))
			skipped[n] = true
		default:
			problems = append(problems, a.rep.Problems...)
			for _, set := range a.rep.Missing {
				missing[n+"/"+set] = true
			}
		}
	}
	for _, w := range sets {
		if skipped[w.src] || !live[w.src] || !missing[w.src+"/"+w.set] {
			continue
		}
		// (A copy an earlier restore moved to the target does not help: the transfer
		// starts from the set's home node.)
		problems = append(problems, fmt.Sprintf("%s: its image set %s is not on node %s: the snapshot's images are gone from there; take a new snapshot",
			w.key, w.set, w.src))
	}
	if len(problems) == 0 {
		// Sizes match: now every file's checksum, on the node the restore reads the set
		// from, before anything is stopped (a flipped byte would otherwise be found by the
		// restore itself, after the running stack was stopped).
		problems = append(problems, s.verifySets(ctx, m, targets, live, hashed)...)
	}
	if len(problems) == 0 {
		s.prepare(ctx, reqs, live, waitReady)
		return nil
	}
	sort.Strings(problems)
	problems = slices.Compact(problems)
	code := api.CodeFailed
	if noWorker == len(problems) {
		code = api.CodeNoWorker
	}
	return api.Errorf(code, "restore of %s refused: nothing was changed (stack %s still runs as it did):\n  - %s",
		m.ID, m.Stack, strings.Join(problems, "\n  - "))
}

// prepare tells each live target node of a restore that passed its pre-flight checks
// to get ready (node.PreflightRequest.Prepare: network keepers started while the
// stack still runs); with waitReady (a restore that stops the stack after this) it
// waits until they run (Ready), at most prepareWait: a keeper
// has no fixed address, and one that gets its address after the stop can be given
// the exact address of a stopped container, which that container's restore or
// put-back then cannot take (fault seed 1234: a target's keeper, started 1.9 s
// after the Prepare, outlived the coordinator killed at the stop and held a put-back
// container's address). Best effort: a node that does not answer, or is not ready in
// time, restores without (or with its keepers when they run). A migration's stop came
// before its pre-flight: nothing to wait for then.
func (s *Restores) prepare(ctx context.Context, reqs map[string]*node.PreflightRequest, live map[string]bool, waitReady bool) {
	wait := s.prepareWait()
	if !waitReady {
		wait = 0
	}
	var wg sync.WaitGroup
	for n, req := range reqs {
		// A node that restores nothing is asked too: its keepers give up the
		// operation's addresses (one holding the address of a container restored
		// elsewhere would hold it against that restore).
		if !live[n] || len(req.Containers) == 0 && len(req.Addresses) == 0 {
			continue
		}
		p := *req
		p.Prepare, p.Sets, p.Ready = true, nil, wait > 0
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := ctx, context.CancelFunc(func() {})
			if wait > 0 {
				pctx, cancel = context.WithTimeout(ctx, wait)
			}
			defer cancel()
			if rep, err := s.askPreflight(pctx, n, &p); err != nil || rep.Error != "" {
				s.log.Warn("node did not prepare the restore (it restores without network keepers)", "node", n, "err", err, "reply", rep.Error)
			}
		}()
	}
	wg.Wait()
}

func (s *Restores) askPreflight(ctx context.Context, nodeName string, req *node.PreflightRequest) (node.PreflightReply, error) {
	cctx, cancel := context.WithTimeout(ctx, preflightTimeout)
	defer cancel()
	rep, err := s.nodes.Preflight(cctx, nodeName, *req)
	if err != nil {
		return node.PreflightReply{}, err
	}
	return *rep, nil
}

// verifySets re-hashes every image set a restore of m onto targets reads, on the node
// that holds it (the agents' verify request, as 'inspect --verify' does), in parallel,
// and returns one problem per set whose files do not match the manifest's checksums.
// The sets of the containers in hashed were re-hashed by this operation already (a
// migration's commit, VerifiedAtCommit): not again.
func (s *Restores) verifySets(ctx context.Context, m *store.Manifest, targets map[string]string, live map[string]bool, hashed map[string]bool) []string {
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		problems []string
	)
	t0 := time.Now()
	n, skipped := 0, 0
	for _, c := range m.Containers {
		if _, ok := targets[c.Key()]; !ok || c.Images == nil || c.Images.Node == "" || !live[c.Images.Node] {
			continue
		}
		if hashed[c.Key()] {
			skipped++
			continue
		}
		n++
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := Sockets(ctx, s.nodes, verifyTimeout, SetOf(m, c), c); err != nil {
				mu.Lock()
				problems = append(problems, fmt.Sprintf("%s: its image set on node %s failed verification: %v", c.Key(), c.Images.Node, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(problems) == 0 && n > 0 {
		s.event(ctx, api.Event{ID: m.ID, Phase: "preflight", Message: fmt.Sprintf("checksums of %d image sets verified on their nodes", n), MS: time.Since(t0).Milliseconds()})
	}
	if skipped > 0 {
		s.event(ctx, api.Event{ID: m.ID, Phase: "preflight", Message: fmt.Sprintf("checksums of %d image sets not re-hashed: hashed as this migration wrote them, checked against the snapshot's manifest at its commit", skipped)})
	}
	return problems
}

// VerifiedAtCommit returns the containers of m (SERVICE.SLOT) whose image set the
// commit of m checked on its node against the manifest: all of them when m carries a
// verdict without an error (the cut checker read every set through the agents'
// verify request, which re-hashes each file, or accepts by its files' stamps a set
// that node hashed itself as it wrote it in this snapshot, and compares the files
// with the manifest's record: coordinator.AgentCommitVerifier), none otherwise. Only
// for the operation that took m, right after it committed: a restore of m later, or
// of a set m reuses from another snapshot (its Images.Dir names that one), re-hashes.
func VerifiedAtCommit(m *store.Manifest) map[string]bool {
	if m == nil || m.Verdict == nil || m.Verdict.Error != "" || m.Verdict.CheckedAt.IsZero() {
		return nil
	}
	out := map[string]bool{}
	for _, c := range m.Containers {
		if c.Images != nil && c.Images.Node != "" && SetOf(m, c) == node.SetID(m.ID, c.Key()) {
			out[c.Key()] = true
		}
	}
	return out
}
