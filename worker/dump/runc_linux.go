package dump

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/migrate"
)

// WorkDir is the subdirectory of a set holding CRIU's logs (not part of the images).
const WorkDir = "work"

// Runc is the real Dumper.
type Runc struct {
	// Runc is the runc binary; empty means "runc" on PATH.
	Runc string
	// Root is runc's state root of the node's Docker containers
	// (<docker exec-root>/runtime-runc/moby).
	Root string
	// CRIU is the criu binary used for `criu --version`; empty means "criu".
	CRIU string

	once        sync.Once
	criuVersion string
	kernel      string

	// TLS, when set, encrypts the page-server connections (SendPages, post-copy, and
	// PageServer's side of them) with CRIU's TLS.
	TLS *TLS

	lazyMu sync.Mutex
	lazy   map[string]Lazy // post-copy page servers by set dir
}

var (
	_ Dumper    = (*Runc)(nil)
	_ PreDumper = (*Runc)(nil)
)

// Versions returns the CRIU version and kernel release recorded in manifests.
func (r *Runc) Versions() (criu, kernel string) {
	r.once.Do(func() {
		r.criuVersion, r.kernel = "unknown", "unknown"
		if out, err := exec.Command(or(r.CRIU, "criu"), "--version").Output(); err == nil {
			for _, line := range strings.Split(string(out), "\n") {
				if v, ok := strings.CutPrefix(line, "Version: "); ok {
					r.criuVersion = strings.TrimSpace(v)
				}
			}
		}
		if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
			r.kernel = strings.TrimSpace(string(b))
		}
	})
	return r.criuVersion, r.kernel
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Dump implements Dumper.
func (r *Runc) Dump(ctx context.Context, c container.Ref, spec container.Spec, set string, opts Options) (m *imageset.Manifest, err error) {
	if err := os.MkdirAll(filepath.Dir(set), imageset.DirMode); err != nil {
		return nil, fmt.Errorf("dump %s: %w", c, err)
	}
	if err := os.Mkdir(set, imageset.DirMode); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("dump %s into %s: %w", c, set, ErrExists)
		}
		return nil, fmt.Errorf("dump %s: %w (is the disk full or read-only?)", c, err)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, os.RemoveAll(set))
		}
	}()
	images, work := imageset.ImagesPath(set), filepath.Join(set, WorkDir)
	for _, d := range []string{images, work} {
		if err := os.Mkdir(d, imageset.DirMode); err != nil {
			return nil, fmt.Errorf("dump %s: %w", c, err)
		}
	}
	if opts.PageServer != "" {
		return r.dumpLazy(ctx, c, spec, set, opts)
	}
	args := []string{"--root", r.Root, "checkpoint", "--image-path", images, "--work-path", work, "--tcp-established"}
	if opts.LeaveRunning {
		args = append(args, "--leave-running")
	}
	if opts.SendPages != "" {
		args = append(args, "--page-server", opts.SendPages)
	}
	if opts.PreCopied != "" {
		// The pre-dumps (and CRIU's links between them) move in; CRIU writes only
		// the pages dirtied since the last one.
		if err := adoptPreDumps(opts.PreCopied, images, opts.PreDumps); err != nil {
			return nil, fmt.Errorf("dump %s: %w", c, err)
		}
		args = append(args, "--parent-path", imageset.ParentPath(opts.PreDumps, true))
	}
	args = append(args, c.ID)
	start := time.Now()
	cmd := exec.CommandContext(ctx, or(r.Runc, "runc"), args...)
	if opts.SendPages != "" {
		if cmd.Env, err = r.TLS.env(work); err != nil {
			return nil, fmt.Errorf("dump %s: %w", c, err)
		}
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// Hash the images while CRIU writes them (the second core is otherwise idle), so
	// sealing does not re-read the memory pages afterwards.
	// With a sink, the pages also stream to the target node as they are read.
	stop := make(chan struct{})
	type followed struct {
		known    map[string]imageset.File
		streamed map[string]bool
	}
	hashed := make(chan followed, 1)
	go func() {
		fl := newFollower(images, opts.Sink)
		// The set must reach the disk before it is reported durable (worker's
		// imageset.Sync): start the write-out of the pages as CRIU writes them.
		fl.writeback = true
		k, s := fl.run(stop, 2*time.Millisecond)
		hashed <- followed{k, s}
	}()
	err = cmd.Run()
	took := time.Since(start) // runc and CRIU only (the follower may still be catching up)
	close(stop)
	fw := <-hashed
	known := fw.known
	if err != nil {
		// Keep CRIU's log next to the (removed) set for diagnosis.
		logPath := filepath.Join(work, "dump.log")
		if os.Rename(logPath, set+".failed-dump.log") == nil {
			logPath = set + ".failed-dump.log"
		}
		logText, _ := os.ReadFile(logPath)
		return nil, noSpace(fmt.Errorf("dump %s: %w: runc checkpoint: %w: %s; CRIU log: %s",
			c, ErrCRIU, err, strings.TrimSpace(out.String()), LogTail(logPath, 6)), filepath.Dir(set), freeBytes(filepath.Dir(set)),
			out.String(), string(logText))
	}
	if opts.PreCopied != "" {
		// A sealed set holds regular files only: its restore links the chain again.
		if err := imageset.UnlinkParents(images, opts.PreDumps); err != nil {
			return nil, fmt.Errorf("dump %s: %w", c, err)
		}
	}
	// The writable layer, before the images stream on (the tar is one more file of the
	// set). A snapshot (leave running) whose layer cannot be packed fails: its
	// container runs on, and a set that cannot be restored elsewhere is worse than none.
	// After a dump that stopped the container, the processes are gone: the set is kept
	// (it restores on this node) and says why the layer is missing.
	rootfs, tarFile, rerr := packRootfs(spec, images)
	if rerr != nil && opts.LeaveRunning {
		return nil, fmt.Errorf("dump %s: writable layer: %w", c, rerr)
	}
	vols, volFiles, verr := packVolumes(opts.Volumes, images)
	if verr != nil {
		return nil, fmt.Errorf("dump %s: %w", c, verr)
	}
	criu, kernel := r.Versions()
	m = &imageset.Manifest{
		ContainerID: c.ID, Node: opts.Node, Spec: spec, LeaveRunning: opts.LeaveRunning,
		CRIUVersion: criu, Kernel: kernel, Created: time.Now().UTC(), DumpSeconds: took.Seconds(),
		Rootfs: rootfs, Volumes: vols, PreDumps: preDumps(opts),
	}
	if ps := cmd.ProcessState; ps != nil {
		m.DumpCPUSeconds = (ps.UserTime() + ps.SystemTime()).Seconds() // runc and the CRIU it waited for
	}
	known = withPreKnown(known, opts)
	if opts.Sink != nil {
		if known, err = streamRest(images, known, fw.streamed, opts.Sink); err != nil {
			return nil, fmt.Errorf("dump %s: read back images: %w", c, err)
		}
	} else {
		// Hashed as they were written: sealing does not read them again (the container
		// is still frozen). With a sink, streamRest sent and hashed them.
		if known == nil {
			known = map[string]imageset.File{}
		}
		if tarFile.Name != "" {
			known[tarFile.Name] = tarFile
		}
		for n, f := range volFiles {
			known[n] = f
		}
	}
	if err := imageset.SealKnown(set, m, known); err != nil {
		return nil, fmt.Errorf("dump %s: %w", c, err)
	}
	return m, nil
}

// LogTail returns the last n error-ish lines of a CRIU log, or a note when unreadable.
func LogTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log at %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var errs []string
	for _, l := range lines {
		if strings.Contains(l, "Error") || strings.Contains(l, "error") || strings.Contains(l, "Warn") {
			errs = append(errs, strings.TrimSpace(l))
		}
	}
	if len(errs) == 0 {
		errs = lines
	}
	if len(errs) > n {
		errs = errs[len(errs)-n:]
	}
	return strings.Join(errs, " | ") + " (full log: " + path + ")"
}

// Kill ends the processes of c with SIGKILL (runc kill): a cold migration that dumped
// them with --leave-running (the images were still in flight) ends them once the
// target holds the whole set. A frozen container dies when thawed, without running.
func (r *Runc) Kill(ctx context.Context, c container.Ref) error {
	out, err := exec.CommandContext(ctx, or(r.Runc, "runc"), "--root", r.Root, "kill", c.ID, "KILL").CombinedOutput()
	if err != nil {
		return fmt.Errorf("kill %s: runc kill: %w: %s", c, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// WaitEnded waits until the init process of c, killed by Kill and thawed, is gone
// (runc state reports it stopped, or no longer knows the container), polling every
// 5 ms until ctx ends.
func (r *Runc) WaitEnded(ctx context.Context, c container.Ref) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		out, err := exec.CommandContext(ctx, or(r.Runc, "runc"), "--root", r.Root, "state", c.ID).Output()
		var ee *exec.ExitError
		if errors.As(err, &ee) && strings.Contains(string(ee.Stderr), "does not exist") {
			return nil // the shim reaped it and runc forgot the container
		}
		var st struct {
			Status string `json:"status"`
		}
		if err == nil && json.Unmarshal(out, &st) == nil && st.Status == "stopped" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still runs after SIGKILL: %w", c, ctx.Err())
		case <-t.C:
		}
	}
}

// PageServer runs `criu page-server` on the connected socket conn until the dumping
// CRIU at the other end closes the session, writing the pages it sends into images.
// CRIU's log goes to logFile. It returns CRIU's error, if any, with the log's tail.
func (r *Runc) PageServer(ctx context.Context, conn *os.File, images, logFile string) error {
	cmd := exec.CommandContext(ctx, or(r.CRIU, "criu"), append([]string{"page-server", "--images-dir", images,
		"--ps-socket", "3", "--work-dir", filepath.Dir(logFile), "-o", filepath.Base(logFile), "-v2"}, r.TLS.Args()...)...)
	cmd.ExtraFiles = []*os.File{conn}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%w: criu page-server: %w: %s; CRIU log: %s", ErrCRIU, err, strings.TrimSpace(string(out)), LogTail(logFile, 6))
	}
	return nil
}

// PreDump implements PreDumper: `runc checkpoint --pre-dump` (migrate.PreDumpArgs),
// the container running on.
func (r *Runc) PreDump(ctx context.Context, c container.Ref, images, work string, k int) (int64, error) {
	dir := imageset.PreDumpPath(images, k)
	wdir := filepath.Join(work, fmt.Sprintf("pre-%d", k))
	for _, d := range []string{dir, wdir} {
		if err := os.MkdirAll(d, imageset.DirMode); err != nil {
			return 0, fmt.Errorf("pre-dump %d of %s: %w", k, c, err)
		}
	}
	out, err := exec.CommandContext(ctx, or(r.Runc, "runc"), migrate.PreDumpArgs(r.Root, c.ID, images, work, k)...).CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("pre-dump %d of %s: %w: runc checkpoint --pre-dump: %w: %s; CRIU log: %s",
			k, c, ErrCRIU, err, strings.TrimSpace(string(out)), LogTail(filepath.Join(wdir, "dump.log"), 6))
	}
	return pagesBytes(dir)
}

// pagesBytes is the size of the memory pages (pages-*.img) in dir.
func pagesBytes(dir string) (int64, error) {
	pages, err := filepath.Glob(filepath.Join(dir, "pages-*.img"))
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range pages {
		fi, err := os.Stat(p)
		if err != nil {
			return 0, err
		}
		n += fi.Size()
	}
	return n, nil
}
