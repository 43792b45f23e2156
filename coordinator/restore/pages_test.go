package restore_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
	"github.com/swarmckpt/swarmckpt/coordinator/restore"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// digestNodes is a restore.Checks whose Verify answers Digests requests per set:
// files (the set as its node reports it once hashed) or err; during (when set) runs
// inside each answer (a concurrent writer of the record).
type digestNodes struct {
	files  map[string][]node.File
	err    map[string]error
	during func()
}

func (d *digestNodes) Preflight(context.Context, string, node.PreflightRequest) (*node.PreflightReply, error) {
	return nil, errors.New("not used")
}

func (d *digestNodes) Standalone(context.Context, string, string) ([]node.Standalone, error) {
	return nil, errors.New("not used")
}

func (d *digestNodes) Verify(_ context.Context, _ string, req node.VerifyRequest) (*node.VerifyReply, error) {
	if !req.Digests {
		return nil, errors.New("a verify, not a digests request")
	}
	if d.during != nil {
		d.during()
	}
	if err := d.err[req.Set]; err != nil {
		return nil, err
	}
	return &node.VerifyReply{Files: d.files[req.Set]}, nil
}

var (
	digestA = strings.Repeat("a1", 32)
	digestB = strings.Repeat("b2", 32)
)

// pendingSnapshot stores a committed snapshot of three direct-migrated containers on
// node t, their page files pending.
func pendingSnapshot(t *testing.T, st *store.Memory) {
	t.Helper()
	ctx := context.Background()
	m := &store.Manifest{ID: "snap", Stack: "s", Algorithm: "blocking", State: store.StateDumping}
	for i := 1; i <= 3; i++ {
		c := store.Container{Service: "svc", Slot: i, Node: "n", Direct: true, StreamedTo: "t",
			Images: &store.ImageSet{Node: "t", Dir: "/sets/" + node.SetID("snap", "svc."+string(rune('0'+i))), Durable: true, PagesHashedBy: "t", PagesPending: true,
				Files: []store.File{{Name: "images/core-1.img", Size: 5, SHA256: digestA}, {Name: "images/pages-1.img", Size: 10}}}}
		m.Containers = append(m.Containers, c)
	}
	if err := st.Create(ctx, m); err != nil {
		t.Fatal(err)
	}
	lock, err := st.LockStack(ctx, "s", "test", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(ctx, m, lock); err != nil {
		t.Fatalf("commit of a record whose page digests are pending: %v", err)
	}
	_ = lock.Unlock(ctx)
	if hs, _ := st.Headers(ctx, "s"); len(hs) != 1 || hs[0].PagesPending != 3 {
		t.Fatalf("headers %+v, want one counting 3 sets with pending pages", hs)
	}
}

// TestFillPages: the digests a node reports go into the record (a record changed
// meanwhile is read again and keeps both changes); a set whose node says its pages
// will never be hashed, or whose files do not match the record, is recorded
// unverified; a node that does not answer leaves its set pending, and the error
// names it (ErrPagesPending).
func TestFillPages(t *testing.T) {
	ctx := context.Background()
	st := store.NewMemory()
	pendingSnapshot(t, st)
	hashed := []node.File{{Name: "images/core-1.img", Size: 5, SHA256: digestA}, {Name: "images/pages-1.img", Size: 10, SHA256: digestB}}
	n := &digestNodes{
		files: map[string][]node.File{
			"snap.svc.1": hashed,
			"snap.svc.2": {{Name: "images/core-1.img", Size: 5, SHA256: digestA}, {Name: "images/pages-1.img", Size: 11, SHA256: digestB}},
		},
		err: map[string]error{"snap.svc.3": errors.New("no live worker")},
	}
	wrote := false
	n.during = func() {
		if wrote {
			return
		}
		wrote = true // another writer records a warning while the nodes answer
		m, err := st.Get(ctx, "snap")
		if err != nil {
			t.Error(err)
			return
		}
		m.Warnings = append(m.Warnings, "written meanwhile")
		if err := st.Update(ctx, m); err != nil {
			t.Error(err)
		}
	}
	m, err := restore.FillPages(ctx, st, n, "snap", time.Second)
	if !errors.Is(err, restore.ErrPagesPending) || !strings.Contains(err.Error(), "svc.3") || !strings.Contains(err.Error(), "no live worker") {
		t.Fatalf("FillPages with one node not answering: %v, want ErrPagesPending naming svc.3 and why", err)
	}
	stored, gerr := st.Get(ctx, "snap")
	if gerr != nil {
		t.Fatal(gerr)
	}
	for _, got := range []*store.Manifest{m, stored} {
		c1, c2, c3 := got.Containers[0].Images, got.Containers[1].Images, got.Containers[2].Images
		if c1.PagesPending || c1.PagesUnverified != "" || c1.Files[1].SHA256 != digestB {
			t.Errorf("svc.1 %+v, want its page digest filled in", c1)
		}
		if !strings.Contains(c2.PagesUnverified, "11 bytes") {
			t.Errorf("svc.2 %+v, want it unverified (its page file's size changed)", c2)
		}
		if !c3.PagesPending || c3.PagesUnverified != "" {
			t.Errorf("svc.3 %+v, want it still pending", c3)
		}
		if len(got.Warnings) != 1 {
			t.Errorf("warnings %v: the change written meanwhile was lost", got.Warnings)
		}
	}
	if why := restore.PagesNotVerified(stored); !strings.Contains(why, "svc.2: its memory pages were never hashed") || !strings.Contains(why, "svc.3: its page digests are still pending on node t") {
		t.Errorf("PagesNotVerified: %q", why)
	}
	// The node comes back, its pages never hashed: unverified, nothing pending.
	n.err["snap.svc.3"] = node.Mark(errors.New("its worker ended before the hash"), node.ErrPagesUnhashed)
	m, err = restore.FillPages(ctx, st, n, "snap", time.Second)
	if err != nil {
		t.Fatalf("FillPages once every node answered: %v", err)
	}
	if u := m.Containers[2].Images.PagesUnverified; !strings.Contains(u, "node t") || !strings.Contains(u, "ended before the hash") {
		t.Errorf("svc.3 unverified because %q, want its node and why", u)
	}
	if hs, _ := st.Headers(ctx, "s"); len(hs) != 1 || hs[0].PagesPending != 0 {
		t.Errorf("headers %+v, want no set counted pending (the unverified ones never come: the pages loop leaves them)", hs)
	}
}
