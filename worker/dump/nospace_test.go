package dump

import (
	"errors"
	"strings"
	"syscall"
	"testing"
)

func TestNoSpaceNamesTheFullDisk(t *testing.T) {
	base := errors.Join(ErrCRIU, errors.New("runc checkpoint: exit status 1: criu failed: type NOTIFY errno 0"))
	log := "(00.103209) Error (criu/page-xfer.c:263): page-xfer: Unable to spice data: No space left on device"
	err := noSpace(base, "/data/sets", 3<<20, `criu failed: type NOTIFY errno 0`, log)
	if !errors.Is(err, syscall.ENOSPC) || !errors.Is(err, ErrCRIU) {
		t.Fatalf("want ENOSPC and ErrCRIU to match: %v", err)
	}
	for _, want := range []string{"/data/sets is full", "3.0 MiB", "swarmckpt rm", "type NOTIFY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
	if got := noSpace(base, "/data/sets", -1, "criu failed: type NOTIFY errno 0", "Error: Can't dump page with parasite"); got != base {
		t.Errorf("another failure must come back unchanged: %v", got)
	}
	if got := noSpace(base, "/d", -1, log); !strings.Contains(got.Error(), "free now: unknown") {
		t.Errorf("unknown free space: %v", got)
	}
}
