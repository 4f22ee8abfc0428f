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
import { ConfigError, didYouMean } from "../config/errors";
import { loadStackFile, LoadedConfig, parseStackConfig } from "../config/load";
import { makePlan, Plan, PlanError } from "../plan/plan";
import { renderPlanText, planJson } from "./render";
import { jsonTerminalSafe, terminalSafe } from "../config/strings";

const USAGE = `usage:
  pulumi-vllm plan --stack <name> [--dir <project dir>] [--json]
  pulumi-vllm plan --model <hf id> [--model-config config.json] --gpus <n> --gpu-memory-gib <g>
      [--gpu-memory-utilization <u>] [--max-model-len <L>] [--quantization <q>] [--kv-cache-dtype <d>]
      [--max-num-seqs <s>] [--max-num-batched-tokens <b>] [--tensor-parallel <n>] [--host-ram-gib <r>]
      [--free-disk-gib <d>] [--vllm-version <v>] [--json]`;

const VALUE_FLAGS = [
  "stack", "dir", "model", "model-config", "gpus", "gpu-memory-gib", "gpu-memory-utilization", "max-model-len",
  "quantization", "kv-cache-dtype", "max-num-seqs", "max-num-batched-tokens", "tensor-parallel", "host-ram-gib",
  "free-disk-gib", "vllm-version", "gpu-name",
];
const BOOL_FLAGS = ["json", "help"];

export function parseArgs(args: string[]): Record<string, string | boolean> {
  const out: Record<string, string | boolean> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith("--")) throw new ConfigError([`${a}: unexpected argument -> flags start with --\n${USAGE}`], "command line");
    const [name, inline] = a.slice(2).split(/=(.*)/s, 2);
    if (BOOL_FLAGS.includes(name)) {
      out[name] = true;
    } else if (VALUE_FLAGS.includes(name)) {
      const v = inline ?? args[++i];
      if (v === undefined) throw new ConfigError([`--${name}: needs a value`], "command line");
      out[name] = v;
    } else {
      const guess = didYouMean(name, [...VALUE_FLAGS, ...BOOL_FLAGS]);
      throw new ConfigError([`--${name}: unknown flag -> ${guess ? `did you mean --${guess}? ` : ""}see usage:\n${USAGE}`], "command line");
    }
  }
  return out;
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

export function planFromFlags(flags: Record<string, string | boolean>, cwd: string): { plan: Plan; stack?: string; loaded: LoadedConfig } {
  if (flags.stack !== undefined) {
    const dir = path.resolve(cwd, (flags.dir as string) ?? ".");
    const stack = String(flags.stack);
    const loaded = loadStackFile(path.join(dir, `Pulumi.${stack}.yaml`));
    return { plan: makePlan(loaded), stack, loaded };
  }
  const loaded = adHocConfig(flags);
  return { plan: makePlan(loaded), loaded };
}

export async function main(argv: string[], out = process.stdout, err = process.stderr, cwd = process.cwd()): Promise<number> {
  const [cmd, ...rest] = argv;
  if (cmd !== "plan") {
    err.write(`${cmd ? `unknown command ${cmd}\n` : ""}${USAGE}\n`);
    return 1;
  }
  try {
    const flags = parseArgs(rest);
    if (flags.help) {
      out.write(USAGE + "\n");
      return 0;
    }
    const { plan, stack, loaded } = planFromFlags(flags, cwd);
    // Nothing reaches the terminal raw: a bidi or zero-width character in a model's config.json (or
    // anywhere) would make the plan read differently from what runs.
    out.write(flags.json ? jsonTerminalSafe(JSON.stringify(planJson(plan, stack), null, 2)) + "\n" : terminalSafe(renderPlanText(plan, loaded.config, stack)));
    return plan.fits ? 0 : 2;
  } catch (e) {
    if (e instanceof ConfigError || e instanceof PlanError) {
      err.write(terminalSafe(e.message) + "\n");
      return 1;
    }
    throw e;
  }
}
