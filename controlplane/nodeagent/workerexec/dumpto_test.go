package workerexec_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/swarmckpt/swarmckpt/controlplane/nodeagent/workerexec"
	"github.com/swarmckpt/swarmckpt/protocol/node"
	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
)

// dumpWorker is a worker.Service whose Dump and DumpTo write a sealed set under root
// (DumpTo then fails its stream when streamErr is set, or fails outright when dumpErr
// is); every other method is absent.
type dumpWorker struct {
	worker.Service
	root               string
	dumpErr, streamErr error
	calls              []string
}

func (w *dumpWorker) write(set string) (*imageset.Manifest, error) {
	dir := filepath.Join(w.root, "swarmckpt", "sets", set)
	if err := os.MkdirAll(imageset.ImagesPath(dir), imageset.DirMode); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(imageset.ImagesPath(dir), "pages-1.img"), []byte("memory"), imageset.FileMode); err != nil {
		return nil, err
	}
	m := &imageset.Manifest{ContainerID: "ctr1"}
	return m, imageset.Seal(dir, m)
}

func (w *dumpWorker) Dump(_ context.Context, name, set string, _ bool) (*imageset.Manifest, error) {
	w.calls = append(w.calls, "dump "+name+" "+set)
	return w.write(set)
}

func (w *dumpWorker) DumpTo(_ context.Context, name, set, addr string, _ bool) (*imageset.Manifest, error) {
	w.calls = append(w.calls, "dumpto "+name+" "+set+" "+addr)
	if w.dumpErr != nil {
		return nil, w.dumpErr
	}
	m, err := w.write(set)
	if err != nil {
		return nil, err
	}
	if w.streamErr != nil {
		return nil, w.streamErr // over HTTP the manifest does not come with the error
	}
	return m, nil
}

// A migration's dump (Target.StreamTo) goes through DumpTo; a failed stream leaves a
// dump that stands on its verified local set; a failed dump is an error.
func TestDumpStreamsWhenAskedAndSurvivesAFailedStream(t *testing.T) {
	c := node.Target{ID: "ctr1", Service: "memhog_memhog", Slot: 1, Node: "n1"}
	for _, tc := range []struct {
		name               string
		streamTo           string
		dumpErr, streamErr error
		call, err          string
	}{
		{"plain", "", nil, nil, "dump ctr1 s1.memhog_memhog.1", ""},
		{"streamed", "127.0.0.1:7001", nil, nil, "dumpto ctr1 s1.memhog_memhog.1 127.0.0.1:7001", ""},
		{"stream failed", "127.0.0.1:7001", nil, errors.New("connection refused"), "dumpto ctr1 s1.memhog_memhog.1 127.0.0.1:7001", ""},
		{"dump failed", "127.0.0.1:7001", errors.New("criu: boom"), nil, "dumpto ctr1 s1.memhog_memhog.1 127.0.0.1:7001", "criu: boom"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &dumpWorker{root: t.TempDir(), dumpErr: tc.dumpErr, streamErr: tc.streamErr}
			e := &workerexec.Exec{W: w, Info: worker.NodeInfo{Node: "n1", DataRoot: w.root}}
			tgt := c
			tgt.StreamTo = tc.streamTo
			res, err := e.Dump(context.Background(), "s1", tgt, false, "")
			if len(w.calls) != 1 || w.calls[0] != tc.call {
				t.Fatalf("worker calls %q, want [%q]", w.calls, tc.call)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Dump = %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.Images.Node != "n1" || len(res.Images.Files) != 1 || res.Images.Files[0].Name != "images/pages-1.img" {
				t.Fatalf("images %+v, want the local set's one file on n1", res.Images)
			}
		})
	}
}
