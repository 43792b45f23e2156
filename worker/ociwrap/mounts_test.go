package ociwrap

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestResolveBindSourcesReplacesSymlinks: Docker's init is bind-mounted from
// /usr/bin/docker-init, a symlink to tini-static on Debian, which CRIU's restore cannot
// bind; the wrapper hands runc the resolved file. Other mounts and fields are untouched.
func TestResolveBindSourcesReplacesSymlinks(t *testing.T) {
	d := t.TempDir()
	real := filepath.Join(d, "tini-static")
	must(t, os.WriteFile(real, []byte("x"), 0o755))
	link := filepath.Join(d, "docker-init")
	must(t, os.Symlink("tini-static", link)) // relative, as Debian ships it
	plain := filepath.Join(d, "hosts")
	must(t, os.WriteFile(plain, nil, 0o644))
	b := filepath.Join(d, "bundle")
	must(t, os.MkdirAll(b, 0o700))
	writeJSON(t, filepath.Join(b, "config.json"), map[string]any{
		"ociVersion": "1.0.2",
		"mounts": []map[string]any{
			{"destination": "/proc", "type": "proc", "source": "proc"},
			{"destination": "/sbin/docker-init", "type": "bind", "source": link, "options": []string{"rbind", "ro"}},
			{"destination": "/etc/hosts", "type": "bind", "source": plain, "options": []string{"rbind"}},
			{"destination": "/x", "source": link, "options": []string{"bind"}},
		},
	})
	changed, err := ResolveBindSources(b)
	must(t, err)
	if len(changed) != 2 || !strings.Contains(changed[0], link+" -> "+real) {
		t.Fatalf("changed %q", changed)
	}
	raw, _ := os.ReadFile(filepath.Join(b, "config.json"))
	var cfg struct {
		OCIVersion string `json:"ociVersion"`
		Mounts     []struct {
			Destination, Source string
			Options             []string
		} `json:"mounts"`
	}
	must(t, json.Unmarshal(raw, &cfg))
	if cfg.OCIVersion != "1.0.2" || len(cfg.Mounts) != 4 || cfg.Mounts[0].Source != "proc" ||
		cfg.Mounts[1].Source != real || !slices.Equal(cfg.Mounts[1].Options, []string{"rbind", "ro"}) ||
		cfg.Mounts[2].Source != plain || cfg.Mounts[3].Source != real {
		t.Fatalf("config.json after: %s", raw)
	}
	// Nothing to resolve: the file is not rewritten.
	before, _ := os.ReadFile(filepath.Join(b, "config.json"))
	if changed, err := ResolveBindSources(b); err != nil || changed != nil {
		t.Fatalf("second pass: %q %v", changed, err)
	}
	if after, _ := os.ReadFile(filepath.Join(b, "config.json")); string(after) != string(before) {
		t.Fatal("config.json rewritten with nothing to change")
	}
	// A dangling symlink is an error naming it, not a restore that fails in CRIU.
	must(t, os.Remove(real))
	writeJSON(t, filepath.Join(b, "config.json"), map[string]any{"mounts": []map[string]any{{"destination": "/sbin/docker-init", "type": "bind", "source": link}}})
	if _, err := ResolveBindSources(b); err == nil || !strings.Contains(err.Error(), link) {
		t.Fatalf("dangling symlink: %v", err)
	}
}

// TestRestoreAddsTheSysctlHookLast: a bundle with network sysctls gets the sysctl hook
// after libnetwork's (per-interface keys need the interfaces it moves in); one without
// any is not touched; the hook refuses a state without pid or bundle.
func TestRestoreAddsTheSysctlHookLast(t *testing.T) {
	for _, withSysctl := range []bool{false, true} {
		n := newNode(t, nil)
		cfgPath := filepath.Join(n.bundle, "config.json")
		var cfg map[string]any
		raw, _ := os.ReadFile(cfgPath)
		must(t, json.Unmarshal(raw, &cfg))
		linux := map[string]any{"namespaces": []map[string]string{{"type": "mount"}, {"type": "network"}}}
		if withSysctl {
			linux["sysctl"] = map[string]string{"net.core.somaxconn": "511", "kernel.shmmax": "1"}
		}
		cfg["linux"] = linux
		cfg["hooks"] = map[string]any{"prestart": []map[string]any{{"path": "/proc/1/exe", "args": []string{"libnetwork-setkey"}}}}
		writeJSON(t, cfgPath, cfg)
		n.placeDir(t, ForContainer(id))
		before, _ := os.ReadFile(cfgPath)
		if code, _, stderr := n.run(t, n.create()...); code != 0 {
			t.Fatalf("sysctl=%v: exit %d: %s", withSysctl, code, stderr)
		}
		after, _ := os.ReadFile(cfgPath)
		if !withSysctl {
			if string(before) != string(after) {
				t.Fatalf("no sysctls, but config.json changed:\n%s", after)
			}
			continue
		}
		var got struct {
			Hooks map[string][]struct {
				Path string   `json:"path"`
				Args []string `json:"args"`
			} `json:"hooks"`
		}
		must(t, json.Unmarshal(after, &got))
		pre := got.Hooks["prestart"]
		if len(pre) != 2 || pre[0].Args[0] != "libnetwork-setkey" || len(pre[1].Args) != 2 || pre[1].Args[1] != SysctlHookCommand {
			t.Fatalf("prestart hooks %+v", pre)
		}
	}
	kv, err := netSysctls(func() string {
		b := t.TempDir()
		writeJSON(t, filepath.Join(b, "config.json"), map[string]any{"linux": map[string]any{"sysctl": map[string]string{"net.ipv4.ip_unprivileged_port_start": "0", "kernel.msgmax": "9"}}})
		return b
	}())
	if err != nil || len(kv) != 1 || kv["net.ipv4.ip_unprivileged_port_start"] != "0" {
		t.Fatalf("netSysctls = %v %v, want only the net.* key", kv, err)
	}
	if err := SysctlHook(strings.NewReader(`{"ociVersion":"1.0.2","id":"x","pid":5}`)); !errors.Is(err, ErrSysctl) {
		t.Fatalf("hook without bundle: %v, want ErrSysctl", err)
	}
	if err := ApplySysctls("/nonexistent", map[string]string{"kernel.shmmax": "1"}); err == nil {
		t.Fatal("a non-net key must be refused")
	}
}
