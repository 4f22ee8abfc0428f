// The `vllm serve` command line and environment, rendered from the config
// and the plan. Pure: the single-host unit and the SLURM batch script both
// run exactly this. Secrets are never in here: they are named in
// `secretEnv` and reach the process through a root-only environment file
// (VLLM_API_KEY keeps the key out of argv, VLLM-FACTS.md "Flags").
import type { StackConfig } from "../config/schema";
import type { ModelArch } from "./catalog";
import { terminalSafe } from "../config/strings";
import history from "./data/vllm-flag-history.json";
import { compareVersions } from "./vllm-versions";
import { downloadsWeights } from "./times";

/**
 * Up to this release `--quantization bitsandbytes` also needs `--load-format
 * bitsandbytes` (a ValueError at start otherwise); later ones set it themselves
 * (data/vllm-flag-history.json "--load-format").
 */
const BNB_LOAD_FORMAT_UNTIL: string = history.flags["--load-format"].values.bitsandbytes.requiredWithQuantizationBitsandbytesUntil;

export interface Launch {
  argv: string[];
  env: Record<string, string>;
  /** Secret variables the process gets from its environment file (values elsewhere). */
  secretEnv: string[];
  servedModelName: string;
  maxModelLen: number;
}

export function servedModelName(c: StackConfig): string {
  return c.serving.servedModelName ?? c.model.id;
}

/** NCCL defaults by interconnect: seed 001's PCIe x1 riser rig needed P2P and IB off. */
export function ncclEnv(c: StackConfig): Record<string, string> {
  const riser = c.hardware.interconnect === "pcie-x1-riser";
  const env: Record<string, string> = {};
  const p2pOff = c.nccl.p2pDisable ?? riser;
  const ibOff = c.nccl.ibDisable ?? (riser || c.topology === "single");
  if (p2pOff) env.NCCL_P2P_DISABLE = "1";
  if (ibOff) env.NCCL_IB_DISABLE = "1";
  if (c.nccl.socketIfname) env.NCCL_SOCKET_IFNAME = c.nccl.socketIfname;
  if (c.nccl.ibTimeout !== undefined) env.NCCL_IB_TIMEOUT = String(c.nccl.ibTimeout);
  if (c.nccl.debug) env.NCCL_DEBUG = c.nccl.debug;
  if (c.nccl.blockingWait) env.TORCH_NCCL_BLOCKING_WAIT = "1";
  return env;
}

export interface LaunchInput {
  maxModelLen: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  venvPath: string;
  hasHfToken: boolean;
}

export function renderLaunch(c: StackConfig, arch: ModelArch, i: LaunchInput): Launch {
  const { maxModelLen, venvPath } = i;
  const s = c.serving;
  const name = servedModelName(c);
  const argv = [`${venvPath}/bin/vllm`, "serve", c.model.id];
  const add = (flag: string, value?: string | number) => {
    argv.push(flag);
    if (value !== undefined) argv.push(String(value));
  };
  if (c.model.revision) add("--revision", c.model.revision);
  add("--host", s.bindHost);
  add("--port", s.port);
  add("--served-model-name", name);
  if (s.tensorParallel > 1) add("--tensor-parallel-size", s.tensorParallel);
  if (s.pipelineParallel > 1) add("--pipeline-parallel-size", s.pipelineParallel);
  add("--gpu-memory-utilization", s.gpuMemoryUtilization);
  add("--max-model-len", maxModelLen);
  add("--max-num-seqs", i.maxNumSeqs);
  add("--max-num-batched-tokens", i.maxNumBatchedTokens);
  // A pre-quantized checkpoint declares its method in config.json and vLLM picks the fastest kernel;
  // naming it again would pin e.g. plain gptq over gptq_marlin.
  if (c.model.quantization !== "none" && c.model.quantization !== arch.quantization?.method) add("--quantization", c.model.quantization);
  if (c.model.quantization === "bitsandbytes" && compareVersions(c.vllm.version, BNB_LOAD_FORMAT_UNTIL) <= 0) add("--load-format", "bitsandbytes");
  if (c.model.dtype !== "auto") add("--dtype", c.model.dtype);
  if (c.model.kvCacheDtype !== "auto") add("--kv-cache-dtype", c.model.kvCacheDtype);
  if (c.model.trustRemoteCode) add("--trust-remote-code");
  if (s.enforceEager) add("--enforce-eager");
  if (s.enableAutoToolChoice) add("--enable-auto-tool-choice");
  if (s.toolCallParser) add("--tool-call-parser", s.toolCallParser);
  argv.push(...s.extraArgs);

  const env: Record<string, string> = {
    ...ncclEnv(c),
    // spawn, not fork: CUDA cannot be re-initialised in a forked child (seed 000).
    VLLM_WORKER_MULTIPROC_METHOD: "spawn",
    HF_HOME: c.topology === "slurm" ? `${c.slurm.sharedCacheDir}/huggingface` : c.host.cacheDir,
    // Progress bars in a journal are one line per update; keep vLLM's log lines instead.
    PYTHONUNBUFFERED: "1",
    // The weights step downloaded the model into HF_HOME before the start: vLLM must not fetch (or
    // re-resolve the revision) inside the readiness wait.
    ...(downloadsWeights(c) ? { HF_HUB_OFFLINE: "1" } : {}),
    ...c.host.env,
  };
  const secretEnv: string[] = [];
  if (s.apiKey !== "none") secretEnv.push("VLLM_API_KEY");
  if (i.hasHfToken) secretEnv.push("HF_TOKEN");
  return { argv, env, secretEnv, servedModelName: name, maxModelLen };
}

/**
 * The rendered flags whose values exist only in some vLLM releases, with the
 * config key that set them: checked against the flag table's "values"
 * (e.g. --kv-cache-dtype bfloat16 needs 0.11.0, --tool-call-parser
 * llama3_json 0.6.3; test/vllm found both refused by 0.6.0's parser).
 */
export function versionedValues(c: StackConfig): { flag: string; value: string; where: string }[] {
  const out: { flag: string; value: string; where: string }[] = [];
  if (c.model.kvCacheDtype !== "auto") out.push({ flag: "--kv-cache-dtype", value: c.model.kvCacheDtype, where: "model.kvCacheDtype" });
  if (c.serving.toolCallParser) out.push({ flag: "--tool-call-parser", value: c.serving.toolCallParser, where: "serving.toolCallParser" });
  return out;
}

/**
 * Shell-quote one word, for the `plan` command's command line and the SLURM
 * batch script. A word holding a character a terminal would not show as
 * itself (control, bidi, zero-width; the schema refuses these in config)
 * is written in bash's $'...' form with that character escaped, so the text
 * shown is the text that runs.
 */
export function shellQuote(s: string): string {
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(s)) return s;
  if (terminalSafe(s) === s && !/[\n\t]/.test(s)) return `'${s.replace(/'/g, `'\\''`)}'`;
  let out = "";
  for (const ch of s) {
    const code = ch.codePointAt(0)!;
    if (ch === "\\" || ch === "'") out += "\\" + ch;
    else if (terminalSafe(ch) !== ch || ch === "\n" || ch === "\t") out += code < 0x100 ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
    else out += ch;
  }
  return `$'${out}'`;
}
