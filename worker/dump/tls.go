package dump

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// TLS names the PEM files with which CRIU's page-server connections (DumpInto's pages
// to the target, post-copy's lazy pages) are encrypted and mutually authenticated:
// CRIU's --tls-cacert, --tls-cert and --tls-key (CRIU built with GnuTLS, as Debian's).
type TLS struct {
	CA, Cert, Key string
}

// Args are the criu command-line options for t (nil for a nil t).
func (t *TLS) Args() []string {
	if t == nil {
		return nil
	}
	return []string{"--tls", "--tls-cacert", t.CA, "--tls-cert", t.Cert, "--tls-key", t.Key}
}

// configName is the CRIU configuration file a TLS dump writes into its work dir: runc
// passes no TLS options to CRIU, but CRIU (also when runc runs it as `criu swrk`) reads
// the file named by $CRIU_CONFIG_FILE, besides /etc/criu/runc.conf.
const configName = "criu-tls.conf"

// env writes t's CRIU configuration into work (0600) and returns the environment that
// makes CRIU under runc read it; nil (inherit) for a nil t.
func (t *TLS) env(work string) ([]string, error) {
	if t == nil {
		return nil, nil
	}
	for _, p := range []string{t.CA, t.Cert, t.Key} {
		if strings.ContainsAny(p, "\n\"") {
			return nil, fmt.Errorf("TLS file name %q cannot go into a CRIU configuration file", p)
		}
	}
	path := filepath.Join(work, configName)
	conf := fmt.Sprintf("tls\ntls-cacert %s\ntls-cert %s\ntls-key %s\n", t.CA, t.Cert, t.Key)
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return nil, fmt.Errorf("write CRIU's TLS configuration: %w", err)
	}
	return append(os.Environ(), "CRIU_CONFIG_FILE="+path), nil
}
