package holdtime

import (
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	const MiB, GiB = int64(1) << 20, int64(1) << 30
	def := Default()
	slow := Budget{Base: 10 * time.Second, PerContainer: time.Second, Floor: 1 * MiB, Max: time.Hour}
	for _, tc := range []struct {
		name string
		b    Budget
		w    Work
		want time.Duration
	}{
		{"nothing: the base", def, Work{}, 30 * time.Second},
		{"one small container", def, Work{Containers: 1, Bytes: 16 * MiB}, 33 * time.Second},
		{"five containers of 8 MiB", def, Work{Containers: 5, Bytes: 40 * MiB}, 42500 * time.Millisecond},
		{"a 1 GiB container", def, Work{Containers: 1, Bytes: GiB}, 96 * time.Second},
		{"20 GiB is capped", def, Work{Containers: 1, Bytes: 20 * GiB}, 10 * time.Minute},
		{"zero budget takes the defaults", Budget{}, Work{Containers: 1, Bytes: GiB}, 96 * time.Second},
		{"negative work counts as none", def, Work{Containers: -3, Bytes: -GiB}, 30 * time.Second},
		{"a slow floor", slow, Work{Containers: 2, Bytes: 100 * MiB}, 112 * time.Second},
		{"no overflow past 9 GB", Budget{Max: 1000 * time.Hour}, Work{Bytes: 1 << 40}, 30*time.Second + 65536*time.Second},
	} {
		if got := tc.b.For(tc.w); got != tc.want {
			t.Errorf("%s: For(%+v) = %v, want %v", tc.name, tc.w, got, tc.want)
		}
	}
}

func TestStackIsTheBusiestNode(t *testing.T) {
	b := Default()
	nodes := map[string]Work{
		"a": {Containers: 3, Bytes: 32 << 20},  // 30 + 6 + 2 = 38 s
		"b": {Containers: 1, Bytes: 160 << 20}, // 30 + 2 + 10 = 42 s
		"c": {},
	}
	if got, want := b.Stack(nodes), 42*time.Second; got != want {
		t.Errorf("Stack = %v, want %v (node b's)", got, want)
	}
	if got, want := b.Stack(nil), 30*time.Second; got != want {
		t.Errorf("Stack(nil) = %v, want the base %v", got, want)
	}
}

func TestAdd(t *testing.T) {
	if got := (Work{1, 10}).Add(Work{2, 5}); got != (Work{3, 15}) {
		t.Errorf("Add = %+v", got)
	}
}
