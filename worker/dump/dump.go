package dump

import (
	"context"
	"errors"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// Sentinel errors.
var (
	// ErrCRIU: runc/CRIU refused or failed the checkpoint; the error carries the log tail.
	ErrCRIU = errors.New("dump: checkpoint failed")
	// ErrExists: the target set directory already exists.
	ErrExists = errors.New("dump: image set directory already exists")
)

// Options select how a container is dumped.
type Options struct {
	// LeaveRunning keeps the container running after the dump (a snapshot); otherwise
	// its processes exit once dumped (a migration).
	LeaveRunning bool
	// Node names the source node in the manifest.
	Node string
	// PageServer, when set (HOST:PORT), makes a post-copy dump: memory pages are not
	// written; CRIU keeps the container frozen and serves its pages lazily on that
	// address until the restore side has fetched them all, then the container exits.
	// Dump returns as soon as the other images are sealed; Lazy in the result tracks
	// the page server. With LeaveRunning the container is not ended after the last
	// page: CRIU leaves it as it found it (frozen, when its caller froze it: a held
	// post-copy migration, the caller ends it).
	PageServer string
	// Sink, when set, receives the images while CRIU writes them: the memory pages
	// (pages-*.img, which CRIU only appends to) as they grow, every other file once CRIU
	// is done; a file that changed under the follower is restarted and sent again. The
	// manifest's digests are then those of the bytes the sink received. A sink that
	// fails is no longer written to; the dump itself goes on (its error is the sink's
	// to report). Not for post-copy dumps.
	Sink Sink
	// SendPages, when set (HOST:PORT), sends the memory pages (pagemap-*.img and
	// pages-*.img) to the CRIU page server listening there, on the target node, instead
	// of writing them into the set: the set then holds every other image only. The
	// page server's node hashes the pages (Worker.DumpInto). Not with PageServer.
	SendPages string
	// Volumes are local named volumes whose content goes into the set (packVolumes),
	// while the container is frozen, right after CRIU's dump. Not for post-copy dumps.
	Volumes []Volume
	// PreCopied, when set, is the directory where PreDump wrote this container's
	// pre-dumps (images/pre/0 .. PreDumps-1, imageset.PreDumpPath) while it ran
	// (migrate --copy pre-copy): they move into the set, and CRIU writes only the pages
	// dirtied since the last one, chained onto it (--parent-path). The set records
	// PreDumps; its parent links are removed before it is sealed (regular files only)
	// and made again by its restore (imageset.LinkParents). Not with PageServer or
	// SendPages.
	PreCopied string
	// PreDumps is the number of pre-dumps in PreCopied.
	PreDumps int
	// PreKnown are the digests of the pre-dumps' files (names under images/, as in
	// the set), computed when they were sealed to be sent ahead: sealing reuses them.
	// With PreSent, the Sink's receiver holds those files already (sent while the
	// container ran): they are not streamed again.
	PreKnown map[string]imageset.File
	PreSent  bool
}

// PreDumper runs the pre-dumps of a pre-copy migration (Runc and Fake implement it).
type PreDumper interface {
	// PreDump writes pre-dump k (0-based) of the running container c into
	// imageset.PreDumpPath(images, k), chained onto pre-dump k-1 (CRIU's work files
	// under work), and returns the bytes of memory pages it wrote: all of them for
	// k = 0, those dirtied since pre-dump k-1 after. c keeps running.
	PreDump(ctx context.Context, c container.Ref, images, work string, k int) (int64, error)
}

// Volume is a local named volume to carry: its name, where the container mounts it,
// and its directory on this node (<data-root>/volumes/NAME/_data).
type Volume struct {
	Name, Target, Dir string
}

// Sink receives image files (relative names under images/) while they are written,
// in order per file; imageset.LiveWriter is one.
type Sink interface {
	// Append sends p as the next bytes of file name (an empty p announces the file).
	Append(name string, p []byte) error
	// Restart discards what was sent for name; its whole content follows again.
	Restart(name string) error
}

// Lazy is the page server of a post-copy dump, running after Dump returned.
type Lazy interface {
	// Wait blocks until every page was served (nil) or the transfer failed, in which
	// case CRIU resumes the source container.
	Wait() error
	// Cancel stops serving pages (the restore side, if any, fails).
	Cancel()
}

// Dumper checkpoints containers.
type Dumper interface {
	// Dump checkpoints c into the new directory set (which must not exist) and returns
	// its sealed manifest. spec is recorded in the manifest to recreate c elsewhere.
	Dump(ctx context.Context, c container.Ref, spec container.Spec, set string, opts Options) (*imageset.Manifest, error)
}
