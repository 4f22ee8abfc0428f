// The GPU memory planner: what vLLM will do with each GPU, computed before
// any host is touched, for the vLLM release that is pinned.
//
// vLLM measures rather than computes: it loads the weights, runs one dummy
// "profile" forward pass (and the sampler) at the scheduler's maximum batch,
// and gives the KV cache what is left of total x gpu_memory_utilization. What
// that profile run does, what the budget charges and which defaults apply
// changed across releases; every rule below names its version range and the
// source it was read from (../shared/VLLM-MEMORY.md, section numbers §),
// each release's own code. Version gates are in ./version.ts (PEP 440).
//
// Each non-KV term is an estimate with a low and a high end. The KV cache is
// given as a range (budget - high terms .. budget - low terms) around a
// central figure, and the verdict (does it fit, the largest max-model-len)
// uses the LOW end: a configuration vLLM would refuse must not be called
// fits. KV bytes per token are exact and are checked against the token counts
// vLLM printed (test/unit/planner-vllm-logs.test.ts); the whole model is
// checked against public startup logs (test/unit/planner-accuracy.test.ts).
import type { ModelArch } from "./catalog";
import { atLeast, inRange, NEWEST_CHECKED } from "./version";

export const GiB = 1024 ** 3;
export const BLOCK_SIZE = 16;

export type QuantMethod = "none" | "gptq" | "gptq_marlin" | "awq" | "awq_marlin" | "fp8" | "bitsandbytes" | "mxfp4" | "compressed-tensors";
export type KvDtype = "auto" | "float16" | "bfloat16" | "fp8" | "fp8_e4m3" | "fp8_e5m2";
export type Engine = "V0" | "V1";

export interface GpuPlanInput {
  arch: ModelArch;
  /** Quantization asked for; "none" = the checkpoint as it is. */
  quantization: QuantMethod;
  kvCacheDtype: KvDtype;
  tp: number;
  pp: number;
  gpuMemoryGiB: number;
  gpuMemoryInUseGiB: number;
  utilization: number;
  /** undefined = "auto": the largest that fits, capped by the model's context. */
  maxModelLen?: number;
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  enforceEager: boolean;
  /** GPUs can reach each other peer to peer (NVLink, or PCIe with P2P): vLLM's custom all-reduce is on. */
  p2p: boolean;
  /** The pinned vLLM release (PEP 440). Default: the newest the rules were checked against. */
  vllmVersion?: string;
  /** GPU model name as the config gives it (V100/T4 make 0.8-0.10 fall back to V0). */
  gpuName?: string;
  /** VLLM_USE_V1 from the host env, where that variable exists (0.7-0.10). */
  useV1Env?: boolean;
  /** FlashInfer is installed next to vLLM (official image, or the [flashinfer] extra); undefined = not known. */
  flashinfer?: boolean;
}

/** A term of the budget: its central estimate and the ends of its uncertainty, in bytes. */
export interface Est {
  mid: number;
  low: number;
  high: number;
}
const est = (mid: number, low = mid, high = mid): Est => ({ mid, low: Math.min(low, mid), high: Math.max(high, mid) });
const sum = (...xs: Est[]): Est => ({ mid: xs.reduce((a, x) => a + x.mid, 0), low: xs.reduce((a, x) => a + x.low, 0), high: xs.reduce((a, x) => a + x.high, 0) });

export interface GpuPlan {
  /** Effective weight format and its bytes per linear-layer parameter. */
  weightFormat: string;
  /** Engine and release whose rules were applied. */
  engine: Engine;
  rulesOf: string;
  weightsGiB: number;
  activationGiB: number;
  /** Part of the activation peak: logits + the dummy sampler run (the peak on big GPUs). */
  samplerGiB: number;
  cudaGraphGiB: number;
  nonTorchGiB: number;
  /** CUDA-reported total vLLM takes the fraction of (a card sold as 24 GB reports ~23.6 GiB). */
  gpuTotalGiB: number;
  budgetGiB: number;
  /** Central estimate of vLLM's "Available KV cache memory". */
  kvCacheGiB: number;
  /** Range of that figure; the verdict uses kvCacheGiBLow. */
  kvCacheGiBLow: number;
  kvCacheGiBHigh: number;
  kvBytesPerToken: number;
  /**
   * Tokens the central KV figure holds with every layer counted as full attention: what vLLM
   * prints as "GPU KV cache size" for uniform models, and for sliding-window hybrids up to 0.20.0;
   * from 0.20.1 vLLM prints max concurrency x max-model-len for hybrids, which shows the window
   * savings (VLLM-MEMORY.md §4.4). Models with state layers (hybridLayout): what vLLM prints for
   * them, num_blocks // groups x block size up to 0.20.0, concurrency x max-model-len from 0.20.1.
   */
  kvCacheTokens: number;
  kvCacheTokensLow: number;
  kvCacheTokensHigh: number;
  /** Largest max-model-len one request can use with the LOW end of the KV cache (capped by the model's context). */
  maxModelLen: number;
  maxModelLenAsked?: number;
  /** Requests of max-model-len tokens that fit at once (low end). */
  maxConcurrency: number;
  /** Tokens and rows of vLLM's profile run. */
  profileTokens: number;
  profileRows: number;
  /** Memory left outside vLLM's budget: the CUDA context, other processes. */
  headroomGiB: number;
  headroomNeededGiB: number;
  /** Checkpoint size on disk (all ranks together). */
  checkpointGiB: number;
  /**
   * Hybrids with state layers, from the release that checks it (MAMBA_BLOCKS_CHECKED_FROM): the KV
   * pool's blocks at the low end of the KV range, and the max-num-seqs they must cover (one state
   * block per decoding sequence; vLLM refuses to start otherwise).
   */
  stateBlocksLow?: number;
  stateBlocksNeeded?: number;
}

/**
 * From this release vLLM refuses to start a hybrid model whose KV pool has fewer blocks than
 * max-num-seqs: "max_num_seqs (1024) exceeds available Mamba cache blocks (856). Each decode
 * sequence requires one Mamba cache block, so CUDA graph capture cannot proceed" (vllm#38270,
 * reverted the same day by vllm#38599 and landed again; seen in public reports on 0.23.1, 0.25.1
 * and 0.28.0, vllm#49064, vllm/recipes#551). Before, the CUDA-graph sizes were capped silently.
 * The first release that has it is not pinned down from the source here; 0.20.0 is taken, which
 * can only make the plan stricter, never optimistic.
 */
export const MAMBA_BLOCKS_CHECKED_FROM = "0.20.0";

/** Bytes per parameter of the linear layers for a weight format (scales and zeros included). VLLM-MEMORY.md §6. */
export function bytesPerParam(method: string, bits: number, groupSize = 128): number {
  switch (method) {
    case "none":
      return 2; // bf16/fp16: vLLM loads fp32 checkpoints as bf16 under dtype auto
    case "fp8":
      return 1 + 4 / 128 / 128; // fp8 weight + one fp32 scale per 128x128 block
    case "gptq":
    case "gptq_marlin":
    case "awq":
    case "awq_marlin":
      // packed int weights + an fp16 scale and a packed zero point per group
      return bits / 8 + (2 + bits / 8) / groupSize;
    case "bitsandbytes":
      // nf4 + an fp32 absmax per 64 weights; 8-bit: int8 + a per-row scale
      return bits === 8 ? 1 + 4 / 4096 : 0.5 + 4 / 64;
    case "mxfp4":
      return 0.5 + 1 / 32; // e2m1 + an e8m0 scale per 32 weights
    case "compressed-tensors":
      return bits / 8 + 2 / groupSize;
    default:
      throw new Error(`no weight size known for quantization ${method}`);
  }
}

export function kvDtypeBytes(d: KvDtype): number {
  return d.startsWith("fp8") ? 1 : 2;
}

interface Weights {
  format: string;
  perRankBytes: number;
  checkpointBytes: number;
}

/**
 * Weight bytes on the busiest rank. Linear layers are split by TP (column /
 * row parallel) and their layers by PP; the vocab-parallel embedding and LM
 * head are split by TP and sit on the first / last PP rank; norms are
 * negligible. Quantized formats cover linear layers only (embeddings stay
 * 16-bit), and mxfp4 in gpt-oss covers the MoE experts only.
 */
/**
 * MXFP4 expert padding (vllm/model_executor/layers/quantization/mxfp4.py, Mxfp4MoEMethod.create_weights):
 * each backend rounds the TP shard's intermediate size I and the hidden size H up for its kernels
 * (VLLM-MEMORY.md §6). What the public logs show for gpt-oss ("Model loading took"):
 * - Marlin (I to 128, H to 256): A100 at 0.10.1 and 0.19, H100 at 0.10.1 and 0.19 (65.97 GiB for
 *   120b on one GPU, 7.01 for 20b at TP 2);
 * - I to 256 only: the 0.11-era H100 debug lines of llm-d-benchmark (64.38 / 13.47 GiB for
 *   120b / 20b), while vllm#27508 on the same release and GPU implies Marlin's;
 * - Blackwell FlashInfer (I and H to 256).
 * Returns the factor for the version and GPU, and the envelope of the others.
 */
export function mxfp4PadFactor(arch: ModelArch, tp: number, version: string = NEWEST_CHECKED, gpuName = ""): Est {
  const I = arch.moe?.expertIntermediate ?? arch.intermediate;
  const shard = I / tp;
  const up = (x: number, m: number) => Math.ceil(x / m) * m;
  const marlin = (up(shard, 128) / shard) * (up(arch.hidden, 256) / arch.hidden);
  const iOnly = up(shard, 256) / shard;
  const sm100 = (up(shard, 256) / shard) * (up(arch.hidden, 256) / arch.hidden);
  // Marlin's padding is what most logs show, on Hopper too (the same 0.11 H100 setup printed both,
  // vllm#27508 implies Marlin's); "I to 256 only" is the low end, Blackwell's the high end.
  void version;
  const mid = /b200|b300|gb200|gb300/i.test(gpuName) ? sm100 : marlin;
  return est(mid, Math.min(iOnly, marlin), Math.max(marlin, mid));
}

/**
 * Bytes of the model's checkpoint on disk (all shards): the exact figure when the safetensors index
 * gave it (`arch.checkpointBytes`: the Hub fetch, or model.checkpointBytes), otherwise the planner's
 * estimate of the weights in the format they are loaded as (`estimated`, or the one weightBytes makes).
 * The plan uses it for disk and host-RAM needs; other steps (the weights download) may use it too.
 */
export function checkpointBytesOf(arch: ModelArch, quantization: QuantMethod = "none", estimated?: number): number {
  return arch.checkpointBytes ?? estimated ?? weightBytes(arch, quantization, 1, 1).checkpointBytes;
}

export function weightBytes(arch: ModelArch, quantization: QuantMethod, tp: number, pp: number, padFactor?: number): Weights {
  const native = arch.quantization;
  let method: string = quantization === "none" ? native?.method ?? "none" : quantization;
  if (method === "gptq_marlin") method = "gptq";
  if (method === "awq_marlin") method = "awq";
  const bits = native && (method === native.method || quantization === "none") ? native.bits : method === "fp8" ? 8 : 4;
  const groupSize = native?.groupSize ?? 128;
  const embedParams = arch.vocab * arch.hidden * (arch.tiedEmbeddings ? 1 : 2);
  const bodyParams = Math.max(0, arch.paramsB * 1e9 - embedParams);
  // Checkpoints that quantize the routed experts only: gpt-oss's mxfp4, and compressed-tensors
  // checkpoints whose ignore list names every other linear layer (Kimi-K2-Thinking: int4 group 32 on
  // the experts; lm_head, self_attn and shared_experts ignored). vLLM loads a layer its quantization
  // config ignores with UnquantizedLinearMethod, in the model dtype (compressed_tensors.py get_scheme ->
  // should_ignore_layer; 0.6.0, 0.11.0, 0.15.0 and 0.33.0 alike), so those stay 16-bit here too.
  const expertsOnly = !!arch.moe && (method === "mxfp4" ? native?.expertsOnly ?? true : native?.expertsOnly === true && method === native.method);
  const moeLayers = arch.moe ? arch.moe.moeLayers ?? arch.layers : 0;
  // Parameters every TP rank holds whole rather than a 1/TP shard of (0.6.0-0.33.0, read in 0.6.0,
  // 0.11.0, 0.15.0 and 0.33.0): the MoE router (ReplicatedLinear, or nn.Linear / GateLinear, in
  // deepseek_v2.py, qwen2_moe.py, qwen3_moe.py, mixtral.py, glm4_moe.py, gpt_oss.py), counted in 16
  // bits (DeepSeek's and Qwen2-MoE's pass quant_config=None); and MLA's down-projections q_a_proj
  // (q_lora_rank wide) and kv_a_proj_with_mqa (kv_lora_rank + qk_rope_head_dim), ReplicatedLinear,
  // fused into fused_qkv_a_proj with disable_tp=True from 0.11 (deepseek_v2.py DeepseekV2MLAAttention),
  // in the checkpoint's format. Small at TP 1-2; at TP 8 a 1T MLA model keeps ~2 GiB more per GPU
  // than a 1/8 share (Kimi-K2-Thinking on 8x H200, vllm-project/recipes#115).
  const routerParams = arch.moe ? moeLayers * arch.moe.experts * arch.hidden : 0;
  const mla = arch.attention.kind === "mla" ? arch.attention : undefined;
  const mlaDownParams = mla ? arch.layers * arch.hidden * ((mla.qLoraRank ?? 0) + mla.latentDim) : 0;
  const linearBytes = expertsOnly ? 2 : bytesPerParam(method, bits, groupSize);
  let bodyBytes: number;
  if (expertsOnly && arch.moe) {
    const expertParams = Math.min(bodyParams, moeLayers * arch.moe.experts * 3 * arch.hidden * arch.moe.expertIntermediate);
    // vllm/model_executor/layers/quantization/mxfp4.py (Mxfp4MoEMethod.create_weights) pads the expert
    // matrices for its kernels: Marlin (Ampere, and Hopper in the public logs) rounds each TP shard's
    // intermediate size up to 128 and the hidden size up to 256 (VLLM-MEMORY.md §6). gpt-oss-120b on one
    // H100: 2880 -> 2944 x 3072, +9 %; "Model loading took 65.97 GiB" (vllm#23278) is matched this way.
    const pad = method === "mxfp4" ? padFactor ?? mxfp4PadFactor(arch, tp).mid : 1;
    bodyBytes = expertParams * pad * bytesPerParam(method, bits, groupSize) + (bodyParams - expertParams) * 2;
  } else {
    const router = Math.min(bodyParams, routerParams);
    bodyBytes = (bodyParams - router) * linearBytes + router * 2;
  }
  const replicatedBytes = Math.min(bodyBytes, routerParams * 2 + mlaDownParams * linearBytes);
  const embedBytes = embedParams * 2;
  const layersOnBusiestRank = Math.ceil(arch.layers / pp) / arch.layers;
  // With PP the first rank holds the embedding, the last the LM head; with PP=1 one rank holds both.
  const embedOnBusiestRank = pp === 1 ? embedBytes : embedBytes / (arch.tiedEmbeddings ? 1 : 2);
  return {
    format: method === "none" ? "bf16" : `${method} ${bits}-bit`,
    perRankBytes: ((bodyBytes - replicatedBytes) / tp + replicatedBytes) * layersOnBusiestRank + embedOnBusiestRank / tp,
    checkpointBytes: checkpointBytesOf(arch, quantization, bodyBytes + embedBytes),
  };
}

// ---------------------------------------------------------------------------
// Which engine and which defaults (VLLM-MEMORY.md §1, §2)

/** GPUs below compute capability 8.0, by name: V1 0.8-0.10 falls back to V0 on them (§1). */
const PRE_AMPERE = /\b(v100|t4|p100|p40|p4|k80|m60|titan v|titan xp|gtx|rtx 20\d\d|quadro rtx|tesla [kmp])/i;
/** Ampere and Ada by name: their FlashAttention build had no fp8 KV in 0.8-0.9, V1 fell back to V0 (§1). */
const AMPERE = /\b(a100|a10|a30|a40|a16|a2|a6000|a5000|a4000|rtx 30\d\d|rtx a\d000)\b/i;

/**
 * V0 or V1 for this release (§1): V0 only up to 0.7.x (V1 behind
 * VLLM_USE_V1=1 from 0.7.0); V1 default from 0.8.0 with a fallback to V0 for
 * GPUs under compute capability 8.0 and, up to 0.9.x, fp8 KV on Ampere;
 * V0 is gone from 0.11.0 (vllm/engine/arg_utils.py _is_v1_supported_oracle).
 */
export function engineOf(version: string, opts: { gpuName?: string; kvCacheDtype?: KvDtype; useV1Env?: boolean } = {}): Engine {
  if (atLeast(version, "0.11.0")) return "V1";
  if (!atLeast(version, "0.8.0")) return atLeast(version, "0.7.0") && opts.useV1Env === true ? "V1" : "V0";
  if (opts.useV1Env === false) return "V0";
  if (opts.gpuName && PRE_AMPERE.test(opts.gpuName)) return "V0";
  if (!atLeast(version, "0.10.0") && opts.kvCacheDtype?.startsWith("fp8") && opts.gpuName && AMPERE.test(opts.gpuName)) return "V0";
  return "V1";
}

export interface SchedulerDefaults {
  maxNumSeqs: number;
  maxNumBatchedTokens: number;
  /** V0 only: chunked prefill on by vLLM's automatic rule (§2.1). */
  chunkedPrefill: boolean;
}

/**
 * vLLM's defaults for max-num-seqs / max-num-batched-tokens of `vllm serve`
 * (OPENAI_API_SERVER usage context), by release and GPU (§2):
 * - V0: 256 sequences; chunked prefill turns itself on only above 32K
 *   context (CUDA, no sliding window, no MLA from 0.8.0; 0.5.3+), and then
 *   512 tokens (<= 0.6.4) or 2048; otherwise one unchunked prefill of
 *   max(max-model-len, 2048) tokens (vllm/config.py SchedulerConfig,
 *   vllm/engine/arg_utils.py _set_default_args_v0).
 * - V1: 0.7.0-0.8.3: 1024 sequences on every GPU, 8192 tokens on H100/H200
 *   by name else 2048; 0.8.4: same tokens, 256 sequences off H100/H200;
 *   0.8.5: by size, >= 70 GiB: 1024/8192; 0.9.0+: >= 70 GiB and not an A100;
 *   0.28.0+: >= 160 GiB gets 16384 tokens; else 256/2048
 *   (EngineArgs._set_default_args_v1 / get_batch_defaults). From 0.10.1
 *   max-num-seqs is capped by max-num-batched-tokens.
 */
export function schedulerDefaults(
  gpuMemoryGiB: number,
  gpuName: string,
  version: string = NEWEST_CHECKED,
  opts: { engine?: Engine; maxModelLen?: number; arch?: ModelArch } = {},
): SchedulerDefaults {
  const engine = opts.engine ?? engineOf(version, { gpuName });
  if (engine === "V0") {
    const len = opts.maxModelLen ?? opts.arch?.maxPositionEmbeddings ?? 2048;
    const a = opts.arch;
    const sliding = a?.attention.kind === "hybrid-sliding" || a?.slidingWindowAllLayers === true;
    const mla = a?.attention.kind === "mla" && atLeast(version, "0.7.1");
    const chunked = atLeast(version, "0.5.3") && len > 32768 && !sliding && !mla;
    const tokens = chunked ? (atLeast(version, "0.6.5") ? 2048 : 512) : Math.max(len, 2048);
    return { maxNumSeqs: 256, maxNumBatchedTokens: tokens, chunkedPrefill: chunked };
  }
  const hopperByName = /h100|h200|h800|h20\b|gh200/i.test(gpuName);
  const a100 = /a100/i.test(gpuName);
  let seqs: number;
  let tokens: number;
  if (!atLeast(version, "0.8.4")) {
    seqs = 1024;
    tokens = hopperByName ? 8192 : 2048;
  } else if (!atLeast(version, "0.8.5")) {
    seqs = hopperByName ? 1024 : 256;
    tokens = hopperByName ? 8192 : 2048;
  } else {
    const big = gpuMemoryGiB >= 70 && (!atLeast(version, "0.9.0") || !a100);
    if (atLeast(version, "0.28.0") && gpuMemoryGiB >= 160) [seqs, tokens] = [1024, 16384];
    else [seqs, tokens] = big ? [1024, 8192] : [256, 2048];
  }
  if (atLeast(version, "0.10.1")) seqs = Math.min(seqs, tokens);
  return { maxNumSeqs: seqs, maxNumBatchedTokens: tokens, chunkedPrefill: true };
}

/** vLLM's default --gpu-memory-utilization: 0.90, 0.92 from 0.20.0 (vllm/config/cache.py, §2.3). */
export function defaultUtilization(version: string): number {
  return atLeast(version, "0.20.0") ? 0.92 : 0.9;
}

// ---------------------------------------------------------------------------
// KV bytes (§5)

/**
 * KV bytes per token per layer on one rank (§5.1, §5.2).
 * Standard attention: 2 (K and V) x max(1, kv_heads / TP) x head_dim x dtype.
 * MLA (DeepSeek V2/V3), by release: <= 0.6.x stores full K and V heads of
 * 256 (192 padded for FlashAttention) for num_key_value_heads / TP heads;
 * 0.7.0 the same at 192; from 0.7.1 one latent of kv_lora_rank +
 * qk_rope_head_dim per token, no factor 2, not split by TP
 * (ModelConfig.get_head_size / use_mla, MLAAttentionSpec).
 */
export function kvBytesPerTokenPerLayer(arch: ModelArch, tp: number, kvCacheDtype: KvDtype, version: string = NEWEST_CHECKED): number {
  const bytes = kvDtypeBytes(kvCacheDtype);
  if (arch.attention.kind === "mla") {
    if (atLeast(version, "0.7.1")) return arch.attention.latentDim * bytes;
    const qkDim = (arch.attention.qkNopeHeadDim ?? 128) + (arch.attention.qkRopeHeadDim ?? 64);
    const head = atLeast(version, "0.7.0") ? qkDim : 256;
    return 2 * Math.max(1, Math.floor(arch.kvHeads / tp)) * head * bytes;
  }
  return 2 * Math.max(1, Math.floor(arch.kvHeads / tp)) * arch.headDim * bytes;
}

/** Layers holding attention KV on the busiest PP stage: every layer, or a hybrid's attention layers. */
export function kvLayersOnRank(arch: ModelArch, pp: number): number {
  return Math.ceil((arch.linear?.attentionLayers ?? arch.layers) / pp);
}

/**
 * One request's state in one linear-attention / Mamba-2 layer on one rank, in bytes (§5.5;
 * vllm/model_executor/layers/mamba/mamba_utils.py, MambaStateShapeCalculator and
 * MambaStateDtypeCalculator, 0.10-0.33): the conv state (kernel-1) x conv_dim/TP in the model
 * dtype (2 B) plus the recurrent state in mamba_ssm_cache_dtype (4 B where the config asks for
 * fp32, else the model dtype):
 * - gated delta net: conv_dim = 2 x kHeads x kDim + vHeads x vDim, state vHeads/TP x vDim x kDim;
 * - Mamba-2: conv_dim = heads x headDim + 2 x groups x stateSize (groups that do not divide by TP
 *   are replicated up to TP: extra_groups_for_head_shards), state heads/TP x headDim x stateSize.
 * Qwen3.5's config asks for fp32 (mamba_ssm_dtype); a 0.19 log of a Qwen3.5 fine-tune shows the bf16
 * block size (272 tokens, not 528): taking the config's fp32 there costs more per request, never less.
 */
export function linearStateBytes(arch: ModelArch, tp: number): number {
  const l = arch.linear;
  if (!l) return 0;
  const conv = (n: number) => (l.convKernel - 1) * (n / tp) * 2;
  if (l.kind === "gdn") {
    const kHeads = l.kHeads ?? l.heads;
    const kDim = l.kHeadDim ?? l.headDim;
    return conv(2 * kHeads * kDim + l.heads * l.headDim) + (l.heads / tp) * l.headDim * kDim * l.ssmStateBytes;
  }
  const groups = (l.nGroups ?? 1) % tp === 0 ? l.nGroups ?? 1 : tp;
  const stateSize = l.stateSize ?? 128;
  return conv(l.heads * l.headDim + 2 * groups * stateSize) + (l.heads / tp) * l.headDim * stateSize * l.ssmStateBytes;
}

/** The KV-cache layout of a hybrid attention + linear-attention model in vLLM V1 (hybridLayout). */
export interface HybridLayout {
  /** Attention block size in tokens (vLLM logs "Setting attention block size to N tokens"). */
  blockSize: number;
  /** One page: blockSize tokens of one attention layer = one padded state. */
  pageBytes: number;
  /** Layers per KV-cache group. */
  groupSize: number;
  attentionGroups: number;
  stateGroups: number;
}

/**
 * How vLLM V1 lays out the KV cache of a hybrid attention + linear-attention / Mamba model, from
 * 0.10.0 (hybrid models on V1: vllm#20016) to 0.33 (§4.4, §5.5):
 * - the attention block size grows to 16 x cdiv(state, 16 x attention bytes per token per layer), so
 *   one attention page holds one state, and the state page is padded up to that page
 *   (HybridAttentionMambaModelConfig.verify_and_update_config; Platform._align_hybrid_block_size from
 *   0.27; logged as "Padding mamba page size by x%");
 * - the layers are grouped by type, groupSize layers a group: the smaller type's count, or the larger
 *   where the two are within 25 % (kv_cache_utils._get_kv_cache_groups_uniform_page_size); a partial
 *   group is padded ("Add N padding layers");
 * - a block is one page in each of groupSize layer tensors that all groups share, so
 *   num_blocks = available / (page x groupSize).
 * Undefined for a model without state layers, and for V0 (which keeps states outside the KV cache).
 */
export function hybridLayout(arch: ModelArch, tp: number, pp: number, kv: KvDtype, version: string = NEWEST_CHECKED, engine: Engine = "V1"): HybridLayout | undefined {
  const l = arch.linear;
  if (!l || engine !== "V1" || !atLeast(version, "0.10.0")) return undefined;
  const perToken = kvBytesPerTokenPerLayer(arch, tp, kv, version);
  const state = linearStateBytes(arch, tp);
  const blockSize = Math.max(BLOCK_SIZE, BLOCK_SIZE * Math.ceil(state / (BLOCK_SIZE * perToken)));
  const attention = Math.ceil(l.attentionLayers / pp);
  const stateLayers = Math.ceil(l.stateLayers / pp);
  const lo = Math.min(attention, stateLayers);
  const hi = Math.max(attention, stateLayers);
  const groupSize = hi < lo * 1.25 ? hi : lo;
  return { blockSize, pageBytes: blockSize * perToken, groupSize, attentionGroups: Math.ceil(attention / groupSize), stateGroups: Math.ceil(stateLayers / groupSize) };
}

/**
 * What vLLM prints as "GPU KV cache size: N tokens" for a hybrid with state layers (§4.4):
 * 0.10.0-0.20.0 num_blocks // groups x block size; from 0.20.1 max concurrency x max-model-len,
 * a request needing cdiv(len, block) blocks per attention group and one per state group.
 */
export function hybridReportedTokens(h: HybridLayout, kvBytes: number, maxModelLen: number, version: string = NEWEST_CHECKED): number {
  const blocks = Math.floor(kvBytes / (h.pageBytes * h.groupSize));
  if (!atLeast(version, "0.20.1")) return Math.floor(blocks / (h.attentionGroups + h.stateGroups)) * h.blockSize;
  const perRequest = h.attentionGroups * Math.ceil(maxModelLen / h.blockSize) + h.stateGroups;
  return Math.floor((blocks / perRequest) * maxModelLen);
}

/**
 * KV bytes a single request of `len` tokens needs on one rank. Sliding-window
 * layers keep only about window + max-num-batched-tokens tokens in V1 from
 * 0.9.1 (hybrid KV cache manager, §5.3); before that, and in V0, every
 * layer holds the whole request. Hybrids with state layers (V1 0.10+): whole
 * blocks of the enlarged attention block size in each attention group and one
 * page per state group, padding included (hybridLayout), which is what vLLM's
 * "To serve at least one request ... KV cache is needed" compares.
 */
export function kvBytesForRequest(arch: ModelArch, tp: number, pp: number, kv: KvDtype, len: number, batched: number, version: string = NEWEST_CHECKED, engine: Engine = "V1"): number {
  const perLayer = kvBytesPerTokenPerLayer(arch, tp, kv, version);
  const h = hybridLayout(arch, tp, pp, kv, version, engine);
  if (h) return h.pageBytes * h.groupSize * (h.attentionGroups * Math.ceil(len / h.blockSize) + h.stateGroups);
  const layers = kvLayersOnRank(arch, pp);
  const blocks = (n: number) => Math.ceil(n / BLOCK_SIZE) * BLOCK_SIZE;
  if (arch.attention.kind === "hybrid-sliding" && engine === "V1" && atLeast(version, "0.9.1")) {
    const sliding = Math.ceil(arch.attention.slidingLayers / pp);
    const fullLayers = layers - sliding;
    return perLayer * (fullLayers * blocks(len) + sliding * blocks(Math.min(len, arch.attention.window + batched)));
  }
  return perLayer * layers * blocks(len);
}

// ---------------------------------------------------------------------------
// The profile run (§3, §7)

/** Streaming multiprocessors, for the Triton top-k/top-p buffer (§3.3); 132 (H100 SXM) when unknown. */
function smCount(gpuName = ""): number {
  const table: [RegExp, number][] = [[/b200|b300/i, 148], [/h100.*pcie|h800.*pcie/i, 114], [/h100|h200|h800|gh200/i, 132], [/a100/i, 108], [/l40/i, 142], [/4090/i, 128], [/5090/i, 170], [/3090/i, 82], [/l4\b/i, 58], [/a10\b/i, 72]];
  return table.find(([re]) => re.test(gpuName))?.[1] ?? 132;
}

/**
 * Live bytes per logits element (rows x vocab) at the sampler's peak, by
 * release and implementation (§3.3, vllm/v1/sample/ops/topk_topp_sampler.py):
 * - V0 (all): full sort, softmax, cumsum, masks and scatter: 35-45 B;
 * - V1 native sort path (0.8.x; 0.12-0.16 where FlashInfer's sampler is
 *   opt-in; 0.9-0.11 without FlashInfer installed: `pip install vllm` has it
 *   only as the [flashinfer] extra): bf16 logits 2 + fp32 4 + sorted values 4
 *   + int64 indices 8 + masks + scatter ≈ 28 B plus CUB's sort buffers: the
 *   public 0.11-era H100 logs imply 37-38 B (gpt-oss, Llama-3.1, Qwen3);
 * - V1 0.9-0.11 with FlashInfer installed (the official Docker image): ~10 B
 *   (the 0.10.1.1 A100 logs imply it);
 * - V1 0.17-0.21: Triton top-k/top-p in place for >= 8 rows: ~14 B plus a
 *   cached [#SM, vocab] fp32 buffer (matches the 0.19 H100 logs to 3 %);
 * - V1 0.22+: FlashInfer's sampler by default (a hard dependency since
 *   0.20): ~10 B, Triton (14 B) where FlashInfer does not support the GPU.
 * V1 0.7.0-0.7.2 computes logits for every profile token and no sampler.
 * `flashinfer` undefined = not known: the range spans both.
 */
export function samplerBytesPerElement(version: string, engine: Engine, flashinfer?: boolean): { low: number; mid: number; high: number; perSmRow: boolean } {
  // 0.11-era H100 debug lines (llm-d-benchmark config_explorer) imply 38.2-38.4 B for three vocabularies
  // (gpt-oss, Llama-3.1, Qwen3): the high end is 39, not a blanket +5 %, which on 1024 rows of a
  // 152k vocabulary held back 0.3 GiB more than any log shows
  const native = { low: 36, mid: 38, high: 39, perSmRow: false };
  if (engine === "V0") return { low: 35, mid: 38, high: 45, perSmRow: false };
  if (!atLeast(version, "0.7.3")) return { low: 2, mid: 2, high: 6, perSmRow: false };
  if (inRange(version, "0.9.0", "0.12.0")) {
    if (flashinfer === true) return { low: 9, mid: 10, high: 16, perSmRow: false };
    if (flashinfer === false) return native;
    return { ...native, low: 9 };
  }
  if (!atLeast(version, "0.17.0")) return native;
  if (!atLeast(version, "0.22.0")) return { low: 13, mid: 14, high: 16, perSmRow: true };
  return { low: 9, mid: 10, high: 16, perSmRow: true };
}

/** Rows of logits in the profile run (§3.1): V0 max-num-seqs; V1 0.7.0-0.7.2 every token; 0.7.3 max-num-seqs; 0.8+ min(seqs, tokens). */
export function profileRows(version: string, engine: Engine, tokens: number, seqs: number): number {
  if (engine === "V0") return seqs;
  if (!atLeast(version, "0.7.3")) return tokens;
  if (!atLeast(version, "0.8.0")) return seqs;
  return Math.min(seqs, tokens);
}

/**
 * Torch peak of vLLM's profile run above the weights (§7), the larger of two
 * phases that do not overlap:
 * - the forward over T tokens: residual, hidden and MLP output (3·T·H), the MLP's
 *   gate_up and activation (3·T·I/TP) or, for MoE, the fused-MoE caches
 *   M·k·(max(2·I_e/TP, H) + I_e/TP) with M = min(T, 32768) (0.4-0.6: three
 *   separate caches, §7.4) plus its output; V0 also computes attention (QKV
 *   and output of this rank); V1 skips the attention kernel in the profile;
 * - the sampler: hidden states T·H + R·V elements at the per-release bytes of
 *   samplerBytesPerElement (+ the Triton buffer #SM·V·4). V1 gathers the
 *   logits on every TP rank; V0 samples on the driver (rank 0 sets the
 *   minimum over ranks).
 * Range: the forward -20 % (torch.compile fuses in V1) / +15 %; V0 up to
 * 0.6.3 measured free memory, i.e. the allocator's reserved pool: +25 %.
 */
export function activationEst(arch: ModelArch, tp: number, tokens: number, seqs: number, version: string, engine: Engine, gpuName?: string, flashinfer?: boolean, pp = 1): { total: Est; sampler: Est; rows: number } {
  const b = 2;
  const T = tokens;
  const H = arch.hidden;
  // residual + hidden in, and the down projection's output while the MLP's intermediates are alive
  // (the V0 RTX 3090 logs of vllm#10517: 2.07 / 2.99 GiB at 20000 / 29000 tokens, matched within 1 %)
  const residual = 3 * T * H * b;
  const dense = T * b * ((3 * arch.intermediate) / tp);
  let mlp = dense;
  if (arch.moe) {
    const M = Math.min(T, 32768);
    const k = arch.moe.expertsPerToken;
    const N = (2 * arch.moe.expertIntermediate) / tp;
    const caches = atLeast(version, "0.7.0") ? Math.max(N, H) + N / 2 : N + N / 2 + H;
    const shared = arch.moe.sharedIntermediate ? (T * b * 3 * arch.moe.sharedIntermediate) / tp : 0;
    const moe = M * k * b * caches + T * H * b + shared;
    mlp = (arch.moe.moeLayers ?? arch.layers) < arch.layers ? Math.max(moe, dense) : moe;
  }
  let attention = 0;
  if (engine === "V0") {
    const qDim = arch.attention.kind === "mla" ? (arch.attention.qkNopeHeadDim ?? 128) + (arch.attention.qkRopeHeadDim ?? 64) : arch.headDim;
    const kvHeads = arch.attention.kind === "mla" ? arch.heads : arch.kvHeads;
    attention = (T * (arch.heads * 2 * qDim + 2 * kvHeads * qDim) * b) / tp;
  }
  // A linear-attention / Mamba-2 layer's input projection (GDN: q, k, v, z and b, a; Mamba-2: z, x, B, C, dt).
  const l = arch.linear;
  const stateProj = !l ? 0 : l.kind === "gdn" ? 2 * (l.kHeads ?? l.heads) * (l.kHeadDim ?? l.headDim) + 2 * l.heads * l.headDim + 2 * l.heads : 2 * l.heads * l.headDim + 2 * (l.nGroups ?? 1) * (l.stateSize ?? 128) + l.heads;
  const linearIn = (T * stateProj * b) / tp;
  const forward = residual + Math.max(mlp, attention, linearIn);
  const rows = profileRows(version, engine, tokens, seqs);
  const per = samplerBytesPerElement(version, engine, flashinfer);
  const buf = per.perSmRow ? smCount(gpuName) * arch.vocab * 4 : 0;
  const re = rows * arch.vocab;
  const sampler = est(T * H * b + re * per.mid + buf, T * H * b + re * per.low + buf, T * H * b + re * per.high + buf);
  const fwd = est(forward, forward * (engine === "V1" ? 0.8 : 0.9), forward * (engine === "V0" && !atLeast(version, "0.6.4") ? 1.25 : 1.15));
  // With PP only the last stage computes logits and samples; the central figure and the high end
  // keep the sampler (vLLM sizes every stage's cache by the smallest), the low end is a first stage.
  const total = { mid: Math.max(fwd.mid, sampler.mid), low: pp > 1 ? fwd.low : Math.max(fwd.low, sampler.low), high: Math.max(fwd.high, sampler.high) };
  return { total, sampler, rows };
}

/**
 * CUDA-graph memory charged to the KV budget (§4.3): only in V1 from 0.20.0
 * (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS defaults to 1 there; before,
 * graphs are captured after the KV cache is allocated and live outside the
 * budget). 0 with --enforce-eager.
 *
 * Model Runner V2 charges nothing up to 0.28.x: its profile_cudagraph_memory
 * is a stub returning 0 in the 0.20.0-0.28.0 wheels ("NOTE(woosuk): It is TBD
 * whether we keep this API or not", vllm/v1/worker/gpu/model_runner.py; a real
 * estimate from 0.29.0, vllm#49224/#49233), and V2 is the default runner for
 * (VllmConfig._is_default_v2_model_runner_model, vllm/config/vllm.py):
 * 0.22-0.24 a short list of dense architectures (Qwen3, then Llama, Mistral),
 * unquantized only up to 0.23; 0.25-0.28 every dense (non-MoE) generate model.
 * So for a dense model the central figure is 0 from 0.25 and the low end 0
 * from 0.22; the high end keeps the V1 runner's estimate (features V2 lacks
 * fall back to V1), so the verdict does not lean on it. vllm#54383's 0.28.0
 * Qwen3-32B-AWQ TP 2 boot on RTX 4090s sits 0.7 GiB above the V1 figure.
 */
export function cudaGraphEst(arch: ModelArch, tp: number, pp: number, version: string, engine: Engine, enforceEager: boolean, maxNumSeqs = 256): Est {
  if (enforceEager || engine !== "V1" || !atLeast(version, "0.20.0")) return est(0);
  const v1Runner = cudaGraphOutsideEst(arch, tp, pp, enforceEager, maxNumSeqs);
  if (!arch.moe && inRange(version, "0.25.0", "0.29.0")) return est(0, 0, v1Runner.high);
  if (!arch.moe && inRange(version, "0.22.0", "0.25.0")) return est(v1Runner.mid, 0, v1Runner.high);
  return v1Runner;
}

/** vLLM's capture sizes up to min(2 x max-num-seqs, 512): 1, 2, 4, then steps of 8 to 256, of 16 beyond (vllm/config). */
export function captureSizes(maxNumSeqs: number): number {
  const max = Math.min(2 * maxNumSeqs, 512);
  let n = [1, 2, 4].filter((x) => x <= max).length;
  for (let s = 8; s <= max; s += s < 256 ? 8 : 16) n++;
  return n;
}

/**
 * Size of the captured graphs, wherever they are counted. Piecewise graphs
 * keep per-layer pieces, so the pool grows with graphs x layers: the 0.19
 * logs print 0.84 GiB for Llama-3.1-8B (51 sizes x 32 layers: 0.53 MiB
 * each), 0.81 for Qwen2.5-7B (0.58), 1.82 for a 70B at TP 2 (0.46) and 1.09
 * for gpt-oss-20b at TP 2 (MoE: 0.91). Range x0.6-1.4.
 */
export function cudaGraphOutsideEst(arch: ModelArch, _tp: number, pp: number, enforceEager: boolean, maxNumSeqs = 256): Est {
  if (enforceEager) return est(0);
  const perPiece = (arch.moe ? 0.9 : 0.52) * 1024 ** 2;
  const mid = captureSizes(maxNumSeqs) * Math.ceil(arch.layers / pp) * perPiece;
  return est(mid, mid * 0.6, mid * 1.4);
}

/**
 * States of a hybrid's linear-attention / Mamba layers where they live outside the KV cache: V0
 * (and releases before hybrid models ran on V1, < 0.10.0) allocate them in MambaCacheManager for
 * max-num-seqs requests before the KV cache is sized (vllm/model_executor/models/mamba_cache.py,
 * 0.6-0.9), so they come off the budget. The range adds vLLM's padded CUDA-graph batch (+2 rows).
 * From 0.10 (V1) they are pages of the KV cache itself (hybridLayout).
 */
export function v0StateEst(arch: ModelArch, tp: number, pp: number, version: string, engine: Engine, maxNumSeqs: number): Est {
  if (!arch.linear || (engine === "V1" && atLeast(version, "0.10.0"))) return est(0);
  const perRequest = linearStateBytes(arch, tp) * Math.ceil(arch.linear.stateLayers / pp);
  return est(perRequest * maxNumSeqs, perRequest * maxNumSeqs, perRequest * (maxNumSeqs + 2));
}

/** CUDA context + torch/cuBLAS handles of one process on its GPU (init snapshot "cuda_memory=0.51GiB", 0.19 logs). */
export const CUDA_CONTEXT_GIB = 0.5;

/**
 * Non-torch memory charged to the budget (§4.1, §4.2): cuBLAS/cuDNN
 * workspaces, kernel images, allocator slack: 0.25 GiB on one GPU in the
 * 0.19 logs (0.16-0.20 in 0.7-0.8). With TP/PP > 1, NCCL buffers, plus on
 * NVLink the custom all-reduce and NCCL's NVLS buffers: 2.07-2.1 GiB per GPU
 * at TP 2 on H100 SXM (0.19 logs); PCIe without P2P only NCCL's ring
 * buffers. V0 0.6.4 and V1 0.7.0-0.9.0 measure total - free, which also
 * charges the CUDA context and any other process on the GPU; 0.27+ counts
 * buffers allocated between the init snapshot and the profile.
 *
 * The ~2 GiB NVLink term of 0.17+ (and 0.35 GiB of 0.11-0.16) is NCCL's NVLS
 * and the symmetric-memory all-reduce, which exist only on datacenter Hopper
 * and Blackwell: SYMM_MEM_ALL_REDUCE_MAX_SIZES has capabilities 9.0 and 10.x
 * only (vllm/distributed/device_communicators/all_reduce_utils.py, 0.28.0;
 * symm_mem.py logs "Device capability 7.5 not supported") and NCCL builds its
 * NVLS kernels for sm_90+. Other P2P GPUs use the custom all-reduce, whose
 * buffers exist before the init snapshot from 0.11: the 0.28.1 TP 2 log of two
 * NVLinked Quadro RTX 6000s prints 0.21 GiB non-torch, as at TP 1. A GPU not
 * named keeps the larger term.
 */
export function nonTorchEst(version: string, engine: Engine, tp: number, pp: number, p2p: boolean, inUseGiB: number, gpuName?: string): Est {
  let mid = 0.25 * GiB;
  // a PP stage that does not sample prints less (0.07 GiB in the 0.19 PP logs)
  let low = (pp > 1 ? 0.05 : 0.18) * GiB;
  let high = 0.35 * GiB;
  if (tp * pp > 1) {
    // NCCL's communicators are created before the init snapshot from 0.11 (not charged);
    // before, and in V0, their buffers are charged too.
    const ncclCharged = engine === "V0" || !atLeast(version, "0.11.0");
    const symmetricBuffers = gpuName === undefined || /h100|h200|h800|h20\b|gh200|b200|b300|gb200|gb300/i.test(gpuName);
    if (p2p && tp > 1 && (symmetricBuffers || ncclCharged)) {
      // NVLink: 2.06-2.13 GiB per GPU at TP 2-4 in the 0.19 H100 logs (NCCL's NVLS / symmetric
      // buffers, allocated at the first collective); 0.55 GiB at TP 2 in the 0.11-era H100 debug
      // lines; 1.79 GiB more than TP 1 in 0.6.5 (vllm#10511, NCCL charged).
      if (engine === "V1" && atLeast(version, "0.17.0")) [mid, low, high] = [mid + 1.85 * GiB, low + 1.2 * GiB, high + 2.0 * GiB];
      else if (engine === "V1" && atLeast(version, "0.11.0")) [mid, low, high] = [mid + 0.35 * GiB, low + 0.2 * GiB, high + 2.0 * GiB];
      else [mid, low, high] = [mid + 1.5 * GiB, low + 0.5 * GiB, high + 2.0 * GiB];
    } else {
      // without P2P (or P2P without NVLS / symmetric memory, from 0.11): NCCL's ring buffers only
      // (less again across nodes over sockets)
      mid += (ncclCharged ? 0.3 : 0.1) * GiB;
      low += 0;
      high += (ncclCharged ? 0.4 : 0.2) * GiB;
    }
  }
  const chargesContext = (engine === "V0" && inRange(version, "0.6.4", "0.6.5")) || (engine === "V1" && !atLeast(version, "0.9.1"));
  if (chargesContext) {
    // The 0.6.4 RTX 3090 logs print non_torch_memory=0.35GiB with the context in it: the context
    // there is ~0.3 GiB, 0.51 GiB on an H100 (0.19 init snapshot).
    mid += (0.2 + inUseGiB) * GiB;
    low += (0.1 + inUseGiB) * GiB;
    high += (0.45 + inUseGiB) * GiB;
  }
  // 0.6.5-0.6.6 measured from a baseline taken before cuBLAS/NCCL warm-up: the PR that introduced it
  // printed non_torch_memory 1.79 GiB for Llama-3-8B on one H100 (vllm#10511).
  if (engine === "V0" && inRange(version, "0.6.5", "0.7.0")) high += 1.6 * GiB;
  if (engine === "V1" && atLeast(version, "0.27.0")) high += 0.1 * GiB;
  return est(mid, low, high);
}

/**
 * Memory that must stay outside vLLM's budget on each GPU: the CUDA context
 * (~0.5 GiB with torch), NCCL's own allocations for multi-GPU, a margin for
 * allocator fragmentation, what other processes hold, and the CUDA graphs
 * where they are captured after the KV cache (V0, V1 before 0.20). Seed
 * 001's rig crashed at 0.90 and ran at 0.85: on 12 GiB cards 0.90 leaves
 * 1.2 GiB, under this line.
 */
export function headroomNeededBytes(tp: number, pp: number, inUseGiB: number, graphsOutside = 0): number {
  return 0.5 * GiB + (tp * pp > 1 ? 0.25 * GiB : 0) + 0.5 * GiB + inUseGiB * GiB + graphsOutside;
}

/**
 * What CUDA reports as the total of a card given by its nominal size: vLLM
 * takes the utilization of that (torch.cuda.mem_get_info). Cards sold as N GB
 * report 1-2 % less (H100 80GB 79.19 GiB, A100 40GB 39.38, RTX 3090 23.58);
 * a size with decimals is taken as measured.
 */
export function cudaTotal(gpuMemoryGiB: number): Est {
  if (!Number.isInteger(gpuMemoryGiB)) return est(gpuMemoryGiB * GiB);
  return est(gpuMemoryGiB * 0.985 * GiB, gpuMemoryGiB * 0.98 * GiB, gpuMemoryGiB * 0.992 * GiB);
}

/**
 * Range of the weights around the parameter count. V1 (0.8+) bf16, fp8 and
 * int8: +0.2 % and 0.08 GiB at most: every public V1 "Model loading took" is
 * 0.00-0.06 GiB over the count, whatever the model's size (test data, 1.1-67.7
 * GiB per GPU). V0, and GPTQ/AWQ (group scales and zeros, no public log in
 * the set): up to 1.5 % (DeepSeek-R1-Distill-Qwen-14B at TP 2 on 0.7.2
 * loaded 1.4 % more, vllm#13061).
 */
export function weightsEst(perRankBytes: number, engine: Engine, format = "bf16"): Est {
  const seen = format === "bf16" || format.startsWith("fp8") || format.startsWith("compressed-tensors 8");
  const high = engine === "V1" && seen ? perRankBytes * 1.002 + 0.08 * GiB : perRankBytes * 1.015;
  return est(perRankBytes, perRankBytes * 0.998, high);
}

export function planGpu(i: GpuPlanInput): GpuPlan {
  const version = i.vllmVersion ?? NEWEST_CHECKED;
  const engine = engineOf(version, { gpuName: i.gpuName, kvCacheDtype: i.kvCacheDtype, useV1Env: i.useV1Env });
  const total = cudaTotal(i.gpuMemoryGiB);
  // Weights from the parameter count: the public "Model loading took" figures are 0-0.9 % above it
  // for bf16/fp8/int8 (norms, biases, vocab padding), 1.4 % once (V0 0.7); bitsandbytes +-5 %
  // (quant state); mxfp4 by the kernel's padding (mxfp4PadFactor). In V1 the excess is a small
  // fixed amount, not a share: 0.00-0.06 GiB from 1.1 to 67.7 GiB of weights (18 logs, 0.10-0.19),
  // so a share of the whole would hold back 0.9 GiB on a 61 GiB model for nothing (weightsEst).
  const pad = mxfp4PadFactor(i.arch, i.tp, version, i.gpuName);
  const w = weightBytes(i.arch, i.quantization, i.tp, i.pp, pad.mid);
  const mxfp4 = w.format.startsWith("mxfp4");
  const weights = mxfp4
    ? est(w.perRankBytes, weightBytes(i.arch, i.quantization, i.tp, i.pp, pad.low).perRankBytes, weightBytes(i.arch, i.quantization, i.tp, i.pp, pad.high).perRankBytes * 1.005)
    : w.format.startsWith("bitsandbytes")
      ? est(w.perRankBytes, w.perRankBytes * 0.95, w.perRankBytes * 1.05)
      : weightsEst(w.perRankBytes, engine, w.format);
  const act = activationEst(i.arch, i.tp, i.maxNumBatchedTokens, i.maxNumSeqs, version, engine, i.gpuName, i.flashinfer, i.pp);
  const graph = cudaGraphEst(i.arch, i.tp, i.pp, version, engine, i.enforceEager, i.maxNumSeqs);
  const nonTorch = nonTorchEst(version, engine, i.tp, i.pp, i.p2p, i.gpuMemoryInUseGiB, i.gpuName);
  const states = v0StateEst(i.arch, i.tp, i.pp, version, engine, i.maxNumSeqs);
  const budget = est(total.mid * i.utilization, total.low * i.utilization, total.high * i.utilization);
  const nonKv = sum(weights, act.total, graph, nonTorch, states);
  const kvMid = Math.max(0, budget.mid - nonKv.mid);
  const kvLow = Math.max(0, budget.low - nonKv.high);
  const kvHigh = Math.max(0, budget.high - nonKv.low);
  const perToken = kvBytesPerTokenPerLayer(i.arch, i.tp, i.kvCacheDtype, version) * kvLayersOnRank(i.arch, i.pp);
  const fitLen = largestModelLen(i, kvLow);
  const len = i.maxModelLen ?? fitLen;
  const hybrid = hybridLayout(i.arch, i.tp, i.pp, i.kvCacheDtype, version, engine);
  const tokensOf = (kv: number) => (hybrid ? hybridReportedTokens(hybrid, kv, Math.max(len, 1), version) : Math.floor(kv / perToken / BLOCK_SIZE) * BLOCK_SIZE);
  const perRequest = kvBytesForRequest(i.arch, i.tp, i.pp, i.kvCacheDtype, Math.max(len, 1), i.maxNumBatchedTokens, version, engine);
  // Graphs the budget does not charge are captured after the KV cache, in the memory left outside it
  // (V0, V1 before 0.20, and Model Runner V2 up to 0.28: see cudaGraphEst).
  const graphsOutside = Math.max(0, cudaGraphOutsideEst(i.arch, i.tp, i.pp, i.enforceEager, i.maxNumSeqs).mid - graph.mid);
  return {
    weightFormat: w.format,
    engine,
    rulesOf: version,
    weightsGiB: w.perRankBytes / GiB,
    activationGiB: act.total.mid / GiB,
    samplerGiB: act.sampler.mid / GiB,
    cudaGraphGiB: graph.mid / GiB,
    nonTorchGiB: nonTorch.mid / GiB,
    gpuTotalGiB: total.mid / GiB,
    budgetGiB: budget.mid / GiB,
    kvCacheGiB: kvMid / GiB,
    kvCacheGiBLow: kvLow / GiB,
    kvCacheGiBHigh: kvHigh / GiB,
    kvBytesPerToken: perToken,
    kvCacheTokens: tokensOf(kvMid),
    kvCacheTokensLow: tokensOf(kvLow),
    kvCacheTokensHigh: tokensOf(kvHigh),
    maxModelLen: fitLen,
    maxModelLenAsked: i.maxModelLen,
    maxConcurrency: len > 0 && kvLow > 0 ? Math.floor((kvLow / perRequest) * 100) / 100 : 0,
    profileTokens: i.maxNumBatchedTokens,
    profileRows: act.rows,
    headroomGiB: (total.mid * (1 - i.utilization)) / GiB,
    headroomNeededGiB: headroomNeededBytes(i.tp, i.pp, i.gpuMemoryInUseGiB, graphsOutside) / GiB,
    checkpointGiB: w.checkpointBytes / GiB,
    ...(hybrid && atLeast(version, MAMBA_BLOCKS_CHECKED_FROM)
      ? { stateBlocksLow: Math.floor(kvLow / (hybrid.pageBytes * hybrid.groupSize)), stateBlocksNeeded: i.maxNumSeqs }
      : {}),
  };
}

/** Largest max-model-len whose single request fits in `kvBytes` (binary search, like vLLM's estimate). */
export function largestModelLen(i: GpuPlanInput, kvBytes: number): number {
  const version = i.vllmVersion ?? NEWEST_CHECKED;
  const engine = engineOf(version, { gpuName: i.gpuName, kvCacheDtype: i.kvCacheDtype, useV1Env: i.useV1Env });
  const cap = i.arch.maxPositionEmbeddings;
  const need = (len: number) => kvBytesForRequest(i.arch, i.tp, i.pp, i.kvCacheDtype, len, i.maxNumBatchedTokens, version, engine);
  if (need(1) > kvBytes) return 0;
  if (need(cap) <= kvBytes) return cap;
  let lo = 1;
  let hi = cap;
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2);
    if (need(mid) <= kvBytes) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
