package worker

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// DrainSetPrefix begins the name of every set a drain hold checkpoints into
// (coordinator/drain.go: drain.SERVICE.SLOT.UNIXMS). No snapshot manifest names such
// a set: the coordinator places it for swarm's replacement and keeps no record.
const DrainSetPrefix = "drain."

// DrainSetTTL is how long a drain set stays in a node's sets directory: the source's
// copy of a streamed drain, and a set whose placement failed (a direct one's only
// copy; the coordinator's log and the `released` event name it and its node). Nothing
// of swarmckpt reads one again after its hold ended; it is kept this long for an
// operator's look or a restore by hand, as the failed dumps' CRIU logs are
// (failedLogTTL), then dropped.
const DrainSetTTL = failedLogTTL

// ExpiredDrainSets returns the names among names (a sets directory's entries) of the
// drain sets older than ttl at now (pure): the age comes from the name's UNIXMS, else
// from modTime(name) (a name that does not end in one). Other names are never returned.
func ExpiredDrainSets(names []string, now time.Time, ttl time.Duration, modTime func(string) (time.Time, bool)) []string {
	var out []string
	for _, n := range names {
		if !strings.HasPrefix(n, DrainSetPrefix) || strings.HasPrefix(n, ".") {
			continue
		}
		var at time.Time
		if ms, err := strconv.ParseInt(n[strings.LastIndexByte(n, '.')+1:], 10, 64); err == nil && ms > 0 {
			at = time.UnixMilli(ms)
		} else if mt, ok := modTime(n); ok {
			at = mt
		} else {
			continue
		}
		if now.Sub(at) >= ttl {
			out = append(out, n)
		}
	}
	return out
}

// pruneDrainSets drops the drain sets older than DrainSetTTL (Start calls it, and
// every held stop's checkpoint: a node that drains often collects its old ones then).
func (w *Worker) pruneDrainSets(ctx context.Context, now time.Time) {
	entries, err := os.ReadDir(w.SetsDir())
	if err != nil {
		return // no sets yet
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	modTime := func(n string) (time.Time, bool) {
		fi, err := os.Stat(w.SetsDir() + "/" + n)
		if err != nil {
			return time.Time{}, false
		}
		return fi.ModTime(), true
	}
	for _, n := range ExpiredDrainSets(names, now, DrainSetTTL, modTime) {
		if err := w.DropSet(ctx, n); err != nil {
			w.log.Warn("could not drop an old drain set", "set", n, "err", err)
			continue
		}
		w.log.Info("dropped a drain set older than its retention (the source's copy of a streamed drain, or a set whose placement failed)",
			"set", n, "retention", DrainSetTTL)
	}
}
