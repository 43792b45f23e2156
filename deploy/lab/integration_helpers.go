package lab

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
)

// IntegrationSkipReason returns why integration tests against real labs cannot run here,
// or "" when they can: they need SWARMCKPT_INTEGRATION=1 (make test-integration sets it),
// root, dockerd, runc and criu on PATH (make setup installs them).
func IntegrationSkipReason() string {
	if os.Getenv("SWARMCKPT_INTEGRATION") != "1" {
		return "SKIP INTEGRATION: SWARMCKPT_INTEGRATION=1 not set; run 'make test' (as root, after 'make setup') to run integration tests on a real lab"
	}
	if os.Geteuid() != 0 {
		return "SKIP INTEGRATION: not root; labs need network namespaces, dockerd and CRIU"
	}
	for _, tool := range []string{"dockerd", "runc", "criu", "ip", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "SKIP INTEGRATION: " + tool + " not on PATH; run 'make setup' (criu is in /usr/local/sbin)"
		}
	}
	return ""
}

// ImageDirForTests returns the workload image directory: $SWARMCKPT_IMAGES, or
// build/workloads at the module root.
func ImageDirForTests() (string, error) {
	if d := os.Getenv("SWARMCKPT_IMAGES"); d != "" {
		return d, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate module root")
	}
	return filepath.Join(filepath.Dir(file), "..", "..", "build", "workloads"), nil
}
