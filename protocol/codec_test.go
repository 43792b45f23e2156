package protocol

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var rewrite = flag.Bool("rewrite", false, "rewrite the golden encodings in testdata/")

// samples holds one representative envelope per known type.
func samples() map[Type]Envelope {
	conns := []ConnCounter{{Peer: "b", Sent: 120, Received: 80}, {Peer: "c", Sent: 0, Received: 7}}
	base := func(t Type, from, to Addr, body any) Envelope {
		return Envelope{Version: Version, Type: t, Snapshot: "s-1", Epoch: 3, From: from, To: to, Body: body}
	}
	a := ContainerAddr("a")
	m := map[Type]Envelope{
		TypeSnapshotRequest: base(TypeSnapshotRequest, ClientAddr("cli-1"), Coordinator, &SnapshotRequest{Algorithm: "blocking", Containers: []Container{{ID: "a", Node: "n1", Peers: []string{"b"}}, {ID: "b", Node: "n2", Peers: []string{"a"}}}}),
		TypeSnapshotResult:  base(TypeSnapshotResult, Coordinator, ClientAddr("cli-1"), &SnapshotResult{Committed: false, Reason: "timeout"}),
		TypeLock:            base(TypeLock, Coordinator, a, &Lock{All: true, Freeze: true}),
		TypeLockDone:        base(TypeLockDone, a, Coordinator, &Result{Conns: conns}),
		TypeDump:            base(TypeDump, Coordinator, a, &Dump{LeaveRunning: true, ReuseFrom: "s-0", ReleaseAfter: true, Locked: true}),
		TypeDumpDone: base(TypeDumpDone, a, Coordinator, &Result{Dump: &DumpStats{ImageBytes: 1 << 20, Conns: conns,
			Images: &ImageSet{Node: "n1", Dir: "/var/lib/swarmckpt/images/s-1.svc.1", Durable: true, CRIUVersion: "4.2.1",
				Files: []ImageFile{{Name: "images/pages-1.img", Size: 1 << 20, SHA256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}}},
			FreezeMS: 412, DumpMS: 380}}),
		TypeCommit:       base(TypeCommit, Coordinator, a, &Decision{}),
		TypeAbort:        base(TypeAbort, Coordinator, a, &Decision{Reason: "container b did not answer in 600 ticks"}),
		TypeMarker:       base(TypeMarker, ContainerAddr("b"), a, &Marker{Resend: true}),
		TypeDone:         base(TypeDone, a, Coordinator, &Result{}),
		TypeFailed:       base(TypeFailed, a, Coordinator, &Result{Error: "watchdog expired"}),
		TypeActionDone:   base(TypeActionDone, a, a, &ActionResult{Op: "lock", Peers: []string{"b"}, Conns: conns}),
		TypeRelease:      base(TypeRelease, Coordinator, a, &Decision{Reason: "images reused"}),
		TypeAbortRequest: base(TypeAbortRequest, Coordinator, Coordinator, &Decision{Reason: "the stack lock was lost"}),
		TypeCommitDone:   base(TypeCommitDone, Coordinator, Coordinator, &Result{Error: "commit refused: lock lost"}),
	}
	lk := m[TypeLock]
	lk.Deadline = Deadline{Ticks: 700, UnixMilli: 1795000000000}
	m[TypeLock] = lk
	return m
}

func TestGoldenEncodings(t *testing.T) {
	s := samples()
	for _, typ := range Types() {
		e, ok := s[typ]
		if !ok {
			t.Fatalf("no sample for type %s: add one (every type needs a golden encoding)", typ)
		}
		t.Run(typ.String(), func(t *testing.T) {
			b, err := Encode(e)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", typ.String()+".json")
			if *rewrite {
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./protocol -rewrite to create it)", err)
			}
			if !bytes.Equal(append(b, '\n'), want) {
				t.Errorf("encoding changed:\n got %s\nwant %s", b, want)
			}
			got, err := Decode(want)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, e)
			}
			again, _ := Encode(got)
			if !bytes.Equal(again, b) {
				t.Errorf("re-encoding is not deterministic:\n%s\n%s", again, b)
			}
		})
	}
}

func TestTypeNumbersAreStable(t *testing.T) {
	// The wire numbers; changing one breaks every deployed peer. ONLY APPEND.
	want := []string{"", "snapshot-request", "snapshot-result", "lock", "lock-done", "dump", "dump-done", "commit", "abort", "marker", "done", "failed", "action-done", "release", "abort-request", "commit-done"}
	for i := 1; i < len(want); i++ {
		if got := Type(i).String(); got != want[i] {
			t.Errorf("type %d is %q, want %q", i, got, want[i])
		}
		if tt, ok := TypeByName(want[i]); !ok || tt != Type(i) {
			t.Errorf("TypeByName(%q) = %v, %v", want[i], tt, ok)
		}
	}
	if Type(len(want)).Known() {
		t.Errorf("type %d is known: add it to this test", len(want))
	}
}

func TestDecodeErrors(t *testing.T) {
	cases := []struct {
		name, in string
		is       error
	}{
		{"future version", `{"v":9,"type":3,"from":"coordinator","to":"container/a"}`, ErrUnknownVersion},
		{"zero version", `{"v":0,"type":3,"from":"coordinator","to":"container/a"}`, ErrUnknownVersion},
		{"unknown type", `{"v":1,"type":999,"from":"coordinator","to":"container/a"}`, ErrUnknownType},
		{"invalid type", `{"v":1,"type":0,"from":"coordinator","to":"container/a"}`, ErrUnknownType},
		{"not json", `{"v":1,`, ErrMalformed},
		{"bad address", `{"v":1,"type":3,"from":"pod/x","to":"container/a"}`, ErrMalformed},
		{"bad body", `{"v":1,"type":3,"from":"coordinator","to":"container/a","body":{"all":"yes"}}`, ErrMalformed},
	}
	for _, c := range cases {
		_, err := Decode([]byte(c.in))
		if !errors.Is(err, c.is) {
			t.Errorf("%s: err = %v, want errors.Is %v", c.name, err, c.is)
		}
	}
	var ve *VersionError
	if _, err := Decode([]byte(cases[0].in)); !errors.As(err, &ve) || ve.Got != 9 || !strings.Contains(err.Error(), "upgrade") {
		t.Errorf("version error = %v, want *VersionError{Got: 9} saying what to do", err)
	}
	var te *TypeError
	if _, err := Decode([]byte(cases[2].in)); !errors.As(err, &te) || te.Type != 999 {
		t.Errorf("type error = %v, want *TypeError{999}", err)
	}
}

func TestEncodeRejects(t *testing.T) {
	if _, err := Encode(Envelope{Type: 999}); !errors.Is(err, ErrUnknownType) {
		t.Errorf("unknown type: %v", err)
	}
	if _, err := Encode(Envelope{Version: 7, Type: TypeLock}); !errors.Is(err, ErrUnknownVersion) {
		t.Errorf("unknown version: %v", err)
	}
	if _, err := Encode(Envelope{Type: TypeLock, Body: &Dump{}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("wrong body: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, e := range samples() {
		b, _ := Encode(e)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		out, err := Encode(e)
		if err != nil {
			t.Fatalf("decoded %q but cannot re-encode: %v", b, err)
		}
		e2, err := Decode(out)
		if err != nil {
			t.Fatalf("cannot decode own encoding %s: %v", out, err)
		}
		out2, err := Encode(e2)
		if err != nil || !bytes.Equal(out, out2) {
			t.Fatalf("encoding is not a fixed point: %v\n%s\n%s", err, out, out2)
		}
	})
}
