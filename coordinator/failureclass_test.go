package coordinator

import "testing"

// Abort reasons as the algorithms and the coordinator write them map to the fixed
// words of the failures metric's reason label.
func TestFailureClass(t *testing.T) {
	for reason, want := range map[string]string{
		"timeout after 300 ticks in phase dumping: no answer from c1":                           "timeout",
		"container c1: dump: criu failed":                                                       "container-failed",
		"node lab-3 (running bank_holder.3) has no live worker: start 'swarmckpt worker' on it": "no-worker",
		"node lab-2 left the cluster (memberlist) while snapshotting bank_holder.2":             "node-left",
		"the stack lock was lost (etcd unreachable or lease expired)":                           "lock-lost",
		"commit refused: store: changed concurrently":                                           "commit",
		"no image set arrived with the dump-done of bank_holder.1@lab-1":                        "commit",
		"aborted by the user":                                   "user",
		"node lab-1 refused the snapshot: busy":                 "refused",
		"coordinator restarted before the snapshot was decided": "coordinator-restart",
		"coordinator c1 restarted during the snapshot":          "coordinator-restart",
		"coordinator c1 lost its leadership (etcd did not renew its election lease: unreachable, or without quorum)": "leadership-lost",
		"something new": "other",
	} {
		if got := failureClass(reason); got != want {
			t.Errorf("failureClass(%q) = %s, want %s", reason, got, want)
		}
	}
}
