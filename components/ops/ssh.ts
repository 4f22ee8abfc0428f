// The stack's SSH connection for the day-two commands, through the system
// `ssh`: the pinned host key only (a known_hosts of its own), the stack's
// key only, the jump host as a ProxyCommand with its own key and pin. The
// keys go to 0600 files in a 0700 temp dir removed on close; nothing secret
// reaches argv (commands that need one read it from stdin).
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";
import { shellQuote } from "../host/remote-command";
import { Connection, OpsError } from "./state";

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function knownHostsLine(host: string, port: number, key: string): string {
  return `${port === 22 ? host : `[${host}]:${port}`} ${key.trim().split(/\s+/).slice(0, 2).join(" ")}\n`;
}

export class SshSession {
  private readonly dir: string;
  readonly args: string[];
  readonly warnings: string[] = [];

  constructor(readonly conn: Connection) {
    if (!conn.host) throw new OpsError("the stack's connection has no host -> run pulumi up first");
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "pulumi-vllm-ssh-"));
    this.args = ["-T", ...this.hopArgs("target", conn), "-p", String(conn.port), "-l", conn.user];
    if (conn.proxy) {
      const p = conn.proxy;
      const jumpArgs = [...this.hopArgs("jump", { ...p, privateKey: p.privateKey ?? conn.privateKey }), "-p", String(p.port), "-l", p.user, "-W", "%h:%p", p.host];
      this.args.push("-o", `ProxyCommand=ssh ${jumpArgs.map((a) => (a === "%h:%p" ? a : shellQuote(a))).join(" ")}`);
    }
    this.args.push(conn.host);
  }

  private hopArgs(name: string, c: { host: string; port: number; privateKey?: string; hostKey?: string }): string[] {
    const a = ["-o", "BatchMode=yes", "-o", "ConnectTimeout=15", "-o", "ServerAliveInterval=15", "-o", "LogLevel=ERROR", "-o", "GlobalKnownHostsFile=/dev/null"];
    if (c.privateKey) {
      const key = path.join(this.dir, `${name}.key`);
      fs.writeFileSync(key, c.privateKey.endsWith("\n") ? c.privateKey : c.privateKey + "\n", { mode: 0o600 });
      a.push("-i", key, "-o", "IdentitiesOnly=yes");
    }
    if (c.hostKey) {
      const kh = path.join(this.dir, `${name}.known_hosts`);
      fs.writeFileSync(kh, knownHostsLine(c.host, c.port, c.hostKey), { mode: 0o600 });
      a.push("-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${kh}`);
    } else {
      this.warnings.push(`${c.host}: no pinned host key in the stack (insecureSkipHostKeyCheck): the host is not verified`);
      a.push("-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null");
    }
    return a;
  }

  /** Run a remote command line; `stdin` is where anything secret goes. */
  run(command: string, opts: { stdin?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
      const child = spawn("ssh", [...this.args, command], { stdio: ["pipe", "pipe", "pipe"] });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
      child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
      const timer = setTimeout(() => child.kill("SIGKILL"), opts.timeoutMs ?? 120_000);
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(new OpsError(`cannot run ssh (${e.message}) -> install openssh-client`));
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
      child.stdin.on("error", () => undefined);
      child.stdin.end(opts.stdin ?? "");
    });
  }

  /** A remote command whose output streams (logs -f). */
  stream(command: string): ChildProcess {
    return spawn("ssh", [...this.args, command], { stdio: ["ignore", "pipe", "pipe"] });
  }

  /** `ssh -L` from a free local port to host:port as seen from the remote; resolves once it accepts connections. */
  async tunnel(remoteHost: string, remotePort: number): Promise<{ localPort: number; close: () => void }> {
    const localPort = await freePort();
    const fwd = `${localPort}:${remoteHost.includes(":") ? `[${remoteHost}]` : remoteHost}:${remotePort}`;
    const proc = spawn("ssh", ["-N", "-o", "ExitOnForwardFailure=yes", "-L", fwd, ...this.args], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    proc.stderr!.setEncoding("utf8").on("data", (d) => (err += d));
    for (let i = 0; i < 100 && proc.exitCode === null; i++) {
      if (await accepts(localPort)) return { localPort, close: () => proc.kill() };
      await new Promise((r) => setTimeout(r, 200));
    }
    proc.kill();
    throw new OpsError(`ssh -L ${fwd} through ${this.conn.host} did not come up: ${err.trim() || "timed out"} -> check the host is reachable (pulumi-vllm status)`);
  }

  close(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, "127.0.0.1");
    s.on("connect", () => {
      s.end();
      resolve(true);
    });
    s.on("error", () => resolve(false));
  });
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/** Run `fn` with an SSH session to `conn`, closed (its key files removed) afterwards. */
export async function withSsh<T>(conn: Connection, fn: (s: SshSession) => Promise<T>): Promise<T> {
  const s = new SshSession(conn);
  try {
    return await fn(s);
  } finally {
    s.close();
  }
}
