package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

type multi []string

func (m *multi) String() string     { return strings.Join(*m, ",") }
func (m *multi) Set(s string) error { *m = append(*m, s); return nil }

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "mkthirdparty:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("mkthirdparty", flag.ContinueOnError)
	var files, links, dirs, users, envs, expose, labels multi
	tag := fs.String("tag", "", "image repository:tag (required)")
	out := fs.String("out", "", "output archive path (required)")
	runAs := fs.String("run-as", "", "user the container runs as (a --user name, or UID[:GID]); default root")
	workdir := fs.String("workdir", "/", "working directory")
	entrypoint := fs.String("entrypoint", "", `entrypoint as a JSON array, e.g. '["/usr/bin/redis-server"]' (required)`)
	cmd := fs.String("cmd", "", `default arguments as a JSON array, e.g. '["--save",""]'`)
	arch := fs.String("arch", "amd64", "image architecture")
	fs.Var(&files, "file", "SRC[=DST]: copy a host file (symlinks followed) and, if dynamically linked, its ldd libraries; repeatable")
	fs.Var(&links, "link", "PATH=TARGET: a symlink in the image; repeatable")
	fs.Var(&dirs, "dir", "PATH:MODE[:OWNER]: an empty directory, MODE octal; repeatable")
	fs.Var(&users, "user", "NAME:UID:GID[:HOME]: an account in /etc/passwd and /etc/group; repeatable")
	fs.Var(&envs, "env", "KEY=VALUE in the image config; repeatable")
	fs.Var(&expose, "expose", "PORT/tcp or PORT/udp; repeatable")
	fs.Var(&labels, "label", "KEY=VALUE image label; repeatable")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *tag == "" || *out == "" || *entrypoint == "" || fs.NArg() != 0 {
		return fmt.Errorf("%w: --tag, --out and --entrypoint are required and no arguments are taken", ErrSpec)
	}
	spec := Spec{Tag: *tag, Arch: *arch, Config: Config{Env: envs, Expose: expose, WorkingDir: *workdir, Labels: map[string]string{}}}
	if err := json.Unmarshal([]byte(*entrypoint), &spec.Config.Entrypoint); err != nil {
		return fmt.Errorf("%w: --entrypoint %q is not a JSON array of strings: %v", ErrSpec, *entrypoint, err)
	}
	if *cmd != "" {
		if err := json.Unmarshal([]byte(*cmd), &spec.Config.Cmd); err != nil {
			return fmt.Errorf("%w: --cmd %q is not a JSON array of strings: %v", ErrSpec, *cmd, err)
		}
	}
	for _, l := range labels {
		k, v, ok := strings.Cut(l, "=")
		if !ok || k == "" {
			return fmt.Errorf("%w: --label %q, want KEY=VALUE", ErrSpec, l)
		}
		spec.Config.Labels[k] = v
	}
	var us []User
	for _, s := range users {
		u, err := parseUser(s)
		if err != nil {
			return err
		}
		us = append(us, u)
	}
	etc, err := etcFiles(us)
	if err != nil {
		return err
	}
	spec.Entries = append(spec.Entries, etc...)
	spec.Entries = append(spec.Entries, Entry{Path: "/tmp", Kind: Dir, Mode: 0o1777})
	if *runAs != "" {
		if _, _, err := ownerOf(*runAs, us); err != nil {
			return err
		}
		spec.Config.User = *runAs
	}
	for _, d := range dirs {
		f := strings.SplitN(d, ":", 3)
		if len(f) < 2 {
			return fmt.Errorf("%w: --dir %q, want PATH:MODE[:OWNER]", ErrSpec, d)
		}
		mode, err := strconv.ParseInt(f[1], 8, 32)
		if err != nil {
			return fmt.Errorf("%w: --dir %q: mode is not octal", ErrSpec, d)
		}
		owner := ""
		if len(f) == 3 {
			owner = f[2]
		}
		uid, gid, err := ownerOf(owner, us)
		if err != nil {
			return err
		}
		spec.Entries = append(spec.Entries, Entry{Path: path.Clean(f[0]), Kind: Dir, Mode: mode, UID: uid, GID: gid})
	}
	for _, l := range links {
		p, target, ok := strings.Cut(l, "=")
		if !ok || p == "" || target == "" {
			return fmt.Errorf("%w: --link %q, want PATH=TARGET", ErrSpec, l)
		}
		spec.Entries = append(spec.Entries, Entry{Path: path.Clean(p), Kind: Symlink, Target: target})
	}
	for _, f := range files {
		src, dst, ok := strings.Cut(f, "=")
		if !ok {
			dst = src
		}
		entries, err := hostFile(ctx, src, path.Clean(dst))
		if err != nil {
			return err
		}
		spec.Entries = append(spec.Entries, entries...)
	}
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(*out), err)
	}
	tmp := *out + ".tmp"
	w, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	res, err := Write(w, spec)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	fmt.Fprintf(stdout, "%s: %s (%d entries) -> %s\n", *tag, res.ImageID[:19], res.Files, *out)
	return nil
}

// hostFile reads src (following symlinks) as dst and, when src is a dynamically linked
// program or library, every shared object ldd lists for it, at the same paths.
func hostFile(ctx context.Context, src, dst string) ([]Entry, error) {
	e, err := readFile(src, dst)
	if err != nil {
		return nil, err
	}
	out := []Entry{e}
	if !isELF(e.Content) {
		return out, nil
	}
	libs, err := sharedLibs(ctx, src)
	if err != nil {
		return nil, err
	}
	for _, l := range libs {
		le, err := readFile(l, l)
		if err != nil {
			return nil, fmt.Errorf("library of %s: %w", src, err)
		}
		out = append(out, le)
	}
	return out, nil
}

func readFile(src, dst string) (Entry, error) {
	st, err := os.Stat(src)
	if err != nil {
		return Entry{}, fmt.Errorf("%w: %s: %v (is its Debian package installed? run 'make setup')", ErrSpec, src, err)
	}
	if !st.Mode().IsRegular() {
		return Entry{}, fmt.Errorf("%w: %s is not a regular file", ErrSpec, src)
	}
	b, err := os.ReadFile(src)
	if err != nil {
		return Entry{}, fmt.Errorf("read %s: %w", src, err)
	}
	return Entry{Path: dst, Kind: File, Mode: int64(st.Mode().Perm()), Content: b}, nil
}

func isELF(b []byte) bool { return len(b) > 4 && string(b[:4]) == "\x7fELF" }
