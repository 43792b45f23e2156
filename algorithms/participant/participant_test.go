package participant

import (
	"testing"

	"github.com/swarmckpt/swarmckpt/algorithms"
	"github.com/swarmckpt/swarmckpt/protocol"
)

func cmd(t protocol.Type, epoch uint64, body any) protocol.Envelope {
	return protocol.Envelope{Type: t, Snapshot: "s", Epoch: epoch, From: protocol.Coordinator, To: protocol.ContainerAddr("a"), Deadline: protocol.Deadline{Ticks: 5}, Body: body}
}

func kinds(rd algorithms.Ready) (acts []string, msgs []string) {
	for _, a := range rd.Actions {
		acts = append(acts, a.Kind.String())
	}
	for _, m := range rd.Messages {
		msgs = append(msgs, m.Type.String())
	}
	return
}

func TestDumpWithoutLockIsRefused(t *testing.T) {
	m := New(algorithms.ContainerConfig{ID: "a"})
	_ = m.Step(cmd(protocol.TypeDump, 1, &protocol.Dump{Locked: true}))
	acts, msgs := kinds(m.Ready())
	if len(msgs) != 1 || msgs[0] != "failed" {
		t.Fatalf("messages %v, want [failed]", msgs)
	}
	for _, a := range acts {
		if a == "dump" {
			t.Fatalf("dumped an unlocked container: actions %v", acts)
		}
	}
}

func TestRestartedWorkerRefusesItsEpoch(t *testing.T) {
	rec := algorithms.ContainerRecord{Epoch: 3, Snapshot: "s"}.Encode()
	m := New(algorithms.ContainerConfig{ID: "a", Recovering: true, Record: rec})
	acts, _ := kinds(m.Ready())
	if len(acts) != 2 || acts[0] != "thaw" || acts[1] != "unlock" {
		t.Fatalf("recovering actions %v, want [thaw unlock]", acts)
	}
	_ = m.Step(cmd(protocol.TypeLock, 3, &protocol.Lock{All: true}))
	acts, msgs := kinds(m.Ready())
	if len(acts) != 0 || len(msgs) != 1 || msgs[0] != "failed" {
		t.Fatalf("epoch 3 after restart: actions %v messages %v, want no action and [failed]", acts, msgs)
	}
	_ = m.Step(cmd(protocol.TypeLock, 4, &protocol.Lock{All: true}))
	acts, _ = kinds(m.Ready())
	if len(acts) != 2 || acts[0] != "persist" || acts[1] != "lock" {
		t.Fatalf("epoch 4: actions %v, want [persist lock]", acts)
	}
}

func TestWatchdogReleasesAndRefusesLateCommands(t *testing.T) {
	m := New(algorithms.ContainerConfig{ID: "a"})
	_ = m.Step(cmd(protocol.TypeLock, 1, &protocol.Lock{All: true, Freeze: true}))
	m.Ready()
	for range 5 {
		m.Tick()
	}
	acts, msgs := kinds(m.Ready())
	if len(acts) != 2 || acts[0] != "thaw" || acts[1] != "unlock" || len(msgs) != 1 || msgs[0] != "failed" {
		t.Fatalf("after the deadline: actions %v messages %v, want [thaw unlock] [failed]", acts, msgs)
	}
	if m.Held() {
		t.Fatal("still held after the watchdog")
	}
	_ = m.Step(cmd(protocol.TypeDump, 1, &protocol.Dump{Locked: true}))
	acts, msgs = kinds(m.Ready())
	if len(acts) != 0 || len(msgs) != 1 || msgs[0] != "failed" {
		t.Fatalf("late dump: actions %v messages %v, want none and [failed]", acts, msgs)
	}
}

func TestNewerEpochReleasesOlder(t *testing.T) {
	m := New(algorithms.ContainerConfig{ID: "a"})
	_ = m.Step(cmd(protocol.TypeLock, 1, &protocol.Lock{All: true, Freeze: true}))
	m.Ready()
	_ = m.Step(cmd(protocol.TypeLock, 2, &protocol.Lock{All: true}))
	acts, _ := kinds(m.Ready())
	want := []string{"thaw", "unlock", "persist", "lock"}
	if len(acts) != len(want) {
		t.Fatalf("actions %v, want %v", acts, want)
	}
	for i := range want {
		if acts[i] != want[i] {
			t.Fatalf("actions %v, want %v", acts, want)
		}
	}
	if err := m.Step(cmd(protocol.TypeLock, 1, &protocol.Lock{All: true})); err != nil || m.HasReady() {
		t.Fatalf("stale epoch: err %v, ready %v; want ignored", err, m.HasReady())
	}
}
