package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"syscall"
	"testing"
)

// Every specific sentinel and every class survives the wire (a Status through JSON):
// the decoded error matches it and its class with errors.Is, no other, and keeps the
// message.
func TestStatusRoundTrip(t *testing.T) {
	var all []error
	for _, r := range reasons {
		all = append(all, r)
	}
	for _, c := range classes {
		all = append(all, c)
	}
	for _, sentinel := range all {
		err := fmt.Errorf("node n1: set s1.web: %w", sentinel)
		b, _ := json.Marshal(SendReply{OpStatus: OpStatus{MS: 3, Status: StatusOf(err)}})
		var rep SendReply
		if jerr := json.Unmarshal(b, &rep); jerr != nil {
			t.Fatal(jerr)
		}
		got := rep.Err()
		if got == nil || got.Error() != err.Error() {
			t.Fatalf("%v: decoded %v, want the same message", sentinel, got)
		}
		if !errors.Is(got, sentinel) {
			t.Errorf("%v: decoded error does not match it", sentinel)
		}
		for _, other := range all {
			want := other == sentinel
			if r, ok := sentinel.(*reason); ok && other == error(classOf(r.code)) {
				want = true
			}
			if errors.Is(got, other) != want {
				t.Errorf("%v: errors.Is(decoded, %v) = %v, want %v", sentinel, other, !want, want)
			}
		}
	}
}

// A local "disk full" (syscall.ENOSPC, e.g. from a dump whose CRIU log says so, or a
// write of a received set) crosses the wire as ErrNoSpace.
func TestNoSpaceCrossesTheWire(t *testing.T) {
	err := fmt.Errorf("dump web.1: %w: the file system of /sets is full", syscall.ENOSPC)
	got := StatusOf(err).Err()
	if !errors.Is(got, ErrNoSpace) || !errors.Is(got, ErrFailedPrecondition) || got.Error() != err.Error() {
		t.Fatalf("decoded %v (%#v): want ErrNoSpace, its class and the message", got, got)
	}
}

func classOf(c Code) *class {
	for _, k := range classes {
		if k.code == c {
			return k
		}
	}
	return nil
}

func TestStatusOfPlainErrors(t *testing.T) {
	if s := StatusOf(nil); s != (Status{}) || s.Err() != nil {
		t.Fatalf("nil: %+v", s)
	}
	if s := StatusOf(errors.New("boom")); s.Code != CodeInternal || s.Reason != "" || s.Error != "boom" {
		t.Fatalf("plain error: %+v", s)
	}
	if s := StatusOf(fmt.Errorf("dump: %w", context.DeadlineExceeded)); s.Code != CodeUnavailable {
		t.Fatalf("deadline: %+v", s)
	}
	// A peer of an older build sends only the message: still an error, of no class.
	old := Status{Error: "no such image set"}.Err()
	if old == nil || old.Error() != "no such image set" || errors.Is(old, ErrNoSuchSet) || errors.Is(old, ErrInternal) {
		t.Fatalf("message-only status: %v", old)
	}
}

// Mark attaches a sentinel without changing the message.
func TestMark(t *testing.T) {
	base := errors.New("send s1 to x: receiver answered 409 Conflict: file exists")
	err := Mark(base, ErrSetExists)
	if err.Error() != base.Error() || !errors.Is(err, ErrSetExists) || !errors.Is(err, ErrConflict) || !errors.Is(err, base) {
		t.Fatalf("Mark: %v", err)
	}
	if s := StatusOf(fmt.Errorf("restore: %w", err)); s.Code != CodeConflict || s.Reason != "set_exists" {
		t.Fatalf("status of a marked error: %+v", s)
	}
	if Mark(nil, ErrSetExists) != nil {
		t.Fatal("Mark(nil) is not nil")
	}
}
