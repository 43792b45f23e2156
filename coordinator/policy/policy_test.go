package policy

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/swarmckpt/swarmckpt/controlplane/store"
)

func svc(name string, kv ...string) Service {
	l := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return Service{Name: name, Labels: l}
}

func TestDerive(t *testing.T) {
	for _, tc := range []struct {
		name     string
		services []Service
		want     *Policy
		errs     []string // substrings, one per expected label error
	}{
		{name: "no labels", services: []Service{svc("a", "com.docker.stack.namespace", "bank")}},
		{name: "enable only", services: []Service{svc("a", KeyEnable, "true")},
			want: &Policy{Stack: "s", Enabled: true, Replicas: 1, From: map[string][]string{KeyEnable: {"a"}}}},
		{name: "enable false", services: []Service{svc("a", KeyEnable, "false", KeySchedule, "@every 1m")},
			want: &Policy{Stack: "s", Enabled: false, Schedule: "@every 1m", Replicas: 1, From: map[string][]string{KeyEnable: {"a"}, KeySchedule: {"a"}}}},
		{name: "full", services: []Service{
			svc("db", KeySchedule, "*/5 * * * *", KeyRetain, "3", KeyAlgorithm, "chandy-lamport", KeyTimeout, "90s", KeyReplicas, "1"),
			svc("web", KeySchedule, "*/5 * * * *", KeyMode, "swarm", KeyMigration, "direct", KeyExclude, "false")},
			want: &Policy{Stack: "s", Enabled: true, Algorithm: "chandy-lamport", Timeout: 90 * time.Second, Schedule: "*/5 * * * *",
				Retain: 3, Replicas: 1, Mode: "swarm", Migration: "direct", From: map[string][]string{
					KeySchedule: {"db", "web"}, KeyRetain: {"db"}, KeyAlgorithm: {"db"}, KeyTimeout: {"db"}, KeyReplicas: {"db"},
					KeyMode: {"web"}, KeyMigration: {"web"}, KeyExclude: {"web"}}}},
		{name: "conflict", services: []Service{svc("a", KeyAlgorithm, "blocking"), svc("b", KeyAlgorithm, "minimal")},
			errs: []string{`service a, b: label swarmckpt.algorithm="blocking": conflict: service b says "minimal"`}},
		{name: "unknown algorithm", services: []Service{svc("a", KeyAlgorithm, "magic")},
			errs: []string{`service a: label swarmckpt.algorithm="magic": unknown algorithm: use one of blocking, chandy-lamport`}},
		{name: "bad duration", services: []Service{svc("a", KeyTimeout, "soon")}, errs: []string{"swarmckpt.timeout=\"soon\": not a positive Go duration"}},
		{name: "zero duration", services: []Service{svc("a", KeyTimeout, "0s")}, errs: []string{"not a positive Go duration"}},
		{name: "bad cron", services: []Service{svc("a", KeySchedule, "every day")}, errs: []string{`swarmckpt.schedule="every day": not a schedule`}},
		{name: "six fields", services: []Service{svc("a", KeySchedule, "0 */5 * * * *")}, errs: []string{"not a schedule"}},
		{name: "every too short", services: []Service{svc("a", KeySchedule, "@every 10ms")}, errs: []string{"not a schedule"}},
		{name: "retain -1", services: []Service{svc("a", KeySchedule, "@every 1m", KeyRetain, "-1")}, errs: []string{`swarmckpt.retain="-1": not a whole number of at least 1`}},
		{name: "retain 0", services: []Service{svc("a", KeySchedule, "@every 1m", KeyRetain, "0")}, errs: []string{"at least 1"}},
		{name: "retain word", services: []Service{svc("a", KeySchedule, "@every 1m", KeyRetain, "two")}, errs: []string{"at least 1"}},
		{name: "retain without schedule", services: []Service{svc("a", KeyRetain, "2")}, errs: []string{"has no swarmckpt.schedule"}},
		{name: "exclude not bool", services: []Service{svc("a", KeyExclude, "yes please")}, errs: []string{"swarmckpt.exclude=\"yes please\": not a boolean"}},
		{name: "enable not bool", services: []Service{svc("a", KeyEnable, "maybe")}, errs: []string{"not a boolean"}},
		{name: "replicas 0", services: []Service{svc("a", KeyReplicas, "0")},
			errs: []string{`swarmckpt.replicas="0": not a whole number from 1 to 16`}},
		{name: "replicas word", services: []Service{svc("a", KeyReplicas, "two")}, errs: []string{"not a whole number from 1 to 16"}},
		{name: "replicas 17", services: []Service{svc("a", KeyReplicas, "17")}, errs: []string{"not a whole number from 1 to 16"}},
		{name: "mode", services: []Service{svc("a", KeyMode, "fast")}, errs: []string{"unknown restore mode: use one of exact, swarm"}},
		{name: "migration", services: []Service{svc("a", KeyMigration, "teleport")}, errs: []string{"unknown migration kind: use one of cold, direct, post-copy, pre-copy"}},
		{name: "on-drain migrate", services: []Service{svc("a", KeyOnDrain, "migrate"), svc("b", KeyOnDrain, "migrate")},
			want: &Policy{Stack: "s", Enabled: true, Replicas: 1, OnDrain: OnDrainMigrate, From: map[string][]string{KeyOnDrain: {"a", "b"}}}},
		{name: "on-drain unknown", services: []Service{svc("a", KeyOnDrain, "restart")},
			errs: []string{`swarmckpt.on-drain="restart": unknown on-drain action: use migrate`}},
		{name: "on-node-loss restore", services: []Service{svc("a", KeyOnNodeLoss, "restore")},
			want: &Policy{Stack: "s", Enabled: true, Replicas: 1, OnNodeLoss: OnNodeLossRestore, From: map[string][]string{KeyOnNodeLoss: {"a"}}}},
		{name: "on-node-loss unknown", services: []Service{svc("a", KeyOnNodeLoss, "migrate")},
			errs: []string{`swarmckpt.on-node-loss="migrate": unknown on-node-loss action: use restore`}},
		{name: "on-node-loss conflict", services: []Service{svc("a", KeyOnNodeLoss, "restore"), svc("b", KeyOnNodeLoss, "")},
			errs: []string{"conflict"}},
		{name: "unknown key", services: []Service{svc("a", "swarmckpt.shedule", "@every 1m")}, errs: []string{"swarmckpt.shedule=\"@every 1m\": unknown swarmckpt label"}},
		{name: "several errors, nothing applied", services: []Service{svc("a", KeyAlgorithm, "magic", KeySchedule, "@every 1m", KeyRetain, "-1")},
			errs: []string{"unknown algorithm", "at least 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := Derive("s", tc.services)
			if len(tc.errs) > 0 {
				if p != nil || err == nil || !errors.Is(err, ErrLabel) {
					t.Fatalf("Derive = %+v, %v; want label errors %q and no policy", p, err, tc.errs)
				}
				les := Errors(err)
				if len(les) != len(tc.errs) {
					t.Fatalf("label errors %v; want %d: %q", err, len(tc.errs), tc.errs)
				}
				for i, want := range tc.errs {
					if !strings.Contains(les[i].Error(), want) {
						t.Errorf("error %d = %q; want it to contain %q", i, les[i].Error(), want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("Derive: %v", err)
			}
			if !reflect.DeepEqual(p, tc.want) {
				t.Fatalf("Derive = %+v\nwant    %+v", p, tc.want)
			}
		})
	}
}

var t0 = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)

func TestReplicas(t *testing.T) {
	p, err := Derive("s", []Service{svc("a", KeyReplicas, "3"), svc("b", KeyReplicas, "3")})
	if err != nil || p.Replicas != 3 || !slices.Equal(p.From[KeyReplicas], []string{"a", "b"}) {
		t.Fatalf("Derive = %+v, %v; want replicas 3 from a, b", p, err)
	}
	two := []Service{svc("a", KeyReplicas, "3", KeyRetain, "-1"), svc("b", KeyReplicas, "3")}
	if p, err := DeriveOn("s", two[1:], 3); err != nil || p.Replicas != 3 {
		t.Errorf("DeriveOn 3 nodes with replicas 3 = %+v, %v; want replicas 3", p, err)
	}
	p, err = DeriveOn("s", two, 2)
	les := Errors(err)
	if p != nil || len(les) != 2 || !strings.Contains(err.Error(), `service a, b: label swarmckpt.replicas="3": more copies than nodes: the cluster has 2 nodes`) {
		t.Errorf("DeriveOn 2 nodes with replicas 3 (and a bad retain) = %+v, %v; want both label errors, the replicas one naming the services and the 2 nodes", p, err)
	}
}

func TestExclude(t *testing.T) {
	p, err := Derive("s", []Service{svc("web", KeyExclude, "true"), svc("db", KeySchedule, "@every 1m"), svc("cache", KeyExclude, "false"), svc("api", KeyExclude, "1")})
	if err != nil || !slices.Equal(p.Excluded, []string{"api", "web"}) || !slices.Equal(p.From[KeyExclude], []string{"api", "cache", "web"}) {
		t.Fatalf("Derive = %+v, %v; want api and web excluded, the label from api, cache, web", p, err)
	}
}

func TestScheduleNext(t *testing.T) {
	for _, tc := range []struct {
		spec string
		at   time.Time
		want time.Time
	}{
		{"@every 15s", t0, t0.Add(15 * time.Second)},
		{"@every 5m", t0.Add(time.Second), t0.Add(5*time.Minute + time.Second)},
		{"*/10 * * * *", t0.Add(time.Minute), t0.Add(10 * time.Minute)},
		{"30 2 * * *", t0, time.Date(2026, 12, 7, 2, 30, 0, 0, time.UTC)},
		{"@hourly", t0.Add(time.Second), t0.Add(time.Hour)},
	} {
		s, err := ParseSchedule(tc.spec)
		if err != nil {
			t.Fatalf("%s: %v", tc.spec, err)
		}
		if got := s.Next(tc.at); !got.Equal(tc.want) {
			t.Errorf("%s: Next(%s) = %s; want %s", tc.spec, tc.at, got, tc.want)
		}
	}
}

func TestDue(t *testing.T) {
	every, _ := ParseSchedule("@every 15s")
	cron5, _ := ParseSchedule("*/10 * * * *")
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	for _, tc := range []struct {
		name    string
		s       Schedule
		t       Timing
		now     time.Time
		running bool
		want    Decision
	}{
		{"first pass starts counting", every, Timing{}, at(0), false, Decision{Action: Wait, Next: Timing{"@every 15s", at(15)}}},
		{"changed schedule starts over", every, Timing{"@every 1m", at(60)}, at(5), false, Decision{Action: Wait, Next: Timing{"@every 15s", at(20)}}},
		{"not yet", every, Timing{"@every 15s", at(15)}, at(14), false, Decision{Action: Wait, Next: Timing{"@every 15s", at(15)}}},
		{"due", every, Timing{"@every 15s", at(15)}, at(15), false, Decision{Action: Run, Next: Timing{"@every 15s", at(30)}}},
		{"due while running: skipped", every, Timing{"@every 15s", at(15)}, at(16), true, Decision{Action: Skip, Next: Timing{"@every 15s", at(31)}}},
		{"restart after 4 missed runs: once", every, Timing{"@every 15s", at(15)}, at(75), false, Decision{Action: Run, Next: Timing{"@every 15s", at(90)}, Missed: 4}},
		{"cron due late", cron5, Timing{"*/10 * * * *", t0.Add(10 * time.Minute)}, t0.Add(31 * time.Minute), false,
			Decision{Action: Run, Next: Timing{"*/10 * * * *", t0.Add(40 * time.Minute)}, Missed: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Due(tc.s, tc.t, tc.now, tc.running)
			if got.Action != tc.want.Action || got.Missed != tc.want.Missed || got.Next.Spec != tc.want.Next.Spec || !got.Next.Next.Equal(tc.want.Next.Next) {
				t.Fatalf("Due = %+v (%s); want %+v (%s)", got, got.Action, tc.want, tc.want.Action)
			}
		})
	}
}

func TestExpired(t *testing.T) {
	m := func(id string, st store.State, scheduled bool) *store.Manifest {
		x := &store.Manifest{ID: id, Stack: "bank", State: st}
		if scheduled {
			x.Purpose = PurposeScheduled
		}
		return x
	}
	c, a := store.StateCommitted, store.StateAborted
	for _, tc := range []struct {
		name   string
		ms     []*store.Manifest
		retain int
		inUse  map[string]bool
		want   []string
	}{
		{"keep all", []*store.Manifest{m("s1", c, true), m("s2", c, true)}, 0, nil, nil},
		{"within retain", []*store.Manifest{m("s1", c, true), m("s2", c, true)}, 2, nil, nil},
		{"oldest go", []*store.Manifest{m("s1", c, true), m("s2", c, true), m("s3", c, true), m("s4", c, true)}, 2, nil, []string{"s1", "s2"}},
		{"manual and aborted never count nor go", []*store.Manifest{m("m1", c, false), m("s1", c, true), m("x", a, true), m("s2", c, true), m("m2", c, false), m("s3", c, true)}, 1, nil, []string{"s1", "s2"}},
		{"in use by a restore stays", []*store.Manifest{m("s1", c, true), m("s2", c, true), m("s3", c, true)}, 1, map[string]bool{"s1": true}, []string{"s2"}},
		{"uncommitted newest: committed ones count", []*store.Manifest{m("s1", c, true), m("s2", c, true), m("s3", "dumping", true)}, 1, nil, []string{"s1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Expired(tc.ms, tc.retain, tc.inUse); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Expired = %v; want %v", got, tc.want)
			}
		})
	}
}

// The newest committed snapshot is never removed, even when retention would count it
// out (it cannot happen with retain >= 1 unless it is the only one: kept).
func TestExpiredKeepsNewestCommitted(t *testing.T) {
	ms := []*store.Manifest{{ID: "s1", State: store.StateCommitted, Purpose: PurposeScheduled}}
	if got := Expired(ms, 1, nil); got != nil {
		t.Fatalf("Expired = %v", got)
	}
}

func TestInUse(t *testing.T) {
	for holder, want := range map[string]string{
		"coord@h/restore-bank-20261206-100000-a1b2c3-0f0f0f": "bank-20261206-100000-a1b2c3",
		"coord@h/migrate-mig1-abcdef":                        "mig1",
		"coord@h/bank-20261206-100000-a1b2c3":                "",
		"coord@h/rm-bank-1-abcdef":                           "",
		"":                                                   "",
	} {
		if got := InUse(holder); got != want {
			t.Errorf("InUse(%q) = %q; want %q", holder, got, want)
		}
	}
}
