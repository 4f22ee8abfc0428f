// The vllm tier's plumbing: where the installed releases are, the probe that
// asks a release's own parser, the flag table's expectations per release, and
// the plans whose command lines are parsed.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { loadStackFile, parseStackConfig, LoadedConfig } from "../../components/config/load";
import { makePlan, Plan } from "../../components/plan/plan";
import { compareVersions } from "../../components/plan/vllm-versions";
import history from "../../components/plan/data/vllm-flag-history.json";
import releasesFile from "./releases.json";

export const ROOT = path.join(__dirname, "..", "..");
export const RELEASES: string[] = releasesFile.releases;
const CACHE = process.env.PULUMI_VLLM_CACHE ?? path.join(os.homedir(), ".cache", "pulumi-vllm");
export const RELEASES_DIR = path.join(CACHE, "vllm-releases");

export const venvPython = (release: string) => path.join(RELEASES_DIR, "venvs", release, "bin", "python");

// ---- the probe -------------------------------------------------------------

export interface ProbeRequest {
  flags: string[];
  values: [string, string][];
  argvs: { id: string; argv: string[] }[];
  batchDefaults: { id: string; memoryGiB: number; name: string }[];
}
export interface ProbeAnswer {
  version: string;
  parserModule: string;
  flags: Record<string, { accepted: boolean; error: string | null }>;
  values: { flag: string; value: string; accepted: boolean; error: string | null }[];
  envs: string[];
  argvs: { id: string; ok: boolean; error: string | null; namespace: Record<string, unknown> | null }[];
  gpuMemoryUtilizationDefault: number;
  batchDefaults: { id: string; maxNumSeqs?: number; maxNumBatchedTokens?: number; unsupported?: string }[];
}

/** Runs test/vllm/probe.py in the release's venv (one process: importing vLLM costs 10-60 s). */
export function probe(release: string, req: ProbeRequest): ProbeAnswer {
  const py = venvPython(release);
  const marker = path.join(RELEASES_DIR, "venvs", release, ".pv-installed");
  if (!fs.existsSync(py) || !fs.existsSync(marker)) {
    throw new Error(`vllm ${release} is not installed in ${RELEASES_DIR}/venvs -> run scripts/ensure-vllm-releases.sh (npm run test:vllm does)`);
  }
  let out: Buffer;
  try {
    out = execFileSync(py, [path.join(__dirname, "probe.py")], {
      input: JSON.stringify(req),
      env: { ...process.env, VLLM_LOGGING_LEVEL: "ERROR", PYTHONWARNINGS: "ignore" },
      maxBuffer: 256 * 1024 * 1024,
      stdio: ["pipe", "pipe", "pipe"],
      timeout: 20 * 60 * 1000,
    });
  } catch (e) {
    const stderr = String((e as { stderr?: Buffer }).stderr ?? "");
    const missing = /ModuleNotFoundError: No module named '([^']+)'/.exec(stderr);
    throw new Error(
      `the probe failed in vllm ${release}:\n${stderr.split("\n").slice(-15).join("\n")}${
        missing ? `\n-> if ${missing[1]} is left out by test/vllm/excludes.txt, this release's parser needs it: delete that line` : ""
      }`,
    );
  }
  return JSON.parse(out.toString()) as ProbeAnswer;
}

// ---- what the flag table says ----------------------------------------------

interface Entry {
  introduced: string | null;
  removed: string | null;
  acceptedAgainFrom?: string | null;
  values?: Record<string, unknown>;
}
export const FLAGS = history.flags as Record<string, Entry>;
export const ENVS = history.env as Record<string, Entry>;

const atLeast = (v: string, w: string | null | undefined) => !w || compareVersions(v, w) >= 0;
const below = (v: string, w: string | null | undefined) => !w || compareVersions(v, w) < 0;

/** Does the table say release v accepts this entry? */
export function tableAccepts(e: { introduced?: string | null; removed?: string | null; acceptedAgainFrom?: string | null }, v: string): boolean {
  if (!atLeast(v, e.introduced)) return false;
  if (below(v, e.removed)) return true;
  return !!e.acceptedAgainFrom && atLeast(v, e.acceptedAgainFrom);
}

export function describeEntry(e: Entry): string {
  const parts = [`introduced ${e.introduced ?? "before 0.6.0"}`];
  if (e.removed) parts.push(`removed ${e.removed}`);
  if (e.acceptedAgainFrom) parts.push(`accepted again from ${e.acceptedAgainFrom}`);
  return parts.join(", ");
}

/** A flag's values with a version range in the table (e.g. --kv-cache-dtype bfloat16 from 0.11.0). */
export function valueRules(): { flag: string; value: string; introduced: string | null; removed: string | null }[] {
  const out: { flag: string; value: string; introduced: string | null; removed: string | null }[] = [];
  for (const [flag, e] of Object.entries(FLAGS)) {
    for (const [value, rule] of Object.entries(e.values ?? {})) {
      if (rule === null || typeof rule === "string") out.push({ flag, value, introduced: rule, removed: null });
      else if (typeof rule === "object" && ("introduced" in (rule as object) || "removed" in (rule as object))) {
        const r = rule as { introduced?: string | null; removed?: string | null };
        out.push({ flag, value, introduced: r.introduced ?? null, removed: r.removed ?? null });
      }
    }
  }
  return out;
}

/** A value no release knows: if a parser accepts it, the flag has no choices and absence cannot be seen at parse time. */
export const BOGUS_VALUE = "pv-no-such-value";

// ---- plans whose command lines the real parser reads ---------------------

export interface Case {
  id: string;
  plan: Plan;
  config: LoadedConfig["config"];
  /** the command line after `vllm serve`, per node role */
  roles: { role: string; argv: string[] }[];
}

const single = (version: string, patch: Record<string, any> = {}) =>
  parseStackConfig(
    {
      topology: "single",
      connection: { host: "h", privateKeyPath: "k", insecureSkipHostKeyCheck: true },
      hardware: { gpuCount: 1, gpuMemoryGiB: 80, gpuName: "NVIDIA H100 80GB HBM3", hostRamGiB: 256, freeDiskGiB: 2000 },
      model: { id: "meta-llama/Llama-3.1-8B-Instruct" },
      ...patch,
      vllm: { version, ...(patch.vllm ?? {}) },
    },
    "matrix",
  );

const cluster = (version: string, launcher: "ray" | "native") =>
  parseStackConfig(
    {
      topology: "slurm",
      connection: { host: "login", privateKeyPath: "k", insecureSkipHostKeyCheck: true },
      hardware: { gpuCount: 4, gpuMemoryGiB: 80, gpuName: "NVIDIA H100 80GB HBM3", hostRamGiB: 512, freeDiskGiB: 2000, interconnect: "nvlink" },
      model: { id: "meta-llama/Llama-3.1-70B-Instruct" },
      serving: { tensorParallel: 4, pipelineParallel: 2, bindHost: "0.0.0.0", maxModelLen: 16384 },
      vllm: { version },
      slurm: {
        partition: "gpu",
        nodes: 2,
        gpusPerNode: 4,
        sharedVenvPath: "/shared/venv",
        sharedCacheDir: "/shared/cache",
        logDir: "/shared/logs",
        launcher,
      },
    },
    "matrix",
  );

/** The plans every release is checked with: one knob at a time off a base that fits. */
export function matrix(version: string): { id: string; loaded: LoadedConfig }[] {
  return [
    { id: "base", loaded: single(version) },
    { id: "tool-parser hermes", loaded: single(version, { model: { id: "Qwen/Qwen2.5-7B-Instruct" }, serving: { enableAutoToolChoice: true, toolCallParser: "hermes" } }) },
    { id: "tool-parser llama3_json", loaded: single(version, { serving: { enableAutoToolChoice: true, toolCallParser: "llama3_json" } }) },
    { id: "kv-cache-dtype fp8", loaded: single(version, { model: { id: "meta-llama/Llama-3.1-8B-Instruct", kvCacheDtype: "fp8" } }) },
    { id: "kv-cache-dtype fp8_e5m2", loaded: single(version, { model: { id: "meta-llama/Llama-3.1-8B-Instruct", kvCacheDtype: "fp8_e5m2" } }) },
    { id: "kv-cache-dtype bfloat16", loaded: single(version, { model: { id: "meta-llama/Llama-3.1-8B-Instruct", kvCacheDtype: "bfloat16" } }) },
    { id: "quantization fp8", loaded: single(version, { model: { id: "meta-llama/Llama-3.1-8B-Instruct", quantization: "fp8" } }) },
    { id: "quantization bitsandbytes", loaded: single(version, { model: { id: "meta-llama/Llama-3.1-8B-Instruct", quantization: "bitsandbytes" } }) },
    { id: "pre-quantized AWQ", loaded: single(version, { model: { id: "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4" } }) },
    { id: "enforce-eager", loaded: single(version, { serving: { enforceEager: true } }) },
    {
      id: "TP 2 x PP 2",
      loaded: single(version, {
        hardware: { gpuCount: 4, gpuMemoryGiB: 80, gpuName: "NVIDIA H100 80GB HBM3", hostRamGiB: 256, freeDiskGiB: 2000, interconnect: "nvlink" },
        serving: { tensorParallel: 2, pipelineParallel: 2 },
      }),
    },
    { id: "small GPU defaults", loaded: single(version, { hardware: { gpuCount: 1, gpuMemoryGiB: 24, gpuName: "NVIDIA GeForce RTX 3090", hostRamGiB: 64, freeDiskGiB: 500 }, serving: { maxModelLen: 8192 } }) },
    { id: "served name, port, bind, 32k", loaded: single(version, { serving: { servedModelName: "chat", port: 8123, bindHost: "0.0.0.0", maxModelLen: "32k", maxNumSeqs: 64, maxNumBatchedTokens: 4096, gpuMemoryUtilization: 0.8 } }) },
    { id: "extraArgs", loaded: single(version, { serving: { extraArgs: ["--enable-prefix-caching", "--seed", "7"] } }) },
    // Ray only where vLLM has no native multi-node launch (the config refuses it from 0.11.1).
    ...(compareVersions(version, "0.11.1") < 0 ? [{ id: "multi-node ray", loaded: cluster(version, "ray") }] : []),
    { id: "multi-node native", loaded: cluster(version, "native") },
  ];
}

/** Every example stack (Pulumi.<name>.yaml) at the release it pins; the stand-in package is swapped for the real one. */
export function exampleStacks(): { id: string; version: string; loaded: LoadedConfig }[] {
  // The stacks the project ships (tracked by git), not the stack files other test tiers write
  // beside them while they run (Pulumi.slurm-<pid>.yaml, Pulumi.e2e-*.yaml).
  let shipped: string[];
  try {
    shipped = execFileSync("git", ["ls-files", "--", "Pulumi.*.yaml"], { cwd: ROOT, encoding: "utf8" }).split("\n").filter(Boolean);
  } catch {
    shipped = fs.readdirSync(ROOT); // not a git checkout
  }
  return shipped
    .filter((f) => /^Pulumi\.[^.]+\.yaml$/.test(f))
    .map((f) => {
      const loaded = loadStackFile(path.join(ROOT, f));
      return { id: f, version: loaded.config.vllm.version, loaded };
    });
}

const HEAD_IP = "10.1.0.1";
/** Shell words of a rendered line (single/double quotes, no expansions beyond the two we substitute). */
function words(line: string): string[] {
  const s = line.replace(/"\$HEAD_IP"/g, HEAD_IP).replace(/"\$SLURM_NODEID"/g, "1");
  return (s.match(/'[^']*'|"[^"]*"|\S+/g) ?? []).map((w) => w.replace(/^'(.*)'$/, "$1").replace(/^"(.*)"$/, "$1"));
}

/** The argv after `vllm serve` for each node that runs vLLM, as the batch script runs it. */
export function rolesOf(plan: Plan, config: LoadedConfig["config"]): { role: string; argv: string[] }[] {
  const base = plan.launch.argv.slice(2); // drop <venv>/bin/vllm serve
  if (config.topology !== "slurm" || config.slurm.nodes === 1 || !plan.batchScript) return [{ role: "server", argv: base }];
  const script = plan.batchScript;
  if (config.slurm.launcher === "native") {
    const tails = [...script.matchAll(/exec "\$@" ([^;\n]*)/g)].map((m) => words(m[1]));
    if (tails.length !== 2) throw new Error(`expected a head and a worker line in the batch script:\n${script}`);
    return [
      { role: "head (node-rank 0)", argv: [...base, ...tails[0]] },
      { role: "worker (node-rank 1, headless)", argv: [...base, ...tails[1]] },
    ];
  }
  const m = /^(.*\/bin\/vllm serve .*)$/m.exec(script.split("\n").filter((l) => !l.includes("srun")).join("\n"));
  if (!m) throw new Error(`no vllm serve line in the batch script:\n${script}`);
  const w = words(m[1]);
  return [{ role: "head (ray)", argv: w.slice(2) }];
}

export function caseOf(id: string, loaded: LoadedConfig): Case {
  const plan = makePlan(loaded);
  return { id, plan, config: loaded.config, roles: rolesOf(plan, loaded.config) };
}
