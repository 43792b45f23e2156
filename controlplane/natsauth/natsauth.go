package natsauth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"

	"github.com/swarmckpt/swarmckpt/controlplane/natsbus"
	"github.com/swarmckpt/swarmckpt/coordinator/api"
	"github.com/swarmckpt/swarmckpt/coordinator/events"
	"github.com/swarmckpt/swarmckpt/protocol"
	"github.com/swarmckpt/swarmckpt/protocol/node"
)

// Role is what a NATS user may do.
type Role string

// The roles.
const (
	RoleCoordinator Role = "coordinator"
	RoleCLI         Role = "cli"
	RoleAgent       Role = "agent"
)

// ErrCredentials is wrapped by every error about credential files.
var ErrCredentials = errors.New("natsauth: NATS credentials")

// agentPrefix starts every agent's user name: "agent.<node>".
const agentPrefix = "agent."

// AgentUser is the NATS user name of node's agent.
func AgentUser(node string) string { return agentPrefix + node }

// replyTTL bounds how long after a request an agent may still answer it (a restore
// of a large set takes minutes).
const replyTTL = time.Hour

// Permissions are role's NATS permissions (nodeName: the agent's node; ignored for the
// other roles). nil means every subject (the coordinator). This is the one place
// that derives permissions from the subject table (protocol/node, api).
func Permissions(role Role, nodeName string) (*natsserver.Permissions, error) {
	switch role {
	case RoleCoordinator:
		return nil, nil
	case RoleCLI:
		return &natsserver.Permissions{
			Publish: &natsserver.SubjectPermission{Allow: []string{api.Subject(">")}},
			// Replies to its requests; the progress of operations; the coordinator's
			// event stream (swarmckpt events).
			Subscribe: &natsserver.SubjectPermission{Allow: []string{"_INBOX.>", api.ProgressSubject("*"), events.Subject}},
		}, nil
	case RoleAgent:
		if err := protocol.ValidToken(nodeName); err != nil {
			return nil, fmt.Errorf("natsauth: agent node name: %w", err)
		}
		sub := []string{node.NodeSubject(nodeName), node.PeerSubject(nodeName)}
		for _, op := range node.Ops {
			sub = append(sub, op.Subject(nodeName))
		}
		return &natsserver.Permissions{
			// Results to the coordinator, heartbeats, drain events, markers to other
			// nodes' containers; replies only to requests it received (Response).
			Publish:   &natsserver.SubjectPermission{Allow: []string{node.CoordinatorSubject(), node.HeartbeatSubject, node.DrainEventSubject, node.PeerSubject("*")}},
			Subscribe: &natsserver.SubjectPermission{Allow: sub},
			Response:  &natsserver.ResponsePermission{MaxMsgs: 1, Expires: replyTTL},
		}, nil
	}
	return nil, fmt.Errorf("natsauth: unknown role %q", role)
}

// Credentials are one NATS user and password.
type Credentials struct{ User, Password string }

// WriteFile writes c to path as "user:password" (mode 0600).
func WriteFile(path string, c Credentials) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(c.User+":"+c.Password+"\n"), 0o600); err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrCredentials, path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("%w: write %s: %w", ErrCredentials, path, err)
	}
	return nil
}

// ReadFile reads a "user:password" file (WriteFile's).
func ReadFile(path string) (Credentials, error) {
	u, p, err := natsbus.ReadUserFile(path)
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	return Credentials{User: u, Password: p}, nil
}

// Secrets are the embedded server's credentials, kept in one directory.
type Secrets struct {
	dir              string
	coordinator, cli string // passwords
	agentKey         []byte
}

// Dir is where Open keeps the secrets of a coordinator data directory.
func Dir(dataDir string) string { return filepath.Join(dataDir, "nats-users") }

// UserFile is the credentials file of role (coordinator or cli) in dir.
func UserFile(dir string, role Role) string { return filepath.Join(dir, string(role)+".user") }

// KeyFile is the agents' key file in dir.
func KeyFile(dir string) string { return filepath.Join(dir, "agent.key") }

// Open loads the secrets in dir, making any that is missing (dir 0700, files 0600).
func Open(dir string) (*Secrets, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCredentials, err)
	}
	s := &Secrets{dir: dir}
	for _, r := range []struct {
		role Role
		pw   *string
	}{{RoleCoordinator, &s.coordinator}, {RoleCLI, &s.cli}} {
		path := UserFile(dir, r.role)
		c, err := ReadFile(path)
		if errors.Is(err, os.ErrNotExist) {
			c = Credentials{User: string(r.role), Password: random(24)}
			err = WriteFile(path, c)
		}
		if err != nil {
			return nil, err
		}
		if c.User != string(r.role) {
			return nil, fmt.Errorf("%w: %s names user %q, want %q; delete it to make a new one", ErrCredentials, path, c.User, r.role)
		}
		*r.pw = c.Password
	}
	kp := KeyFile(dir)
	b, err := os.ReadFile(kp)
	if errors.Is(err, os.ErrNotExist) {
		k := random(32)
		err = os.WriteFile(kp, []byte(k+"\n"), 0o600)
		b = []byte(k)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: agent key %s: %w", ErrCredentials, kp, err)
	}
	s.agentKey = []byte(strings.TrimSpace(string(b)))
	if len(s.agentKey) < 32 {
		return nil, fmt.Errorf("%w: agent key %s is too short; delete it to make a new one (then give every agent its new credentials)", ErrCredentials, kp)
	}
	for _, f := range []string{UserFile(dir, RoleCoordinator), UserFile(dir, RoleCLI), kp} {
		if err := os.Chmod(f, 0o600); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrCredentials, err)
		}
	}
	return s, nil
}

// For returns role's credentials (node: the agent's node).
func (s *Secrets) For(role Role, node string) (Credentials, error) {
	switch role {
	case RoleCoordinator:
		return Credentials{User: string(role), Password: s.coordinator}, nil
	case RoleCLI:
		return Credentials{User: string(role), Password: s.cli}, nil
	case RoleAgent:
		if err := protocol.ValidToken(node); err != nil {
			return Credentials{}, fmt.Errorf("natsauth: agent node name: %w", err)
		}
		return Credentials{User: AgentUser(node), Password: agentPassword(s.agentKey, node)}, nil
	}
	return Credentials{}, fmt.Errorf("natsauth: unknown role %q", role)
}

// AgentCredentials reads the agent key in dir and returns node's agent credentials
// (what 'swarmckpt coordinator credentials' writes for a node on another host).
func AgentCredentials(dir, node string) (Credentials, error) {
	b, err := os.ReadFile(KeyFile(dir))
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: agent key: %w (start the coordinator once with this --data-dir to make it)", ErrCredentials, err)
	}
	if err := protocol.ValidToken(node); err != nil {
		return Credentials{}, fmt.Errorf("natsauth: agent node name: %w", err)
	}
	return Credentials{User: AgentUser(node), Password: agentPassword([]byte(strings.TrimSpace(string(b))), node)}, nil
}

// verify says which role and node user/password authenticate, if any.
func (s *Secrets) verify(user, password string) (Role, string, bool) {
	eq := func(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }
	switch {
	case user == string(RoleCoordinator):
		return RoleCoordinator, "", eq(password, s.coordinator)
	case user == string(RoleCLI):
		return RoleCLI, "", eq(password, s.cli)
	case strings.HasPrefix(user, agentPrefix):
		node := strings.TrimPrefix(user, agentPrefix)
		if protocol.ValidToken(node) != nil {
			return "", "", false
		}
		return RoleAgent, node, eq(password, agentPassword(s.agentKey, node))
	}
	return "", "", false
}

// Check implements natsserver.Authentication: it accepts the roles' users and
// registers each with its role's permissions.
func (s *Secrets) Check(c natsserver.ClientAuthentication) bool {
	o := c.GetOpts()
	if o == nil {
		return false
	}
	role, node, ok := s.verify(o.Username, o.Password)
	if !ok {
		return false
	}
	p, err := Permissions(role, node)
	if err != nil {
		return false
	}
	c.RegisterUser(&natsserver.User{Username: o.Username, Permissions: p})
	return true
}

var _ natsserver.Authentication = (*Secrets)(nil)

func agentPassword(key []byte, node string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("swarmckpt nats agent\x00" + node))
	return hex.EncodeToString(m.Sum(nil))
}

func random(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("natsauth: no randomness: %v", err))
	}
	return hex.EncodeToString(b)
}

// ServerConfig is the authorization block of a nats-server configuration file that
// gives an external NATS server the same users and permissions as the embedded one:
// the coordinator, the CLI and the agent of each of nodes (an external server cannot
// derive agents' users on demand, so every node is listed). Passwords are in clear:
// keep the file 0600.
func (s *Secrets) ServerConfig(nodes []string) (string, error) {
	var b strings.Builder
	b.WriteString("authorization {\n  users = [\n")
	add := func(role Role, node string) error {
		c, err := s.For(role, node)
		if err != nil {
			return err
		}
		p, err := Permissions(role, node)
		if err != nil {
			return err
		}
		fmt.Fprintf(&b, "    {user: %q, password: %q", c.User, c.Password)
		if p != nil {
			b.WriteString(", permissions: {")
			fmt.Fprintf(&b, "publish: {allow: %s}, subscribe: {allow: %s}", quoteList(p.Publish.Allow), quoteList(p.Subscribe.Allow))
			if p.Response != nil {
				fmt.Fprintf(&b, ", allow_responses: {max: %d, expires: %q}", p.Response.MaxMsgs, p.Response.Expires.String())
			}
			b.WriteString("}")
		}
		b.WriteString("}\n")
		return nil
	}
	if err := add(RoleCoordinator, ""); err != nil {
		return "", err
	}
	if err := add(RoleCLI, ""); err != nil {
		return "", err
	}
	for _, n := range nodes {
		if err := add(RoleAgent, n); err != nil {
			return "", err
		}
	}
	b.WriteString("  ]\n}\n")
	return b.String(), nil
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
