// `pulumi-vllm plan`: the plan of a stack (or of ad-hoc flags) without the
// Pulumi engine and without touching any host.
//
//   pulumi-vllm plan --stack rig [--dir .] [--json]
//   pulumi-vllm plan --model <id> --gpus <n> --gpu-memory-gib <g> [...]   (USAGE below lists every flag)
//
// Exit codes: 0 fits, 2 does not fit (the problems say what to change), 1 bad input.
import { execFileSync } from "child_process";
import * as path from "path";
import { ConfigError, didYouMean } from "../config/errors";
import { loadStackFile, LoadedConfig, parseStackConfig } from "../config/load";
import { Plan, PlanError } from "../plan/plan";
import { planVllmServer, planVllmSlurmServer, ServerArgsError } from "../api/plan-args";
import { argsOfStackConfig, secretStandIns } from "../api/stack-config";
import { renderPlanText, planJson } from "./render";
import { jsonTerminalSafe, terminalSafe } from "../config/strings";
import { CATALOG } from "../plan/catalog";
import { HubError, withHubModel } from "../plan/hub";
import { compareWithMeasured, MeasuredStartup } from "../plan/measured";

const USAGE = `usage:
  pulumi-vllm plan --stack <name> [--dir <project dir>] [--json] [--no-measured]
  pulumi-vllm plan --model <hf id> --gpus <n> --gpu-memory-gib <g> [options] [--json]

Plans a vLLM server without touching any host: whether the model fits, the KV cache, the
flags. Exit 0 fits, 2 does not fit (the problems say what to change), 1 bad input.

  --stack <name>                 plan Pulumi.<name>.yaml; with --json, the same plan the stack exports
  --dir <dir>                    the project directory holding Pulumi.<name>.yaml (default .)
  --no-measured                  with --stack: do not read the stack's last measured figures
                                 (by default \`pulumi stack output measured\` is read when pulumi is on PATH)
  --model <id>                   Hugging Face id; outside the catalog, config.json and the checkpoint
                                 size are fetched from the Hub (HF_ENDPOINT, default https://huggingface.co;
                                 HF_TOKEN for gated models) into ~/.cache/pulumi-vllm/hub (PULUMI_VLLM_HUB_CACHE)
  --revision <rev>               branch, tag or commit of the model repository (default main)
  --model-config <file>          a local config.json instead of the catalog or the Hub
  --offline                      never ask the Hub: the cache or --model-config only (same as HF_HUB_OFFLINE=1)
  --hub-timeout <s>              seconds to wait for the Hub (default 20)
  --gpus <n>                     GPUs on the host
  --gpu-memory-gib <g>           memory of one GPU, GiB as nvidia-smi shows it
  --gpu-name <name>              GPU name as nvidia-smi shows it (vLLM's defaults depend on it, e.g. A100 vs H100)
  --tensor-parallel <n>          tensor-parallel size (default: --gpus)
  --gpu-memory-utilization <u>   vLLM's --gpu-memory-utilization (default: the release's, 0.9 or 0.92)
  --max-model-len <L|auto>       vLLM's --max-model-len (default: the model's context)
  --max-num-seqs <s>             vLLM's --max-num-seqs (default: the release's for this GPU)
  --max-num-batched-tokens <b>   vLLM's --max-num-batched-tokens (default: the release's for this GPU)
  --quantization <q>             none, gptq, gptq_marlin, awq, awq_marlin, fp8, bitsandbytes, mxfp4, compressed-tensors
  --kv-cache-dtype <d>           auto, float16, bfloat16, fp8, fp8_e4m3, fp8_e5m2
  --vllm-version <v>             the vLLM release to plan for, PEP 440 (default 0.33.0)
  --host-ram-gib <r>             host RAM, to check loading (default: not checked)
  --free-disk-gib <d>            free disk, to check the checkpoint and venv fit (default: not checked)
  --json                         the plan as JSON
  --help                         this text`;

const VALUE_FLAGS = [
  "stack", "dir", "model", "model-config", "gpus", "gpu-memory-gib", "gpu-memory-utilization", "max-model-len",
  "quantization", "kv-cache-dtype", "max-num-seqs", "max-num-batched-tokens", "tensor-parallel", "host-ram-gib",
  "free-disk-gib", "vllm-version", "gpu-name", "hub-timeout", "revision",
];
const BOOL_FLAGS = ["json", "help", "offline", "no-measured"];

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
      ...(flags.revision ? { revision: flags.revision } : {}),
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

export const inCatalog = (id: string) => CATALOG.has(id.toLowerCase());

/**
 * The config with a model outside the catalog fetched from the Hub (config.json and the checkpoint
 * size, cached; see plan/hub.ts). The CLI cannot decrypt a stack's hfToken secret: it reads HF_TOKEN.
 */
export async function withHub(loaded: LoadedConfig, flags: Record<string, string | boolean>, env: NodeJS.ProcessEnv = process.env): Promise<LoadedConfig> {
  const timeout = num(flags, "hub-timeout");
  if (timeout !== undefined && !(timeout > 0)) throw new ConfigError([`--hub-timeout: ${timeout} is not a positive number of seconds -> give e.g. 20`], "command line");
  try {
    const model = await withHubModel(loaded.config.model, inCatalog, {
      token: env.HF_TOKEN || undefined,
      ...(flags.offline ? { offline: true } : {}),
      ...(timeout !== undefined ? { timeoutMs: timeout * 1000 } : {}),
    });
    return model === loaded.config.model ? loaded : { ...loaded, config: { ...loaded.config, model } };
  } catch (e) {
    if (e instanceof HubError) throw new ConfigError([e.message], flags.stack !== undefined ? `stack ${flags.stack}` : "command line");
    throw e;
  }
}

export async function planFromFlags(flags: Record<string, string | boolean>, cwd: string): Promise<{ plan: Plan; stack?: string; loaded: LoadedConfig }> {
  if (flags.stack !== undefined) {
    const dir = path.resolve(cwd, (flags.dir as string) ?? ".");
    const stack = String(flags.stack);
    const loaded = await withHub(loadStackFile(path.join(dir, `Pulumi.${stack}.yaml`)), flags);
    return { plan: planOfStack(loaded, `stack ${stack}`), stack, loaded };
  }
  const loaded = await withHub(adHocConfig(flags), flags);
  return { plan: planOfStack(loaded, "command line"), loaded };
}

/**
 * The stack's last measured startup figures (`pulumi stack output measured`), read with the
 * `pulumi` on PATH in the project directory; undefined when there is no pulumi, no such stack,
 * no output yet, or --no-measured. Optional: the plan never depends on it.
 */
export function readMeasured(stack: string, dir: string, env: NodeJS.ProcessEnv = process.env): MeasuredStartup | undefined {
  // Quiet on every failure (no pulumi, no such stack in this backend, no output yet, a locked
  // passphrase): the plan is the same without it, and its text must not depend on the machine.
  try {
    const text = execFileSync("pulumi", ["stack", "output", "measured", "--json", "--stack", stack, "--cwd", dir, "--non-interactive"], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "ignore"],
      timeout: 30_000,
      env,
    });
    const v = JSON.parse(text);
    return v && typeof v === "object" && !Array.isArray(v) && Object.keys(v).length ? (v as MeasuredStartup) : undefined;
  } catch {
    return undefined;
  }
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
    const { plan, stack, loaded } = await planFromFlags(flags, cwd);
    const measured = stack !== undefined && !flags["no-measured"] ? readMeasured(stack, path.resolve(cwd, (flags.dir as string) ?? ".")) : undefined;
    const vs = measured ? { measured, ...compareWithMeasured(plan.gpu, measured) } : undefined;
    // Nothing reaches the terminal raw: a bidi or zero-width character in a model's config.json (or
    // anywhere) would make the plan read differently from what runs.
    out.write(flags.json ? jsonTerminalSafe(JSON.stringify(planJson(plan, stack, vs), null, 2)) + "\n" : terminalSafe(renderPlanText(plan, loaded.config, stack, vs)));
    return plan.fits ? 0 : 2;
  } catch (e) {
    if (e instanceof ConfigError || e instanceof PlanError || e instanceof ServerArgsError) {
      err.write(terminalSafe(e.message) + "\n");
      return 1;
    }
    throw e;
  }
}
