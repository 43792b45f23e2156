package restore

import (
	"strings"
	"testing"
	"time"
)

// Lines as CRIU 4.2.1 wrote them in a 1 GiB restore (worker/restore's lab runs).
const criuRestoreLog = `(00.000000) CRIU run id = d37ef98d-0708-46b6-acc5-bc5034246535
(00.000000) CRIU run id = f922e089-5212-407a-af93-eef5928d9794
(00.069192) cg: Preparing cgroups yard (cgroups restore mode 0x4)
(00.100000) Running setup-namespaces scripts
(00.100002) 	RPC
(00.225000) net: Restoring netns
(00.347236)      1: cg: Move into 2
(00.406215) pie: 1: 	mmap(0x7ffe9cb99000 -> 0x7ffe9cbba000, 0x3 0x132 -1)
(00.406221) pie: 1: Preadv 0x400000:4096... (78 iovs)
(02.784479) pie: 1: ` + "`" + `- returned 1078534144
(02.790000) pie: 7: Preadv 0x500000:4096... (2 iovs)
(02.800000) pie: 7: ` + "`" + `- returned 8192
not a timestamped line (00.5)
(02.818084) Running post-resume scripts
`

func TestReadCRIUTimes(t *testing.T) {
	got, ok := readCRIUTimes(strings.NewReader(criuRestoreLog))
	if !ok {
		t.Fatal("no timestamps found")
	}
	near := func(d, want time.Duration) bool { return d > want-time.Microsecond && d < want+time.Microsecond }
	if !near(got.Total, 2818084*time.Microsecond) {
		t.Errorf("Total = %s, want 2.818084s", got.Total)
	}
	if want := 2378258*time.Microsecond + 10*time.Millisecond; !near(got.Pages, want) {
		t.Errorf("Pages = %s, want %s (two page reads)", got.Pages, want)
	}
	if !near(got.Hooks, 125*time.Millisecond) {
		t.Errorf("Hooks = %s, want 0.125s (setup-namespaces to the next line after its RPC)", got.Hooks)
	}
	if _, ok := readCRIUTimes(strings.NewReader("Error (criu/cr-restore.c:1): no timestamps\n")); ok {
		t.Error("a log without timestamps reported times")
	}
	// A page read cut short (CRIU died) counts nothing.
	got, _ = readCRIUTimes(strings.NewReader("(00.100000) pie: 1: Preadv 0x1:4096... (1 iovs)\n(00.200000) Error\n"))
	if got.Pages != 0 || !near(got.Total, 200*time.Millisecond) {
		t.Errorf("cut log: %+v, want Pages 0, Total 0.2s", got)
	}
}
