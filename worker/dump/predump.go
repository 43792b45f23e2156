package dump

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// adoptPreDumps moves the n pre-dumps PreDump wrote under staging/images/pre into
// images/pre of the set being dumped (same file system: a rename), with the links
// between them; every one of them must be there.
func adoptPreDumps(staging, images string, n int) error {
	if n < 1 {
		return fmt.Errorf("pre-copy: %s holds no pre-dump to chain onto", staging)
	}
	from := filepath.Join(imageset.ImagesPath(staging), imageset.PreDumpsDir)
	for k := 0; k < n; k++ {
		if _, err := os.Stat(imageset.PreDumpPath(imageset.ImagesPath(staging), k)); err != nil {
			return fmt.Errorf("pre-copy: pre-dump %d of %d: %w", k, n, err)
		}
	}
	if err := os.Rename(from, filepath.Join(images, imageset.PreDumpsDir)); err != nil {
		return fmt.Errorf("pre-copy: adopt the pre-dumps: %w", err)
	}
	return nil
}

// preDumps is the PreDumps a set dumped with opts records.
func preDumps(opts Options) int {
	if opts.PreCopied == "" {
		return 0
	}
	return opts.PreDumps
}

// withPreKnown adds the digests of the pre-dumps the dump took (opts.PreKnown) to
// known: with a sink only when its receiver holds them already (opts.PreSent), so
// that streamRest does not send them again; without one always (sealing reuses them).
func withPreKnown(known map[string]imageset.File, opts Options) map[string]imageset.File {
	if opts.PreCopied == "" || len(opts.PreKnown) == 0 || opts.Sink != nil && !opts.PreSent {
		return known
	}
	if known == nil {
		known = map[string]imageset.File{}
	}
	for n, f := range opts.PreKnown {
		known[n] = f
	}
	return known
}
