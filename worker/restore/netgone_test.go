package restore

import (
	"context"
	"errors"
	"testing"
)

// TestNetGoneRetriesOnlyAttachmentFailures: only errors of a network attachment that
// failed before the runtime ran make the restore create the container again.
func TestNetGoneRetriesOnlyAttachmentFailures(t *testing.T) {
	for msg, want := range map[string]bool{
		"Error response from daemon: network 2v849ifi4yvu49sjscfuiyjbv not found":                    true,
		"Error response from daemon: attaching to network failed, make sure your network options...": true,
		"Error response from daemon: No such image: swarmckpt/bank:dev":                              false,
		"Error response from daemon: Address already in use":                                         false,
		"runc restore failed: criu: network-lock":                                                    false,
	} {
		if got := netGone(errors.New(msg)); got != want {
			t.Errorf("netGone(%q) = %v, want %v", msg, got, want)
		}
	}
	if netGone(nil) {
		t.Error("netGone(nil) = true")
	}
}

// TestStartAgainRetriesTheSameContainerOnlyOnAttachmentFailures: a start that failed
// on the network attachment before the runtime ran is made again (bounded); any other
// failure, or one after the runtime ran, is returned at once.
func TestStartAgainRetriesTheSameContainerOnlyOnAttachmentFailures(t *testing.T) {
	gone := errors.New("Error response from daemon: network 2v849ifi4yvu49sjscfuiyjbv not found")
	other := errors.New("Error response from daemon: OCI runtime create failed")
	for _, tc := range []struct {
		name      string
		errs      []error // start's results in order; the last repeats
		ran       bool
		wantCalls int
		wantErr   error
	}{
		{"succeeds at once", []error{nil}, false, 1, nil},
		{"attachment fails once", []error{gone, nil}, false, 2, nil},
		{"attachment keeps failing", []error{gone}, false, startAttempts, gone},
		{"other failure", []error{other}, false, 1, other},
		{"attachment failure after the runtime ran", []error{gone}, true, 1, gone},
		{"attachment then other failure", []error{gone, other}, false, 2, other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls, retries := 0, 0
			err := startAgain(context.Background(), startAttempts, func() error {
				e := tc.errs[min(calls, len(tc.errs)-1)]
				calls++
				return e
			}, func() bool { return tc.ran }, func(n int, err error) {
				retries++
				if n != retries || !netGone(err) {
					t.Errorf("retrying(%d, %v) after %d retries", n, err, retries-1)
				}
			})
			if calls != tc.wantCalls || !errors.Is(err, tc.wantErr) && err != tc.wantErr {
				t.Fatalf("start called %d times, err %v; want %d, %v", calls, err, tc.wantCalls, tc.wantErr)
			}
			if retries != calls-1 {
				t.Errorf("%d retries reported for %d calls", retries, calls)
			}
		})
	}
	// A cancelled context ends the retries with start's error.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls := 0
	err := startAgain(ctx, startAttempts, func() error { calls++; return gone }, func() bool { return false }, func(int, error) {})
	if calls != 1 || err != gone {
		t.Fatalf("cancelled: %d calls, %v", calls, err)
	}
}
