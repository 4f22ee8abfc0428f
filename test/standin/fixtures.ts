// Shared fixtures of the host-tier tests of the uv-venv, vllm-install,
// launch-unit and readiness steps: trusting this machine's CAs inside a
// sandbox, the pinned uv/venv, the vllm-standin wheel, and a unit for it.
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { renderUnit, UnitSpec } from "../../components/host/render-unit";
import { renderStdin } from "../../components/host/remote-command";
import { homeEnv, serverHome } from "../../components/host/steps";
import { describeRun, runStep, Sandbox, sshOk, sshRun, StepRun } from "../host/sandbox";

export const UV_VERSION = "0.13.9"; // newest uv on PyPI when written (2026-11)
export const UV_VERSION_OLD = "0.9.9";
export const VENV = "/opt/pulumi-vllm/venv";
export const UV_BIN = (v = UV_VERSION) => `/opt/pulumi-vllm/uv/${v}/uv`;
export const WHEEL_DIR = "/opt/pv-test-wheels"; // inside the sandbox
export const STANDIN_DIR = path.resolve(__dirname);

/**
 * The sandbox must trust the same CAs as this machine: here HTTPS to PyPI
 * goes through a TLS-inspecting egress proxy whose CA this machine has in
 * /usr/local/share/ca-certificates (a real HPC site with its own CA is the
 * same situation). Copies those .crt files in and runs update-ca-certificates.
 */
export async function trustMachineCAs(sb: Sandbox): Promise<void> {
  const src = "/usr/local/share/ca-certificates";
  const crts = fs.existsSync(src) ? fs.readdirSync(src).filter((f) => f.endsWith(".crt")) : [];
  if (crts.length === 0) return;
  const dst = path.join(sb.root, "usr/local/share/ca-certificates");
  fs.mkdirSync(dst, { recursive: true });
  for (const f of crts) fs.copyFileSync(path.join(src, f), path.join(dst, f));
  await sshOk(sb, "update-ca-certificates >/dev/null 2>&1");
}

export function expectStep(r: StepRun, result: "changed" | "unchanged"): void {
  if (r.code !== 0 || r.result !== result) {
    throw new Error(`step expected to exit 0 with '${result}', got:\n${describeRun(r)}`);
  }
}

export function uvVenvEnv(over: Record<string, string> = {}): Record<string, string> {
  return { PV_UV_VERSION: UV_VERSION, PV_VENV_PATH: VENV, PV_PYTHON: "3.11", ...over };
}

export async function setupVenv(sb: Sandbox): Promise<void> {
  expectStep(await runStep(sb, { step: "uv-venv", action: "create", env: uvVenvEnv() }), "changed");
}

/**
 * Build the stand-in wheel(s) on this machine and put them into the sandbox's WHEEL_DIR; `crash`: builds whose
 * `vllm serve` fails at start (they install, import and answer --version).
 */
export function putStandinWheels(sb: Sandbox, versions: string[], opts: { crash?: boolean } = {}): void {
  const out = path.join(sb.root, WHEEL_DIR.slice(1));
  fs.mkdirSync(out, { recursive: true });
  for (const v of versions) {
    const r = spawnSync("python3", [path.join(STANDIN_DIR, "build-wheel.py"), "--version", v, "--out", out, ...(opts.crash ? ["--crash"] : [])], { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`build-wheel.py ${v} failed: ${r.stderr}`);
  }
}

export function standinInstallEnv(version: string): Record<string, string> {
  return {
    PV_VENV_PATH: VENV,
    PV_UV_BIN: UV_BIN(),
    PV_PACKAGE: `vllm-standin==${version}`,
    PV_DIST_NAME: "vllm-standin",
    PV_DIST_VERSION: version,
    PV_IMPORT_NAME: "vllm_standin",
    PV_FIND_LINKS: WHEEL_DIR,
    PV_NO_INDEX: "1",
  };
}

export async function installStandin(sb: Sandbox, version: string): Promise<StepRun> {
  putStandinWheels(sb, [version]);
  const r = await runStep(sb, { step: "vllm-install", action: "create", env: standinInstallEnv(version) });
  if (r.code !== 0) throw new Error(`installing the stand-in ${version} failed:\n${describeRun(r)}`);
  return r;
}

export interface StandinUnitOpts {
  unitName: string;
  port: number;
  /** The user it runs as, sandboxed as LaunchUnit renders it (default "vllm"); null: as root, unsandboxed (release 0.1.0). */
  serviceUser?: string | null;
  /** HF_HOME, writable for the user (default /var/cache/pulumi-vllm/huggingface). */
  cacheDir?: string;
  served?: string;
  model?: string;
  extraArgs?: string[];
  environment?: Record<string, string>;
  restartSec?: number;
}

export const DEFAULT_CACHE_DIR = "/var/cache/pulumi-vllm/huggingface";
const userOf = (o: StandinUnitOpts): string | null => (o.serviceUser === undefined ? "vllm" : o.serviceUser);
/** Where the stand-in of a unit records itself: in the server's home (writable under the sandbox). */
export const recordPath = (unitName: string) => `${serverHome(unitName)}/record.json`;
const legacyRecordPath = (unitName: string) => `/var/lib/vllm-standin/${unitName}.json`;
export const envFilePath = (unitName: string) => `/etc/pulumi-vllm/${unitName}.env`;

export function standinArgv(o: StandinUnitOpts): string[] {
  return [
    `${VENV}/bin/vllm`, "serve", o.model ?? "Qwen/Qwen2.5-0.5B-Instruct",
    "--host", "127.0.0.1", "--port", String(o.port),
    "--served-model-name", o.served ?? "qwen-test",
    ...(o.extraArgs ?? []),
  ];
}

export function standinUnitSpec(o: StandinUnitOpts): UnitSpec {
  const user = userOf(o);
  const home = serverHome(o.unitName);
  return {
    unitName: o.unitName,
    description: `vLLM (vllm-standin test stand-in) ${o.served ?? "qwen-test"}`,
    execArgv: standinArgv(o),
    // as LaunchUnit renders it (components/host/steps.ts)
    ...(user === null ? {} : { user, group: user, readWritePaths: [home, o.cacheDir ?? DEFAULT_CACHE_DIR] }),
    environment: {
      ...(user === null ? {} : { ...homeEnv(home), HF_HOME: o.cacheDir ?? DEFAULT_CACHE_DIR }),
      NCCL_P2P_DISABLE: "1",
      NCCL_IB_DISABLE: "1",
      VLLM_WORKER_MULTIPROC_METHOD: "spawn",
      VLLM_STANDIN_RECORD: user === null ? legacyRecordPath(o.unitName) : recordPath(o.unitName),
      ...(o.environment ?? {}),
    },
    environmentFile: envFilePath(o.unitName),
    timeoutStartSec: 3000,
    restartSec: o.restartSec ?? 2,
    startLimitBurst: 3,
    startLimitIntervalSec: 600,
    oomScoreAdjust: 900,
  };
}

export function launchEnv(o: StandinUnitOpts, over: Record<string, string> = {}): Record<string, string> {
  return {
    PV_UNIT_NAME: o.unitName,
    PV_UNIT_CONTENT: renderUnit(standinUnitSpec(o)),
    PV_ENV_FILE: envFilePath(o.unitName),
    PV_PORT: String(o.port),
    PV_BIND_HOST: "127.0.0.1",
    PV_REQUIRED_SECRETS: "VLLM_API_KEY",
    ...(userOf(o) === null ? {} : { PV_SERVICE_USER: userOf(o)!, PV_SERVICE_HOME: serverHome(o.unitName), PV_CACHE_DIR: o.cacheDir ?? DEFAULT_CACHE_DIR }),
    ...over,
  };
}

export async function launch(sb: Sandbox, o: StandinUnitOpts, secrets: Record<string, string>, over: Record<string, string> = {}): Promise<StepRun> {
  return runStep(sb, { step: "launch-unit", action: "create", env: launchEnv(o, over), stdin: renderStdin(secrets) });
}

export async function mainPid(sb: Sandbox, unitName: string): Promise<number> {
  return Number((await sshOk(sb, `systemctl show -p MainPID --value ${unitName}`)).trim());
}

export interface StandinRecord {
  argv: string[];
  env: Record<string, string>;
  pid: number;
  version: string;
  /** who it ran as: uid, gid, user, groups, capabilities, NoNewPrivs (test/standin/README.md) */
  identity: { uid: number; gid: number; user: string | null; groups: string[]; capEff: string; capBnd: string; noNewPrivs: string };
  /** directory -> "ok" or the error of creating a file there */
  writes: Record<string, string>;
}

/**
 * Shell text printing the newest stand-in record of a stack's server: in its home (a unit with a
 * service user), else /var/lib/vllm-standin (a unit of release 0.1.0, as root).
 */
export const NEWEST_RECORD = "cat \"$(ls -t /var/lib/pulumi-vllm/home/*/vllm-standin/record.json /var/lib/vllm-standin/record.json 2>/dev/null | head -n 1)\"";

/** The stand-in's record of its argv/env, once the process with `pid` wrote it. */
export async function readRecord(sb: Sandbox, unitName: string, pid?: number, timeoutMs = 20_000): Promise<StandinRecord> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const r = await sshRun(sb, `cat ${recordPath(unitName)} 2>/dev/null || cat ${legacyRecordPath(unitName)}`);
    if (r.code === 0) {
      try {
        const rec = JSON.parse(r.stdout) as StandinRecord;
        if (pid === undefined || rec.pid === pid) return rec;
      } catch {
        /* being written */
      }
    }
    if (Date.now() > deadline) throw new Error(`no record from pid ${pid} in ${recordPath(unitName)}: ${r.stdout}${r.stderr}`);
    await new Promise((res) => setTimeout(res, 300));
  }
}

export function readinessEnv(o: { unitName: string; port: number; served?: string }, over: Record<string, string> = {}): Record<string, string> {
  return {
    PV_UNIT_NAME: o.unitName,
    PV_ENV_FILE: envFilePath(o.unitName),
    PV_BASE_URL: `http://127.0.0.1:${o.port}`,
    PV_SERVED_MODEL: o.served ?? "qwen-test",
    PV_TIMEOUT_SECONDS: "120",
    PV_POLL_SECONDS: "1",
    ...over,
  };
}

/**
 * The stand-in with huggingface_hub (its `hub` extra, from PyPI: the weights
 * step runs the venv's `hf`, which real vLLM brings along).
 */
export async function installStandinWithHub(sb: Sandbox, version: string): Promise<StepRun> {
  putStandinWheels(sb, [version]);
  const env = { ...standinInstallEnv(version), PV_PACKAGE: `vllm-standin[hub]==${version}`, PV_NO_INDEX: "0" };
  const r = await runStep(sb, { step: "vllm-install", action: "create", env });
  if (r.code !== 0) throw new Error(`installing the stand-in ${version} with huggingface_hub failed:\n${describeRun(r)}`);
  return r;
}

/** Bytes that do not compress or repeat: a stand-in for a checkpoint shard. */
export function pseudoWeights(bytes: number, seed = 1): Buffer {
  const b = Buffer.alloc(bytes);
  let x = seed * 2654435761;
  for (let i = 0; i < bytes; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

/** A model repository for the hub stand-in: config.json, a tokenizer and one weights file. */
export function writeHubRepo(root: string, repo: string, weightBytes: number, seed = 1): void {
  const dir = path.join(root, repo);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ architectures: ["Qwen2ForCausalLM"], hidden_size: 64, seed }));
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify({ version: "1.0", seed }));
  fs.writeFileSync(path.join(dir, "model.safetensors"), new Uint8Array(pseudoWeights(weightBytes, seed)));
}
