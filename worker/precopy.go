package worker

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"time"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
)

// PreCopier runs the pre-dumps of a pre-copy migration (migrate --copy pre-copy).
type PreCopier interface {
	// PreCopy pre-dumps the running container for image set setID, round after round
	// (each writing only the pages dirtied since the one before) as this worker's
	// iteration policy says (Config.PreCopy, migrate.NextRound), and keeps the
	// pre-dumps on this node for the set's dump (DumpOptions.PreCopied), which then
	// writes only the pages dirtied since the last round. The container runs on
	// throughout. Refused (node.ErrNoSoftDirty) where the kernel tracks no soft-dirty
	// pages (NodeInfo.PreCopy). A failed PreCopy keeps nothing; a new one replaces
	// the pre-dumps of an earlier one; DropSet of setID drops them. to, when set, is
	// the worker the set will stream to: the pre-dumps are sent there (sealed and
	// verified on arrival as a set of their own) once the rounds are done, while the
	// container still runs, and the set's streamed dump then sends only the rest; if
	// that send fails, the pre-dumps stream with the set (SendError says why).
	PreCopy(ctx context.Context, containerName, setID, to string) (PreCopyReport, error)
}

// PreCopyReport is what PreCopy did.
type PreCopyReport struct {
	// Rounds are the pre-dumps, in order: the bytes of memory pages each wrote and
	// the seconds it took.
	Rounds []migrate.Round `json:"rounds"`
	// Why is the policy's reason to stop pre-dumping.
	Why string `json:"why"`
	// SentTo is the worker the pre-dumps were sent to ahead of the dump ("" when none
	// was asked for, or the send failed: SendError).
	SentTo    string `json:"sentTo,omitempty"`
	SendError string `json:"sendError,omitempty"`
}

// Bytes is what the rounds wrote in all.
func (r PreCopyReport) Bytes() int64 {
	var n int64
	for _, x := range r.Rounds {
		n += x.Bytes
	}
	return n
}

// preCopyPrefix names the directory of a set's pre-dumps under the sets directory,
// until its dump takes them: <sets>/.precopy-<set ID> (images/pre/K inside; sealed,
// with its manifest, once sent ahead). On the target, the pre-dumps sent ahead are a
// set of that ID, which the set's live stream adopts (ReceiveLive).
const preCopyPrefix = ".precopy-"

// preCopyDir is where PreCopy keeps the pre-dumps of set id (valid set IDs only).
func preCopyDir(setsDir, id string) string { return filepath.Join(setsDir, preCopyPrefix+id) }

// errNoPreDumps: a PreCopied dump of a set PreCopy kept nothing for.
func errNoPreDumps(workerNode, setID string) error {
	return fmt.Errorf("worker %s: dump of set %s with its pre-dumps: %w: no pre-dump of it is kept here (PreCopy did not run or failed, or the worker restarted since); migrate again", workerNode, setID, node.ErrFailedPrecondition)
}

var (
	_ PreCopier = (*Client)(nil)
	_ PreCopier = (*Fake)(nil)
)

// PreCopy implements PreCopier: POST /v1/containers/{name}/precopy.
func (c *Client) PreCopy(ctx context.Context, name, setID, to string) (PreCopyReport, error) {
	var r PreCopyReport
	err := c.call(ctx, http.MethodPost, cpath(name, "precopy"), apiRequest{Set: setID, Addr: to}, &r)
	return r, err
}

// fakePreCopy is the Fake's pre-copy: SoftDirty turns it on.
type fakePreCopy struct {
	// rounds: set -> the pre-dumps PreCopy kept for it (consumed by its dump).
	rounds map[string]int
	// dumped: set -> the pre-dumps its PreCopied dump took.
	dumped map[string]int
	// sent: set -> the address its pre-dumps were sent to ahead of the dump.
	sent map[string]string
}

// PreCopy implements PreCopier: refused (node.ErrNoSoftDirty) unless SoftDirty;
// else the rounds migrate.RunPreCopy runs with the default policy over
// dump.FakePreDumpBytes, kept for the set's dump.
func (f *Fake) PreCopy(ctx context.Context, name, setID, to string) (PreCopyReport, error) {
	f.mu.Lock()
	on, fail := f.SoftDirty, f.FailDump[name]
	f.mu.Unlock()
	if !on {
		return PreCopyReport{}, fmt.Errorf("fake worker %s: pre-copy of %s: %w", f.Node, name, node.ErrNoSoftDirty)
	}
	if err := validSet(setID); err != nil {
		return PreCopyReport{}, err
	}
	rounds, why, err := migrate.RunPreCopy(ctx, migrate.DefaultPreCopyPolicy(), func(_ context.Context, k int) (int64, error) {
		if fail != nil {
			return 0, fail
		}
		return dump.FakePreDumpBytes(k), nil
	}, func() time.Time { return time.Time{} }) // the fake's rounds take no time: the size rules decide (3 rounds)
	if err != nil {
		return PreCopyReport{}, fmt.Errorf("fake worker %s: pre-copy of %s: %w", f.Node, name, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pre.rounds == nil {
		f.pre.rounds, f.pre.dumped, f.pre.sent = map[string]int{}, map[string]int{}, map[string]string{}
	}
	f.pre.rounds[setID] = len(rounds)
	rep := PreCopyReport{Rounds: rounds, Why: why}
	if to != "" {
		f.pre.sent[setID], rep.SentTo = to, to
	}
	return rep, nil
}

// PreSent returns, by set, the address its pre-dumps were sent to ahead of its dump.
func (f *Fake) PreSent() map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]string{}
	for k, v := range f.pre.sent {
		out[k] = v
	}
	return out
}

// PreCopied returns, by set, how many pre-dumps each PreCopied dump took.
func (f *Fake) PreCopied() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]int{}
	for k, v := range f.pre.dumped {
		out[k] = v
	}
	return out
}

// PreDumpsKept returns how many pre-dumps PreCopy kept for set that no dump took
// (nor DropSet dropped).
func (f *Fake) PreDumpsKept(set string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pre.rounds[set]
}

// takePreDumps is the fake's DumpOptions.PreCopied: the pre-dumps kept for set,
// taken (an error if none).
func (f *Fake) takePreDumps(set string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.pre.rounds[set]
	if n == 0 {
		return 0, errNoPreDumps(f.Node, set)
	}
	delete(f.pre.rounds, set)
	f.pre.dumped[set] = n
	return n, nil
}
