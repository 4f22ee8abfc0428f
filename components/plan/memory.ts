// The GPU memory planner: what vLLM will do with each GPU, computed before
// any host is touched.
//
// vLLM's own budget (vllm/v1/worker/gpu_worker.py determine_available_memory,
// see ../shared/VLLM-FACTS.md "Memory"):
//   available KV = total x gpu_memory_utilization
//                  - (weights + torch peak of a profile run at max-num-batched-tokens
//                     + non-torch memory (NCCL buffers, cuBLAS workspace)
//                     + CUDA-graph memory, counted inside the budget since 0.21)
// and the KV cache holds, per token and per layer on one rank,
//   2 (K and V) x max(1, kv_heads / TP) x head_dim x bytes of the kv dtype
// (vllm/v1/kv_cache_interface.py FullAttentionSpec.page_size_bytes); MLA
// stores one latent of kv_lora_rank + qk_rope_head_dim, no factor 2, not
// split by TP (MLAAttentionSpec). Blocks are 16 tokens.
//
// Weights, activation, graph and non-torch terms are estimates (documented
// at each function); KV arithmetic is exact and is checked in
// test/unit/planner-vllm-logs.test.ts against figures vLLM printed in public
// issue logs (test/unit/data/vllm-log-figures.json).
import type { ModelArch } from "./catalog";

export const GiB = 1024 ** 3;
export const BLOCK_SIZE = 16;

export type QuantMethod = "none" | "gptq" | "gptq_marlin" | "awq" | "awq_marlin" | "fp8" | "bitsandbytes" | "mxfp4" | "compressed-tensors";
export type KvDtype = "auto" | "float16" | "bfloat16" | "fp8" | "fp8_e4m3" | "fp8_e5m2";

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
}

export interface GpuPlan {
  /** Effective weight format and its bytes per linear-layer parameter. */
  weightFormat: string;
  weightsGiB: number;
  activationGiB: number;
  cudaGraphGiB: number;
  nonTorchGiB: number;
  budgetGiB: number;
  kvCacheGiB: number;
  kvBytesPerToken: number;
  kvCacheTokens: number;
  /** Largest max-model-len one request can use with this KV cache (capped by the model's context). */
  maxModelLen: number;
  maxModelLenAsked?: number;
  /** Requests of max-model-len tokens that fit at once. */
  maxConcurrency: number;
  /** Memory left outside vLLM's budget: the CUDA context, other processes. */
  headroomGiB: number;
  headroomNeededGiB: number;
  /** Checkpoint size on disk (all ranks together). */
  checkpointGiB: number;
}

/** Bytes per parameter of the linear layers for a weight format (scales and zeros included). */
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
      return 0.5 + 4 / 64; // nf4 + an fp32 absmax per 64 weights
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
export function weightBytes(arch: ModelArch, quantization: QuantMethod, tp: number, pp: number): Weights {
  const native = arch.quantization;
  let method: string = quantization === "none" ? native?.method ?? "none" : quantization;
  if (method === "gptq_marlin") method = "gptq";
  if (method === "awq_marlin") method = "awq";
  const bits = native && (method === native.method || quantization === "none") ? native.bits : method === "fp8" ? 8 : 4;
  const groupSize = native?.groupSize ?? 128;
  const embedParams = arch.vocab * arch.hidden * (arch.tiedEmbeddings ? 1 : 2);
  const bodyParams = Math.max(0, arch.paramsB * 1e9 - embedParams);
  let bodyBytes: number;
  if (method === "mxfp4" && arch.moe && (native?.expertsOnly ?? true)) {
    const moeLayers = arch.moe.moeLayers ?? arch.layers;
    const expertParams = Math.min(bodyParams, moeLayers * arch.moe.experts * 3 * arch.hidden * arch.moe.expertIntermediate);
    // vllm/model_executor/layers/quantization/mxfp4.py pads each TP shard's expert intermediate size
    // up to a multiple of 256 for its kernels (2880 -> 3072 on one GPU, 1440 -> 1536 on two).
    const shard = arch.moe.expertIntermediate / tp;
    const pad = (Math.ceil(shard / 256) * 256) / shard;
    bodyBytes = expertParams * pad * bytesPerParam("mxfp4", 4) + (bodyParams - expertParams) * 2;
  } else {
    bodyBytes = bodyParams * bytesPerParam(method, bits, groupSize);
  }
  const embedBytes = embedParams * 2;
  const layersOnBusiestRank = Math.ceil(arch.layers / pp) / arch.layers;
  // With PP the first rank holds the embedding, the last the LM head; with PP=1 one rank holds both.
  const embedOnBusiestRank = pp === 1 ? embedBytes : embedBytes / (arch.tiedEmbeddings ? 1 : 2);
  return {
    format: method === "none" ? "bf16" : `${method} ${bits}-bit`,
    perRankBytes: (bodyBytes * layersOnBusiestRank + embedOnBusiestRank) / tp,
    checkpointBytes: bodyBytes + embedBytes,
  };
}

/** KV bytes per token per layer on one rank. */
export function kvBytesPerTokenPerLayer(arch: ModelArch, tp: number, kvCacheDtype: KvDtype): number {
  const bytes = kvDtypeBytes(kvCacheDtype);
  if (arch.attention.kind === "mla") return arch.attention.latentDim * bytes;
  return 2 * Math.max(1, Math.floor(arch.kvHeads / tp)) * arch.headDim * bytes;
}

/**
 * KV bytes a single request of `len` tokens needs on one rank. Sliding-window
 * layers keep only about window + max-num-batched-tokens tokens.
 */
export function kvBytesForRequest(arch: ModelArch, tp: number, pp: number, kv: KvDtype, len: number, batched: number): number {
  const perLayer = kvBytesPerTokenPerLayer(arch, tp, kv);
  const layers = Math.ceil(arch.layers / pp);
  const blocks = (n: number) => Math.ceil(n / BLOCK_SIZE) * BLOCK_SIZE;
  if (arch.attention.kind === "hybrid-sliding") {
    const sliding = Math.ceil(arch.attention.slidingLayers / pp);
    const fullLayers = layers - sliding;
    return perLayer * (fullLayers * blocks(len) + sliding * blocks(Math.min(len, arch.attention.window + batched)));
  }
  return perLayer * layers * blocks(len);
}

/**
 * Torch peak of vLLM's profile run: one forward pass over max-num-batched-
 * tokens tokens plus the dummy sampler over max-num-seqs rows. Estimate:
 * a few hidden-state buffers, the MLP (or fused-MoE) intermediate of this
 * rank, and fp32 logits + probabilities over the full vocabulary.
 */
export function activationBytes(arch: ModelArch, tp: number, tokens: number, maxNumSeqs: number): number {
  const hiddenStates = tokens * arch.hidden * 2 * 4;
  const mlp = arch.moe
    ? tokens * arch.moe.expertsPerToken * (arch.moe.expertIntermediate / tp) * 2 * 3
    : tokens * (arch.intermediate / tp) * 2 * 3;
  const attnScratch = tokens * (arch.heads / tp) * arch.headDim * 2 * 2;
  // The dummy sampler run profiles top-p/top-k: fp32 logits and probabilities plus int64 sort indices.
  const sampler = maxNumSeqs * arch.vocab * (4 + 4 + 8);
  return hiddenStates + mlp + attnScratch + sampler;
}

/**
 * CUDA graphs: vLLM captures batch sizes up to min(2 x max-num-seqs, 512);
 * their memory pool holds roughly one activation set of the largest size
 * plus per-layer graph bookkeeping. 0 with --enforce-eager.
 */
export function cudaGraphBytes(arch: ModelArch, tp: number, pp: number, maxNumSeqs: number, enforceEager: boolean): number {
  if (enforceEager) return 0;
  const largest = Math.min(2 * maxNumSeqs, 512);
  return 0.1 * GiB + activationBytes(arch, tp, largest, 0) + Math.ceil(arch.layers / pp) * 2 * 1024 ** 2;
}

/**
 * cuBLAS workspace and allocator slack, NCCL buffers when ranks talk, and the
 * custom all-reduce's IPC buffers when TP ranks have P2P (vLLM turns it off
 * without P2P: consumer cards on risers). The llm-d v0.19 logs of TP-2 runs
 * on H100 show ~2 GiB of non-torch memory per GPU.
 */
export function nonTorchBytes(tp: number, pp: number, p2p: boolean): number {
  return 0.2 * GiB + (tp * pp > 1 ? 0.3 * GiB : 0) + (tp > 1 && p2p ? 1.5 * GiB : 0);
}

/**
 * Memory that must stay outside vLLM's budget on each GPU: the CUDA context
 * (~0.5 GiB with torch), NCCL's own allocations for multi-GPU, and a margin
 * for allocator fragmentation. Seed 001's rig crashed at 0.90 and ran at
 * 0.85: on 12 GiB cards 0.90 leaves 1.2 GiB, under this line.
 */
export function headroomNeededBytes(tp: number, pp: number, inUseGiB: number): number {
  return 0.5 * GiB + (tp * pp > 1 ? 0.25 * GiB : 0) + 0.5 * GiB + inUseGiB * GiB;
}

export function planGpu(i: GpuPlanInput): GpuPlan {
  const total = i.gpuMemoryGiB * GiB;
  const w = weightBytes(i.arch, i.quantization, i.tp, i.pp);
  const act = activationBytes(i.arch, i.tp, i.maxNumBatchedTokens, i.maxNumSeqs);
  const graph = cudaGraphBytes(i.arch, i.tp, i.pp, i.maxNumSeqs, i.enforceEager);
  const nonTorch = nonTorchBytes(i.tp, i.pp, i.p2p);
  const budget = total * i.utilization;
  const kv = Math.max(0, budget - w.perRankBytes - act - graph - nonTorch);
  const perToken = kvBytesPerTokenPerLayer(i.arch, i.tp, i.kvCacheDtype) * Math.ceil(i.arch.layers / i.pp);
  const tokens = Math.floor(kv / perToken / BLOCK_SIZE) * BLOCK_SIZE;
  const fitLen = largestModelLen(i, kv);
  const len = i.maxModelLen ?? fitLen;
  const perRequest = kvBytesForRequest(i.arch, i.tp, i.pp, i.kvCacheDtype, Math.max(len, 1), i.maxNumBatchedTokens);
  return {
    weightFormat: w.format,
    weightsGiB: w.perRankBytes / GiB,
    activationGiB: act / GiB,
    cudaGraphGiB: graph / GiB,
    nonTorchGiB: nonTorch / GiB,
    budgetGiB: budget / GiB,
    kvCacheGiB: kv / GiB,
    kvBytesPerToken: perToken,
    kvCacheTokens: tokens,
    maxModelLen: fitLen,
    maxModelLenAsked: i.maxModelLen,
    maxConcurrency: len > 0 && kv > 0 ? Math.floor((kv / perRequest) * 100) / 100 : 0,
    headroomGiB: (total - budget) / GiB,
    headroomNeededGiB: headroomNeededBytes(i.tp, i.pp, i.gpuMemoryInUseGiB) / GiB,
    checkpointGiB: w.checkpointBytes / GiB,
  };
}

/** Largest max-model-len whose single request fits in `kvBytes` (binary search, like vLLM's estimate). */
export function largestModelLen(i: GpuPlanInput, kvBytes: number): number {
  const cap = i.arch.maxPositionEmbeddings;
  const need = (len: number) => kvBytesForRequest(i.arch, i.tp, i.pp, i.kvCacheDtype, len, i.maxNumBatchedTokens);
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

/**
 * vLLM's defaults for max-num-seqs / max-num-batched-tokens of `vllm serve`
 * (EngineArgs, api server usage context; history in
 * data/vllm-flag-history.json "defaults"): from 0.9.0, 1024/8192 on GPUs of
 * 70 GiB or more that are not A100, else 256/2048; from 0.28.0 also
 * 1024/16384 from 160 GiB.
 */
export function schedulerDefaults(gpuMemoryGiB: number, gpuName: string, version: string): { maxNumSeqs: number; maxNumBatchedTokens: number } {
  const [maj, min] = version.split(".").map(Number);
  const atLeast = (m: number) => maj > 0 || min >= m;
  if (atLeast(28) && gpuMemoryGiB >= 160) return { maxNumSeqs: 1024, maxNumBatchedTokens: 16384 };
  const big = gpuMemoryGiB >= 70 && !/a100/i.test(gpuName);
  return big ? { maxNumSeqs: 1024, maxNumBatchedTokens: 8192 } : { maxNumSeqs: 256, maxNumBatchedTokens: 2048 };
}
