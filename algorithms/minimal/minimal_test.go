package minimal

import (
	"flag"
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms/algotest"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden transcripts in testdata/")

func TestConformance(t *testing.T) { algotest.Run(t, Algorithm()) }

func FuzzSchedule(f *testing.F) { algotest.Fuzz(f, Algorithm()) }

func TestScripts(t *testing.T) { algotest.RunScripts(t, Algorithm(), "testdata/*.txt", *rewrite) }

func TestOnlyDirtyContainersDump(t *testing.T) {
	d, err := algotest.NewDriver(Algorithm(), algotest.Options{Containers: algotest.Topology(6, 2), Config: algotest.TestConfig()})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Request("s1"); err != nil {
		t.Fatal(err)
	}
	d.Settle()
	d.Traffic("c0", "c1", 10) // only c0 and c1 carry bytes
	d.CrashCoordinator()      // bases must survive a restart
	if err := d.Request("s2"); err != nil {
		t.Fatal(err)
	}
	d.Settle()
	if err := d.Check(true); err != nil {
		t.Fatal(err)
	}
	if got := d.Committed(); len(got) != 2 {
		t.Fatalf("committed %v, want s1 and s2", got)
	}
	for id, r := range d.Recordings["s2"] {
		wantReuse := id != "c0" && id != "c1"
		if (r.ReusedFrom == "s1") != wantReuse {
			t.Errorf("%s: reused from %q, want reuse=%v", id, r.ReusedFrom, wantReuse)
		}
	}
	if len(d.Recordings["s2"]) != 6 {
		t.Fatalf("s2 has %d recordings, want 6", len(d.Recordings["s2"]))
	}
	// Third snapshot without traffic: everyone reuses, c0 and c1 from s2.
	if err := d.Request("s3"); err != nil {
		t.Fatal(err)
	}
	d.Settle()
	for id, r := range d.Recordings["s3"] {
		want := "s1"
		if id == "c0" || id == "c1" {
			want = "s2"
		}
		if r.ReusedFrom != want {
			t.Errorf("s3 %s: reused from %q, want %q", id, r.ReusedFrom, want)
		}
	}
}
