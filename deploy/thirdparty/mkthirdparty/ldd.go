package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path"
	"strings"
)

// ErrLdd is returned when the shared libraries of a file cannot be determined.
var ErrLdd = errors.New("mkthirdparty: ldd")

// parseLdd returns the absolute paths of the shared objects (loader included) in the
// output of ldd(1) for one file, in order of appearance, without duplicates. Virtual
// objects (linux-vdso) are skipped; "not found" is an error naming the library; a static
// binary ("not a dynamic executable", "statically linked") gives no paths.
func parseLdd(out string) ([]string, error) {
	var libs []string
	seen := map[string]bool{}
	add := func(p string) {
		if !seen[p] {
			seen[p] = true
			libs = append(libs, p)
		}
	}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "", strings.Contains(line, "not a dynamic executable"), strings.Contains(line, "statically linked"):
			continue
		case strings.Contains(line, "=> not found"):
			name, _, _ := strings.Cut(line, " ")
			return nil, fmt.Errorf("%w: library %s not found on this machine; install the package that provides it", ErrLdd, name)
		}
		if _, target, ok := strings.Cut(line, "=>"); ok {
			line = strings.TrimSpace(target)
		}
		p, _, _ := strings.Cut(line, " (")
		p = strings.TrimSpace(p)
		if !path.IsAbs(p) {
			continue // linux-vdso.so.1 and other virtual objects
		}
		add(path.Clean(p))
	}
	return libs, sc.Err()
}

// sharedLibs runs ldd on file and parses its output.
func sharedLibs(ctx context.Context, file string) ([]string, error) {
	out, err := exec.CommandContext(ctx, "ldd", file).CombinedOutput()
	if err != nil {
		// ldd exits 1 for a static binary and prints "not a dynamic executable".
		if strings.Contains(string(out), "not a dynamic executable") {
			return nil, nil
		}
		return nil, fmt.Errorf("%w: %s: %v: %s", ErrLdd, file, err, strings.TrimSpace(string(out)))
	}
	libs, err := parseLdd(string(out))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return libs, nil
}
