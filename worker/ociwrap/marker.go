package ociwrap

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Layout of the per-node restore area under the Docker data-root.
const (
	// AreaDir is <data-root>/swarmckpt.
	AreaDir = "swarmckpt"
	// RestoreDir holds directories ready to be restored.
	RestoreDir = "restore"
	// RestoredDir receives consumed directories (the worker garbage-collects it).
	RestoredDir = "restored"
	// ReadyFile must exist in a restore directory for it to be used.
	ReadyFile = "manifest.json"
	// ErrorFile is written into a restore directory whose restore failed.
	ErrorFile = "last-error"
	// RestoredFlag is created in runc's state dir of a restored container.
	RestoredFlag = "swarmckpt-restored"
)

// ForContainer is the restore directory name for a container ID.
func ForContainer(id string) string { return "id-" + id }

// ForTask is the restore directory name for a swarm service slot.
func ForTask(service string, slot int) string { return "svc-" + service + "." + strconv.Itoa(slot) }

// ErrBadBundle: the bundle's config.json could not be read.
var ErrBadBundle = errors.New("ociwrap: unreadable bundle")

// DataRoot finds Docker's data-root from the bundle's config.json: the source of the
// /etc/hostname bind mount is <data-root>/containers/<ID>/hostname. It returns "" with a
// nil error for a bundle that has no such mount (not a Docker container).
func DataRoot(bundle, id string) (string, error) {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	var cfg struct {
		Mounts []struct {
			Destination string `json:"destination"`
			Source      string `json:"source"`
		} `json:"mounts"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", fmt.Errorf("%w: %s/config.json: %w", ErrBadBundle, bundle, err)
	}
	for _, m := range cfg.Mounts {
		if m.Destination != "/etc/hostname" {
			continue
		}
		dir := filepath.Dir(m.Source) // <data-root>/containers/<ID>
		if filepath.Base(dir) != id || filepath.Base(filepath.Dir(dir)) != "containers" {
			return "", nil
		}
		return filepath.Dir(filepath.Dir(dir)), nil
	}
	return "", nil
}

// Find returns the restore directory for container id, or "" when there is none.
// It costs one stat when the node has no restore area.
func Find(dataRoot, id string) (string, error) {
	area := filepath.Join(dataRoot, AreaDir, RestoreDir)
	entries, err := os.ReadDir(area)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("ociwrap: read %s: %w", area, err)
	}
	hasSvc := false
	for _, e := range entries {
		if e.Name() == ForContainer(id) {
			return ready(filepath.Join(area, e.Name()))
		}
		hasSvc = hasSvc || strings.HasPrefix(e.Name(), "svc-")
	}
	if !hasSvc {
		return "", nil
	}
	service, slot, ok, err := TaskOf(dataRoot, id)
	if err != nil || !ok {
		return "", err
	}
	return ready(filepath.Join(area, ForTask(service, slot)))
}

func ready(dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(dir, ReadyFile)); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("ociwrap: %s: %w", dir, err)
	}
	return dir, nil
}

// TaskOf reads the swarm service name and slot of container id from Docker's
// config.v2.json; ok is false for containers that are not replicated swarm tasks.
func TaskOf(dataRoot, id string) (service string, slot int, ok bool, err error) {
	p := filepath.Join(dataRoot, "containers", id, "config.v2.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", 0, false, fmt.Errorf("ociwrap: read %s: %w", p, err)
	}
	var cfg struct {
		Config struct {
			Labels map[string]string `json:"Labels"`
		} `json:"Config"`
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return "", 0, false, fmt.Errorf("ociwrap: decode %s: %w", p, err)
	}
	service = cfg.Config.Labels["com.docker.swarm.service.name"]
	task := cfg.Config.Labels["com.docker.swarm.task.name"]
	if service == "" || task == "" {
		return "", 0, false, nil
	}
	rest, found := strings.CutPrefix(task, service+".")
	i := strings.IndexByte(rest, '.')
	if !found || i <= 0 {
		return "", 0, false, nil
	}
	slot, err = strconv.Atoi(rest[:i])
	if err != nil {
		return "", 0, false, nil // global service: task named by node ID, no slot
	}
	return service, slot, true, nil
}
