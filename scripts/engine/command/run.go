// Running one command of a remote:Command over SSH, with its output streamed
// to the engine while it runs. Part of pulumi-vllm's own
// pulumi-resource-command (see main.go for why it exists).
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"golang.org/x/crypto/ssh"
)

const (
	envPrevStdout = "PULUMI_COMMAND_STDOUT"
	envPrevStderr = "PULUMI_COMMAND_STDERR"
	// Longest line sent to the engine as one status message.
	maxLogLine = 4096
	// Time a cancelled command gets between SIGTERM and the connection closing.
	cancelGrace = 2 * time.Second
)

// lockedBuffer is a bytes.Buffer safe for the concurrent writes of the
// session's stdout and stderr copiers.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// lineSplitter cuts one output stream into lines (at \n, and at \r so that
// progress bars show as they move) and hands them to out.
type lineSplitter struct {
	partial []byte
	out     chan<- string
}

func (l *lineSplitter) Write(p []byte) (int, error) {
	for _, c := range p {
		if c == '\n' || c == '\r' {
			l.emit()
			continue
		}
		if len(l.partial) < maxLogLine {
			l.partial = append(l.partial, c)
		}
	}
	return len(p), nil
}

func (l *lineSplitter) emit() {
	if len(l.partial) > 0 {
		l.out <- string(l.partial)
		l.partial = l.partial[:0]
	}
}

// setenvHint is the advice logged when sshd refuses an environment variable
// (upstream's wording).
const setenvHint = `This only works if the SSH server is configured to accept these variables via AcceptEnv. ` +
	`Alternatively, if a Bash-like shell runs the command on the remote host, you could prefix the command ` +
	`itself with the variables in the form 'VAR=value command'`

// runCommand runs cmd on the host of p.conn and returns its stdout and stderr
// (each without one trailing newline). A failed command returns an error that
// names the failure, the command and its combined output, in upstream's
// format: "<failure>: running \"<cmd>\":\n<stdout and stderr>".
func runCommand(ctx context.Context, logs engineLog, urn resource.URN, p *commandProps, cmd string) (string, string, error) {
	status := func(msg string) { _ = logs.LogStatus(context.Background(), diag.Info, urn, msg) }

	client, err := dial(ctx, p.conn, status)
	if err != nil {
		return "", "", err
	}
	defer client.Close()

	session, err := client.NewSession()
	if err != nil {
		return "", "", fmt.Errorf("opening an SSH session on %s: %w", endpoint(p.conn), err)
	}
	defer session.Close()

	// Cancellation (Cancel RPC, customTimeouts) sends SIGTERM to the remote
	// command (sshd passes it on to the command's shell) and then closes the
	// connection, which ends the session.
	runDone := make(chan struct{})
	defer close(runDone)
	go func() {
		select {
		case <-ctx.Done():
			_ = session.Signal(ssh.SIGTERM)
			select {
			case <-time.After(cancelGrace):
			case <-runDone:
			}
			client.Close()
		case <-runDone:
		}
	}()

	keys := make([]string, 0, len(p.environment))
	for k := range p.environment {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := session.Setenv(k, p.environment[k]); err != nil {
			_ = logs.Log(context.Background(), diag.Error, urn, fmt.Sprintf("Unable to set '%s'. %s", k, setenvHint))
			return "", "", fmt.Errorf("could not set environment variable %q: %w", k, err)
		}
	}
	if p.addPrevOutputs {
		for _, e := range []struct{ key, val string }{{envPrevStdout, p.stdout}, {envPrevStderr, p.stderr}} {
			if e.val == "" {
				continue
			}
			if err := session.Setenv(e.key, e.val); err != nil {
				// Optional: warn and go on.
				_ = logs.Log(context.Background(), diag.Warning, urn, fmt.Sprintf("Unable to set '%s'. %s", e.key, setenvHint))
			}
		}
	}
	if p.stdin != nil && len(*p.stdin) > 0 {
		session.Stdin = strings.NewReader(*p.stdin)
	}

	var stdoutBuf, stderrBuf bytes.Buffer
	var combined lockedBuffer
	lines := make(chan string, 256)
	logged := make(chan struct{})
	go func() {
		defer close(logged)
		for line := range lines {
			status(line)
		}
	}()
	stdoutLines := &lineSplitter{out: lines}
	stderrLines := &lineSplitter{out: lines}
	stdoutWriters := []io.Writer{&stdoutBuf, &combined}
	if p.logging == "stdout" || p.logging == "stdoutAndStderr" {
		stdoutWriters = append(stdoutWriters, stdoutLines)
	}
	stderrWriters := []io.Writer{&stderrBuf, &combined}
	if p.logging == "stderr" || p.logging == "stdoutAndStderr" {
		stderrWriters = append(stderrWriters, stderrLines)
	}
	session.Stdout = io.MultiWriter(stdoutWriters...)
	session.Stderr = io.MultiWriter(stderrWriters...)

	err = session.Run(cmd)

	// Run returns after both output streams are copied.
	stdoutLines.emit()
	stderrLines.emit()
	close(lines)
	<-logged

	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return "", "", fmt.Errorf("%w: running %q:\n%s", err, cmd, validUTF8(combined.String()))
	}
	return validUTF8(strings.TrimSuffix(stdoutBuf.String(), "\n")),
		validUTF8(strings.TrimSuffix(stderrBuf.String(), "\n")), nil
}

// validUTF8 replaces invalid UTF-8 sequences: property values travel as
// protobuf strings.
func validUTF8(s string) string { return strings.ToValidUTF8(s, "\uFFFD") }
