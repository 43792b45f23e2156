package lab

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// ComposeImages returns the images the services of a compose file use, sorted.
func ComposeImages(compose []byte) ([]string, error) {
	js, err := yaml.YAMLToJSON(compose)
	if err != nil {
		return nil, fmt.Errorf("compose file is not valid YAML: %w", err)
	}
	var f struct {
		Services map[string]struct {
			Image string `json:"image"`
		} `json:"services"`
	}
	if err := json.Unmarshal(js, &f); err != nil {
		return nil, fmt.Errorf("compose file: %w", err)
	}
	if len(f.Services) == 0 {
		return nil, fmt.Errorf("compose file has no services")
	}
	seen := map[string]bool{}
	var out []string
	for name, s := range f.Services {
		if s.Image == "" {
			return nil, fmt.Errorf("service %q has no image: swarm stacks cannot build images, so give it an image", name)
		}
		if !seen[s.Image] {
			seen[s.Image] = true
			out = append(out, s.Image)
		}
	}
	sort.Strings(out)
	return out, nil
}

// ImageTar maps an image reference to the tar in imageDir that provides it:
// swarmckpt/NAME:TAG is imageDir/NAME.tar. Other images are expected on the nodes already.
func ImageTar(imageDir, image string) (string, bool) {
	rest, ok := strings.CutPrefix(image, "swarmckpt/")
	if !ok {
		return "", false
	}
	name, _, _ := strings.Cut(rest, ":")
	return filepath.Join(imageDir, name+".tar"), true
}

// Deploy loads the images compose needs onto every node of p and deploys it as stack,
// then waits until every service runs its replicas (or timeout).
func Deploy(ctx context.Context, log *slog.Logger, p Plan, imageDir, composeFile, stack string, timeout time.Duration) error {
	b, err := os.ReadFile(composeFile)
	if err != nil {
		return fmt.Errorf("read compose file: %w", err)
	}
	images, err := ComposeImages(b)
	if err != nil {
		return fmt.Errorf("%s: %w", composeFile, err)
	}
	var tars []string
	for _, img := range images {
		if t, ok := ImageTar(imageDir, img); ok {
			if _, err := os.Stat(t); err != nil {
				return fmt.Errorf("image %s: %s is missing; run 'make images' first", img, t)
			}
			tars = append(tars, t)
		} else if err := requireImage(ctx, p, img); err != nil {
			return err
		}
	}
	if err := LoadImages(ctx, p, tars); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "docker", "stack", "deploy", "--resolve-image", "never", "-c", composeFile, stack)
	cmd.Env = append(os.Environ(), "DOCKER_HOST="+p.Manager().DockerHost())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("docker stack deploy %s: %w: %s", stack, err, strings.TrimSpace(string(out)))
	}
	log.Info("stack deployed; waiting for its tasks", "stack", stack)
	deadline := time.Now().Add(timeout)
	for {
		st, err := ServiceTasks(ctx, p, stack)
		done := err == nil && len(st) > 0
		for _, v := range st {
			if v[0] < v[1] {
				done = false
			}
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stack %s: services not all running after %s (running/desired: %v, err %v); see 'docker service ps' with $(swarmckpt lab env)", stack, timeout, st, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// requireImage checks that a non-project image is present on every node: the lab has no
// registry, so such images must be loaded by the user first.
func requireImage(ctx context.Context, p Plan, img string) error {
	return forEachNode(p, func(n Node) error {
		c, err := nodeClient(n)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.ImageInspect(ctx, img); err != nil {
			return fmt.Errorf("image %s is not on node %s and the lab has no registry: load it on every node, e.g. 'docker save %s | DOCKER_HOST=%s docker load'", img, n.Name, img, n.DockerHost())
		}
		return nil
	})
}
