// Tests of pulumi-vllm's own pulumi-resource-command: properties (defaults,
// diff, secrets) and runs against an in-process SSH server that executes
// commands with /bin/sh.
package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/pulumi/pulumi/sdk/v3/go/common/diag"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"golang.org/x/crypto/ssh"
)

func str(s string) resource.PropertyValue { return resource.NewStringProperty(s) }

func TestCheckAppliesConnectionDefaultsAndKeepsSecrets(t *testing.T) {
	news := resource.PropertyMap{
		"connection": resource.MakeSecret(resource.NewObjectProperty(resource.PropertyMap{
			"host":       str("example"),
			"privateKey": resource.MakeSecret(str("KEY")),
			"port":       resource.NewNumberProperty(2222),
			"proxy":      resource.NewObjectProperty(resource.PropertyMap{"host": str("jump")}),
		})),
		"create": str("true"),
	}
	out, failures := checkInputs(news)
	if len(failures) != 0 {
		t.Fatalf("failures: %v", failures)
	}
	c := out["connection"]
	if !c.IsSecret() {
		t.Fatalf("connection lost its secret wrapper: %v", c)
	}
	m := c.SecretValue().Element.ObjectValue()
	if m["user"].StringValue() != "root" || m["port"].NumberValue() != 2222 ||
		m["dialErrorLimit"].NumberValue() != 10 || m["perDialTimeout"].NumberValue() != 15 {
		t.Fatalf("defaults not applied: %v", m)
	}
	if !m["privateKey"].IsSecret() {
		t.Fatalf("nested secret lost")
	}
	p := m["proxy"].ObjectValue()
	if p["user"].StringValue() != "root" || p["port"].NumberValue() != 22 {
		t.Fatalf("proxy defaults not applied: %v", p)
	}
	if _, has := out["logging"]; has {
		t.Fatalf("logging must stay unset (the schema has no default)")
	}
}

func TestCheckFailures(t *testing.T) {
	_, failures := checkInputs(resource.PropertyMap{"create": str("x")})
	if len(failures) != 1 || failures[0].property != "connection" {
		t.Fatalf("want a connection failure, got %v", failures)
	}
	_, failures = checkInputs(resource.PropertyMap{
		"connection": resource.NewObjectProperty(resource.PropertyMap{"port": resource.NewNumberProperty(22)}),
		"logging":    str("loud"),
	})
	if len(failures) != 2 {
		t.Fatalf("want host and logging failures, got %v", failures)
	}
}

func TestDiff(t *testing.T) {
	conn := resource.NewObjectProperty(resource.PropertyMap{"host": str("h")})
	base := resource.PropertyMap{
		"connection": resource.MakeSecret(conn),
		"create":     str("echo a"),
		"stdin":      resource.MakeSecret(str("s")),
		"triggers":   resource.NewArrayProperty([]resource.PropertyValue{str("t1")}),
		"stdout":     str("a"),
		"stderr":     str(""),
	}
	newInputs := func(mut func(resource.PropertyMap)) resource.PropertyMap {
		m := resource.PropertyMap{}
		for _, k := range inputKeys {
			if v, ok := base[k]; ok {
				m[k] = v
			}
		}
		// The engine may send the connection without the secret wrapper.
		m["connection"] = conn
		mut(m)
		return m
	}
	if d := diffInputs(base, newInputs(func(resource.PropertyMap) {})); len(d) != 0 {
		t.Fatalf("no change expected, got %v", d)
	}
	d := diffInputs(base, newInputs(func(m resource.PropertyMap) { m["create"] = str("echo b") }))
	if len(d) != 1 || d[0].key != "create" || d[0].kind != "update" || d[0].replace {
		t.Fatalf("create change: %v", d)
	}
	d = diffInputs(base, newInputs(func(m resource.PropertyMap) {
		m["triggers"] = resource.NewArrayProperty([]resource.PropertyValue{str("t2")})
	}))
	if len(d) != 1 || d[0].key != "triggers" || !d[0].replace {
		t.Fatalf("triggers change: %v", d)
	}
	d = diffInputs(base, newInputs(func(m resource.PropertyMap) {
		m["update"] = resource.MakeComputed(str(""))
		delete(m, "stdin")
	}))
	if len(d) != 2 || d[0].key != "stdin" || d[0].kind != "delete" || d[1].key != "update" || d[1].kind != "add" {
		t.Fatalf("add/delete: %v", d)
	}
}

func TestOutputsKeepSecretsAndHideConnection(t *testing.T) {
	in := resource.PropertyMap{
		"connection": resource.NewObjectProperty(resource.PropertyMap{"host": str("h")}),
		"stdin":      resource.MakeSecret(str("s")),
		"create":     str("c"),
	}
	out := outputsFrom(in, str("o"), str("e"))
	if !out["connection"].IsSecret() || !out["stdin"].IsSecret() || out["create"].IsSecret() || out["stdout"].IsSecret() {
		t.Fatalf("secretness: %v", out)
	}
}

// ---- runs against an in-process SSH server ---------------------------------

type recordLog struct {
	mu    sync.Mutex
	lines []string
}

func (r *recordLog) Log(_ context.Context, _ diag.Severity, _ resource.URN, msg string) error {
	return r.LogStatus(context.Background(), diag.Info, "", msg)
}

func (r *recordLog) LogStatus(_ context.Context, _ diag.Severity, _ resource.URN, msg string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, msg)
	return nil
}

// testServer accepts public-key logins for one key and runs "exec" requests
// with /bin/sh -c, accepting env requests only for names in acceptEnv.
func testServer(t *testing.T, clientKey ssh.PublicKey, acceptEnv map[string]bool) (addr string, hostKey ssh.PublicKey) {
	t.Helper()
	_, hk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(hk)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		if string(k.Marshal()) == string(clientKey.Marshal()) {
			return nil, nil
		}
		return nil, errors.New("unknown key")
	}}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveConn(c, cfg, acceptEnv)
		}
	}()
	return ln.Addr().String(), signer.PublicKey()
}

func serveConn(c net.Conn, cfg *ssh.ServerConfig, acceptEnv map[string]bool) {
	_, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			_ = nc.Reject(ssh.UnknownChannelType, "")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go func() {
			var env []string
			for req := range creqs {
				switch req.Type {
				case "env":
					var kv struct{ Name, Value string }
					_ = ssh.Unmarshal(req.Payload, &kv)
					ok := acceptEnv[kv.Name]
					if ok {
						env = append(env, kv.Name+"="+kv.Value)
					}
					_ = req.Reply(ok, nil)
				case "exec":
					var cmd struct{ Command string }
					_ = ssh.Unmarshal(req.Payload, &cmd)
					_ = req.Reply(true, nil)
					sh := exec.Command("/bin/sh", "-c", cmd.Command)
					sh.Env = env
					sh.Stdin, sh.Stdout, sh.Stderr = ch, ch, ch.Stderr()
					code := 0
					if err := sh.Run(); err != nil {
						var ee *exec.ExitError
						if errors.As(err, &ee) {
							code = ee.Sys().(syscall.WaitStatus).ExitStatus()
						} else {
							code = 127
						}
					}
					status := make([]byte, 4)
					binary.BigEndian.PutUint32(status, uint32(code))
					_, _ = ch.SendRequest("exit-status", false, status)
					_ = ch.Close()
					return
				default:
					_ = req.Reply(false, nil)
				}
			}
		}()
	}
}

func testConnection(t *testing.T, acceptEnv map[string]bool) *connection {
	t.Helper()
	_, ck, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(ck, "")
	if err != nil {
		t.Fatal(err)
	}
	signer, _ := ssh.NewSignerFromKey(ck)
	addr, hostKey := testServer(t, signer.PublicKey(), acceptEnv)
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	key := string(pem.EncodeToMemory(block))
	hk := string(ssh.MarshalAuthorizedKey(hostKey))
	return &connection{host: host, port: p, user: "root", privateKey: &key, hostKey: &hk, dialErrorLimit: 1, perDialTimeout: 5}
}

func TestRunCommand(t *testing.T) {
	conn := testConnection(t, map[string]bool{envPrevStdout: true, "FOO": true})
	logs := &recordLog{}
	stdin := "from-stdin\n"
	p := &commandProps{conn: conn, stdin: &stdin, logging: "stdoutAndStderr", addPrevOutputs: true,
		stdout: "previous", environment: map[string]string{"FOO": "bar"}}
	out, errOut, err := runCommand(context.Background(), logs, "urn", p,
		`read -r x; echo "$x $FOO $PULUMI_COMMAND_STDOUT"; echo warn >&2`)
	if err != nil {
		t.Fatal(err)
	}
	if out != "from-stdin bar previous" || errOut != "warn" {
		t.Fatalf("stdout %q stderr %q", out, errOut)
	}
	if strings.Join(logs.lines, "|") != "from-stdin bar previous|warn" &&
		strings.Join(logs.lines, "|") != "warn|from-stdin bar previous" {
		t.Fatalf("logged %q", logs.lines)
	}

	// logging none: nothing streamed.
	logs = &recordLog{}
	p = &commandProps{conn: conn, logging: "none"}
	if _, _, err := runCommand(context.Background(), logs, "urn", p, "echo hi"); err != nil || len(logs.lines) != 0 {
		t.Fatalf("err %v, logged %q", err, logs.lines)
	}
}

func TestRunCommandFailures(t *testing.T) {
	conn := testConnection(t, nil)
	p := &commandProps{conn: conn, logging: "none"}
	_, _, err := runCommand(context.Background(), &recordLog{}, "urn", p, "echo out; exit 3")
	want := "Process exited with status 3: running \"echo out; exit 3\":\nout\n"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}

	p = &commandProps{conn: conn, logging: "none", environment: map[string]string{"NOPE": "x"}}
	_, _, err = runCommand(context.Background(), &recordLog{}, "urn", p, "true")
	if err == nil || !strings.Contains(err.Error(), `could not set environment variable "NOPE"`) {
		t.Fatalf("got %v", err)
	}

	bad := *conn
	other := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBtIWFQmh2ORcZHEm8H1qTG9nwCd6b4g+5HTn6xgzQjD"
	bad.hostKey = &other
	_, _, err = runCommand(context.Background(), &recordLog{}, "urn", &commandProps{conn: &bad}, "true")
	if err == nil || !strings.Contains(err.Error(), "host key mismatch") || !strings.Contains(err.Error(), "after 2 failed attempts") {
		t.Fatalf("got %v", err)
	}
}
