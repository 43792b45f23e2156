// Package dockertest gives the worker's tests real Docker nodes to run on, or skips the
// test loudly. Nodes come from SWARMCKPT_TEST_NODES, a space separated list of Docker
// sockets (unix:///run/swarmckpt/lab/lab-1/docker.sock ...); each node's exec-root is
// <socket dir>/exec when that exists (the lab's layout), else /run/docker. Without the
// variable, the host's /var/run/docker.sock is the only node.
//
// It also builds the data plane's own test workload (worker/internal/testimg) into the
// image swarmckpt/dptest:dev on each node, so tests need no registry.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// Image is the test workload image.
const Image = "swarmckpt/dptest:dev"

// Node is one Docker engine usable by tests.
type Node struct {
	Host     string // unix:///...sock
	ExecRoot string // docker exec-root; runc root is ExecRoot/runtime-runc/moby
	DataRoot string // docker data-root
}

// RuncRoot is runc's state root for the node's containers.
func (n Node) RuncRoot() string { return filepath.Join(n.ExecRoot, "runtime-runc", "moby") }

// Docker runs the docker CLI against the node and returns trimmed stdout.
func (n Node) Docker(args ...string) (string, error) {
	cmd := exec.Command("docker", append([]string{"-H", n.Host}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return strings.TrimSpace(out.String()), fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
	}
	return strings.TrimSpace(out.String()), nil
}

// MustDocker is Docker that fails the test on error.
func (n Node) MustDocker(t testing.TB, args ...string) string {
	t.Helper()
	out, err := n.Docker(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Nodes returns at least min usable nodes with the test image loaded, or skips t loudly.
func Nodes(t testing.TB, min int) []Node {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("SKIPPED LOUDLY: needs root (runc, CRIU, cgroups, netns)")
	}
	socks := strings.Fields(os.Getenv("SWARMCKPT_TEST_NODES"))
	if len(socks) == 0 {
		socks = []string{"unix:///var/run/docker.sock"}
	}
	var nodes []Node
	for _, s := range socks {
		n := Node{Host: s, ExecRoot: "/run/docker"}
		if d := filepath.Join(filepath.Dir(strings.TrimPrefix(s, "unix://")), "exec"); isDir(d) {
			n.ExecRoot = d
		}
		root, err := n.Docker("info", "--format", "{{.DockerRootDir}}")
		if err != nil {
			t.Skipf("SKIPPED LOUDLY: no Docker engine at %s (set SWARMCKPT_TEST_NODES to lab sockets): %v", s, err)
		}
		n.DataRoot = root
		nodes = append(nodes, n)
	}
	if len(nodes) < min {
		t.Skipf("SKIPPED LOUDLY: test needs %d Docker nodes, SWARMCKPT_TEST_NODES names %d", min, len(nodes))
	}
	for _, n := range nodes {
		ensureImage(t, n)
	}
	return nodes
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

var buildOnce sync.Once
var buildErr error
var binPath string

func ensureImage(t testing.TB, n Node) {
	t.Helper()
	if _, err := n.Docker("image", "inspect", Image); err == nil {
		return
	}
	buildOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		src := filepath.Join(filepath.Dir(file), "..", "testimg")
		binPath = filepath.Join(os.TempDir(), fmt.Sprintf("swarmckpt-testimg-%d", os.Getpid()))
		cmd := exec.Command("go", "build", "-o", binPath, ".")
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("build testimg: %w: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	bin, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"tmp/", "etc/"} {
		_ = tw.WriteHeader(&tar.Header{Name: d, Mode: 0o1777, Typeflag: tar.TypeDir})
	}
	// A file of the image for tests of deletions in the writable layer (filewriter).
	imageFile := []byte("from the image\n")
	_ = tw.WriteHeader(&tar.Header{Name: "etc/image-file", Mode: 0o644, Size: int64(len(imageFile))})
	_, _ = tw.Write(imageFile)
	_ = tw.WriteHeader(&tar.Header{Name: "testimg", Mode: 0o755, Size: int64(len(bin))})
	_, _ = tw.Write(bin)
	_ = tw.Close()
	cmd := exec.Command("docker", "-H", n.Host, "import", "--change", `ENTRYPOINT ["/testimg"]`, "-", Image)
	cmd.Stdin = &buf
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docker import %s on %s: %v: %s", Image, n.Host, err, out)
	}
}

// Run starts a detached container with a unique name, removed at cleanup; returns its ID.
func (n Node) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	_, _ = n.Docker("rm", "-f", name)
	id := n.MustDocker(t, append([]string{"run", "-d", "--name", name}, args...)...)
	t.Cleanup(func() { _, _ = n.Docker("rm", "-f", name) })
	return id
}

// WaitLog polls the container's logs until pred matches (true) or timeout.
func (n Node) WaitLog(t testing.TB, name string, timeout time.Duration, what string, pred func(logs string) bool) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var logs string
	for time.Now().Before(deadline) {
		cmd := exec.Command("docker", "-H", n.Host, "logs", name)
		out, _ := cmd.CombinedOutput()
		logs = string(out)
		if pred(logs) {
			return logs
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("container %s on %s: %s did not happen within %v; logs:\n%s", name, n.Host, what, timeout, tail(logs, 20))
	return ""
}

func tail(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

// Context returns a context bounded by d and canceled at cleanup.
func Context(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
