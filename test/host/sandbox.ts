// Host-tier test helpers: a real Debian bookworm host with systemd + sshd,
// booted with systemd-nspawn (scripts/sandbox/up.sh), reached over real SSH.
//
// ===================== INTERFACE (keep stable) =====================
//   const sb = await bootSandbox("uv", 22250);   // name [a-z0-9-]{1,31}, port optional (a free one is picked)
//     -> Sandbox { name, host:"127.0.0.1", port, user:"root", privateKey, hostKey
//                  ("ssh-ed25519 AAAA..." for pinning), knownHosts, root (machine
//                  root dir on this machine), instanceDir, pid (nspawn), consoleLog }
//     Cold: builds the cached rootfs first (65-105 s here, once per cache);
//     warm: 3-10 s (copy of the 274 MB root + boot until sshd answers and
//     `systemctl is-system-running --wait` settles).
//   await shutdownSandbox(sb)                   // or shutdownSandbox("uv"); idempotent
//   await sshRun(sb, "systemctl is-active ssh", { stdin?, timeoutMs? }) -> { code, stdout, stderr }
//       system ssh, BatchMode, StrictHostKeyChecking=yes against a known_hosts
//       built from the pinned host key; the command goes to root's login shell.
//   await runStep(sb, { step: "swapfile", action: "create", env: { PV_...: "..." }, stdin?, sudo? })
//       -> { code, stdout, stderr, result: "changed"|"unchanged"|undefined, command, ms }
//       renders components/host/scripts/<step>.sh with renderRemoteCommand (the
//       same string the Pulumi components run) and runs it over SSH.
//   await hostSnapshot(sb, ["/etc/fstab", "/var/lib/pulumi-vllm"]) -> Snapshot
//       per path (dirs recursed, -xdev): type, mode, owner, size, mtime (ns), sha256
//       (files) / link target; absent paths recorded as such.
//   diffSnapshots(before, after) -> string[] (empty = identical)
//   expectStep(run, "changed"|"unchanged") / expectStepFailure(run, /stderr re/)
//       assertions that show the whole run (stdout+stderr) when they fail
//   sshOk(sb, cmd) -> stdout (throws on non-zero), describeRun(r)
//   systemctl(sb, "is-active", "earlyoom"), swapShow(sb), dpkgInstalled(sb),
//   dpkgSelections(sb), fileSha256(sb, path), freePort(), fileTimer(label),
//   holdFileLock(sb, "/var/lib/dpkg/lock-frontend", seconds) (fcntl lock, as apt takes)
//   await psDuring(sb, () => runStep(...)) -> { value, ps }: every process's argv on the host,
//       sampled every 50 ms while the function runs (a secret must be in none)
// Shell: scripts/sandbox/up.sh NAME PORT (JSON on stdout, also
//   $CACHE/instances/NAME/sandbox.{json,env}); scripts/sandbox/down.sh NAME.
// The sandbox shares this machine's network namespace (a port opened inside is
// 127.0.0.1:PORT here) and its kernel (swap!). /proc/swaps paths are relative
// to each sandbox's root, so two sandboxes must not both use swap at one path.
// Requirements on the machine: root, systemd-container, debootstrap,
// openssh-client; network to deb.debian.org for the first rootfs build and
// for apt inside sandboxes. Cache: $PULUMI_VLLM_CACHE or ~/.cache/pulumi-vllm
// (rootfs, per-instance copies under instances/NAME, shared apt .debs).
// Several sandboxes can run at once: different names and ports.
// ===================================================================
import { run, sshArgs } from "../lib/process";
import type { RunResult } from "../lib/process";
import * as net from "net";
import * as path from "path";
import { readStepScript, renderRemoteCommand, shellQuote, stepResult, StepAction } from "../../components/host/remote-command";

// re-exported for the tests that take them from here
export type { RunResult };
export { sshArgs };

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
const SANDBOX_DIR = path.join(REPO_ROOT, "scripts", "sandbox");

export interface Sandbox {
  name: string;
  host: string;
  port: number;
  user: string;
  privateKey: string;
  hostKey: string;
  knownHosts: string;
  root: string;
  instanceDir: string;
  pid: number;
  consoleLog: string;
}

/** A TCP port that is free on 127.0.0.1 right now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

export async function bootSandbox(name: string, port?: number, opts: { timeoutMs?: number } = {}): Promise<Sandbox> {
  const p = port ?? (await freePort());
  const r = await run(path.join(SANDBOX_DIR, "up.sh"), [name, String(p)], { timeoutMs: opts.timeoutMs ?? 600_000 });
  if (r.code !== 0) {
    throw new Error(`bootSandbox(${name}, ${p}) failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
  }
  const lines = r.stdout.trim().split("\n");
  return JSON.parse(lines[lines.length - 1]) as Sandbox;
}

export async function shutdownSandbox(sb: Sandbox | string): Promise<void> {
  const name = typeof sb === "string" ? sb : sb.name;
  const r = await run(path.join(SANDBOX_DIR, "down.sh"), [name], { timeoutMs: 120_000 });
  if (r.code !== 0) throw new Error(`shutdownSandbox(${name}) failed (exit ${r.code}):\n${r.stderr}`);
}

/** Run one command string on the sandbox (via root's login shell), like pulumi-command does. */
export function sshRun(sb: Sandbox, command: string, opts: { stdin?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run("ssh", [...sshArgs(sb), command], { stdin: opts.stdin, timeoutMs: opts.timeoutMs ?? 600_000 });
}

/** Like sshRun but throws (with stderr) unless the command exits 0. */
export async function sshOk(sb: Sandbox, command: string, opts: { stdin?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await sshRun(sb, command, opts);
  if (r.code !== 0) {
    throw new Error(`on sandbox ${sb.name}: \`${command}\` exited ${r.code}\n--- stderr ---\n${r.stderr}\n--- stdout ---\n${r.stdout}`);
  }
  return r.stdout;
}

/**
 * `ps -eo args` on the sandbox every 50 ms while `f` runs (the sandbox has its own process namespace: these are
 * all of its processes), for checking that a secret reached no process's argv. Returns f's value and the samples.
 */
export async function psDuring<T>(sb: Sandbox, f: () => Promise<T>): Promise<{ value: T; ps: string }> {
  const file = "/root/pv-ps-samples";
  await sshOk(sb, `rm -f ${file} ${file}.stop`);
  const sampler = sshRun(sb, `while [ ! -e ${file}.stop ]; do ps -eo args >>${file}; echo ---- >>${file}; sleep 0.05; done`);
  let value: T;
  try {
    value = await f();
  } finally {
    await sshOk(sb, `touch ${file}.stop`);
    await sampler;
  }
  return { value, ps: await sshOk(sb, `cat ${file}`) };
}

export interface StepRun extends RunResult {
  result: "changed" | "unchanged" | undefined;
  command: string;
  ms: number;
}

export async function runStep(
  sb: Sandbox,
  args: { step: string; action: StepAction; env: Record<string, string>; stdin?: string; sudo?: boolean; script?: string; timeoutMs?: number },
): Promise<StepRun> {
  const command = renderRemoteCommand({
    step: args.step,
    script: args.script ?? readStepScript(args.step),
    action: args.action,
    env: args.env,
    sudo: args.sudo ?? false,
  });
  const t0 = Date.now();
  const r = await sshRun(sb, command, { stdin: args.stdin, timeoutMs: args.timeoutMs });
  return { ...r, result: stepResult(r.stdout), command, ms: Date.now() - t0 };
}

/** Human-readable dump of a step run, for expect messages. */
export function describeRun(r: RunResult): string {
  return `exit ${r.code}\n--- stdout ---\n${r.stdout}\n--- stderr ---\n${r.stderr}`;
}

export interface SnapshotEntry {
  type: string; // "regular file", "directory", "symbolic link", ..., or "absent"
  mode?: string;
  owner?: string;
  size?: number;
  mtime?: string; // seconds.nanoseconds
  sha256?: string; // files; "-> target" for symlinks
}
export type Snapshot = Record<string, SnapshotEntry>;

const SNAPSHOT_SCRIPT = String.raw`
set -u
for p in "$@"; do
  if [ ! -e "$p" ] && [ ! -L "$p" ]; then printf 'ABSENT\t%s\n' "$p"; continue; fi
  find "$p" -xdev -print0 | sort -z | while IFS= read -r -d '' f; do
    st=$(stat -c '%F|%a|%U:%G|%s|%.9Y' -- "$f")
    if [ -L "$f" ]; then h="-> $(readlink -- "$f")"
    elif [ -f "$f" ]; then h=$(sha256sum -- "$f" | cut -d' ' -f1)
    else h=-; fi
    printf 'E\t%s\t%s\t%s\n' "$f" "$st" "$h"
  done
done
`;

export async function hostSnapshot(sb: Sandbox, paths: string[]): Promise<Snapshot> {
  const cmd = `bash -c ${shellQuote(SNAPSHOT_SCRIPT)} snapshot ${paths.map(shellQuote).join(" ")}`;
  const out = await sshOk(sb, cmd);
  const snap: Snapshot = {};
  for (const line of out.split("\n")) {
    if (!line) continue;
    const f = line.split("\t");
    if (f[0] === "ABSENT") {
      snap[f[1]] = { type: "absent" };
    } else if (f[0] === "E") {
      const [type, mode, owner, size, mtime] = f[2].split("|");
      snap[f[1]] = { type, mode, owner, size: Number(size), mtime, sha256: f[3] };
    }
  }
  return snap;
}

export function diffSnapshots(before: Snapshot, after: Snapshot, opts: { ignoreDirMtime?: boolean } = {}): string[] {
  const out: string[] = [];
  const keys = new Set([...Object.keys(before), ...Object.keys(after)]);
  for (const k of [...keys].sort()) {
    const a = before[k];
    const b = after[k];
    if (!a) out.push(`+ ${k} (${b.type})`);
    else if (!b) out.push(`- ${k} (${a.type})`);
    else {
      for (const field of ["type", "mode", "owner", "size", "mtime", "sha256"] as const) {
        if (field === "mtime" && opts.ignoreDirMtime && a.type === "directory") continue;
        if (a[field] !== b[field]) out.push(`~ ${k} ${field}: ${a[field]} -> ${b[field]}`);
      }
    }
  }
  return out;
}

export function systemctl(sb: Sandbox, ...args: string[]): Promise<RunResult> {
  return sshRun(sb, ["systemctl", ...args].map(shellQuote).join(" "));
}

export interface SwapEntry {
  name: string;
  type: string;
  sizeBytes: number;
}

/** `swapon --show` of the sandbox (note: lists every swap of the machine's kernel it can see). */
export async function swapShow(sb: Sandbox): Promise<SwapEntry[]> {
  const out = await sshOk(sb, "swapon --show=NAME,TYPE,SIZE --raw --bytes --noheadings");
  return out
    .split("\n")
    .filter((l) => l.trim() !== "")
    .map((l) => {
      const [name, type, size] = l.split(/\s+/);
      return { name, type, sizeBytes: Number(size) };
    });
}

/** Installed packages as sorted "name:arch version status" lines. */
export async function dpkgInstalled(sb: Sandbox): Promise<string[]> {
  const out = await sshOk(sb, "dpkg-query -W -f='${binary:Package} ${Version} ${db:Status-Abbrev}\\n' | sort");
  return out.split("\n").filter((l) => l !== "");
}

/** `dpkg --get-selections` plus apt's auto/manual marks, one sorted list. */
export async function dpkgSelections(sb: Sandbox): Promise<string[]> {
  const out = await sshOk(sb, "dpkg --get-selections '*' | sort; echo '## auto'; apt-mark showauto | sort");
  return out.split("\n").filter((l) => l !== "");
}

export async function fileSha256(sb: Sandbox, file: string): Promise<string | null> {
  const r = await sshRun(sb, `sha256sum -- ${shellQuote(file)}`);
  return r.code === 0 ? r.stdout.split(" ")[0] : null;
}

/**
 * Print how long a test file took (boot and total) to stderr, e.g.
 *   const timer = fileTimer("swapfile.test.ts"); ... timer.mark("boot"); ... in afterAll: timer.done()
 */
export function fileTimer(label: string) {
  const t0 = Date.now();
  const marks: string[] = [];
  let last = t0;
  return {
    mark(what: string) {
      const now = Date.now();
      marks.push(`${what} ${((now - last) / 1000).toFixed(1)}s`);
      last = now;
    },
    done() {
      const total = ((Date.now() - t0) / 1000).toFixed(1);
      process.stderr.write(`[host-timing] ${label}: ${marks.join(", ")}${marks.length ? ", " : ""}total ${total}s\n`);
    },
  };
}

/**
 * Hold a POSIX (fcntl) write lock on a file in the sandbox for `seconds`, the
 * kind apt and dpkg take (flock(1) would not conflict with them). Resolves once
 * the lock is held; the holder runs as a transient unit `unit`.
 */
export async function holdFileLock(sb: Sandbox, file: string, seconds: number, unit = "pv-test-lock-holder"): Promise<void> {
  const marker = `/run/${unit}.held`;
  const py =
    "import fcntl, sys, time\n" +
    "f = open(sys.argv[1], 'a')\n" +
    "fcntl.lockf(f, fcntl.LOCK_EX)\n" +
    "open(sys.argv[2], 'w').close()\n" +
    "time.sleep(float(sys.argv[3]))\n";
  await sshOk(
    sb,
    `rm -f ${shellQuote(marker)}; systemd-run --quiet --collect --unit=${shellQuote(unit)} ` +
      `python3 -c ${shellQuote(py)} ${shellQuote(file)} ${shellQuote(marker)} ${seconds}`,
  );
  await sshOk(sb, `for i in $(seq 1 100); do [ -e ${shellQuote(marker)} ] && exit 0; sleep 0.1; done; echo 'lock holder did not start' >&2; exit 1`);
}

/**
 * Assert a step run ended with exit 0 and the given last line; on mismatch
 * the error shows the whole run (stdout + stderr), not just the field.
 */
export function expectStep(r: StepRun, result: "changed" | "unchanged"): void {
  if (r.code !== 0 || r.result !== result) {
    throw new Error(`expected exit 0 and '${result}', got exit ${r.code} and '${r.result}'\n${describeRun(r)}`);
  }
}

/** Assert a step run failed (non-zero exit, no result line) with stderr matching `message`. */
export function expectStepFailure(r: StepRun, message: RegExp): void {
  if (r.code === 0 || r.result !== undefined || !message.test(r.stderr)) {
    throw new Error(`expected a failure matching ${message}, got:\n${describeRun(r)}`);
  }
}
