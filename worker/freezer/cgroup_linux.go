package freezer

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/swarmckpt/swarmckpt/worker/container"
)

// Cgroup is the real Freezer over the cgroup filesystem.
type Cgroup struct {
	// Root is the cgroup mount root; empty means /sys/fs/cgroup.
	Root string
	// Poll is the interval at which FREEZING is polled; 0 means 1 ms.
	Poll time.Duration
}

var _ Freezer = (*Cgroup)(nil)

// cgroupDir locates c's freezer and says whether it is cgroup v2.
func (g *Cgroup) cgroupDir(c container.Ref) (dir string, v2 bool, err error) {
	root := g.Root
	if root == "" {
		root = "/sys/fs/cgroup"
	}
	if c.Pid <= 0 {
		return "", false, fmt.Errorf("freezer %s: no pid: %w", c, ErrNoCgroup)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", c.Pid))
	if err != nil {
		return "", false, fmt.Errorf("freezer %s: %w: %w", c, ErrNoCgroup, err)
	}
	defer f.Close()
	v1, unified := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, ctl := range strings.Split(parts[1], ",") {
			if ctl == "freezer" {
				v1 = parts[2]
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
		}
	}
	if v1 != "" {
		dir = filepath.Join(root, "freezer", v1)
		if _, err := os.Stat(filepath.Join(dir, "freezer.state")); err == nil {
			return dir, false, nil
		}
	}
	if unified != "" {
		for _, d := range []string{filepath.Join(root, unified), filepath.Join(root, "unified", unified)} {
			if _, err := os.Stat(filepath.Join(d, "cgroup.freeze")); err == nil {
				return d, true, nil
			}
		}
	}
	return "", false, fmt.Errorf("freezer %s: pid %d has no freezer cgroup (v1 %q, v2 %q): %w", c, c.Pid, v1, unified, ErrNoCgroup)
}

func (g *Cgroup) state(dir string, v2 bool) (string, error) {
	if v2 {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err != nil {
			return "", err
		}
		for _, line := range strings.Split(string(b), "\n") {
			if line == "frozen 1" {
				return "FROZEN", nil
			}
		}
		f, err := os.ReadFile(filepath.Join(dir, "cgroup.freeze"))
		if err == nil && strings.TrimSpace(string(f)) == "1" {
			return "FREEZING", nil
		}
		return "THAWED", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "freezer.state"))
	return strings.TrimSpace(string(b)), err
}

func (g *Cgroup) write(dir string, v2, freeze bool) error {
	if v2 {
		v := "0"
		if freeze {
			v = "1"
		}
		return os.WriteFile(filepath.Join(dir, "cgroup.freeze"), []byte(v), 0)
	}
	v := "THAWED"
	if freeze {
		v = "FROZEN"
	}
	return os.WriteFile(filepath.Join(dir, "freezer.state"), []byte(v), 0)
}

// Freeze implements Freezer.
func (g *Cgroup) Freeze(ctx context.Context, c container.Ref) error {
	dir, v2, err := g.cgroupDir(c)
	if err != nil {
		return err
	}
	poll := g.Poll
	if poll <= 0 {
		poll = time.Millisecond
	}
	for {
		// cgroup v1 may fall back from FREEZING to THAWED when a task cannot be frozen;
		// writing FROZEN again retries, as runc does.
		if err := g.write(dir, v2, true); err != nil {
			return fmt.Errorf("freezer %s: freeze %s: %w", c, dir, err)
		}
		st, err := g.state(dir, v2)
		if err != nil {
			return fmt.Errorf("freezer %s: read state in %s: %w", c, dir, err)
		}
		if st == "FROZEN" {
			return nil
		}
		select {
		case <-ctx.Done():
			terr := g.write(dir, v2, false)
			return fmt.Errorf("freezer %s: still %s when the deadline passed, thawed again (thaw error: %v): %w", c, st, terr, ctx.Err())
		case <-time.After(poll):
		}
	}
}

// Thaw implements Freezer.
func (g *Cgroup) Thaw(ctx context.Context, c container.Ref) error {
	dir, v2, err := g.cgroupDir(c)
	if err != nil {
		return err
	}
	if err := g.write(dir, v2, false); err != nil {
		return fmt.Errorf("freezer %s: thaw %s: %w", c, dir, err)
	}
	return nil
}

// Frozen implements Freezer.
func (g *Cgroup) Frozen(ctx context.Context, c container.Ref) (bool, error) {
	dir, v2, err := g.cgroupDir(c)
	if err != nil {
		return false, err
	}
	st, err := g.state(dir, v2)
	if err != nil {
		return false, fmt.Errorf("freezer %s: read state in %s: %w", c, dir, err)
	}
	return st == "FROZEN", nil
}
