package lab

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/swarmckpt/swarmckpt/controlplane/embedded"
	"github.com/swarmckpt/swarmckpt/controlplane/etcdstore"
	"github.com/swarmckpt/swarmckpt/controlplane/natsauth"
	"github.com/swarmckpt/swarmckpt/worker/pki"
)

// ExternalMembers is the size of the external etcd and NATS clusters.
const ExternalMembers = 3

// EtcdUser is the etcd user the lab's coordinators authenticate as (read-write on
// etcdstore.DefaultPrefix and nothing else).
const EtcdUser = "swarmckpt"

// External is the lab's external control plane ('lab up --external-control-plane'):
// a 3-member etcd cluster (Debian's etcd) serving TLS, clients and peers, with
// authentication on (a root user and EtcdUser), and a 3-server NATS cluster (Debian's
// nats-server) serving TLS to clients and routes, with natsauth's per-role users; all
// on 127.0.0.1, each process under the lab's supervisor. The coordinators reach them
// as an operator's would: --etcd https://...(3) --etcd-cacert --etcd-user
// --etcd-password-file, --nats URL,URL,URL --nats-user-file --nats-ca. Certificates
// come from the coordinator data directory's CA (embedded.NATSCAPath), which the CLI
// and agents run with --data-dir trust already.
type External struct {
	// Dir holds the members' data directories, the NATS configurations and the etcd
	// passwords (0700; files 0600).
	Dir  string           `json:"dir"`
	Etcd []ExternalMember `json:"etcd"`
	NATS []ExternalMember `json:"nats"`
}

// ExternalMember is one etcd member or NATS server on 127.0.0.1.
type ExternalMember struct {
	Name string `json:"name"` // NAME-etcd-1, NAME-nats-1
	Port int    `json:"port"` // client port
	// PeerPort is the etcd member's peer port or the NATS server's cluster (route) port.
	PeerPort int `json:"peer_port"`
	// MonitorPort is the NATS server's monitoring (HTTP) port; 0 for etcd.
	MonitorPort int `json:"monitor_port,omitempty"`
}

// externalBase is the first port of lab subnet k's external control plane: 15 ports
// from 26000+20k, outside the lab's other ranges (20000+10k.., 24000+10k..) and below
// the kernel's ephemeral ports.
func externalBase(k int) int { return 26000 + 20*k }

// planExternal lays out lab p's external control plane under dir.
func planExternal(p Plan, dir string) *External {
	base := externalBase(p.Subnet)
	x := &External{Dir: dir}
	for i := range ExternalMembers {
		x.Etcd = append(x.Etcd, ExternalMember{Name: fmt.Sprintf("%s-etcd-%d", p.Name, i+1), Port: base + i, PeerPort: base + 3 + i})
		x.NATS = append(x.NATS, ExternalMember{Name: fmt.Sprintf("%s-nats-%d", p.Name, i+1), Port: base + 6 + i,
			PeerPort: base + 9 + i, MonitorPort: base + 12 + i})
	}
	return x
}

// EtcdEndpoints are the etcd members' client URLs (TLS).
func (x External) EtcdEndpoints() []string {
	var eps []string
	for _, m := range x.Etcd {
		eps = append(eps, fmt.Sprintf("https://127.0.0.1:%d", m.Port))
	}
	return eps
}

// NATSURL lists every NATS server, comma-separated (what clients connect to).
func (x External) NATSURL() string {
	var us []string
	for _, m := range x.NATS {
		us = append(us, fmt.Sprintf("nats://127.0.0.1:%d", m.Port))
	}
	return strings.Join(us, ",")
}

// EtcdPasswordFile holds EtcdUser's password; RootPasswordFile etcd root's.
func (x External) EtcdPasswordFile() string {
	return filepath.Join(x.Dir, "etcd-"+EtcdUser+".password")
}

// RootPasswordFile holds the password of etcd's root user (administration only).
func (x External) RootPasswordFile() string { return filepath.Join(x.Dir, "etcd-root.password") }

// memberDir is etcd member m's data directory; natsConfigFile NATS server m's
// configuration. Each names the member, so ExternalPid finds its process.
func (x External) memberDir(m ExternalMember) string { return filepath.Join(x.Dir, m.Name) }
func (x External) natsConfigFile(m ExternalMember) string {
	return filepath.Join(x.Dir, m.Name+".conf")
}

// tlsFiles are the CA and the members' server certificate and key (in the data
// directory's CA directory, beside the CA).
func (x External) tlsFiles(dataDir string) (ca, cert, key string) {
	ca = embedded.NATSCAPath(dataDir)
	cert, key = pki.NodeFiles(filepath.Dir(ca), "external-server")
	return ca, cert, key
}

// etcdArgs are the command line of etcd member i (0-based): TLS on the client and
// peer ports (peers present certificates of the same CA), the other members as its
// initial cluster.
func (x External) etcdArgs(lab string, i int, ca, cert, key string) []string {
	m := x.Etcd[i]
	var initial []string
	for _, o := range x.Etcd {
		initial = append(initial, fmt.Sprintf("%s=https://127.0.0.1:%d", o.Name, o.PeerPort))
	}
	client := fmt.Sprintf("https://127.0.0.1:%d", m.Port)
	peer := fmt.Sprintf("https://127.0.0.1:%d", m.PeerPort)
	return []string{"--name", m.Name, "--data-dir", x.memberDir(m),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new", "--initial-cluster-token", lab + "-etcd",
		"--cert-file", cert, "--key-file", key,
		"--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca, "--peer-client-cert-auth",
		"--logger", "zap", "--log-level", "warn"}
}

// natsConfig is the nats-server configuration of server i (0-based): TLS for clients
// and routes (routes verify each other with ca), routes to the other servers, the
// monitoring port on loopback, and auth (natsauth's authorization block).
func (x External) natsConfig(lab string, i int, ca, cert, key, auth string) string {
	m := x.NATS[i]
	var routes []string
	for j, o := range x.NATS {
		if j != i {
			routes = append(routes, fmt.Sprintf("    %q", fmt.Sprintf("nats-route://127.0.0.1:%d", o.PeerPort)))
		}
	}
	return fmt.Sprintf(`# lab %s, external NATS server %d of %d (written by 'swarmckpt lab up').
server_name: %q
listen: "127.0.0.1:%d"
http: "127.0.0.1:%d"
tls {
  cert_file: %q
  key_file: %q
  timeout: 2
}
cluster {
  name: %q
  listen: "127.0.0.1:%d"
  routes: [
%s
  ]
  tls {
    cert_file: %q
    key_file: %q
    ca_file: %q
    timeout: 2
  }
}
%s`, lab, i+1, len(x.NATS), m.Name, m.Port, m.MonitorPort, cert, key, lab+"-nats", m.PeerPort, strings.Join(routes, "\n"), cert, key, ca, auth)
}

// ports are every port the external control plane listens on.
func (x External) ports() []int {
	var ps []int
	for _, m := range x.Etcd {
		ps = append(ps, m.Port, m.PeerPort)
	}
	for _, m := range x.NATS {
		ps = append(ps, m.Port, m.PeerPort, m.MonitorPort)
	}
	return ps
}

// startExternal starts lab p's external etcd and NATS clusters under supervisors,
// waits until both have formed, and turns etcd's authentication on (root and
// EtcdUser, their passwords in files under x.Dir).
func startExternal(ctx context.Context, p Plan) error {
	d := p.Daemons
	x := d.External
	etcdBin, err := exec.LookPath("etcd")
	if err != nil {
		return errors.New("etcd is not installed (Debian's etcd-server): run 'make setup' or 'apt-get install etcd-server'")
	}
	natsBin, err := exec.LookPath("nats-server")
	if err != nil {
		return errors.New("nats-server is not installed: run 'make setup' or 'apt-get install nats-server'")
	}
	for _, port := range x.ports() {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			return fmt.Errorf("external control plane: port %d on 127.0.0.1 is taken (%v); the lab on subnet %d needs ports %d-%d: stop what uses it or remove the lab and bring it up again (it may pick another subnet)",
				port, err, p.Subnet, externalBase(p.Subnet), externalBase(p.Subnet)+14)
		}
		l.Close()
	}
	if err := os.MkdirAll(x.Dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", x.Dir, err)
	}
	ca, cert, key := x.tlsFiles(d.Dir)
	caKey, _, err := pki.OpenCA(filepath.Dir(ca), "swarmckpt lab control-plane CA")
	if err != nil {
		return fmt.Errorf("lab control-plane CA in %s: %w", filepath.Dir(ca), err)
	}
	if _, err := os.Stat(cert); errors.Is(err, os.ErrNotExist) {
		n, err := caKey.Issue("external-server", []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
		if err == nil {
			_, _, err = n.Write(filepath.Dir(ca), "external-server")
		}
		if err != nil {
			return fmt.Errorf("certificate of the external etcd and NATS: %w", err)
		}
	}
	sec, err := natsauth.Open(natsauth.Dir(d.Dir))
	if err != nil {
		return err
	}
	var nodes []string
	for _, n := range p.Nodes {
		nodes = append(nodes, n.Name)
	}
	auth, err := sec.ServerConfig(nodes)
	if err != nil {
		return err
	}
	for i, m := range x.NATS {
		if err := os.WriteFile(x.natsConfigFile(m), []byte(x.natsConfig(p.Name, i, ca, cert, key, auth)), 0o600); err != nil {
			return fmt.Errorf("write NATS configuration: %w", err)
		}
		if err := spawnProgram(d, m.Name, natsBin, "-c", x.natsConfigFile(m)); err != nil {
			return err
		}
	}
	for i, m := range x.Etcd {
		if err := spawnProgram(d, m.Name, etcdBin, x.etcdArgs(p.Name, i, ca, cert, key)...); err != nil {
			return err
		}
	}
	for _, m := range append(slices.Clone(x.NATS), x.Etcd...) {
		if err := waitListening(ctx, m.Name, filepath.Join(d.Dir, m.Name+".log"), fmt.Sprintf("127.0.0.1:%d", m.Port)); err != nil {
			return err
		}
	}
	if err := x.waitRoutes(ctx, d.Dir); err != nil {
		return err
	}
	return x.enableEtcdAuth(ctx, ca)
}

// waitRoutes waits until every NATS server has a route to each other one.
func (x External) waitRoutes(ctx context.Context, dataDir string) error {
	deadline := time.Now().Add(60 * time.Second)
	for _, m := range x.NATS {
		for {
			var rz struct {
				NumRoutes int `json:"num_routes"`
			}
			err := getJSON(ctx, fmt.Sprintf("http://127.0.0.1:%d/routez", m.MonitorPort), &rz)
			if err == nil && rz.NumRoutes >= len(x.NATS)-1 {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("NATS server %s has %d of %d routes after 60s (err %v); log %s:\n%s", m.Name, rz.NumRoutes, len(x.NATS)-1, err,
					filepath.Join(dataDir, m.Name+".log"), tail(filepath.Join(dataDir, m.Name+".log"), 8))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// getJSON GETs url (a monitoring endpoint on loopback) into v.
func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// NATSConnections lists the client connection names of NATS server m (its /connz
// monitoring endpoint): which server a coordinator or agent is connected to.
func (x External) NATSConnections(ctx context.Context, m ExternalMember) ([]string, error) {
	var cz struct {
		Connections []struct {
			Name string `json:"name"`
		} `json:"connections"`
	}
	if err := getJSON(ctx, fmt.Sprintf("http://127.0.0.1:%d/connz?limit=1024", m.MonitorPort), &cz); err != nil {
		return nil, fmt.Errorf("NATS server %s: %w", m.Name, err)
	}
	var names []string
	for _, c := range cz.Connections {
		names = append(names, c.Name)
	}
	return names, nil
}

// etcdClient connects to the cluster with the CA (and user, if not empty).
func (x External) etcdClient(ca, user, password string) (*clientv3.Client, error) {
	b, err := os.ReadFile(ca)
	if err != nil {
		return nil, fmt.Errorf("lab CA: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("lab CA %s holds no certificate", ca)
	}
	return clientv3.New(clientv3.Config{Endpoints: x.EtcdEndpoints(), DialTimeout: 2 * time.Second,
		TLS: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, Username: user, Password: password, Logger: zap.NewNop()})
}

// enableEtcdAuth waits until the etcd cluster answers, then adds root and EtcdUser
// (a role with read-write on etcdstore.DefaultPrefix only), writes their passwords
// and turns authentication on.
func (x External) enableEtcdAuth(ctx context.Context, ca string) error {
	cli, err := x.etcdClient(ca, "", "")
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(60 * time.Second)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Put(cctx, etcdstore.DefaultPrefix+"/lab-ready", time.Now().UTC().Format(time.RFC3339))
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the external etcd cluster does not accept writes after 60s: %w (logs %s)", err, filepath.Join(filepath.Dir(x.Dir), "*etcd-*.log"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	rootPw, userPw := randomHex(16), randomHex(16)
	for f, pw := range map[string]string{x.RootPasswordFile(): rootPw, x.EtcdPasswordFile(): userPw} {
		if err := os.WriteFile(f, []byte(pw+"\n"), 0o600); err != nil {
			return fmt.Errorf("write etcd password: %w", err)
		}
	}
	actx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	steps := []struct {
		what string
		do   func() error
	}{
		{"add user root", func() error { _, err := cli.UserAdd(actx, "root", rootPw); return err }},
		{"grant root the root role", func() error { _, err := cli.UserGrantRole(actx, "root", "root"); return err }},
		{"add role " + EtcdUser, func() error { _, err := cli.RoleAdd(actx, EtcdUser); return err }},
		{"grant " + EtcdUser + " read-write on " + etcdstore.DefaultPrefix, func() error {
			_, err := cli.RoleGrantPermission(actx, EtcdUser, etcdstore.DefaultPrefix, clientv3.GetPrefixRangeEnd(etcdstore.DefaultPrefix),
				clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		}},
		{"add user " + EtcdUser, func() error { _, err := cli.UserAdd(actx, EtcdUser, userPw); return err }},
		{"grant " + EtcdUser + " its role", func() error { _, err := cli.UserGrantRole(actx, EtcdUser, EtcdUser); return err }},
		{"enable authentication", func() error { _, err := cli.AuthEnable(actx); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			return fmt.Errorf("external etcd: %s: %w", s.what, err)
		}
	}
	return nil
}

// EtcdLeader is the name of the external etcd member that leads (maintenance Status
// of each member, as root).
func (p Plan) EtcdLeader(ctx context.Context) (string, error) {
	if p.Daemons == nil || p.Daemons.External == nil {
		return "", errors.New("lab has no external control plane (lab up --external-control-plane)")
	}
	x := p.Daemons.External
	pw, err := os.ReadFile(x.RootPasswordFile())
	if err != nil {
		return "", fmt.Errorf("etcd root password: %w", err)
	}
	ca, _, _ := x.tlsFiles(p.Daemons.Dir)
	cli, err := x.etcdClient(ca, "root", strings.TrimSpace(string(pw)))
	if err != nil {
		return "", err
	}
	defer cli.Close()
	var errs []error
	for i, ep := range x.EtcdEndpoints() {
		sctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := cli.Status(sctx, ep)
		cancel()
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", x.Etcd[i].Name, err))
			continue
		}
		if st.Leader != 0 && st.Header.MemberId == st.Leader {
			return x.Etcd[i].Name, nil
		}
	}
	return "", fmt.Errorf("no etcd member says it leads: %w", errors.Join(errs...))
}

// ExternalPid is the PID of external member name's etcd or nats-server process (not
// its supervisor); 0 if none runs. Found by command line: its data directory or
// configuration file.
func (p Plan) ExternalPid(name string) int {
	if p.Daemons == nil || p.Daemons.External == nil {
		return 0
	}
	x := p.Daemons.External
	marks := []string{x.memberDir(ExternalMember{Name: name}), x.natsConfigFile(ExternalMember{Name: name})}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		if len(args) < 2 || args[0] == p.Daemons.Binary {
			continue
		}
		if slices.ContainsFunc(args[1:], func(a string) bool { return slices.Contains(marks, a) }) {
			pid, _ := strconv.Atoi(e.Name())
			return pid
		}
	}
	return 0
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(fmt.Sprintf("lab: no randomness: %v", err))
	}
	return hex.EncodeToString(b)
}
