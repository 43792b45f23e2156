package restore

import (
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
