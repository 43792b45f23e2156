package algorithms

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/swarmckpt/swarmckpt/protocol"
)

func TestActionKindNames(t *testing.T) {
	for k := ActPersist; k <= ActAbort; k++ {
		got, ok := ParseActionKind(k.String())
		if !ok || got != k {
			t.Errorf("ParseActionKind(%q) = %v, %v", k.String(), got, ok)
		}
	}
	if _, ok := ParseActionKind("invalid"); ok {
		t.Error("invalid parsed")
	}
	if !ActDump.IsContainerAction() || ActPersist.IsContainerAction() || ActCommit.IsContainerAction() {
		t.Error("IsContainerAction wrong")
	}
}

func TestDone(t *testing.T) {
	a := Action{Kind: ActLock, Snapshot: "s", Epoch: 4, Container: "c", Peers: []string{"p"}}
	m := Done(a, errors.New("nft failed"), []protocol.ConnCounter{{Peer: "p", Sent: 1}}, nil)
	r, ok := m.Body.(*protocol.ActionResult)
	if m.Type != protocol.TypeActionDone || !ok || r.Op != "lock" || r.Error != "nft failed" || m.Epoch != 4 ||
		m.Snapshot != "s" || m.To != protocol.ContainerAddr("c") || len(r.Peers) != 1 || r.Conns[0].Sent != 1 {
		t.Fatalf("Done = %+v body %+v", m, r)
	}
	if _, err := protocol.Encode(m); err != nil {
		t.Fatalf("Done's envelope does not encode: %v", err)
	}
}

func TestContainerRecord(t *testing.T) {
	r := ContainerRecord{Epoch: 7, Snapshot: "s-7"}
	got, err := DecodeContainerRecord(r.Encode())
	if err != nil || got != r {
		t.Fatalf("round trip %+v %v", got, err)
	}
	if string(r.Encode()) != `{"epoch":7,"snapshot":"s-7"}` {
		t.Fatalf("encoding changed: %s", r.Encode())
	}
	if _, err := DecodeContainerRecord([]byte("{")); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("bad record: %v", err)
	}
	if z, err := DecodeContainerRecord(nil); err != nil || z.Epoch != 0 {
		t.Fatalf("nil record: %+v %v", z, err)
	}
}

func TestBusyError(t *testing.T) {
	var err error = &BusyError{Active: "a", Requested: "b", Epoch: 2}
	if !errors.Is(err, ErrBusy) || errors.Is(err, ErrBadRequest) {
		t.Fatal("BusyError Is wrong")
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{Timeout: 5}.WithDefaults()
	if c.Timeout != 5 || c.WatchdogGrace != DefaultConfig().WatchdogGrace || c.FirstEpoch != 1 {
		t.Fatalf("WithDefaults = %+v", c)
	}
}

// TestContainerRecordEncoding: Encode writes json.Marshal's bytes, plain ids and ids
// that need escapes alike.
func TestContainerRecordEncoding(t *testing.T) {
	for _, r := range []ContainerRecord{{}, {Epoch: 1, Snapshot: "snap-1"}, {Epoch: 1 << 63, Snapshot: "s<&>\"\\\n"}, {Epoch: 7, Snapshot: "é\u2028\xff\x7f"}} {
		want, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Encode(); string(got) != string(want) {
			t.Errorf("%+v: got %s, want %s", r, got, want)
		}
	}
}
