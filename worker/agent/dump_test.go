package agent

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
)

// A migration's dump (Target.StreamTo) goes through DumpTo; a failed stream leaves a
// dump that stands on its verified local set; a failed dump is an error.
func TestDumpStreamsWhenAskedAndSurvivesAFailedStream(t *testing.T) {
	c := node.Target{ID: "ctr1", Service: "memhog_memhog", Slot: 1, Node: "n1"}
	for _, tc := range []struct {
		name               string
		streamTo           string
		dumpErr, streamErr error
		streamed           bool
		err                string
	}{
		{"plain", "", nil, nil, false, ""},
		{"streamed", "127.0.0.1:7001", nil, nil, true, ""},
		{"stream failed", "127.0.0.1:7001", nil, errors.New("connection refused"), true, ""},
		{"dump failed", "127.0.0.1:7001", errors.New("criu: boom"), nil, false, "criu: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := worker.NewFake("n1")
			if tc.dumpErr != nil {
				w.FailDump["ctr1"] = tc.dumpErr
			}
			w.StreamTo = func(string, string) error { return tc.streamErr }
			info, _ := w.Info(context.Background())
			a := &Agent{cfg: Config{Node: "n1", Worker: w.Roles()}, info: info, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			tgt := c
			tgt.StreamTo = tc.streamTo
			st, err := a.dump(context.Background(), "s1", tgt, false, "")
			if got := w.Streamed()["s1.memhog_memhog.1"] != ""; got != tc.streamed {
				t.Fatalf("streamed = %v, want %v", got, tc.streamed)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("dump = %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Dumps("ctr1") != 1 || !w.HasSet("s1.memhog_memhog.1") {
				t.Fatalf("dumps %d, set here %v: want one dump and its set here", w.Dumps("ctr1"), w.HasSet("s1.memhog_memhog.1"))
			}
			is := st.Images
			if is == nil || is.Node != "n1" || len(is.Files) != 1 || is.Files[0].Name != "images/pages-1.img" || !strings.HasSuffix(is.Dir, "/s1.memhog_memhog.1") {
				t.Fatalf("images %+v, want the local set's one file on n1", is)
			}
		})
	}
}

// A dump that reuses an earlier snapshot's set reports that set, verified, and
// dumps nothing; a missing earlier set makes it a fresh dump.
func TestDumpReusesAVerifiedSet(t *testing.T) {
	w := worker.NewFake("n1")
	w.PutSet("s0.web.1")
	info, _ := w.Info(context.Background())
	a := &Agent{cfg: Config{Node: "n1", Worker: w.Roles()}, info: info, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	c := node.Target{ID: "ctr1", Service: "web", Slot: 1, Node: "n1"}
	st, err := a.dump(context.Background(), "s1", c, true, "s0")
	if err != nil || st.ReusedFrom != "s0" || st.Images == nil || !strings.HasSuffix(st.Images.Dir, "/s0.web.1") || w.Dumps("ctr1") != 0 {
		t.Fatalf("reuse: %+v %v, want s0's set and no dump", st, err)
	}
	// A missing earlier set: the container (locked, as for any dump of minimal) is
	// dumped afresh instead, and reported as not reused.
	st, err = a.dump(context.Background(), "s2", c, true, "gone")
	if err != nil || st.ReusedFrom != "" || st.Images == nil || !strings.HasSuffix(st.Images.Dir, "/s2.web.1") || w.Dumps("ctr1") != 1 {
		t.Fatalf("reuse of a missing set: %+v %v, want a fresh dump into s2's set", st, err)
	}
	// ... unless the dump's time is up: then it fails with the reuse's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.dump(ctx, "s3", c, true, "gone"); err == nil || !strings.Contains(err.Error(), "reuse images of gone") {
		t.Fatalf("reuse of a missing set after the deadline: %v, want the reuse's error", err)
	}
}

// A direct migration's dump (Target.Direct) goes into the target through DumpWith with
// Into, leaving the parked container held, and keeps no set here; a failed transfer
// fails the dump (no local copy to fall back on).
func TestDumpDirectGoesIntoTheTarget(t *testing.T) {
	c := node.Target{ID: "ctr1", Service: "memhog_memhog", Slot: 1, Node: "n1", StreamTo: "127.0.0.1:7001", Direct: true}
	for _, tc := range []struct {
		name    string
		sendErr error
	}{{"moved", nil}, {"transfer failed", errors.New("connection refused")}} {
		t.Run(tc.name, func(t *testing.T) {
			w := worker.NewFake("n1")
			w.SendTo = func(string, string) (bool, error) { return false, tc.sendErr }
			info, _ := w.Info(context.Background())
			a := &Agent{cfg: Config{Node: "n1", Worker: w.Roles()}, info: info, log: slog.New(slog.NewTextHandler(io.Discard, nil))}
			st, err := a.dump(context.Background(), "s1", c, true, "")
			if w.HasSet("s1.memhog_memhog.1") {
				t.Fatal("a direct dump kept a set on the dumping node")
			}
			if len(w.Stopped()) != 0 {
				t.Fatalf("a direct dump of a parked container ended it: %v", w.Stopped())
			}
			if w.Streamed()["s1.memhog_memhog.1"] != "" {
				t.Fatal("a direct dump streamed (DumpTo) instead")
			}
			if tc.sendErr != nil {
				if err == nil || !strings.Contains(err.Error(), "connection refused") {
					t.Fatalf("dump = %v, want the transfer's error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := w.DumpedInto()["s1.memhog_memhog.1"]; got != c.StreamTo {
				t.Fatalf("dumped into %q, want %q", got, c.StreamTo)
			}
			if st.Images == nil || len(st.Images.Files) == 0 {
				t.Fatalf("images %+v, want the set's files", st.Images)
			}
		})
	}
}
