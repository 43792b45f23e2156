package natsbus

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/swarmckpt/swarmckpt/controlplane/bus"
)

// Config says how to reach NATS and with which credentials.
type Config struct {
	// URL of the NATS server(s), comma-separated. Required, e.g. nats://127.0.0.1:14222.
	URL string
	// Token authenticates with a token; TokenFile reads it from a file (first line).
	Token, TokenFile string
	// User and Password authenticate with a user name and password.
	User, Password string
	// UserFile reads User and Password from a file holding "user:password" on its
	// first line (the embedded coordinator's per-role files, ReadUserFile).
	UserFile string
	// CAFile verifies the server's certificate; CertFile and KeyFile present a client
	// certificate. Any of them turns TLS on.
	CAFile, CertFile, KeyFile string
	// TLS is an explicit TLS configuration (overrides the files above).
	TLS *tls.Config
	// Name identifies this connection on the server (shown by nats-server monitoring).
	Name string
	// ConnectTimeout bounds the initial connection. Default 5s.
	ConnectTimeout time.Duration
	// Log receives connection events. Default slog.Default().
	Log *slog.Logger
}

// Validate reports what is wrong with c.
func (c Config) Validate() error {
	if c.URL == "" {
		return errors.New("natsbus: no NATS URL (set --nats, e.g. nats://127.0.0.1:14222)")
	}
	if c.Token != "" && c.TokenFile != "" {
		return errors.New("natsbus: give a token or a token file, not both")
	}
	if (c.Token != "" || c.TokenFile != "") && (c.User != "" || c.UserFile != "") {
		return errors.New("natsbus: give a token or a user and password, not both")
	}
	if c.User != "" && c.UserFile != "" {
		return errors.New("natsbus: give a user (--nats-user) or a user file (--nats-user-file), not both")
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return errors.New("natsbus: a client certificate needs both --nats-cert and --nats-key")
	}
	return nil
}

// Transport is a bus.Transport over one NATS connection.
type Transport struct {
	nc  *nats.Conn
	log *slog.Logger
}

var _ bus.Transport = (*Transport)(nil)

// Connect opens a NATS connection. It retries nothing: an unreachable server or bad
// credentials fail at once with an error saying which.
func Connect(ctx context.Context, c Config) (*Transport, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	log := c.Log
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "natsbus")
	timeout := c.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < timeout {
		timeout = time.Until(dl)
	}
	opts := []nats.Option{
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("NATS reconnected", "url", nc.ConnectedUrl()) }),
		// The server's asynchronous errors: a permission violation (a subject this
		// role may not use) says which subject.
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Error("NATS error", "subject", sub.Subject, "err", err)
				return
			}
			log.Error("NATS error", "err", err)
		}),
	}
	if c.Name != "" {
		opts = append(opts, nats.Name(c.Name))
	}
	token := c.Token
	if c.TokenFile != "" {
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return nil, fmt.Errorf("natsbus: read token file: %w (give the file that holds the external server's token)", err)
		}
		token = strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	}
	if token != "" {
		opts = append(opts, nats.Token(token))
	}
	user, password := c.User, c.Password
	if c.UserFile != "" {
		var err error
		if user, password, err = ReadUserFile(c.UserFile); err != nil {
			return nil, err
		}
	}
	if user != "" {
		opts = append(opts, nats.UserInfo(user, password))
	}
	switch {
	case c.TLS != nil:
		opts = append(opts, nats.Secure(c.TLS))
	default:
		if c.CAFile != "" {
			opts = append(opts, nats.RootCAs(c.CAFile))
		}
		if c.CertFile != "" {
			opts = append(opts, nats.ClientCert(c.CertFile, c.KeyFile))
		}
	}
	nc, err := nats.Connect(c.URL, opts...)
	if err != nil {
		hint := "check that the coordinator (or your NATS server) runs and the URL is right"
		if errors.Is(err, nats.ErrAuthorization) || strings.Contains(strings.ToLower(err.Error()), "authorization") {
			hint = "check the credentials: the embedded coordinator keeps its roles' users in <data-dir>/nats-users; an agent's is made with 'swarmckpt coordinator credentials --node NAME'"
		}
		if strings.Contains(strings.ToLower(err.Error()), "certificate") || strings.Contains(strings.ToLower(err.Error()), "tls") {
			hint = "check TLS: the embedded coordinator's NATS serves TLS only, verified with its CA <data-dir>/etcd-tls/ca.pem (--nats-ca)"
		}
		return nil, fmt.Errorf("natsbus: connect to %s: %w (%s)", c.URL, err, hint)
	}
	return &Transport{nc: nc, log: log}, nil
}

// ReadUserFile reads a "user:password" file (first line).
func ReadUserFile(path string) (user, password string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", "", fmt.Errorf("natsbus: NATS user file: %w (the embedded coordinator writes its roles' files in <data-dir>/nats-users; 'swarmckpt coordinator credentials --node NAME' makes an agent's)", err)
	}
	line := strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0])
	u, p, ok := strings.Cut(line, ":")
	if !ok || u == "" || p == "" {
		return "", "", fmt.Errorf("natsbus: NATS user file %s does not hold \"user:password\" on its first line", path)
	}
	return u, p, nil
}

// Conn exposes the underlying connection (for diagnostics and tests).
func (t *Transport) Conn() *nats.Conn { return t.nc }

func mapErr(subject string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w %q", bus.ErrNoResponders, subject)
	case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %q", bus.ErrTimeout, subject)
	case errors.Is(err, nats.ErrConnectionClosed):
		return fmt.Errorf("%w: %q", bus.ErrClosed, subject)
	case errors.Is(err, nats.ErrBadSubject):
		return fmt.Errorf("%w: %q", bus.ErrBadSubject, subject)
	}
	return fmt.Errorf("natsbus: %q: %w", subject, err)
}

// Publish implements bus.Transport.
func (t *Transport) Publish(ctx context.Context, subject string, data []byte) error {
	if err := bus.ValidSubject(subject, false); err != nil {
		return err
	}
	if t.nc.IsClosed() {
		return bus.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	return mapErr(subject, t.nc.Publish(subject, data))
}

// Subscribe implements bus.Transport.
func (t *Transport) Subscribe(subject string, h bus.Handler) (bus.Subscription, error) {
	if err := bus.ValidSubject(subject, true); err != nil {
		return nil, err
	}
	if t.nc.IsClosed() {
		return nil, bus.ErrClosed
	}
	s, err := t.nc.Subscribe(subject, func(m *nats.Msg) {
		var reply func([]byte) error
		if m.Reply != "" {
			reply = m.Respond
		}
		h(bus.NewMsg(m.Subject, m.Data, reply))
	})
	if err != nil {
		return nil, mapErr(subject, err)
	}
	if err := s.SetPendingLimits(-1, 256<<20); err != nil {
		return nil, mapErr(subject, err)
	}
	if err := t.nc.FlushTimeout(5 * time.Second); err != nil {
		_ = s.Unsubscribe()
		return nil, mapErr(subject, err)
	}
	return s, nil
}

// Request implements bus.Transport.
func (t *Transport) Request(ctx context.Context, subject string, data []byte) ([]byte, error) {
	if err := bus.ValidSubject(subject, false); err != nil {
		return nil, err
	}
	if t.nc.IsClosed() {
		return nil, bus.ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
	}
	m, err := t.nc.RequestWithContext(ctx, subject, data)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return nil, err
		}
		return nil, mapErr(subject, err)
	}
	return m.Data, nil
}

// Close implements bus.Transport. It drains nothing: pending handlers are dropped.
func (t *Transport) Close() error {
	t.nc.Close()
	return nil
}
