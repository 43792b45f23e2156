package pipemax

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"syscall"
)

// DefaultSysctl is the kernel's setting.
const DefaultSysctl = "/proc/sys/fs/pipe-max-size"

// DefaultDir holds the host-wide lock files and the saved value.
const DefaultDir = "/run/swarmckpt/pipe-max-size"

// Governor raises and restores one pipe-max-size setting; see the package doc.
type Governor struct {
	// Sysctl is the setting's file (DefaultSysctl; tests use a plain file).
	Sysctl string
	// Dir is the host-wide directory of the locks and the saved value (DefaultDir).
	Dir string
	// Log reports each change of the setting (nil: slog.Default()).
	Log *slog.Logger
}

func (g Governor) log() *slog.Logger {
	if g.Log == nil {
		return slog.Default()
	}
	return g.Log
}

// Current reads the setting.
func (g Governor) Current() (int, error) {
	b, err := os.ReadFile(g.Sysctl)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", g.Sysctl, err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", g.Sysctl, err)
	}
	return n, nil
}

// CanRaise returns nil if this process may write the setting, else why not.
func (g Governor) CanRaise() error {
	if err := syscall.Access(g.Sysctl, 2 /* W_OK */); err != nil {
		return fmt.Errorf("%s is not writable here: %w", g.Sysctl, err)
	}
	return nil
}

// Raise makes the setting at least atLeast until the returned release is called (once;
// later calls do nothing). It blocks while another process of the host changes the
// setting, which takes microseconds.
func (g Governor) Raise(atLeast int) (release func() error, err error) {
	if err := os.MkdirAll(g.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("pipe-max-size: %w", err)
	}
	h, err := g.lockFile("holders", syscall.LOCK_SH)
	if err != nil {
		return nil, err
	}
	err = g.locked(func() error {
		cur, err := g.Current()
		if err != nil || cur >= atLeast {
			return err
		}
		if err := g.save(cur); err != nil {
			return err
		}
		if err := g.write(atLeast); err != nil {
			return err
		}
		g.log().Info("raised fs.pipe-max-size for CRIU's lazy page server", "from", cur, "to", atLeast)
		return nil
	})
	if err != nil {
		h.Close()
		return nil, err
	}
	var once sync.Once
	return func() error {
		var err error
		once.Do(func() {
			h.Close() // drops this holder's LOCK_SH
			err = g.Reconcile()
		})
		return err
	}, nil
}

// Reconcile puts the saved value back if no holder is left on the host: a worker calls
// it at start, for a raise whose holder was killed before it could release.
func (g Governor) Reconcile() error {
	if _, err := os.Stat(g.Dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return g.locked(func() error {
		h, err := g.lockFile("holders", syscall.LOCK_EX|syscall.LOCK_NB)
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil // another holder still needs the raised value
		}
		if err != nil {
			return err
		}
		defer h.Close()
		saved := filepath.Join(g.Dir, "saved")
		b, err := os.ReadFile(saved)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("pipe-max-size: %w", err)
		}
		n, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || n <= 0 {
			return fmt.Errorf("pipe-max-size: %s holds %q, not a size; remove it and set fs.pipe-max-size by hand", saved, b)
		}
		if err := g.write(n); err != nil {
			return err
		}
		if err := os.Remove(saved); err != nil {
			return fmt.Errorf("pipe-max-size: %w", err)
		}
		g.log().Info("put fs.pipe-max-size back", "to", n)
		return nil
	})
}

// locked runs f holding the host-wide mutex.
func (g Governor) locked(f func() error) error {
	m, err := g.lockFile("lock", syscall.LOCK_EX)
	if err != nil {
		return err
	}
	defer m.Close()
	return f()
}

// lockFile opens DIR/name (0600) and flocks it with how; closing the file unlocks.
func (g Governor) lockFile(name string, how int) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(g.Dir, name), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("pipe-max-size: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, err
		}
		return nil, fmt.Errorf("pipe-max-size: lock %s: %w", f.Name(), err)
	}
	return f, nil
}

// save records the value found before the first raise; a value already saved (by a
// holder that raised before, maybe one that died) is the older truth and stays.
func (g Governor) save(cur int) error {
	f, err := os.OpenFile(filepath.Join(g.Dir, "saved"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pipe-max-size: %w", err)
	}
	_, err = fmt.Fprintf(f, "%d\n", cur)
	return errors.Join(err, f.Close())
}

func (g Governor) write(n int) error {
	if err := os.WriteFile(g.Sysctl, []byte(strconv.Itoa(n)+"\n"), 0o644); err != nil {
		return fmt.Errorf("set %s to %d: %w", g.Sysctl, n, err)
	}
	return nil
}
