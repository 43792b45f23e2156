package coordinator

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/criuimg"
	"github.com/swarmckpt/swarmckpt/cut"
)

// LocalVerifier checks a snapshot whose image directories are readable from this
// process (a single machine, or a shared file system): every file's sha256 against the
// manifest, then the cut checker on the CRIU images (TCP sequence numbers of every
// connection between containers of the snapshot).
func LocalVerifier(ctx context.Context, m *store.Manifest) *store.Verdict {
	v := &store.Verdict{CheckedAt: time.Now().UTC()}
	dirs := map[string]string{}
	addrs := map[string][]netip.Addr{}
	for _, c := range m.Containers {
		if c.Images == nil {
			v.Error = fmt.Sprintf("%s has no image set", c.Key())
			return v
		}
		for _, f := range c.Images.Files {
			if err := checkFile(filepath.Join(c.Images.Dir, filepath.FromSlash(f.Name)), f); err != nil {
				v.Error = fmt.Sprintf("%s: %v", c.Key(), err)
				return v
			}
		}
		dirs[c.Key()] = filepath.Join(c.Images.Dir, "images")
		for _, ip := range c.IPs {
			if a, err := netip.ParseAddr(ip); err == nil {
				addrs[c.Key()] = append(addrs[c.Key()], a)
			}
		}
	}
	st, _, err := criuimg.FromImages(dirs, addrs)
	if err != nil {
		v.Error = fmt.Sprintf("read CRIU images: %v", err)
		return v
	}
	rep := cut.Check(st)
	v.Consistent = rep.Consistent()
	v.Summary = rep.Summary()
	v.Lines = rep.Lines()
	return v
}

func checkFile(path string, f store.File) error {
	fh, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("image file %s: %w (images live on their node; verify from that machine)", f.Name, err)
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return fmt.Errorf("image file %s: %w", f.Name, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); n != f.Size || !strings.EqualFold(got, f.SHA256) {
		return fmt.Errorf("image file %s: checksum mismatch (size %d sha256 %s, manifest says size %d sha256 %s): the images are corrupt; take a new snapshot",
			f.Name, n, got[:12], f.Size, f.SHA256[:min(12, len(f.SHA256))])
	}
	return nil
}

// AgentVerifier checks a snapshot where its images are: the node agent holding each
// container's image set re-hashes every file, compares them with the manifest and
// returns the TCP sockets of the CRIU images; the cut checker runs here on what the
// nodes returned. It works across machines (no shared file system), in parallel over
// the containers, each request bounded by timeout.
func AgentVerifier(b bus.Transport, timeout time.Duration) Verifier {
	return agentVerifier(b, timeout, false)
}

// AgentVerifierWatched is AgentVerifier whose requests watch each node's agent
// through agent (Service.AgentAlive), as AgentCommitVerifierWatched does: an
// `inspect --verify` whose agent is killed and restarted while it serves the request
// is asked again of the restarted agent at once, and one whose agent stays dead fails
// as soon as the coordinator stops hearing from it (its worker timeout), naming the
// node, instead of waiting for timeout. agent is called only once the coordinator runs.
func AgentVerifierWatched(b bus.Transport, timeout time.Duration, agent func(node string) (started time.Time, live bool)) Verifier {
	return agentVerifierWith(restore.AgentNodes{Bus: b, Agent: agent}, timeout, false)
}

// AgentCommitVerifier is AgentVerifier for the commit of a snapshot just taken
// (Config.VerifyCommit): a node accepts a set it hashed itself as it wrote it (dumped,
// or received while a migration streamed or dumped it there), whose files kept the
// size, mtime and inode they had then, without re-reading it
// (node.VerifyRequest.Recheck); every other set, and every set of an older agent, is
// re-hashed. Either way each set's files are compared with the manifest's record.
func AgentCommitVerifier(b bus.Transport, timeout time.Duration) Verifier {
	return agentVerifier(b, timeout, true)
}

// AgentCommitVerifierWatched is AgentCommitVerifier whose requests watch each node's
// agent through agent (Service.AgentAlive): a verify whose agent restarts or dies
// while it serves the request is asked again of the restarted agent at once
// (restore.AgentNodes), instead of holding the snapshot's commit until timeout (2 min
// when the agent of a node was killed mid-verify: fault seed 1417). Without a live
// agent the verify fails at once. agent is called only once the coordinator runs.
func AgentCommitVerifierWatched(b bus.Transport, timeout time.Duration, agent func(node string) (started time.Time, live bool)) Verifier {
	return agentVerifierWith(restore.AgentNodes{Bus: b, Agent: agent}, timeout, true)
}

// AgentAlive says when node's agent started (its heartbeats' start time) and whether
// it is live (heard from within the worker timeout).
func (s *Service) AgentAlive(node string) (time.Time, bool) { return s.live.agent(node) }

func agentVerifier(b bus.Transport, timeout time.Duration, recheck bool) Verifier {
	return agentVerifierWith(restore.AgentNodes{Bus: b}, timeout, recheck)
}

func agentVerifierWith(n restore.AgentNodes, timeout time.Duration, recheck bool) Verifier {
	return func(ctx context.Context, m *store.Manifest) *store.Verdict {
		v := &store.Verdict{CheckedAt: time.Now().UTC()}
		type result struct {
			socks []cut.Socket
			err   error
		}
		results := make([]result, len(m.Containers))
		var wg sync.WaitGroup
		for i, c := range m.Containers {
			if c.Images == nil || c.Images.Node == "" {
				v.Error = fmt.Sprintf("%s has no image set", c.Key())
				return v
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				socks, err := restore.SocketsOf(ctx, n, timeout, filepath.Base(c.Images.Dir), c, recheck)
				results[i] = result{socks, err}
			}()
		}
		wg.Wait()
		ids := make([]string, 0, len(m.Containers))
		addrs := map[string][]netip.Addr{}
		var all []cut.Socket
		for i, c := range m.Containers {
			if err := results[i].err; err != nil {
				v.Error = fmt.Sprintf("%s: %v", c.Key(), err)
				return v
			}
			ids = append(ids, c.Key())
			all = append(all, results[i].socks...)
			for _, ip := range c.IPs {
				if a, err := netip.ParseAddr(ip); err == nil {
					addrs[c.Key()] = append(addrs[c.Key()], a)
				}
			}
		}
		sort.Strings(ids)
		rep := cut.Check(cut.StateFromSockets(ids, all, addrs))
		v.Consistent = rep.Consistent()
		v.Summary = rep.Summary()
		v.Lines = rep.Lines()
		return v
	}
}
