// Running local programs and ssh from the tests: one implementation for the
// host sandbox (test/host/sandbox.ts) and the SLURM cluster (test/slurm/cluster.ts).
import { spawn } from "child_process";

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Run a program, feed it stdin, collect its output; SIGKILL after timeoutMs. */
export function run(cmd: string, args: string[], opts: { stdin?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"], env: opts.env ?? process.env });
    let stdout = "";
    let stderr = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8").on("data", (d) => (stdout += d));
    child.stderr.setEncoding("utf8").on("data", (d) => (stderr += d));
    const timer = opts.timeoutMs
      ? setTimeout(() => {
          timedOut = true;
          child.kill("SIGKILL");
        }, opts.timeoutMs)
      : undefined;
    child.on("error", (e) => {
      if (timer) clearTimeout(timer);
      reject(e);
    });
    child.on("close", (code) => {
      if (timer) clearTimeout(timer);
      if (timedOut) stderr += `\n[test] ${cmd} killed after ${opts.timeoutMs} ms`;
      resolve({ code, stdout, stderr });
    });
    child.stdin.on("error", () => undefined); // the remote may exit without reading stdin
    child.stdin.end(opts.stdin ?? "");
  });
}

export interface SshTarget {
  host: string;
  port: number;
  user: string;
  privateKey: string;
  knownHosts: string;
}

/** ssh options: batch mode, only the pinned host key, only the given key. */
export function sshArgs(t: SshTarget): string[] {
  return [
    "-T",
    "-i", t.privateKey,
    "-p", String(t.port),
    "-o", "BatchMode=yes",
    "-o", "StrictHostKeyChecking=yes",
    "-o", `UserKnownHostsFile=${t.knownHosts}`,
    "-o", "GlobalKnownHostsFile=/dev/null",
    "-o", "IdentitiesOnly=yes",
    "-o", "ConnectTimeout=10",
    "-o", "LogLevel=ERROR",
    `${t.user}@${t.host}`,
  ];
}
