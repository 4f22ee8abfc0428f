// `pulumi-vllm plan`: the plan of a stack (or of ad-hoc flags) without the
// Pulumi engine and without touching any host.
//
//   pulumi-vllm plan --stack rig [--dir .] [--json]
//   pulumi-vllm plan --model <id> [--model-config config.json] --gpus <n> --gpu-memory-gib <g>
//       [--gpu-memory-utilization u] [--max-model-len L] [--quantization q] [--kv-cache-dtype d]
//       [--max-num-seqs s] [--max-num-batched-tokens b] [--tensor-parallel n] [--host-ram-gib r]
//       [--vllm-version v] [--json]
//
// Exit codes: 0 fits, 2 does not fit (the problems say what to change), 1 bad input.
import * as path from "path";
import { ConfigError } from "../config/errors";
import { loadStackFile, LoadedConfig, parseStackConfig } from "../config/load";
import { Plan, PlanError } from "../plan/plan";
import { planVllmServer, planVllmSlurmServer, ServerArgsError } from "../api/plan-args";
import { argsOfStackConfig, secretStandIns } from "../api/stack-config";
import { renderPlanText, planJson } from "./render";
import { jsonTerminalSafe, terminalSafe } from "../config/strings";
import { parseFlags, ParseOptions, Writer } from "./flags";

export const PLAN_USAGE = `usage:
  pulumi-vllm plan --stack <name> [--dir <project dir>] [--json]
  pulumi-vllm plan --model <hf id> [--model-config config.json] --gpus <n> --gpu-memory-gib <g>
      [--gpu-name <name>] [--gpu-memory-utilization <u>] [--max-model-len <L>] [--quantization <q>]
      [--kv-cache-dtype <d>] [--max-num-seqs <s>] [--max-num-batched-tokens <b>] [--tensor-parallel <n>]
      [--host-ram-gib <r>] [--free-disk-gib <d>] [--vllm-version <v>] [--json]

The plan of a stack file (Pulumi.<name>.yaml) or of ad-hoc flags: memory per GPU, host RAM/swap/disk,
the vllm serve command line, the host steps and the verdict. No engine, no host.
  --stack <name>          read Pulumi.<name>.yaml in --dir (default: the current directory)
  --model <id>            a Hugging Face id (org/name) from the catalog, or with --model-config
  --model-config <file>   the model's config.json, for models not in the catalog
  --gpus <n>              GPUs (tensor parallel defaults to it); --gpu-memory-gib: memory per GPU
  --gpu-name <name>       e.g. "RTX 3090" (vLLM's scheduler defaults depend on the card)
  --json                  machine-readable: fits, weightsGiB, kvCacheGiB, kvCacheTokens, maxModelLen, ...
Exit codes: 0 fits, 2 does not fit (the problems say what to change), 1 bad input.`;

export const PLAN_VALUE_FLAGS = [
  "stack", "dir", "model", "model-config", "gpus", "gpu-memory-gib", "gpu-memory-utilization", "max-model-len",
  "quantization", "kv-cache-dtype", "max-num-seqs", "max-num-batched-tokens", "tensor-parallel", "host-ram-gib",
  "free-disk-gib", "vllm-version", "gpu-name",
];

/** The plan command's flags (util.parseArgs; errors say what to change). */
export function parseArgs(args: string[]): Record<string, string | boolean> {
  const options: ParseOptions = { json: { type: "boolean" }, help: { type: "boolean", short: "h" } };
  for (const f of PLAN_VALUE_FLAGS) options[f] = { type: "string" };
  return parseFlags(args, options, PLAN_USAGE) as Record<string, string | boolean>;
}

function num(flags: Record<string, string | boolean>, name: string): number | undefined {
  const v = flags[name];
  if (v === undefined) return undefined;
  const n = Number(v);
  if (typeof v !== "string" || v.trim() === "" || !Number.isFinite(n)) {
    throw new ConfigError([`--${name}: ${JSON.stringify(v)} is not a number -> give a number`], "command line");
  }
  return n;
}

/** Ad-hoc flags as a stack config: one host, no connection (plan only). */
export function adHocConfig(flags: Record<string, string | boolean>): LoadedConfig {
  const missing = ["model", "gpus", "gpu-memory-gib"].filter((k) => flags[k] === undefined);
  if (missing.length) {
    throw new ConfigError(missing.map((k) => `--${k}: is required for an ad-hoc plan -> pass --${k} (or use --stack <name>)`), "command line");
  }
  const gpus = num(flags, "gpus")!;
  const maxLen = flags["max-model-len"];
  const values = {
    topology: "single",
    connection: { host: "plan-only", insecureSkipHostKeyCheck: true, privateKeyPath: "-" },
    hardware: {
      gpuCount: gpus,
      gpuMemoryGiB: num(flags, "gpu-memory-gib"),
      gpuName: (flags["gpu-name"] as string) ?? "unknown GPU",
      // Without --host-ram-gib the host side is not the question: assume a roomy host.
      hostRamGiB: num(flags, "host-ram-gib") ?? 1024,
      freeDiskGiB: num(flags, "free-disk-gib") ?? 100000,
    },
    model: {
      id: flags.model,
      ...(flags["model-config"] ? { configPath: flags["model-config"] } : {}),
      ...(flags.quantization ? { quantization: flags.quantization } : {}),
      ...(flags["kv-cache-dtype"] ? { kvCacheDtype: flags["kv-cache-dtype"] } : {}),
    },
    serving: {
      tensorParallel: num(flags, "tensor-parallel") ?? gpus,
      ...(flags["gpu-memory-utilization"] ? { gpuMemoryUtilization: num(flags, "gpu-memory-utilization") } : {}),
      ...(maxLen ? { maxModelLen: /^\d+$/.test(String(maxLen)) ? Number(maxLen) : maxLen } : {}),
      ...(flags["max-num-seqs"] ? { maxNumSeqs: num(flags, "max-num-seqs") } : {}),
      ...(flags["max-num-batched-tokens"] ? { maxNumBatchedTokens: num(flags, "max-num-batched-tokens") } : {}),
      apiKey: "none",
    },
    vllm: { version: (flags["vllm-version"] as string) ?? "0.33.0" },
    host: { swap: { mode: "auto" } },
  };
  return parseStackConfig(values, "command line");
}

/** The plan of a stack's config, made by the library's own plan function (what `new VllmServer` runs first). */
export function planOfStack(loaded: LoadedConfig, where: string): Plan {
  const server = argsOfStackConfig(loaded.config, secretStandIns(loaded));
  return server.topology === "slurm" ? planVllmSlurmServer(server.args, where).plan : planVllmServer(server.args, where).plan;
}

export function planFromFlags(flags: Record<string, string | boolean>, cwd: string): { plan: Plan; stack?: string; loaded: LoadedConfig } {
  if (flags.stack !== undefined) {
    const dir = path.resolve(cwd, (flags.dir as string) ?? ".");
    const stack = String(flags.stack);
    const loaded = loadStackFile(path.join(dir, `Pulumi.${stack}.yaml`));
    return { plan: planOfStack(loaded, `stack ${stack}`), stack, loaded };
  }
  const loaded = adHocConfig(flags);
  return { plan: planOfStack(loaded, "command line"), loaded };
}

export async function runPlan(rest: string[], out: Writer, err: Writer, cwd: string): Promise<number> {
  try {
    const flags = parseArgs(rest);
    if (flags.help) {
      out.write(PLAN_USAGE + "\n");
      return 0;
    }
    const { plan, stack, loaded } = planFromFlags(flags, cwd);
    // Nothing reaches the terminal raw: a bidi or zero-width character in a model's config.json (or
    // anywhere) would make the plan read differently from what runs.
    out.write(flags.json ? jsonTerminalSafe(JSON.stringify(planJson(plan, stack), null, 2)) + "\n" : terminalSafe(renderPlanText(plan, loaded.config, stack)));
    return plan.fits ? 0 : 2;
  } catch (e) {
    if (e instanceof ConfigError || e instanceof PlanError || e instanceof ServerArgsError) {
      err.write(terminalSafe(e.message) + "\n");
      return 1;
    }
    throw e;
  }
}

