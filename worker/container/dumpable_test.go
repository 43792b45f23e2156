package container

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckDumpableDecision(t *testing.T) {
	c := Ref{ID: "0123456789abcdef", Name: "redis_server.1.x"}
	root := Creds{Pid: 1, Comm: "redis-server"}
	other := Creds{Pid: 7, Comm: "redis-server", UID: [3]int{999, 999, 999}, GID: [3]int{999, 999, 999}}
	setgid := Creds{Pid: 8, Comm: "helper", GID: [3]int{0, 1000, 0}} // root user, another effective group
	noRes := Privileges{CapEff: 0x1fffeffffff}                       // every capability but CAP_SYS_RESOURCE (the lab host)
	full := Privileges{CapEff: 0x1ffffffffff}
	for _, tc := range []struct {
		name  string
		w     Privileges
		procs []Creds
		fail  bool
	}{
		{"root processes, no CAP_SYS_RESOURCE", noRes, []Creds{root}, false},
		{"no processes read", noRes, nil, false},
		{"uid 999 without CAP_SYS_RESOURCE", noRes, []Creds{root, other}, true},
		{"another effective gid without CAP_SYS_RESOURCE", noRes, []Creds{setgid}, true},
		{"uid 999 with CAP_SYS_RESOURCE", full, []Creds{root, other}, false},
		{"worker of the same uid", Privileges{UID: 999, GID: 999}, []Creds{other}, false},
	} {
		err := CheckDumpable(c, tc.w, tc.procs)
		if (err != nil) != tc.fail {
			t.Errorf("%s: err = %v, want failure %v", tc.name, err, tc.fail)
			continue
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrOtherUser) {
			t.Errorf("%s: %v does not wrap ErrOtherUser", tc.name, err)
		}
		for _, want := range []string{c.Name, "CAP_SYS_RESOURCE", "Can't get rlimit", "user: \"0:0\"", "CapEff"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error lacks %q: %v", tc.name, want, err)
			}
		}
	}
	err := CheckDumpable(c, noRes, []Creds{root, other})
	if !strings.Contains(err.Error(), "process 7 (redis-server) runs as uid 999 gid 999") {
		t.Errorf("error does not name the process and its ids: %v", err)
	}
}

func TestReadCreds(t *testing.T) {
	d := t.TempDir()
	status := "Name:\tredis-server\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t4242\nUid:\t999\t999\t999\t999\nGid:\t998\t998\t998\t998\nCapEff:\t00000000a80425fb\n"
	if err := os.WriteFile(filepath.Join(d, "status"), []byte(status), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := readCreds(d)
	if err != nil || p.Pid != 4242 || p.Comm != "redis-server" || p.UID != [3]int{999, 999, 999} || p.GID != [3]int{998, 998, 998} || p.capEff != 0xa80425fb {
		t.Fatalf("readCreds = %+v, %v", p, err)
	}
	if err := os.WriteFile(filepath.Join(d, "status"), []byte("Name:\tx\nPid:\t1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readCreds(d); err == nil {
		t.Fatal("status without Uid/Gid/CapEff accepted")
	}
	// This test process, in the host's pid namespace: only itself is checked, and it
	// runs as the same user as itself.
	if err := Dumpable(Ref{Name: "self", Pid: os.Getpid()}); err != nil {
		t.Fatalf("Dumpable(self) = %v", err)
	}
}
