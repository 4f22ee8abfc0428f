// What a stack says it made, read from its state: `pulumi stack export` by
// the `pulumi` on the user's PATH, in their project, with their backend and
// login (nothing of ours is put in its environment). Every host step is a
// remote.Command whose `create` is the rendered step command, so its PV_*
// parameters (paths, unit text, versions) and its connection are in the
// state: the day-two commands check the host against those, not against
// paths written here, and work for any program that uses the components.
import { spawnSync } from "child_process";

export interface Connection {
  host: string;
  port: number;
  user: string;
  privateKey?: string;
  hostKey?: string;
  proxy?: { host: string; port: number; user: string; privateKey?: string; hostKey?: string };
}

export interface StepRecord {
  /** The script's name: toolchain, swapfile, earlyoom, uv-venv, vllm-install, launch-unit, readiness, slurm-job, slurm-readiness, ... */
  step: string;
  /** The command resource's URN (what `pulumi up --replace` takes). */
  urn: string;
  params: Record<string, string>;
  sudo: boolean;
  connection: Connection;
  /** NAME=value lines of the step's stdin, when the export was decrypted. */
  secrets: Record<string, string>;
}

export interface ServerRecord {
  name: string;
  urn: string;
  topology: "single" | "slurm";
  /** The server component's registered outputs (endpoint, apiKey, servedModelName, unitName, jobId, headNode, tunnel, plan). */
  outputs: Record<string, unknown>;
  steps: StepRecord[];
}

export class OpsError extends Error {}

const SERVER_TYPES: Record<string, "single" | "slurm"> = {
  "pulumi-vllm:index:VllmServer": "single",
  "pulumi-vllm:index:VllmSlurmServer": "slurm",
};

/** A value of an exported deployment with its secret wrapper taken off (`plaintext` when decrypted; undefined when still encrypted). */
export function plain(v: unknown): unknown {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const o = v as Record<string, unknown>;
    if ("4dabf18193072939515e22adb298388d" in o) {
      if (typeof o.plaintext === "string") return plain(JSON.parse(o.plaintext));
      if ("value" in o) return plain(o.value);
      return undefined;
    }
    return Object.fromEntries(Object.entries(o).map(([k, x]) => [k, plain(x)]));
  }
  if (Array.isArray(v)) return v.map(plain);
  return v;
}

/** POSIX shell words of a command line made by renderRemoteCommand (plain and single-quoted words). */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i];
    if (ch === " ") {
      if (cur !== undefined) words.push(cur);
      cur = undefined;
    } else if (ch === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new OpsError("unterminated quote in a step command");
      cur = (cur ?? "") + line.slice(i + 1, end);
      i = end;
    } else if (ch === "\\" && i + 1 < line.length) {
      cur = (cur ?? "") + line[++i];
    } else {
      cur = (cur ?? "") + ch;
    }
  }
  if (cur !== undefined) words.push(cur);
  return words;
}

/** The step, sudo and PV_* parameters of a rendered step command (`[sudo -n ]env PV_..=.. bash -c SCRIPT pv-<step>`). */
export function parseStepCommand(create: string): { step: string; sudo: boolean; params: Record<string, string> } | undefined {
  const w = shellWords(create);
  let i = 0;
  const sudo = w[0] === "sudo" && w[1] === "-n";
  if (sudo) i = 2;
  if (w[i] !== "env") return undefined;
  const params: Record<string, string> = {};
  for (i++; i < w.length && /^PV_[A-Z0-9_]+=/.test(w[i]); i++) {
    const eq = w[i].indexOf("=");
    params[w[i].slice(0, eq)] = w[i].slice(eq + 1);
  }
  if (w[i] !== "bash" || w[i + 1] !== "-c" || !/^pv-[a-z0-9-]+$/.test(w[i + 3] ?? "")) return undefined;
  delete params.PV_ACTION;
  return { step: w[i + 3].slice(3), sudo, params };
}

function secretLines(stdin: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  if (typeof stdin !== "string") return out;
  for (const line of stdin.split("\n")) {
    const eq = line.indexOf("=");
    if (eq > 0) out[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return out;
}

function connectionOf(c: any): Connection {
  const conn: Connection = { host: String(c?.host ?? ""), port: Number(c?.port ?? 22), user: String(c?.user ?? "root"), privateKey: c?.privateKey, hostKey: c?.hostKey };
  if (c?.proxy) conn.proxy = { host: String(c.proxy.host), port: Number(c.proxy.port ?? 22), user: String(c.proxy.user ?? "root"), privateKey: c.proxy.privateKey, hostKey: c.proxy.hostKey };
  return conn;
}

interface ExportedResource {
  urn: string;
  type: string;
  parent?: string;
  inputs?: Record<string, unknown>;
  outputs?: Record<string, unknown>;
}

/** The servers of an exported deployment (`pulumi stack export [--show-secrets]`), each with its host steps. */
export function serversOfDeployment(exported: any): ServerRecord[] {
  const resources: ExportedResource[] = exported?.deployment?.resources ?? [];
  const byUrn = new Map(resources.map((r) => [r.urn, r]));
  const servers = new Map<string, ServerRecord>();
  for (const r of resources) {
    const topology = SERVER_TYPES[r.type];
    if (topology) servers.set(r.urn, { name: r.urn.split("::").pop()!, urn: r.urn, topology, outputs: (plain(r.outputs) as Record<string, unknown>) ?? {}, steps: [] });
  }
  for (const r of resources) {
    if (r.type !== "command:remote:Command") continue;
    const inputs = plain(r.inputs) as Record<string, any>;
    const parsed = typeof inputs?.create === "string" ? parseStepCommand(inputs.create) : undefined;
    if (!parsed) continue;
    let p = r.parent;
    while (p && !servers.has(p)) p = byUrn.get(p)?.parent;
    if (!p) continue;
    servers.get(p)!.steps.push({ ...parsed, urn: r.urn, connection: connectionOf(inputs.connection), secrets: secretLines(inputs.stdin) });
  }
  return [...servers.values()];
}

export interface PulumiTarget {
  stack: string;
  /** The project directory `pulumi` runs in (default: the current one). */
  cwd?: string;
  /** The environment `pulumi` runs with (default: this process's, untouched). */
  env?: NodeJS.ProcessEnv;
}

/** `pulumi <args> --stack <stack>` with the user's pulumi and environment; stdout, or an OpsError saying what to do. */
export function runPulumi(t: PulumiTarget, args: string[]): string {
  const r = spawnSync("pulumi", [...args, "--stack", t.stack], { cwd: t.cwd, env: t.env ?? process.env, encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  if (r.error) throw new OpsError(`cannot run pulumi (${(r.error as NodeJS.ErrnoException).code ?? r.error.message}) -> install the Pulumi CLI and put it on PATH`);
  if (r.status !== 0) {
    throw new OpsError(`pulumi ${args[0]} ${args[1] ?? ""} --stack ${t.stack} failed: ${r.stderr.trim().split("\n").slice(-3).join(" ")} -> run it in the project directory (--dir), logged in to the stack's backend, with its secrets passphrase or provider set`);
  }
  return r.stdout;
}

/** The servers of a stack, decrypted (the SSH key and API key are needed to reach the host and the API; they stay in memory). */
export function readStack(t: PulumiTarget, serverName?: string): ServerRecord[] {
  const servers = serversOfDeployment(JSON.parse(runPulumi(t, ["stack", "export", "--show-secrets"])));
  if (!servers.length) throw new OpsError(`stack ${t.stack} has no VllmServer or VllmSlurmServer -> run pulumi up --stack ${t.stack} first`);
  if (serverName === undefined) return servers;
  const picked = servers.filter((s) => s.name === serverName);
  if (!picked.length) throw new OpsError(`--server ${serverName}: no such server in stack ${t.stack} -> one of ${servers.map((s) => s.name).join(", ")}`);
  return picked;
}

export function stepOf(s: ServerRecord, step: string): StepRecord | undefined {
  return s.steps.find((x) => x.step === step);
}

/** The connection of a server: its steps share it. */
export function connectionOfServer(s: ServerRecord): { connection: Connection; sudo: boolean } {
  const first = s.steps[0];
  if (!first) throw new OpsError(`server ${s.name} has no host step in the state -> run pulumi up first`);
  return { connection: first.connection, sudo: first.sudo };
}

/** Every secret value the server's steps were given (for redaction). */
export function secretValues(s: ServerRecord): string[] {
  const vals = new Set<string>();
  for (const st of s.steps) {
    for (const [name, v] of Object.entries(st.secrets)) {
      if (v.length >= 4) vals.add(v);
      // the index login's password alone (a tool may print it without the user)
      const password = name === "INDEX_CREDENTIALS" ? v.slice(v.indexOf(":") + 1) : "";
      if (password.length >= 4) vals.add(password);
    }
  }
  if (typeof s.outputs.apiKey === "string" && s.outputs.apiKey.length >= 4) vals.add(s.outputs.apiKey);
  return [...vals];
}
