package embedded

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.etcd.io/etcd/server/v3/embed"

	"github.com/swarmckpt/swarmckpt/controlplane/natsauth"
)

// Default ports. They are not NATS's and etcd's well-known ports (4222, 2379, 2380) so
// that an embedded coordinator never collides with a real server on the same host.
const (
	DefaultNATSPort     = 14222
	DefaultEtcdPort     = 12379
	DefaultEtcdPeerPort = 12380
	loopback            = "127.0.0.1"
)

// ErrStart is wrapped by every error that prevents the servers from starting.
var ErrStart = errors.New("embedded: cannot start control-plane servers")

// Config says where the embedded servers listen and persist.
type Config struct {
	// DataDir holds etcd's data, the TLS files and the NATS credentials. Created with
	// mode 0700. Required.
	DataDir string
	// Host is the address both servers bind to. Default 127.0.0.1 (loopback only).
	Host string
	// NATSPort is the NATS client port; 0 picks a free port. Default DefaultNATSPort
	// when the whole Config comes from DefaultConfig.
	NATSPort int
	// EtcdPort and EtcdPeerPort are etcd's client and peer ports; 0 picks free ports.
	EtcdPort, EtcdPeerPort int
	// NoAuth turns NATS's TLS and per-role users and etcd's TLS with client
	// certificates off. Only for tests and trusted single-user hosts.
	NoAuth bool
	// ForceNewCluster starts etcd with etcd's --force-new-cluster: every member but
	// this coordinator's own is removed, the data kept. The recovery after
	// ErrForeignMember.
	ForceNewCluster bool
	// NoNATS runs etcd only (the caller uses an external NATS server): no NATS
	// server, users or certificate.
	NoNATS bool
	// TLS, when set, is the NATS server's TLS instead of the certificate Start issues
	// from its own CA (NATSCAPath).
	TLS *tls.Config
	// StartTimeout bounds how long Start waits for both servers. Default 30s.
	StartTimeout time.Duration
	// Log receives the servers' lifecycle events. Default slog.Default().
	Log *slog.Logger
}

// DefaultConfig returns the configuration `swarmckpt coordinator` uses with no flags.
func DefaultConfig(dataDir string) Config {
	return Config{DataDir: dataDir, Host: "127.0.0.1", NATSPort: DefaultNATSPort,
		EtcdPort: DefaultEtcdPort, EtcdPeerPort: DefaultEtcdPeerPort, StartTimeout: 30 * time.Second}
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: no data directory given (set --data-dir)", ErrStart)
	}
	for name, p := range map[string]int{"NATS port": c.NATSPort, "etcd port": c.EtcdPort, "etcd peer port": c.EtcdPeerPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("%w: %s %d is out of range 0-65535", ErrStart, name, p)
		}
	}
	return nil
}

// Servers are the running embedded NATS and etcd servers.
type Servers struct {
	nats    *natsserver.Server
	etcd    *embed.Etcd
	secrets *natsauth.Secrets // nil with NoAuth
	log     *slog.Logger
	tls     bool
	// etcdCreds: the etcd client credentials; nil when etcd runs without TLS (NoAuth).
	etcdCreds *EtcdCredentials
}

// Start starts NATS and etcd and waits until both accept clients or ctx ends.
func Start(ctx context.Context, cfg Config) (*Servers, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.StartTimeout <= 0 {
		cfg.StartTimeout = 30 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "embedded")
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: data directory %s: %w", ErrStart, cfg.DataDir, err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("%w: data directory %s: %w", ErrStart, cfg.DataDir, err)
	}
	s := &Servers{log: log, tls: cfg.TLS != nil}
	if !cfg.NoAuth && !cfg.NoNATS {
		sec, err := natsauth.Open(natsauth.Dir(cfg.DataDir))
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStart, err)
		}
		s.secrets = sec
		if cfg.TLS == nil {
			if cfg.TLS, err = natsTLS(cfg.DataDir, cfg.Host); err != nil {
				return nil, fmt.Errorf("%w: %w", ErrStart, err)
			}
			s.tls = true
		}
	}
	if !cfg.NoNATS {
		if err := s.startNATS(cfg); err != nil {
			return nil, err
		}
	}
	if err := s.startEtcd(ctx, cfg); err != nil {
		if s.nats != nil {
			s.nats.Shutdown()
		}
		return nil, err
	}
	log.Info("embedded control plane up", "nats", s.NATSURL(), "etcd", strings.Join(s.EtcdEndpoints(), ","), "data_dir", cfg.DataDir)
	return s, nil
}

func (s *Servers) startNATS(cfg Config) error {
	port, err := freePortIfZero(cfg.Host, cfg.NATSPort)
	if err != nil {
		return fmt.Errorf("%w: NATS port: %w", ErrStart, err)
	}
	opts := &natsserver.Options{
		ServerName: "swarmckpt-embedded",
		Host:       cfg.Host,
		Port:       port,
		NoSigs:     true,
		NoLog:      true,
		MaxPayload: 8 << 20,
	}
	if s.secrets != nil {
		opts.CustomClientAuthentication = s.secrets
	}
	if cfg.TLS != nil {
		opts.TLS = true
		opts.TLSConfig = cfg.TLS
		opts.TLSTimeout = 5
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return fmt.Errorf("%w: NATS: %w", ErrStart, err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(cfg.StartTimeout) {
		ns.Shutdown()
		return fmt.Errorf("%w: NATS did not accept connections on %s:%d within %s (is the port taken? pick another with --nats-port)",
			ErrStart, cfg.Host, port, cfg.StartTimeout)
	}
	s.nats = ns
	return nil
}

func (s *Servers) startEtcd(ctx context.Context, cfg Config) error {
	cport, err := freePortIfZero(cfg.Host, cfg.EtcdPort)
	if err != nil {
		return fmt.Errorf("%w: etcd port: %w", ErrStart, err)
	}
	// A single member talks to no peer: its peer port listens on loopback only.
	pport, err := freePortIfZero(loopback, cfg.EtcdPeerPort)
	if err != nil {
		return fmt.Errorf("%w: etcd peer port: %w", ErrStart, err)
	}
	ec := embed.NewConfig()
	ec.Name = "swarmckpt"
	ec.Dir = filepath.Join(cfg.DataDir, "etcd")
	ec.LogLevel = "error"
	ec.LogOutputs = []string{filepath.Join(cfg.DataDir, "etcd.log")}
	ec.ForceNewCluster = cfg.ForceNewCluster
	scheme := "http"
	if !cfg.NoAuth {
		t, err := ensureEtcdTLS(cfg.DataDir, cfg.Host)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrStart, err)
		}
		scheme = "https"
		ec.ClientTLSInfo.CertFile, ec.ClientTLSInfo.KeyFile = t.serverCert, t.serverKey
		ec.ClientTLSInfo.TrustedCAFile, ec.ClientTLSInfo.ClientCertAuth = t.ca, true
		ec.ClientTLSInfo.MinVersion = tls.VersionTLS13
		ec.PeerTLSInfo.CertFile, ec.PeerTLSInfo.KeyFile = t.serverCert, t.serverKey
		ec.PeerTLSInfo.TrustedCAFile, ec.PeerTLSInfo.ClientCertAuth = t.ca, true
		ec.PeerTLSInfo.MinVersion = tls.VersionTLS13
		creds := t.client
		s.etcdCreds = &creds
	}
	hostport := func(h string, p int) url.URL {
		return url.URL{Scheme: scheme, Host: net.JoinHostPort(h, strconv.Itoa(p))}
	}
	ec.ListenClientUrls = []url.URL{hostport(cfg.Host, cport)}
	ec.AdvertiseClientUrls = ec.ListenClientUrls
	ec.ListenPeerUrls = []url.URL{hostport(loopback, pport)}
	ec.AdvertisePeerUrls = ec.ListenPeerUrls
	ec.ListenMetricsUrls = nil
	ec.InitialCluster = ec.InitialClusterFromName(ec.Name)

	recPath := MembersPath(cfg.DataDir)
	_, statErr := os.Stat(filepath.Join(ec.Dir, "member"))
	fresh := errors.Is(statErr, os.ErrNotExist)
	rec, err := readMembership(recPath)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrStart, err)
	}
	if fresh && rec != nil {
		s.log.Warn("no etcd data: the membership record of earlier data is replaced", "record", recPath, "etcd_dir", ec.Dir)
		rec = nil
	}

	e, err := embed.StartEtcd(ec)
	if err != nil {
		return fmt.Errorf("%w: etcd on %s:%d (data %s): %w", ErrStart, cfg.Host, cport, ec.Dir, err)
	}
	fail := func(err error) error {
		// Stop the server first: Close alone waits for client servers that start
		// only once etcd is ready, forever when it never was.
		e.Server.HardStop()
		e.Close()
		return fmt.Errorf("%w: %w", ErrStart, err)
	}
	timer := time.NewTimer(cfg.StartTimeout)
	defer timer.Stop()
	// A foreign member takes the quorum away: etcd would never be ready. Its
	// membership is known from its data right after StartEtcd (and log entries
	// replayed meanwhile), so look while waiting. Not with ForceNewCluster, which
	// removes the others while starting.
	poll := time.NewTicker(100 * time.Millisecond)
	defer poll.Stop()
wait:
	for {
		select {
		case <-e.Server.ReadyNotify():
			break wait
		case <-poll.C:
			if cfg.ForceNewCluster {
				continue
			}
			if err := checkMembership(e, rec, cfg.DataDir); err != nil {
				return fail(err)
			}
		case err := <-e.Err():
			return fail(fmt.Errorf("etcd: %w", err))
		case <-timer.C:
			if err := checkMembership(e, rec, cfg.DataDir); err != nil {
				return fail(err)
			}
			return fail(fmt.Errorf("etcd not ready within %s (see %s)", cfg.StartTimeout, ec.LogOutputs[0]))
		case <-ctx.Done():
			return fail(ctx.Err())
		}
	}
	if err := checkMembership(e, rec, cfg.DataDir); err != nil {
		return fail(err)
	}
	now := membership{Cluster: e.Server.Cluster().ID().String(), Member: e.Server.MemberID().String()}
	if rec == nil || *rec != now {
		if err := writeMembership(recPath, now); err != nil {
			return fail(err)
		}
		s.log.Info("recorded the embedded etcd's member", "member", now.Member, "cluster", now.Cluster, "record", recPath)
	}
	s.etcd = e
	return nil
}

// NATSURL is the URL clients use to reach the embedded NATS server ("" with NoNATS).
func (s *Servers) NATSURL() string {
	if s.nats == nil {
		return ""
	}
	scheme := "nats"
	if s.tls {
		scheme = "tls"
	}
	return scheme + "://" + s.nats.Addr().String()
}

// NATSCredentials are role's NATS credentials (node: an agent's node); ok is false
// when NATS runs without users (NoAuth).
func (s *Servers) NATSCredentials(role natsauth.Role, node string) (c natsauth.Credentials, ok bool, err error) {
	if s.secrets == nil {
		return c, false, nil
	}
	c, err = s.secrets.For(role, node)
	return c, err == nil, err
}

// EtcdEndpoints are the client endpoints of the embedded etcd (https:// unless
// NoAuth). An unspecified bind address (0.0.0.0, ::) is given as loopback.
func (s *Servers) EtcdEndpoints() []string {
	scheme := "https://"
	if s.etcdCreds == nil {
		scheme = "http://"
	}
	out := make([]string, 0, len(s.etcd.Clients))
	for _, l := range s.etcd.Clients {
		addr := l.Addr().String()
		if a, ok := l.Addr().(*net.TCPAddr); ok && a.IP.IsUnspecified() {
			addr = net.JoinHostPort(loopback, strconv.Itoa(a.Port))
		}
		out = append(out, scheme+addr)
	}
	return out
}

// EtcdCredentials are the files a client of the embedded etcd presents; nil when
// etcd runs without TLS (NoAuth).
func (s *Servers) EtcdCredentials() *EtcdCredentials { return s.etcdCreds }

// Close stops both servers; safe to call once.
func (s *Servers) Close() error {
	s.etcd.Close()
	if s.nats != nil {
		s.nats.Shutdown()
		s.nats.WaitForShutdown()
	}
	s.log.Info("embedded control plane stopped")
	return nil
}

func freePortIfZero(host string, port int) (int, error) {
	if port != 0 {
		return port, nil
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
