package space

import "testing"

func TestCgroupOf(t *testing.T) {
	hybrid := "12:memory:/docker/abc\n11:freezer:/docker/abc\n0::/docker/abc\n"
	if p, v2, ok := cgroupOf(hybrid); !ok || v2 || p != "/docker/abc" {
		t.Errorf("hybrid: %q v2=%v ok=%v, want the v1 memory controller's path", p, v2, ok)
	}
	if p, v2, ok := cgroupOf("0::/system.slice/docker-abc.scope\n"); !ok || !v2 || p != "/system.slice/docker-abc.scope" {
		t.Errorf("unified: %q v2=%v ok=%v", p, v2, ok)
	}
	if _, _, ok := cgroupOf("4:cpu,cpuacct:/x\n"); ok {
		t.Error("no memory controller and no unified line: want not ok")
	}
}

func TestUsageLessInactiveFile(t *testing.T) {
	for _, c := range []struct {
		cur, stat string
		v2        bool
		want      int64
	}{
		{"1000\n", "anon 700\ninactive_file 200\nactive_file 100\n", true, 800},
		{"1000\n", "cache 300\ntotal_inactive_file 250\ninactive_file 9\n", false, 750},
		{"1000\n", "", true, 1000},
		{"1000\n", "inactive_file 5000\n", true, 1000}, // never below zero: the usage as is
	} {
		got, err := usage(c.cur, c.stat, c.v2)
		if err != nil || got != c.want {
			t.Errorf("usage(%q, %q, v2=%v) = %d, %v; want %d", c.cur, c.stat, c.v2, got, err, c.want)
		}
	}
	if _, err := usage("max", "", true); err == nil {
		t.Error("an unreadable usage must be an error")
	}
}
