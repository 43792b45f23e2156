package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("mkimage", flag.ContinueOnError)
	bin := fs.String("binary", "", "static binary to put in the image (required)")
	tag := fs.String("tag", "", "repository:tag, e.g. swarmckpt/counter:dev (required)")
	out := fs.String("out", "", "archive to write, e.g. build/workloads/counter.tar (required)")
	entry := fs.String("entrypoint", "", "path of the binary inside the image (default /<binary name>)")
	expose := fs.String("expose", "", "comma-separated ports, e.g. 8080/tcp,9000/tcp")
	arch := fs.String("arch", "amd64", "image architecture")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *bin == "" || *tag == "" || *out == "" {
		return errors.New("--binary, --tag and --out are required")
	}
	content, err := os.ReadFile(*bin)
	if err != nil {
		return fmt.Errorf("reading the binary: %w (run benchmarks/workloads/build.sh)", err)
	}
	s := Spec{Tag: *tag, File: *entry, Content: content, Arch: *arch,
		Labels: map[string]string{"org.swarmckpt.workload": filepath.Base(*bin)}}
	if s.File == "" {
		s.File = "/" + filepath.Base(*bin)
	}
	for _, p := range strings.Split(*expose, ",") {
		if p = strings.TrimSpace(p); p != "" {
			s.Expose = append(s.Expose, p)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(*out), ".mkimage-*")
	if err != nil {
		return fmt.Errorf("creating output next to %s: %w", *out, err)
	}
	defer os.Remove(tmp.Name())
	res, err := Write(tmp, s)
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), *out); err != nil {
		return fmt.Errorf("moving the archive into place: %w", err)
	}
	fmt.Printf("%s %s %s\n", *out, *tag, res.ImageID)
	return nil
}
