package policy

import (
	"strings"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

// PurposeScheduled is the Purpose of the manifests of scheduled snapshots: only
// they count toward, and are removed by, retention.
const PurposeScheduled = "scheduled"

// Scheduled reports whether m is a scheduled snapshot.
func Scheduled(m *store.Manifest) bool { return m.Purpose == PurposeScheduled }

// Expired returns the ids of the snapshots retention removes from ms (one stack's
// manifests, oldest first as store.List returns them): the committed scheduled ones
// older than the newest retain of them. It never returns the stack's newest committed
// snapshot, one in inUse (a running restore or migration reads it), a manual one or
// one that is not committed. retain < 1 keeps everything.
func Expired(ms []*store.Manifest, retain int, inUse map[string]bool) []string {
	if retain < 1 {
		return nil
	}
	var sched []*store.Manifest
	newest := ""
	for _, m := range ms {
		if m.State != store.StateCommitted {
			continue
		}
		newest = m.ID
		if Scheduled(m) {
			sched = append(sched, m)
		}
	}
	if len(sched) <= retain {
		return nil
	}
	var out []string
	for _, m := range sched[:len(sched)-retain] {
		if m.ID == newest || inUse[m.ID] {
			continue
		}
		out = append(out, m.ID)
	}
	return out
}

// InUse returns the snapshot a stack lock holder uses: the coordinator's lock owners
// are "NAME/restore-ID-XXXXXX" and "NAME/migrate-ID-XXXXXX" (XXXXXX: 6 random hex
// digits) while a restore of snapshot ID or a migration taking snapshot ID runs;
// "" for any other holder.
func InUse(holder string) string {
	for _, op := range []string{"/restore-", "/migrate-"} {
		i := strings.Index(holder, op)
		if i < 0 {
			continue
		}
		rest := holder[i+len(op):]
		if j := strings.LastIndexByte(rest, '-'); j > 0 && len(rest)-j-1 == 6 {
			return rest[:j]
		}
		return rest
	}
	return ""
}
