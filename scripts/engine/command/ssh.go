// SSH connections of remote:Command: client configuration, dialing with
// retries (directly or through a proxy host) and keepalives. Part of
// pulumi-vllm's own pulumi-resource-command (see main.go for why it exists).
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/retry"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

const sshAgentSocketEnv = "SSH_AUTH_SOCK"

// Keepalives on an open connection: a connection that does not answer
// keepaliveMaxMissed requests in a row is closed, so that a command whose
// host went away fails instead of waiting forever.
var (
	keepaliveInterval  = 30 * time.Second
	keepaliveMaxMissed = 4
)

// clientConfig builds the ssh.ClientConfig of a connection. Authentication
// methods are offered in the order private key, password (also as
// keyboard-interactive), agent (agentSocketPath, else $SSH_AUTH_SOCK). The
// host key is checked only when hostKey is set (an authorized_keys line such
// as "ssh-ed25519 AAAA..."); otherwise any host key is accepted.
func clientConfig(c *connection) (*ssh.ClientConfig, func(), error) {
	cfg := &ssh.ClientConfig{
		User:            c.user,
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), //nolint:gosec // upstream behaviour without hostKey
		Timeout:         time.Duration(c.perDialTimeout) * time.Second,
	}
	cleanup := func() {}
	if c.privateKey != nil {
		var signer ssh.Signer
		var err error
		if c.privateKeyPassword != nil {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*c.privateKey), []byte(*c.privateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*c.privateKey))
		}
		if err != nil {
			return nil, nil, fmt.Errorf("parsing the private key: %w", err)
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeys(signer))
	}
	if c.password != nil {
		pw := *c.password
		cfg.Auth = append(cfg.Auth, ssh.Password(pw),
			ssh.KeyboardInteractive(func(_, _ string, questions []string, _ []bool) ([]string, error) {
				answers := make([]string, len(questions))
				for i := range answers {
					answers[i] = pw
				}
				return answers, nil
			}))
	}
	sock := os.Getenv(sshAgentSocketEnv)
	if c.agentSocketPath != nil {
		sock = *c.agentSocketPath
	}
	if sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, nil, fmt.Errorf("connecting to the SSH agent at %s: %w", sock, err)
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		cleanup = func() { _ = conn.Close() }
	}
	if c.hostKey != nil {
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*c.hostKey))
		if err != nil {
			cleanup()
			return nil, nil, fmt.Errorf("parsing the host key %q: %w", *c.hostKey, err)
		}
		cfg.HostKeyCallback = ssh.FixedHostKey(key)
		// Ask the server for a key of that type, or it may offer another of its keys.
		cfg.HostKeyAlgorithms = hostKeyAlgorithms(key.Type())
	}
	return cfg, cleanup, nil
}

func hostKeyAlgorithms(keyType string) []string {
	if keyType == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{keyType}
}

func endpoint(c *connection) string { return net.JoinHostPort(c.host, strconv.Itoa(c.port)) }

// handshake runs the SSH handshake on conn within the per-dial timeout
// (x/crypto/ssh bounds only the TCP connect by itself).
func handshake(conn net.Conn, addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	var timer *time.Timer
	if cfg.Timeout > 0 {
		timer = time.AfterFunc(cfg.Timeout, func() { _ = conn.Close() })
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, addr, cfg)
	if timer != nil && !timer.Stop() {
		// The timer fired: the connection was closed under the handshake.
		if err == nil {
			_ = cc.Close()
		}
		_ = conn.Close()
		return nil, fmt.Errorf("ssh: handshake with %s timed out after %s", addr, cfg.Timeout)
	}
	if err != nil {
		_ = conn.Close()
		return nil, err
	}
	return ssh.NewClient(cc, chans, reqs), nil
}

// dialDirect opens a TCP connection to addr and runs the SSH handshake.
func dialDirect(addr string, cfg *ssh.ClientConfig) (*ssh.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, cfg.Timeout)
	if err != nil {
		return nil, err
	}
	return handshake(conn, addr, cfg)
}

// withRetry calls f until it succeeds, the dial error limit is reached (-1:
// no limit) or ctx ends, waiting between attempts with the backoff of the
// Pulumi SDK's retry package (100 ms, x1.5, at most 5 s). Failed attempts are
// reported as status messages ("Dial 1/10 failed: retrying"), as upstream does.
func withRetry[T any](ctx context.Context, what string, limit int, status func(string), f func() (T, error)) (T, error) {
	var result T
	var lastErr error
	ok, _, err := retry.Until(ctx, retry.Acceptor{
		Accept: func(try int, _ time.Duration) (bool, any, error) {
			r, err := f()
			if err == nil {
				result = r
				return true, nil, nil
			}
			lastErr = err
			dials := try + 1
			if limit >= 0 && dials > limit {
				return true, nil, fmt.Errorf("%s: after %d failed attempts: %w", what, dials, err)
			}
			max := "inf"
			if limit >= 0 {
				max = strconv.Itoa(limit)
			}
			status(fmt.Sprintf("%s %d/%s failed: retrying (%v)", what, dials, max, err))
			return false, nil, nil
		},
	})
	if err != nil {
		return result, err
	}
	if !ok {
		if lastErr != nil {
			return result, fmt.Errorf("%s: %w (last error: %v)", what, ctx.Err(), lastErr)
		}
		return result, fmt.Errorf("%s: %w", what, ctx.Err())
	}
	return result, nil
}

// sshClient is an open connection to the target host (and to its proxy).
type sshClient struct {
	*ssh.Client
	closers []func()
}

func (c *sshClient) Close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
}

// dial connects to the target of c, through c.proxy when set, with retries.
func dial(ctx context.Context, c *connection, status func(string)) (*sshClient, error) {
	cfg, cleanup, err := clientConfig(c)
	if err != nil {
		return nil, err
	}
	out := &sshClient{closers: []func(){cleanup}}
	addr := endpoint(c)
	if c.proxy == nil {
		client, err := withRetry(ctx, "Dial", c.dialErrorLimit, status, func() (*ssh.Client, error) {
			return dialDirect(addr, cfg)
		})
		if err != nil {
			out.Close()
			return nil, fmt.Errorf("connecting to %s as %s: %w", addr, c.user, err)
		}
		out.Client = client
		out.closers = append(out.closers, func() { _ = client.Close() })
		startKeepalive(client)
		return out, nil
	}

	pcfg, pcleanup, err := clientConfig(c.proxy)
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("proxy: %w", err)
	}
	out.closers = append(out.closers, pcleanup)
	paddr := endpoint(c.proxy)
	proxy, err := withRetry(ctx, "Dial proxy", c.proxy.dialErrorLimit, status, func() (*ssh.Client, error) {
		return dialDirect(paddr, pcfg)
	})
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("proxy: connecting to %s as %s: %w", paddr, c.proxy.user, err)
	}
	out.closers = append(out.closers, func() { _ = proxy.Close() })
	startKeepalive(proxy)
	client, err := withRetry(ctx, "Dial from proxy", c.dialErrorLimit, status, func() (*ssh.Client, error) {
		conn, err := proxy.Dial("tcp", addr)
		if err != nil {
			return nil, err
		}
		return handshake(conn, addr, cfg)
	})
	if err != nil {
		out.Close()
		return nil, fmt.Errorf("proxy: connecting to %s as %s through %s: %w", addr, c.user, paddr, err)
	}
	out.Client = client
	out.closers = append(out.closers, func() { _ = client.Close() })
	startKeepalive(client)
	return out, nil
}

// startKeepalive sends keepalive requests on client until it is closed, and
// closes it when keepaliveMaxMissed requests in a row get no answer.
func startKeepalive(client *ssh.Client) {
	go func() {
		missed := 0
		t := time.NewTicker(keepaliveInterval)
		defer t.Stop()
		for range t.C {
			answered := make(chan error, 1)
			go func() {
				_, _, err := client.SendRequest("keepalive@openssh.com", true, nil)
				answered <- err
			}()
			select {
			case err := <-answered:
				if err != nil {
					// The connection is closed (by us or by the peer).
					_ = client.Close()
					return
				}
				missed = 0
			case <-time.After(keepaliveInterval):
				missed++
				if missed >= keepaliveMaxMissed {
					_ = client.Close()
					return
				}
			}
		}
	}()
}
