// SLURM-tier test helpers: a real SLURM cluster (Debian bookworm slurm-wlm
// 22.05 + munge + slurmdbd/MariaDB) of three systemd-nspawn containers, booted
// by scripts/slurm-sandbox/up.sh, reached over real SSH on its login node.
//
// ===================== INTERFACE (keep stable) =====================
//   const c = await bootCluster("pvslurm");   // name [a-z][a-z0-9-]{0,19}
//     -> SlurmCluster (see the interface below; ssh fields have the same
//        names as test/host/sandbox.ts's Sandbox: host, port, user,
//        privateKey, hostKey, knownHosts)
//     Cold (measured, empty cache and apt archive): ~150 s for the base root
//     (scripts/sandbox/build-rootfs.sh) + the slurm layer, then ~8 s to boot;
//     layer alone with cached .debs ~12-30 s. Warm: ~5 s until sshd answers,
//     slurmdbd has the test account, slurmctld knows it and both nodes are
//     idle. The layer is keyed by scripts/slurm-sandbox/build-rootfs.sh and
//     the base root's name, so an edit of either rebuilds it.
//   await shutdownCluster(c)                  // or shutdownCluster("pvslurm"); idempotent
//   await reapOrphanClusters("pvslt")         // stop clusters with that name prefix whose
//       booting process is gone (interrupted runs); live runs' clusters are kept.
//       bootCluster records process.pid (+ start time) as the owner.
//   await loginRun(c, "sinfo", { stdin?, timeoutMs? }) -> { code, stdout, stderr }
//       system ssh to root@127.0.0.1:port, BatchMode, StrictHostKeyChecking=yes
//       against a known_hosts holding only the pinned host key; the command
//       goes to root's login shell on the login node.
//   await loginOk(c, cmd, opts?) -> stdout (throws with stderr unless exit 0)
//   await sbatch(c, script, ["--time=1", ...]) -> job id (script sent on stdin;
//       throws with SLURM's message when sbatch refuses)
//   await jobState(c, id) -> "PENDING" | "RUNNING" | "COMPLETED" | "TIMEOUT" |
//       "CANCELLED" | "FAILED" | ... (scontrol while the controller has the
//       job, MinJobAge=600 s; else sacct), or null if unknown
//   await waitJobState(c, id, ["COMPLETED"], { timeoutMs }) -> final state
//       (resolves on the first state in the list or any terminal state)
//   await sacctState(c, id) -> the job's State in the accounting DB, or null
//   sshArgs(c) -> argv for `ssh` (e.g. for `ssh -L` tunnels in tests)
//
// FACTS (what a test or the SLURM topology can rely on)
//   Hosts: "<name>-ctl" = slurmctld + slurmdbd + MariaDB + login node (sshd on
//     127.0.0.1:<port> for root). It shares this machine's network namespace
//     (outbound network like the host sandbox: apt, PyPI) and owns
//     10.77.K.254 on the bridge pvsbrK. "<name>-n1" = 10.77.K.1 and
//     "<name>-n2" = 10.77.K.2: slurmd + munge, own network namespaces, eth0 on
//     the bridge, no route beyond 10.77.K.0/24 (like compute nodes without
//     internet). K is picked free per cluster (1 for the first); /etc/hosts
//     on all three names all three.
//   Reaching a node's port: from the login node `curl http://<name>-n1:PORT/`
//     (or the IP). This machine shares the login node's network, so a test can
//     also connect to 10.77.K.1:PORT directly; the topology should go through
//     the login node (ssh -L or curl over ssh), as on a real cluster.
//   Shared FS: one host dir (c.sharedHostDir) mounted at /shared on all
//     three: the place for the venv, caches, logs, secrets of a job. Jobs run
//     as root; /shared is mode 1777.
//   SLURM: ClusterName = name with '-' -> '_'; partition "gpu" (Default,
//     MaxTime 4 h, DefaultTime 1 h), 2 nodes with CPUs = this machine's CPU
//     count and RealMemory=1024, Gres=gpu:4 per node (stand-in char devices,
//     no GPUs: jobs see CUDA_VISIBLE_DEVICES=0,1,2,3), select/cons_tres,
//     proctrack/linuxproc, task/none (no cgroups in nspawn), KillWait=5.
//     Accounting via slurmdbd with AccountingStorageEnforce=associations,limits:
//     accounts "root" and "pvtest" (root is in both; default root); an
//     unknown --account is refused ("Invalid account or account/partition
//     combination specified"), an unknown -p too ("invalid partition
//     specified: X" / "Invalid partition name specified"). sacct works.
//   Time limits are enforced by slurmctld's 30 s sweep: a --time=1 job ends
//     TIMEOUT 60-100 s after it started.
// Requirements on the machine: root, systemd-container, debootstrap,
// iproute2, openssh-client, overlayfs (else full copies); Debian mirror for
// the first build. Cache: $PULUMI_VLLM_CACHE or ~/.cache/pulumi-vllm
// (rootfs-slurm-<hash>, clusters under slurm/NAME). Several clusters can run
// at once (different names).
// ===================================================================
import { run, sshArgs } from "../lib/process";
import type { RunResult } from "../lib/process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

// re-exported for the tests that take them from here
export type { RunResult };
export { sshArgs };

export const REPO_ROOT = path.resolve(__dirname, "..", "..");
const SCRIPTS = path.join(REPO_ROOT, "scripts", "slurm-sandbox");

export interface SlurmHost {
  hostname: string;
  ip: string;
}

export interface SlurmCluster {
  name: string;
  clusterName: string;
  host: string; // 127.0.0.1
  port: number; // login sshd
  user: string; // root
  privateKey: string;
  hostKey: string; // "ssh-ed25519 AAAA..."
  knownHosts: string;
  instanceDir: string;
  sharedDir: string; // "/shared" inside all three
  sharedHostDir: string; // the same dir on this machine
  partition: string; // "gpu"
  account: string; // "pvtest"
  gpusPerNode: number;
  cpusPerNode: number;
  subnet: string;
  bridge: string;
  slurmctldPort: number;
  slurmdbdPort: number;
  controller: SlurmHost;
  nodes: SlurmHost[];
  pids: { ctl: number; n1: number; n2: number };
  consoleLogs: { ctl: string; n1: string; n2: string };
  /** Wall time of up.sh, and the part of it spent building/reusing the rootfs layer. */
  bootMs: number;
  layerMs: number;
}

/** The cache dir the scripts use ($PULUMI_VLLM_CACHE or ~/.cache/pulumi-vllm). */
export function cacheDir(): string {
  return process.env.PULUMI_VLLM_CACHE ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), ".cache"), "pulumi-vllm");
}

/** Start time (clock ticks since boot) of a live process, or null if there is none. */
function processStart(pid: number): string | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19] ?? null;
  } catch {
    return null;
  }
}

/**
 * Stop clusters whose name starts with `prefix` and whose owner (the process
 * that booted them with bootCluster) is gone: leftovers of an interrupted run.
 * Clusters of live runs (another jest in parallel) are left alone.
 */
export async function reapOrphanClusters(prefix: string): Promise<string[]> {
  const dir = path.join(cacheDir(), "slurm");
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir).filter((n) => n.startsWith(prefix));
  } catch {
    return [];
  }
  const reaped: string[] = [];
  for (const name of names) {
    let owner = "";
    try {
      owner = fs.readFileSync(path.join(dir, name, "owner"), "utf8").trim();
    } catch {
      continue; // not booted by bootCluster, or still being set up
    }
    const [pid, start] = owner.split(" ");
    if (processStart(Number(pid)) === start) continue;
    await shutdownCluster(name);
    reaped.push(name);
  }
  return reaped;
}

export async function bootCluster(name: string, opts: { timeoutMs?: number; sshPort?: number } = {}): Promise<SlurmCluster> {
  const env: NodeJS.ProcessEnv = { ...process.env, PV_SLURM_OWNER_PID: String(process.pid) };
  if (opts.sshPort) env.PV_SLURM_SSH_PORT = String(opts.sshPort);
  const t0 = Date.now();
  const r = await run(path.join(SCRIPTS, "up.sh"), [name], { timeoutMs: opts.timeoutMs ?? 1_500_000, env });
  const bootMs = Date.now() - t0;
  if (r.code !== 0) {
    throw new Error(`bootCluster(${name}) failed (exit ${r.code}):\n${r.stderr}\n${r.stdout}`);
  }
  const lines = r.stdout.trim().split("\n");
  const layer = /\(layer (\d+)ms/.exec(r.stderr);
  return { ...(JSON.parse(lines[lines.length - 1]) as Omit<SlurmCluster, "bootMs" | "layerMs">), bootMs, layerMs: layer ? Number(layer[1]) : 0 };
}

export async function shutdownCluster(c: SlurmCluster | string): Promise<void> {
  const name = typeof c === "string" ? c : c.name;
  const r = await run(path.join(SCRIPTS, "down.sh"), [name], { timeoutMs: 180_000 });
  if (r.code !== 0) throw new Error(`shutdownCluster(${name}) failed (exit ${r.code}):\n${r.stderr}`);
}

/** Run one command string on the login node (root's login shell). */
export function loginRun(c: SlurmCluster, command: string, opts: { stdin?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return run("ssh", [...sshArgs(c), command], { stdin: opts.stdin, timeoutMs: opts.timeoutMs ?? 300_000 });
}

/** Like loginRun but throws (with stderr) unless the command exits 0. */
export async function loginOk(c: SlurmCluster, command: string, opts: { stdin?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await loginRun(c, command, opts);
  if (r.code !== 0) {
    throw new Error(`on ${c.controller.hostname}: \`${command}\` exited ${r.code}\n--- stderr ---\n${r.stderr}\n--- stdout ---\n${r.stdout}`);
  }
  return r.stdout;
}

const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** Submit a batch script (sent on stdin) with extra sbatch args; returns the job id. */
export async function sbatch(c: SlurmCluster, script: string, args: string[] = []): Promise<string> {
  const r = await loginRun(c, ["sbatch", "--parsable", ...args].map(shq).join(" "), { stdin: script });
  const id = r.stdout.trim().split(";")[0];
  if (r.code !== 0 || !/^\d+$/.test(id)) {
    throw new Error(`sbatch ${args.join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
  return id;
}

/** The job's State in the accounting DB (sacct), e.g. "TIMEOUT", "CANCELLED" (the "by UID" suffix dropped). */
export async function sacctState(c: SlurmCluster, id: string): Promise<string | null> {
  const r = await loginRun(c, `sacct -X -n -P -j ${shq(id)} -o State`);
  const s = r.stdout.trim().split("\n")[0]?.trim();
  return r.code === 0 && s ? s.split(" ")[0] : null;
}

export async function jobState(c: SlurmCluster, id: string): Promise<string | null> {
  const r = await loginRun(c, `scontrol -o show job ${shq(id)}`);
  const m = /\bJobState=(\S+)/.exec(r.stdout);
  if (r.code === 0 && m) return m[1];
  return sacctState(c, id);
}

const TERMINAL = new Set([
  "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT", "NODE_FAIL", "PREEMPTED", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE",
]);

export async function waitJobState(
  c: SlurmCluster,
  id: string,
  want: string[],
  opts: { timeoutMs?: number; pollMs?: number } = {},
): Promise<string | null> {
  const deadline = Date.now() + (opts.timeoutMs ?? 120_000);
  let state: string | null = null;
  for (;;) {
    state = await jobState(c, id);
    if (state && (want.includes(state) || TERMINAL.has(state))) return state;
    if (Date.now() > deadline) return state;
    await new Promise((res) => setTimeout(res, opts.pollMs ?? 1000));
  }
}

/** Print durations, e.g. "[slurm-timing] cluster.test.ts: boot (warm) 7.1s, sinfo 0.3s, total 95.0s". */
export function timer(label: string) {
  const t0 = Date.now();
  const marks: string[] = [];
  return {
    add(what: string, ms: number) {
      marks.push(`${what} ${(ms / 1000).toFixed(1)}s`);
    },
    done() {
      const total = ((Date.now() - t0) / 1000).toFixed(1);
      process.stderr.write(`[slurm-timing] ${label}: ${marks.join(", ")}${marks.length ? ", " : ""}total ${total}s\n`);
    },
  };
}
