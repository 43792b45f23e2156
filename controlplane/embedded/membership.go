package embedded

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.etcd.io/etcd/server/v3/embed"
)

// The embedded etcd is a single-member cluster. A member added by anyone else (even a
// dead one: etcd accepts adding a second voter to a one-member cluster) takes its
// quorum away for good, across restarts. Start therefore records the member it
// created (<data-dir>/etcd-members.json, 0600) and refuses an etcd whose member list
// holds any other member, with ErrForeignMember, before waiting for a quorum it
// would never get.

const membersFile = "etcd-members.json"

// ErrForeignMember is wrapped (with ErrStart) when the embedded etcd's data holds a
// member this coordinator did not create, or a member id other than the recorded one.
var ErrForeignMember = errors.New("embedded etcd: membership changed by someone else")

// membership is what Start records about the etcd it created.
type membership struct {
	Cluster string `json:"cluster_id"`
	Member  string `json:"member_id"`
}

// MembersPath is where Start records the embedded etcd's member of a data directory.
func MembersPath(dataDir string) string { return filepath.Join(dataDir, membersFile) }

func readMembership(path string) (*membership, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("etcd membership record %s: %w", path, err)
	}
	var m membership
	if err := json.Unmarshal(b, &m); err != nil || m.Member == "" {
		return nil, fmt.Errorf("etcd membership record %s is damaged (%v): if %s/etcd is this coordinator's own, delete the record and start again to record it anew",
			path, err, filepath.Dir(path))
	}
	return &m, nil
}

func writeMembership(path string, m membership) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("write etcd membership record: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write etcd membership record: %w", err)
	}
	return nil
}

// checkMembership says whether e's members are exactly the recorded one (rec; nil:
// none recorded yet, then e's own member is the only one allowed).
func checkMembership(e *embed.Etcd, rec *membership, dataDir string) error {
	own := e.Server.MemberID().String()
	etcdDir := filepath.Join(dataDir, "etcd")
	if rec != nil && rec.Member != own {
		return fmt.Errorf("%w: %s holds etcd member %s, but this coordinator created member %s (recorded in %s): the etcd data was replaced; "+
			"move %s away to start with an empty store, or delete %s if this data is really the coordinator's own",
			ErrForeignMember, etcdDir, own, rec.Member, MembersPath(dataDir), etcdDir, MembersPath(dataDir))
	}
	var foreign []string
	for _, m := range e.Server.Cluster().Members() {
		if m.ID.String() == own {
			continue
		}
		name := m.Name
		if name == "" {
			name = "never started"
		}
		foreign = append(foreign, fmt.Sprintf("%s (%s, peer URLs %s)", m.ID, name, strings.Join(m.PeerURLs, ",")))
	}
	if len(foreign) == 0 {
		return nil
	}
	return fmt.Errorf("%w: the embedded etcd in %s has member(s) this coordinator did not create: %s; "+
		"its own member is %s, and with another voter it can never reach a quorum. Someone added it (etcdctl member add? with TLS that needs the credentials in %s). "+
		"To recover with every snapshot record kept, start the coordinator once with --etcd-force-new-cluster (it removes every other member); "+
		"or move %s away to start with an empty store",
		ErrForeignMember, etcdDir, strings.Join(foreign, "; "), own, filepath.Join(dataDir, etcdTLSDir), etcdDir)
}
