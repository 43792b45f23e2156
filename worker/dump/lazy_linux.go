package dump

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

type runcLazy struct {
	done chan struct{}
	err  error
	cmd  *exec.Cmd
}

func (l *runcLazy) Wait() error { <-l.done; return l.err }

// Cancel kills runc and the CRIU it started (its own process group: killing runc
// alone leaves CRIU serving pages and holding the container's tasks, seen on the lab).
func (l *runcLazy) Cancel() { _ = syscall.Kill(-l.cmd.Process.Pid, syscall.SIGKILL) }

// LazyOf returns the page server of the post-copy dump that produced set, if one runs.
func (r *Runc) LazyOf(set string) (Lazy, bool) {
	r.lazyMu.Lock()
	defer r.lazyMu.Unlock()
	l, ok := r.lazy[set]
	return l, ok
}

// dumpLazy runs `runc checkpoint --lazy-pages --page-server ADDR --status-fd 3` in the
// background and returns once CRIU reports (on the status fd) that every image but
// the memory pages is written and the page server listens. With opts.LeaveRunning
// the container outlives the page server (a held post-copy migration's source).
func (r *Runc) dumpLazy(ctx context.Context, c container.Ref, spec container.Spec, set string, opts Options) (*imageset.Manifest, error) {
	images, work := imageset.ImagesPath(set), filepath.Join(set, WorkDir)
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("dump %s: %w", c, err)
	}
	defer pr.Close()
	args := []string{"--root", r.Root, "checkpoint", "--image-path", images, "--work-path", work,
		"--tcp-established", "--lazy-pages", "--page-server", opts.PageServer, "--status-fd", "3"}
	if opts.LeaveRunning {
		args = append(args, "--leave-running")
	}
	args = append(args, c.ID)
	// Not CommandContext: the page server must outlive this call.
	cmd := exec.Command(or(r.Runc, "runc"), args...)
	if cmd.Env, err = r.TLS.env(work); err != nil {
		return nil, fmt.Errorf("dump %s: %w", c, err)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.ExtraFiles = []*os.File{pw}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Cancel ends runc and CRIU together
	start := time.Now()
	if err := cmd.Start(); err != nil {
		pw.Close()
		return nil, fmt.Errorf("dump %s: %w: start runc: %w", c, ErrCRIU, err)
	}
	pw.Close()
	l := &runcLazy{done: make(chan struct{}), cmd: cmd}
	go func() {
		err := cmd.Wait()
		if err != nil {
			l.err = fmt.Errorf("post-copy of %s: %w: %w: %s; CRIU log: %s", c, ErrCRIU, err,
				strings.TrimSpace(out.String()), LogTail(filepath.Join(work, "dump.log"), 6))
		}
		close(l.done)
	}()
	ready := make(chan error, 1)
	go func() {
		b := make([]byte, 1)
		_, err := pr.Read(b)
		ready <- err
	}()
	select {
	case err := <-ready:
		if err != nil {
			<-l.done
			return nil, errors.Join(fmt.Errorf("dump %s: %w: lazy page server never became ready", c, ErrCRIU), l.err)
		}
	case <-ctx.Done():
		_ = cmd.Process.Kill()
		<-l.done
		return nil, fmt.Errorf("dump %s: waiting for the lazy page server: %w", c, ctx.Err())
	}
	criu, kernel := r.Versions()
	// CRIU holds the container frozen while it serves pages: its writable layer is the
	// one of the dump. A layer that cannot be packed is reported in the manifest.
	rootfs, _, _ := packRootfs(spec, imageset.ImagesPath(set))
	m := &imageset.Manifest{ContainerID: c.ID, Node: opts.Node, Spec: spec, CRIUVersion: criu, Kernel: kernel,
		Created: time.Now().UTC(), DumpSeconds: time.Since(start).Seconds(), LazyPages: opts.PageServer, Rootfs: rootfs, LeaveRunning: opts.LeaveRunning}
	if err := imageset.Seal(set, m); err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("dump %s: %w", c, err)
	}
	r.lazyMu.Lock()
	if r.lazy == nil {
		r.lazy = map[string]Lazy{}
	}
	r.lazy[set] = l
	r.lazyMu.Unlock()
	go func() {
		<-l.done
		r.lazyMu.Lock()
		delete(r.lazy, set)
		r.lazyMu.Unlock()
	}()
	return m, nil
}
