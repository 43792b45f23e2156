package worker_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/checkpoint-restore/go-criu/v7/crit"

	"github.com/swarmckpt/swarmckpt/worker"
	"github.com/swarmckpt/swarmckpt/worker/activity"
	"github.com/swarmckpt/swarmckpt/worker/container"
	"github.com/swarmckpt/swarmckpt/worker/dump"
	"github.com/swarmckpt/swarmckpt/worker/imageset"
	"github.com/swarmckpt/swarmckpt/worker/ociwrap"
	"github.com/swarmckpt/swarmckpt/worker/restore"
	"github.com/swarmckpt/swarmckpt/worker/workertest"
	"github.com/swarmckpt/swarmckpt/worker/xlate"
)

// The worker's roles pass their conformance suite in-process, over the HTTP API
// (Client), and as the in-memory Fake the agent's and coordinator's tests use.
func TestRolesConformance(t *testing.T) {
	t.Run("Worker", func(t *testing.T) {
		workertest.Run(t, func(t *testing.T) (a, b workertest.Node) {
			return realNode(t, "a", false), realNode(t, "b", false)
		})
	})
	t.Run("Client", func(t *testing.T) {
		workertest.Run(t, func(t *testing.T) (a, b workertest.Node) {
			return realNode(t, "a", true), realNode(t, "b", true)
		})
	})
	t.Run("Fake", func(t *testing.T) {
		workertest.Run(t, func(t *testing.T) (a, b workertest.Node) {
			fa, fb := worker.NewFake("a"), worker.NewFake("b")
			fa.TransferAddr, fb.TransferAddr = "fake-a:1", "fake-b:1"
			fa.SendTo = func(set, to string) (bool, error) {
				if to != fb.TransferAddr {
					return false, fmt.Errorf("no worker at %s", to)
				}
				if fb.HasSet(set) {
					return true, nil
				}
				fb.PutSet(set)
				return false, nil
			}
			fa.StreamTo = func(set, to string) error { _, err := fa.SendTo(set, to); return err }
			return fakeRoles(fa), fakeRoles(fb)
		})
	})
}

// The PreCopier role where the kernel tracks soft-dirty pages (TestRolesConformance
// covers nodes without, as this project's machines): in-process, over HTTP, and the
// Fake with SoftDirty.
func TestPreCopierConformance(t *testing.T) {
	for _, overHTTP := range []bool{false, true} {
		t.Run(map[bool]string{false: "Worker", true: "Client"}[overHTTP], func(t *testing.T) {
			workertest.RunPreCopier(t, func(t *testing.T) (a, b workertest.Node) {
				na, nb := newFakeNodeParts(t, "a", dump.Fake{}, nil, softDirty), newFakeNodeParts(t, "b", dump.Fake{}, nil, softDirty)
				node := func(n *fakeNode, name string) workertest.Node {
					roles := n.w.Roles()
					if overHTTP {
						roles = (&worker.Client{Addr: n.w.Addr()}).Roles()
					}
					return workertest.Node{Name: name, Roles: roles, Addr: n.w.Addr(), Container: func(*testing.T) string {
						i := ctrSeq.Add(1)
						return n.add(fmt.Sprintf("ctr%d", i), int(100+i)).Name
					}}
				}
				return node(na, "a"), node(nb, "b")
			})
		})
	}
	t.Run("Fake", func(t *testing.T) {
		workertest.RunPreCopier(t, func(t *testing.T) (a, b workertest.Node) {
			fa, fb := worker.NewFake("a"), worker.NewFake("b")
			fa.SoftDirty, fa.TransferAddr, fb.TransferAddr = true, "fake-a:1", "fake-b:1"
			fa.StreamTo = func(set, to string) error { fb.PutSet(set); return nil }
			return fakeRoles(fa), fakeRoles(fb)
		})
	})
}

var ctrSeq atomic.Int64

func fakeRoles(f *worker.Fake) workertest.Node {
	return workertest.Node{Name: f.Node, Roles: f.Roles(), Addr: f.TransferAddr,
		Container: func(*testing.T) string {
			name := fmt.Sprintf("ctr%d", ctrSeq.Add(1))
			f.SetActivity(name, activity.Counters{RxBytes: 1, TxBytes: 2, CPUNanos: 7,
				Conns: []activity.Conn{{Local: "10.99.0.2:40000", Remote: "10.99.0.3:9000", Sent: 2, Received: 1}}})
			return name
		},
		HoldStop:     func(_ *testing.T, ctr, sig string) bool { return f.HoldStop(ctr, sig) },
		Verdict:      func(_ *testing.T, ctr string) (ociwrap.Verdict, bool) { return f.Verdict(ctr) },
		XlateInUse:   func(_ *testing.T, ctr string, old netip.Addr, used bool) { f.SetXlateInUse(ctr, old, used) },
		AnyContainer: true}
}

// fakeNetworks changes the networks of fake containers: nothing to do.
type fakeNetworks struct{}

func (fakeNetworks) Disconnect(context.Context, string, string) error         { return nil }
func (fakeNetworks) Connect(context.Context, string, container.Network) error { return nil }

// listing is a restorer that lists the (no) standalone containers it restored for a
// stack, as restore.Docker does.
type listing struct{ restore.Restorer }

func (listing) Standalone(context.Context, string) ([]restore.Standalone, error) { return nil, nil }

// realNode is a worker with fake parts (and a set placer), through its Client when
// overHTTP.
func realNode(t *testing.T, name string, overHTTP bool) workertest.Node {
	var dataRoot string
	var n *fakeNode
	xl := xlate.NewFake()
	n = newFakeNodeParts(t, name, dump.Fake{}, func(c *worker.Config) { dataRoot, c.XlatePoll = c.DataRoot, 20*time.Millisecond },
		func(p *worker.Parts) {
			p.Xlate = xl
			p.Networks = fakeNetworks{}
			p.Placer = &restore.Docker{DataRoot: dataRoot}
			p.Restorer = listing{p.Restorer}
			// runc's state of a fake container: running, with its pid.
			p.RuncState = func(ctx context.Context, _, id string) (worker.RuncState, error) {
				ref, err := n.insp.Resolve(ctx, id)
				return worker.RuncState{Pid: ref.Pid, Status: "running"}, err
			}
			p.Activity = func(pid int) (activity.Counters, error) {
				return activity.Counters{RxBytes: uint64(pid), TxBytes: 2 * uint64(pid), CPUNanos: 7,
					Conns: []activity.Conn{{Local: "10.99.0.2:40000", Remote: "10.99.0.3:9000", Sent: 2 * uint64(pid), Received: uint64(pid)}}}, nil
			}
		})
	drainDir := filepath.Join(dataRoot, ociwrap.AreaDir, ociwrap.DrainDir)
	idOf := func(t *testing.T, ctr string) string {
		ref, err := n.insp.Resolve(context.Background(), ctr)
		if err != nil {
			t.Fatal(err)
		}
		return ref.ID
	}
	roles := n.w.Roles()
	if overHTTP {
		roles = (&worker.Client{Addr: n.w.Addr()}).Roles()
	}
	return workertest.Node{Name: name, Roles: roles, Addr: n.w.Addr(),
		Container: func(*testing.T) string {
			i := ctrSeq.Add(1)
			return n.add(fmt.Sprintf("ctr%d", i), int(100+i)).Name
		},
		// The wrapper's kill: the previous hold ended (its files gone), a new one begins.
		HoldStop: func(t *testing.T, ctr, sig string) bool {
			id := idOf(t, ctr)
			os.Remove(filepath.Join(drainDir, ociwrap.StopFile(id)))
			os.Remove(filepath.Join(drainDir, ociwrap.VerdictFile(id)))
			_, held, err := ociwrap.BeginHold(drainDir, id, sig, "/run/runc-root", "/bundle", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			return held
		},
		XlateInUse: func(t *testing.T, ctr string, old netip.Addr, used bool) {
			ref, err := n.insp.Resolve(context.Background(), ctr)
			if err != nil {
				t.Fatal(err)
			}
			xl.SetInUse(ref, old, used)
		},
		Verdict: func(t *testing.T, ctr string) (ociwrap.Verdict, bool) {
			v, err := ociwrap.ReadVerdict(drainDir, idOf(t, ctr))
			if err != nil {
				t.Fatal(err)
			}
			if v == nil {
				return ociwrap.Verdict{}, false
			}
			return *v, true
		},
		// dump.Fake writes no CRIU images: add a socket-less files.img, as a dump
		// leaves it, so that the set's sockets can be read and it can be placed.
		Complete: func(t *testing.T, id string) {
			set := filepath.Join(n.w.SetsDir(), id)
			f, err := os.Create(filepath.Join(imageset.ImagesPath(set), "files.img"))
			if err != nil {
				t.Fatal(err)
			}
			if err := crit.New(nil, f, "", false, false).Encode(&crit.CriuImage{Magic: "FILES"}); err != nil {
				t.Fatal(err)
			}
			f.Close()
			m, err := imageset.ReadManifest(set)
			if err != nil {
				t.Fatal(err)
			}
			if err := imageset.Seal(set, m); err != nil {
				t.Fatal(err)
			}
		}}
}
