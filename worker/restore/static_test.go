package restore

import (
	"strings"
	"testing"
)

// A dynamically linked keeper binary is refused with the fix (it would exit at once
// inside a FROM-scratch image and keep no network: the restore then failed with
// "attaching to network failed" after 60 s).
func TestRequireStaticRefusesADynamicBinary(t *testing.T) {
	err := requireStatic("/bin/true")
	if err == nil || !strings.Contains(err.Error(), "dynamically linked") || !strings.Contains(err.Error(), "CGO_ENABLED=0") {
		t.Fatalf("requireStatic(/bin/true) = %v, want a refusal naming the fix", err)
	}
	if err := requireStatic("/etc/hostname"); err == nil {
		t.Fatal("a file that is not ELF was accepted")
	}
}
