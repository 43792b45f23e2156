package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/swarmckpt/swarmckpt/coordinator/api"
)

const inspectUsage = `
Usage: swarmckpt inspect <snapshot> [--verify] [--output json]

Shows a snapshot: state, containers with node, addresses, freeze time, images and
the nodes holding copies of each image set (COPIES, with swarmckpt.replicas or
snapshot --replicas); for a post-copy migration, when each container's last page
arrived, or that its pages were lost (its source failed first). --verify re-checks every image file's sha256 (on every copy
too) and runs the cut checker on the stored CRIU images: for every TCP connection
between two containers of the snapshot, bytes received <= bytes sent in both
directions, printed as per-connection evidence. Exit code 1 when the cut is
inconsistent, or the images or a copy of them are corrupt.

Examples:
  swarmckpt inspect bank-20261122-021500-1a2b3c
  swarmckpt inspect bank-20261122-021500-1a2b3c --verify
`

func runInspect(ctx context.Context, c *cli, args []string) error {
	fs, f := newCtlFlags("inspect", time.Minute)
	verify := fs.Bool("verify", false, "verify checksums and the consistency of the cut")
	pos, err := f.parse(c, fs, inspectUsage, args, 1, 1, "give exactly one snapshot id (see 'swarmckpt ls')")
	if err != nil {
		return err
	}
	if err := badName(api.ValidID(pos[0])); err != nil {
		return err
	}
	res, err := call[api.InspectResult](ctx, c, f, api.OpInspect, api.InspectRequest{ID: pos[0], Verify: *verify})
	if err != nil {
		return err
	}
	m := res.Snapshot
	if f.output == "json" {
		if err := printJSON(c.stdout, m); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(c.stdout, "ID:         %s\nStack:      %s\nState:      %s\nAlgorithm:  %s\nEpoch:      %d\nCreated:    %s\n",
			m.ID, m.Stack, m.State, m.Algorithm, m.Epoch, m.CreatedAt.Local().Format(time.RFC3339))
		if m.Reason != "" {
			fmt.Fprintf(c.stdout, "Reason:     %s\n", m.Reason)
		}
		if len(m.Excluded) > 0 {
			var ex []string
			for svc, n := range m.Excluded {
				ex = append(ex, fmt.Sprintf("%s (%d containers)", svc, n))
			}
			sort.Strings(ex)
			fmt.Fprintf(c.stdout, "Excluded:   %s: not snapshotted (swarmckpt.exclude), started fresh by a restore\n", strings.Join(ex, ", "))
		}
		fmt.Fprintln(c.stdout)
		tw := tabwriter.NewWriter(c.stdout, 2, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CONTAINER\tNODE\tCONTAINER ID\tIPS\tFROZEN\tIMAGES\tFILES\tCOPIES\tDIR")
		for _, ct := range m.Containers {
			size, files, dir := "-", 0, "-"
			if ct.Images != nil {
				size, files, dir = human(ct.Images.Bytes()), len(ct.Images.Files), ct.Images.Dir
			}
			id := ct.ContainerID
			if len(id) > 12 {
				id = id[:12]
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%dms\t%s\t%d\t%s\t%s\n", ct.Key(), ct.Node, id, strings.Join(ct.IPs, ","), ct.FreezeMS, size, files, copiesOf(ct), dir)
		}
		tw.Flush()
		for _, ct := range m.Containers {
			for _, cp := range ct.Copies {
				if cp.Error != "" {
					fmt.Fprintf(c.stdout, "copy of %s on %s is BAD: %s\n", ct.Key(), cp.Node, cp.Error)
				}
			}
		}
		for _, ct := range m.Containers {
			switch im := ct.Images; {
			case im == nil:
			case im.PagesUnverified != "":
				fmt.Fprintf(c.stdout, "direct %s: PAGES UNVERIFIED: the memory pages %s received were never hashed (%s): a restore from this set is refused; restore another snapshot\n", ct.Key(), im.Node, im.PagesUnverified)
			case im.PagesPending:
				fmt.Fprintf(c.stdout, "direct %s: page digests pending: %s hashes the memory pages it received after the restore, and the coordinator records them then (inspect --verify and restore wait for them)\n", ct.Key(), im.Node)
			}
		}
		for _, ct := range m.Containers {
			switch {
			case !ct.PostCopy:
			case ct.PagesLost != "":
				fmt.Fprintf(c.stdout, "post-copy %s: PAGES LOST: its source on %s failed before every page of its memory arrived (%s): the restored container may be missing memory; restart it (or restore an earlier snapshot) rather than trust its state\n", ct.Key(), ct.Node, ct.PagesLost)
			case !ct.PagesArrived.IsZero():
				fmt.Fprintf(c.stdout, "post-copy %s: its last page arrived from %s at %s (pages moved without a checksum)\n", ct.Key(), ct.Node, ct.PagesArrived.Local().Format(time.RFC3339))
			}
		}
		for _, r := range m.Restores {
			st := "ok"
			if !r.OK {
				st = "FAILED: " + r.Error
			}
			keys := make([]string, 0, len(r.Targets))
			for k, v := range r.Targets {
				keys = append(keys, k+"->"+v)
			}
			sort.Strings(keys)
			mode := ""
			if r.Mode != "" {
				mode = " --mode " + r.Mode
			}
			fmt.Fprintf(c.stdout, "restored%s %s: %s (%s)\n", mode, r.At.Local().Format(time.RFC3339), st, strings.Join(keys, ", "))
			if len(r.Addresses) > 0 {
				addrs := make([]string, 0, len(r.Addresses))
				for o, n := range r.Addresses {
					addrs = append(addrs, o+"->"+n)
				}
				sort.Strings(addrs)
				fmt.Fprintf(c.stdout, "  addresses: %s\n", strings.Join(addrs, ", "))
			}
		}
		for _, w := range m.Warnings {
			fmt.Fprintf(c.stdout, "warning: %s\n", w)
		}
		if v := m.Verdict; v != nil {
			fmt.Fprintln(c.stdout)
			if v.Error != "" {
				fmt.Fprintf(c.stdout, "cut check: could not run: %s\n", v.Error)
			} else {
				fmt.Fprintf(c.stdout, "cut check: %s\n", v.Summary)
				for _, l := range v.Lines {
					fmt.Fprintf(c.stdout, "  %s\n", l)
				}
			}
		}
	}
	if *verify && m.Verdict != nil && (m.Verdict.Error != "" || !m.Verdict.Consistent) {
		return fmt.Errorf("verification of %s failed", m.ID)
	}
	if *verify {
		for _, ct := range m.Containers {
			for _, cp := range ct.Copies {
				if cp.Error != "" {
					return fmt.Errorf("verification of %s failed: the copy of %s's image set on %s is bad (%s): the snapshot is still restorable from its other copies; take a new snapshot to get every copy back", m.ID, ct.Key(), cp.Node, cp.Error)
				}
			}
		}
	}
	return nil
}
