// The whole plan of a stack: model, per-GPU memory, host RAM/swap/disk, the
// verdict with the change that makes it fit, the launch command, and the
// host steps in order. Pure: `pulumi preview` and the `plan` command both
// call makePlan and fail on the same problems.
import type { StackConfig } from "../config/schema";
import type { LoadedConfig } from "../config/load";
import { modelConfigProblems } from "../config/model-json";
import { configWarnings } from "../config/warnings";
import { ModelArch, resolveModel, UnknownModelError } from "./catalog";
import { CUDA_CONTEXT_GIB, engineOf, GpuPlan, GpuPlanInput, planGpu, QuantMethod, schedulerDefaults } from "./memory";
import { HostPlan, planHost, round } from "./host-memory";
import { Launch, renderLaunch, versionedValues } from "./launch";
import { checkForVersion, compareVersions } from "./vllm-versions";
import { atLeast, versionWarnings } from "./version";
import { launcherFlags, renderBatchScript, secretsFileOf } from "./sbatch";
import { planTimes, TimePlan } from "./times";

/** vLLM's JIT needs a compiler and headers (seed 001: "JIT failed" until python3-dev and libnuma-dev); the steps need curl. */
export const TOOLCHAIN_PACKAGES = ["build-essential", "python3-dev", "libnuma-dev", "pkg-config", "curl", "ca-certificates"];

export interface Step {
  name: string;
  what: string;
}

export interface Plan {
  topology: StackConfig["topology"];
  model: { id: string; source: string; weightFormat: string; paramsB: number };
  gpu: GpuPlan;
  host: HostPlan;
  fits: boolean;
  problems: string[];
  warnings: string[];
  launch: Launch;
  /** How long the download and the load + compile take (estimates). */
  times: TimePlan;
  steps: Step[];
  /** topology slurm: the batch script that will be submitted */
  batchScript?: string;
}

/** Parse a maxModelLen setting: 4096, "32k", "auto" (undefined). */
export function parseModelLen(v: number | string): number | undefined {
  if (typeof v === "number") return v;
  if (v === "auto") return undefined;
  const m = /^(\d+)([kK]?)$/.exec(v);
  if (!m) throw new Error(`bad maxModelLen ${v}`);
  return Number(m[1]) * (m[2] ? 1024 : 1);
}

/** For maxModelLen auto: 90 % of what fits, in whole 1024s, so the estimate's error does not fail the start. */
export function autoModelLen(fit: number, modelMax: number): number {
  if (fit >= modelMax) return modelMax;
  const len = Math.floor((fit * 0.9) / 1024) * 1024;
  return len > 0 ? len : Math.floor(fit / 16) * 16;
}

/** VLLM_USE_V1 from host.env, where the variable means something (0.7-0.10). */
function useV1Env(c: StackConfig): boolean | undefined {
  const v = c.host.env.VLLM_USE_V1;
  return v === undefined ? undefined : v === "1";
}

/**
 * The GPU planner's input for a stack. max-num-seqs / max-num-batched-tokens
 * not given are vLLM's own defaults for the pinned release and GPU (the
 * launch passes them explicitly, so the plan and the server agree); in V0
 * they depend on max-model-len (`lenForDefaults`, see makePlan).
 */
export function gpuInput(c: StackConfig, arch: ModelArch, lenForDefaults?: number): GpuPlanInput {
  const version = c.vllm.version;
  const engine = engineOf(version, { gpuName: c.hardware.gpuName, kvCacheDtype: c.model.kvCacheDtype, useV1Env: useV1Env(c) });
  const asked = parseModelLen(c.serving.maxModelLen);
  const sched = schedulerDefaults(c.hardware.gpuMemoryGiB, c.hardware.gpuName, version, { engine, maxModelLen: asked ?? lenForDefaults, arch });
  return {
    arch,
    quantization: c.model.quantization as QuantMethod,
    kvCacheDtype: c.model.kvCacheDtype,
    tp: c.serving.tensorParallel,
    pp: c.serving.pipelineParallel,
    gpuMemoryGiB: c.hardware.gpuMemoryGiB,
    gpuMemoryInUseGiB: c.hardware.gpuMemoryInUseGiB,
    utilization: c.serving.gpuMemoryUtilization,
    maxModelLen: asked,
    maxNumSeqs: c.serving.maxNumSeqs ?? sched.maxNumSeqs,
    maxNumBatchedTokens: c.serving.maxNumBatchedTokens ?? sched.maxNumBatchedTokens,
    enforceEager: c.serving.enforceEager,
    p2p: c.hardware.interconnect === "nvlink" && c.nccl.p2pDisable !== true,
    vllmVersion: version,
    gpuName: c.hardware.gpuName,
    useV1Env: useV1Env(c),
  };
}

/**
 * The GPU plan. In V0 with maxModelLen auto and no explicit
 * maxNumBatchedTokens, the profile size depends on the length picked
 * (unchunked prefill of max(len, 2048) tokens), and the length on the
 * profile size: iterate to the fixed point from the model's context down.
 */
export function planGpuForStack(c: StackConfig, arch: ModelArch): { input: GpuPlanInput; gpu: GpuPlan; autoLen?: number } {
  let input = gpuInput(c, arch);
  let gpu = planGpu(input);
  const engine = gpu.engine;
  if (engine !== "V0" || input.maxModelLen !== undefined || c.serving.maxNumBatchedTokens !== undefined) return { input, gpu };
  // Shrink until the length picked fits with the profile of that length; then keep it (a longer one
  // would profile more tokens again).
  let len = autoModelLen(gpu.maxModelLen, arch.maxPositionEmbeddings);
  for (let k = 0; k < 8 && len > 0; k++) {
    input = gpuInput(c, arch, len);
    gpu = planGpu(input);
    if (gpu.maxModelLen >= len) break;
    len = autoModelLen(gpu.maxModelLen, arch.maxPositionEmbeddings);
  }
  return { input, gpu, autoLen: len };
}

/** Structural checks of model x parallelism x quantization (vLLM refuses these at start). */
export function modelChecks(c: StackConfig, arch: ModelArch): string[] {
  const out: string[] = [];
  const tp = c.serving.tensorParallel;
  const pp = c.serving.pipelineParallel;
  const divisors = [1, 2, 4, 8, 16].filter((d) => arch.heads % d === 0 && (arch.kvHeads % d === 0 || d % arch.kvHeads === 0));
  if (arch.heads % tp !== 0 || (arch.kvHeads % tp !== 0 && tp % arch.kvHeads !== 0)) {
    out.push(
      `serving.tensorParallel: ${tp} does not divide ${arch.id}'s ${arch.heads} attention heads / ${arch.kvHeads} KV heads -> use one of ${divisors.join(", ")}`,
    );
  }
  if (pp > arch.layers) out.push(`serving.pipelineParallel: ${pp} stages for ${arch.layers} layers -> at most ${arch.layers}`);
  const q = c.model.quantization;
  const native = arch.quantization?.method;
  const preQuantizedOnly = ["gptq", "gptq_marlin", "awq", "awq_marlin", "mxfp4", "compressed-tensors"];
  if (native && q !== "none" && !q.startsWith(native)) {
    out.push(`model.quantization: ${arch.id} is a ${native} checkpoint and cannot be loaded as ${q} -> set model.quantization: none (vLLM reads ${native} from its config.json)`);
  } else if (!native && preQuantizedOnly.includes(q)) {
    out.push(
      `model.quantization: ${q} needs a checkpoint quantized ahead of time and ${arch.id} is not one -> use bitsandbytes (4-bit) or fp8 (8-bit), quantized while loading, or an -AWQ/-GPTQ model id`,
    );
  }
  if ((q === "bitsandbytes" || (q === "none" && native === "bitsandbytes")) && compareVersions(c.vllm.version, "0.28.0") >= 0) {
    out.push(
      "model.quantization: bitsandbytes left vLLM's core in 0.28.0 (it became a plugin) -> pin vllm.version below 0.28.0, or use fp8 or a pre-quantized AWQ/GPTQ checkpoint",
    );
  }
  const asked = parseModelLen(c.serving.maxModelLen);
  if (asked !== undefined && asked > arch.maxPositionEmbeddings) {
    out.push(`serving.maxModelLen: ${asked} is beyond ${arch.id}'s context of ${arch.maxPositionEmbeddings} -> at most ${arch.maxPositionEmbeddings}`);
  }
  return out;
}

function fitsGpu(p: GpuPlan): boolean {
  // The low end of the KV range: a configuration vLLM may refuse is not called fits.
  return p.kvCacheGiBLow > 0 && p.maxModelLen > 0 && (p.maxModelLenAsked === undefined || p.maxModelLen >= p.maxModelLenAsked);
}

/** The changes that would make a GPU plan fit, each checked by re-planning. */
export function suggestFixes(c: StackConfig, arch: ModelArch, base: GpuPlanInput, p: GpuPlan): string[] {
  const fixes: string[] = [];
  const tries = (patch: Partial<GpuPlanInput>) => planGpu({ ...base, ...patch });
  const weightsFit = p.kvCacheGiBLow > 0;
  if (weightsFit && p.maxModelLen >= 256) fixes.push(`lower serving.maxModelLen to ${p.maxModelLen}`);
  if (!base.kvCacheDtype.startsWith("fp8") && fitsGpu(tries({ kvCacheDtype: "fp8" }))) fixes.push("set model.kvCacheDtype: fp8 (half the KV bytes)");
  if (!base.enforceEager && p.cudaGraphGiB > 0) {
    const eager = tries({ enforceEager: true });
    const why = `vLLM ${c.vllm.version} counts ~${round(p.cudaGraphGiB)} GiB of CUDA graphs in its budget; eager mode is slower`;
    if (fitsGpu(eager)) fixes.push(`set serving.enforceEager: true (${why})`);
    else if (eager.kvCacheGiBLow > 0 && eager.maxModelLen >= 256) fixes.push(`set serving.enforceEager: true and serving.maxModelLen: ${eager.maxModelLen} (${why})`);
  }
  for (let u = Math.ceil(base.utilization * 100 + 1) / 100; u <= 0.95 + 1e-9; u = Math.round((u + 0.01) * 100) / 100) {
    const t = tries({ utilization: u });
    if (fitsGpu(t)) {
      if (t.headroomGiB >= t.headroomNeededGiB) fixes.push(`raise serving.gpuMemoryUtilization to ${u}`);
      break;
    }
  }
  const maxGpus = c.topology === "slurm" ? c.slurm.nodes * c.slurm.gpusPerNode : c.hardware.gpuCount;
  for (const tp of [2, 4, 8, 16]) {
    if (tp <= base.tp || tp * base.pp > maxGpus || arch.heads % tp !== 0) continue;
    if (fitsGpu(tries({ tp }))) {
      fixes.push(`set serving.tensorParallel: ${tp} (the host has ${maxGpus} GPUs)`);
      break;
    }
  }
  if (!arch.quantization && base.quantization === "none") {
    // bitsandbytes left vLLM's core in 0.28.0: suggest it only where it exists.
    const methods = compareVersions(c.vllm.version, "0.28.0") >= 0 ? (["fp8"] as const) : (["fp8", "bitsandbytes"] as const);
    const quantized = methods
      .map((q) => ({ q, t: tries({ quantization: q }) }))
      .filter(({ t }) => fitsGpu(t))
      .map(({ q, t }) => `model.quantization: ${q} (${q === "fp8" ? "8-bit" : "4-bit"} while loading: ${round(t.weightsGiB)} GiB of weights per GPU instead of ${round(p.weightsGiB)})`);
    if (quantized.length) fixes.push(`quantize: ${quantized.join(" or ")}, or use a pre-quantized -AWQ/-GPTQ checkpoint`);
  }
  return fixes;
}

/**
 * V0's scheduler refuses a batch budget below the context when chunked prefill is off
 * (SchedulerConfig._verify_args, vllm/config.py 0.6.0 ... vllm/config/scheduler.py 0.11.0):
 * "max_num_batched_tokens (B) is smaller than max_model_len (L). ... Please increase
 * max_num_batched_tokens or decrease max_model_len." V1 always chunks prefill.
 */
export function v0BatchedTokensProblem(c: StackConfig, arch: ModelArch, gpu: GpuPlan, input: GpuPlanInput, maxModelLen: number): string | undefined {
  if (gpu.engine !== "V0" || maxModelLen <= 0 || input.maxNumBatchedTokens >= maxModelLen) return undefined;
  const extra = c.serving.extraArgs;
  const flagOn = extra.some((a) => a === "--enable-chunked-prefill" || /^--enable-chunked-prefill=(true|1)$/i.test(a));
  const auto = schedulerDefaults(c.hardware.gpuMemoryGiB, c.hardware.gpuName, c.vllm.version, { engine: "V0", maxModelLen, arch }).chunkedPrefill;
  if (flagOn || auto) return undefined;
  const b = input.maxNumBatchedTokens;
  return `serving.maxNumBatchedTokens: ${b} is below maxModelLen ${maxModelLen}, and vLLM ${c.vllm.version} runs the V0 engine here without chunked prefill: it refuses to start ("max_num_batched_tokens (${b}) is smaller than max_model_len (${maxModelLen})") -> set serving.maxNumBatchedTokens to ${maxModelLen} or more, or serving.maxModelLen to ${b} or less, or add --enable-chunked-prefill to serving.extraArgs`;
}

export function makePlan(loaded: LoadedConfig): Plan {
  const c = loaded.config;
  let arch: ModelArch;
  const jsonProblems = c.model.configPath ? modelConfigProblems(c.model.configPath) : [];
  if (jsonProblems.length) throw new PlanError(jsonProblems);
  try {
    arch = resolveModel(c.model.id, c.model.configPath, c.model.paramsB, c.model.checkpointBytes);
  } catch (e) {
    if (e instanceof UnknownModelError) throw new PlanError([e.message]);
    throw e;
  }
  const problems = modelChecks(c, arch);
  const warnings: string[] = [...configWarnings(c), ...versionWarnings(c.vllm.version)];
  const { input, gpu, autoLen } = planGpuForStack(c, arch);

  if (gpu.kvCacheGiBLow <= 0) {
    const fixes = suggestFixes(c, arch, input, gpu);
    const maybe = gpu.kvCacheGiBHigh > 0;
    problems.push(
      `serving: the weights (${round(gpu.weightsGiB)} GiB per GPU, ${gpu.weightFormat}) and vLLM's working memory (${round(
        gpu.activationGiB + gpu.cudaGraphGiB + gpu.nonTorchGiB,
      )} GiB) ${maybe ? "may not fit" : "do not fit"} in ${round(gpu.budgetGiB)} GiB (${c.serving.gpuMemoryUtilization} x the ${round(gpu.gpuTotalGiB)} GiB CUDA reports of ${c.hardware.gpuMemoryGiB} GiB)${
        maybe ? `: the KV cache left is ${round(gpu.kvCacheGiBLow)}-${round(gpu.kvCacheGiBHigh)} GiB, and the plan counts the low end` : ""
      } -> ${fixes.join("; or ") || "use more or bigger GPUs"}`,
    );
  } else if (gpu.maxModelLenAsked !== undefined && gpu.maxModelLen < gpu.maxModelLenAsked) {
    const fixes = suggestFixes(c, arch, input, gpu);
    problems.push(
      `serving.maxModelLen: one request of ${gpu.maxModelLenAsked} tokens needs more KV cache than the ${round(gpu.kvCacheGiBLow)} GiB that is sure to be left per GPU (${gpu.kvCacheTokensLow} tokens; the estimate is ${round(gpu.kvCacheGiBLow)}-${round(gpu.kvCacheGiBHigh)} GiB) -> ${fixes.join("; or ")}`,
    );
  }
  if (gpu.stateBlocksLow !== undefined && gpu.stateBlocksNeeded !== undefined && gpu.stateBlocksLow < gpu.stateBlocksNeeded) {
    // Hybrid models: every decoding sequence holds one state block of the KV pool (MAMBA_BLOCKS_CHECKED_FROM).
    problems.push(
      `serving.maxNumSeqs: ${gpu.stateBlocksNeeded} sequences need ${gpu.stateBlocksNeeded} state blocks, and the KV cache that is sure to be left (${round(gpu.kvCacheGiBLow)} GiB per GPU) holds ${gpu.stateBlocksLow}: vLLM ${c.vllm.version} refuses to start ("max_num_seqs exceeds available Mamba cache blocks") -> set serving.maxNumSeqs to ${Math.max(1, gpu.stateBlocksLow)} or lower, or raise serving.gpuMemoryUtilization (the state blocks do not depend on maxModelLen)`,
    );
  }
  // From 0.9.1 vLLM refuses to start when the memory free at start is below total x utilization
  // ("Free memory on device ... is less than desired GPU memory utilization", gpu_worker.py):
  // the CUDA context and other processes must fit in the rest.
  const hardNeed = CUDA_CONTEXT_GIB + c.hardware.gpuMemoryInUseGiB;
  if (gpu.engine === "V1" && atLeast(c.vllm.version, "0.9.1") && gpu.headroomGiB < hardNeed) {
    problems.push(
      `serving.gpuMemoryUtilization: ${c.serving.gpuMemoryUtilization} asks for ${round(gpu.budgetGiB)} GiB of the ${round(gpu.gpuTotalGiB)} GiB CUDA reports, and the CUDA context${
        c.hardware.gpuMemoryInUseGiB ? " and the other processes" : ""
      } need ~${round(hardNeed)} GiB of the rest: vLLM ${c.vllm.version} refuses to start ("Free memory on device ... is less than desired GPU memory utilization") -> ${
        Math.floor((1 - (hardNeed + 0.25) / gpu.gpuTotalGiB) * 100) / 100
      } or lower`,
    );
  } else if (gpu.headroomGiB < gpu.headroomNeededGiB) {
    warnings.push(
      `serving.gpuMemoryUtilization: ${c.serving.gpuMemoryUtilization} leaves ${round(gpu.headroomGiB)} GiB per GPU outside vLLM's budget, less than the ~${round(
        gpu.headroomNeededGiB,
      )} GiB the CUDA context, NCCL and fragmentation take${c.hardware.gpuMemoryInUseGiB ? " plus what other processes hold" : ""}${
        gpu.engine === "V0" || !atLeast(c.vllm.version, "0.20.0") ? (c.serving.enforceEager ? "" : ", with the CUDA graphs vLLM captures after the KV cache") : ""
      }: risky (seed 001's rig crashed at 0.90 this way) -> ${
        Math.floor((1 - gpu.headroomNeededGiB / c.hardware.gpuMemoryGiB) * 100) / 100
      } or lower`,
    );
  }
  const maxModelLen = gpu.maxModelLenAsked ?? autoLen ?? autoModelLen(gpu.maxModelLen, arch.maxPositionEmbeddings);
  const v0Refusal = v0BatchedTokensProblem(c, arch, gpu, input, maxModelLen);
  if (v0Refusal) problems.push(v0Refusal);
  if (gpu.maxConcurrency > 0 && gpu.maxConcurrency < 1 && problems.length === 0) {
    warnings.push(`serving: only ${gpu.maxConcurrency} requests of ${maxModelLen} tokens fit at once`);
  }

  const ranksPerNode = c.topology === "slurm" ? c.slurm.gpusPerNode : input.tp * input.pp;
  const extra = c.serving.extraArgs;
  const eagerLoad = extra.some((a, i) => a === "--safetensors-load-strategy=eager" || (a === "--safetensors-load-strategy" && extra[i + 1] === "eager"));
  const host = planHost({
    localRanks: Math.min(ranksPerNode, input.tp * input.pp),
    weightsPerRankGiB: gpu.weightsGiB,
    checkpointGiB: gpu.checkpointGiB,
    hostRamGiB: c.hardware.hostRamGiB,
    cpuCores: c.hardware.cpuCores,
    eagerLoad,
    freeDiskGiB: c.hardware.freeDiskGiB,
    swap: c.topology === "slurm" ? { mode: "off" } : c.host.swap.mode === "size" ? { mode: "size", sizeGiB: c.host.swap.sizeGiB } : { mode: c.host.swap.mode },
    cacheOnHostDisk: c.topology === "single",
  });
  if (!host.ramFits) {
    problems.push(
      c.topology === "slurm"
        ? `slurm.memPerGpu: loading needs ~${host.peakRamGiB} GiB of host RAM per node and hardware.hostRamGiB is ${c.hardware.hostRamGiB} -> ask for more memory per GPU (--mem-per-gpu) or fewer GPUs per node`
        : `host.swap: loading needs ~${host.peakRamGiB} GiB of host RAM (${Object.entries(host.breakdown)
            .map(([k, v]) => `${k} ${v}`)
            .join(", ")}) and the host has ${c.hardware.hostRamGiB} GiB RAM + ${host.swapGiB} GiB swap -> set host.swap to {mode: auto} (${host.swapNeededGiB} GiB) or {mode: size, sizeGiB: ${host.swapNeededGiB}}`,
    );
  }
  if (!host.diskFits) {
    problems.push(
      `hardware.freeDiskGiB: the checkpoint, the venv${host.swapGiB ? " and the swapfile" : ""} need ~${host.diskNeededGiB} GiB and ${c.hardware.freeDiskGiB} GiB are free -> free disk space${host.swapGiB ? ", or a smaller host.swap" : ""}`,
    );
  }

  const times = planTimes(c, gpu.checkpointGiB);
  if (times.readinessMinutes > c.host.readinessTimeoutMinutes) {
    warnings.push(
      `host.readinessTimeoutMinutes: ${c.host.readinessTimeoutMinutes} min may be too short: ${
        times.download === "vllm" ? `vLLM downloads (~${times.downloadMinutes} min at ${times.downloadMBps} MB/s, model.download is false), loads` : "loading"
      } and compiling take ~${times.readinessMinutes} min by the plan's estimate -> raise it to ${Math.ceil(times.readinessMinutes * 1.5)}`,
    );
  }
  const launch = renderLaunch(c, arch, {
    maxModelLen,
    maxNumSeqs: input.maxNumSeqs,
    maxNumBatchedTokens: input.maxNumBatchedTokens,
    venvPath: c.topology === "slurm" ? c.slurm.sharedVenvPath : c.host.venvPath,
    hasHfToken: loaded.secretsPresent.has("hfToken"),
  });
  if (c.topology === "slurm" && ["127.0.0.1", "localhost", "::1"].includes(c.serving.bindHost)) {
    problems.push(
      `serving.bindHost: ${c.serving.bindHost} on a compute node cannot be reached from the login node -> set serving.bindHost: 0.0.0.0 (the API key protects it)`,
    );
  }
  problems.push(
    ...checkForVersion(
      c.vllm.version,
      [
        ...c.serving.extraArgs.filter((a) => a.startsWith("--")).map((flag) => ({ flag, where: "serving.extraArgs" })),
        ...versionedValues(c),
        ...(c.topology === "slurm" ? launcherFlags(c).map((flag) => ({ flag, where: `slurm.launcher (${c.slurm.launcher})` })) : []),
      ],
      Object.keys(c.host.env).map((name) => ({ name, where: "host.env" })),
    ),
  );

  return {
    topology: c.topology,
    model: { id: arch.id, source: arch.source, weightFormat: gpu.weightFormat, paramsB: round(arch.paramsB) },
    gpu,
    host,
    fits: problems.length === 0,
    problems,
    warnings,
    launch,
    times,
    steps: planSteps(c, host, times, gpu.checkpointGiB),
    batchScript: c.topology === "slurm" ? renderBatchScript({ config: c, launch, secretsFile: secretsFileOf(c) }) : undefined,
  };
}

/** The weights step's line of the plan, or none when nothing is downloaded before vLLM starts. */
function weightsStep(c: StackConfig, times: TimePlan, checkpointGiB: number, cacheDir: string): Step[] {
  if (times.download !== "step") return [];
  return [
    {
      name: "weights",
      what: `hf download ${c.model.id} at ${c.model.revision ?? "main"} into ${cacheDir} (~${round(checkpointGiB)} GiB, ~${times.downloadMinutes} min at ${times.downloadMBps} MB/s; resumable, free disk checked first), then vLLM starts with HF_HUB_OFFLINE=1${
        c.host.removeModelCache ? "; destroy removes what it downloaded" : "; kept on destroy"
      }`,
    },
  ];
}

/** The readiness line's estimate. */
function readinessEstimate(times: TimePlan): string {
  return `load ~${times.loadMinutes} min + compile ~${times.compileMinutes} min${times.download === "vllm" ? ` + vLLM's own download ~${times.downloadMinutes} min` : ""} estimated`;
}

export function planSteps(c: StackConfig, host: HostPlan, times: TimePlan, checkpointGiB: number): Step[] {
  if (c.topology === "slurm") {
    return [
      { name: "uv-venv", what: `uv ${c.vllm.uvVersion} and a Python ${c.vllm.python} venv at ${c.slurm.sharedVenvPath} (shared filesystem, via the login node)` },
      { name: "vllm-install", what: `${c.vllm.package.replace("{version}", c.vllm.version)} into that venv` },
      ...weightsStep(c, times, checkpointGiB, `${c.slurm.sharedCacheDir}/huggingface`),
      { name: "job-secrets", what: "API key and HF token into a 0600 file on the shared filesystem" },
      { name: "slurm-job", what: `sbatch on ${c.slurm.partition}: ${c.slurm.nodes} node(s) x ${c.slurm.gpusPerNode} GPUs, ${c.slurm.launcher} launch; waits until it runs` },
      { name: "readiness", what: `waits for /health and /v1/models on the head node (through the login node), up to ${c.host.readinessTimeoutMinutes} min (${readinessEstimate(times)})` },
    ];
  }
  const steps: Step[] = [
    { name: "toolchain", what: `apt: ${[...TOOLCHAIN_PACKAGES, ...c.host.extraPackages].join(" ")} (vLLM's JIT needs a compiler and headers)` },
  ];
  steps.push(
    host.swapGiB > 0
      ? { name: "swapfile", what: `${host.swapGiB} GiB swapfile at ${c.host.swap.mode === "off" ? "-" : c.host.swap.path}, one /etc/fstab line` }
      : { name: "swapfile", what: "no swapfile (removes one this project made)" },
  );
  if (c.host.earlyoom.enabled) {
    steps.push({ name: "earlyoom", what: `earlyoom -m ${c.host.earlyoom.memPercent} -s ${c.host.earlyoom.swapPercent}, prefers vLLM, avoids sshd and shells` });
  }
  steps.push(
    { name: "uv-venv", what: `uv ${c.vllm.uvVersion} in /opt/pulumi-vllm/uv/${c.vllm.uvVersion}` },
    {
      name: "vllm-install",
      what: `${c.vllm.package.replace("{version}", c.vllm.version)} into a Python ${c.vllm.python} venv of its own, ${c.host.venvsDir}/${c.vllm.version}-py${c.vllm.python}, verified (import, vllm --version) while the server keeps running; the last ${c.vllm.keepVenvs} venvs are kept`,
    },
    ...weightsStep(c, times, checkpointGiB, c.host.cacheDir),
    {
      name: "launch-unit",
      what: `systemd unit ${c.host.unitName} running ${c.host.venvPath}/bin/vllm serve, ${c.host.venvPath} a link to that venv; secrets in a 0600 environment file; a new release that does not serve is rolled back to the previous venv`,
    },
    { name: "readiness", what: `waits for /health and /v1/models, up to ${c.host.readinessTimeoutMinutes} min (${readinessEstimate(times)}), with progress from the journal` },
  );
  return steps;
}

export class PlanError extends Error {
  constructor(readonly problems: string[]) {
    super(`the plan has ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "PlanError";
  }
}
