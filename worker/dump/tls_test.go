package dump

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestTLSConfigForCRIU(t *testing.T) {
	var none *TLS
	if none.Args() != nil {
		t.Fatal("a nil TLS has arguments")
	}
	if env, err := none.env(t.TempDir()); env != nil || err != nil {
		t.Fatalf("a nil TLS changes the environment: %v %v", env, err)
	}
	tl := &TLS{CA: "/p/ca.pem", Cert: "/p/n.pem", Key: "/p/n-key.pem"}
	if got := tl.Args(); !slices.Equal(got, []string{"--tls", "--tls-cacert", "/p/ca.pem", "--tls-cert", "/p/n.pem", "--tls-key", "/p/n-key.pem"}) {
		t.Fatalf("args %q", got)
	}
	work := t.TempDir()
	env, err := tl.env(work)
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(work, configName)
	if !slices.Contains(env, "CRIU_CONFIG_FILE="+conf) {
		t.Fatalf("environment without CRIU_CONFIG_FILE=%s", conf)
	}
	b, err := os.ReadFile(conf)
	fi, _ := os.Stat(conf)
	if err != nil || fi.Mode().Perm() != 0o600 || string(b) != "tls\ntls-cacert /p/ca.pem\ntls-cert /p/n.pem\ntls-key /p/n-key.pem\n" {
		t.Fatalf("CRIU configuration %q (mode %v, %v)", b, fi.Mode().Perm(), err)
	}
	if _, err := (&TLS{CA: "/p/a\nb", Cert: "c", Key: "k"}).env(work); err == nil || !strings.Contains(err.Error(), "cannot go into") {
		t.Fatalf("a file name with a newline: %v", err)
	}
}
