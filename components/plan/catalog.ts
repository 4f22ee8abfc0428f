// Architecture facts of the models the seeds used, copied from each model's
// config.json on Hugging Face (the `source` of each entry), plus the parser
// for any other model's local config.json. The memory planner needs only
// these numbers; a model that is neither here nor given by a config.json is
// an error, never a guess.
import * as fs from "fs";

export type AttentionKind =
  | { kind: "full" }
  /** Alternating sliding-window / full layers (gpt-oss): `slidingLayers` of the layers keep only `window` tokens. */
  | { kind: "hybrid-sliding"; window: number; slidingLayers: number }
  /**
   * Multi-head latent attention (DeepSeek V2/V3): one latent of `latentDim` (kv_lora_rank +
   * qk_rope_head_dim) per token per layer, not split by TP. The other dimensions give the
   * parameter count and the KV layout of releases before 0.7.1 (full K/V heads).
   */
  | { kind: "mla"; latentDim: number; kvLoraRank?: number; qLoraRank?: number | null; qkNopeHeadDim?: number; qkRopeHeadDim?: number; vHeadDim?: number };

export interface NativeQuantization {
  method: "gptq" | "awq" | "fp8" | "mxfp4" | "compressed-tensors" | "bitsandbytes";
  bits: number;
  groupSize?: number;
  /** mxfp4 in gpt-oss quantizes only the MoE experts; attention and embeddings stay bf16. */
  expertsOnly?: boolean;
}

export interface MoeFacts {
  experts: number;
  expertsPerToken: number;
  /** intermediate size of one expert */
  expertIntermediate: number;
  /** how many layers are MoE (the rest dense); defaults to all */
  moeLayers?: number;
  /** intermediate size of the always-on shared expert(s) of a MoE layer, all of them together */
  sharedIntermediate?: number;
}

/**
 * Layers that keep a fixed-size recurrent state per request instead of KV per token, in hybrid
 * models (VLLM-MEMORY.md §5.5; vllm/model_executor/layers/mamba/mamba_utils.py,
 * MambaStateShapeCalculator):
 * - "gdn": gated delta net linear attention (Qwen3-Next, Qwen3.5/3.6): conv state
 *   (kernel-1) x (2 x kHeads x kDim + vHeads x vDim) and recurrent state vHeads x vDim x kDim;
 * - "mamba2": Mamba-2 mixer (Nemotron-H, Granite-4.0-H, Bamba): conv state (kernel-1) x
 *   (dInner + 2 x nGroups x stateSize) and SSM state heads x headDim x stateSize.
 * Both are split over TP by heads.
 */
export interface LinearAttentionFacts {
  kind: "gdn" | "mamba2";
  /** Layers with a state (no KV). */
  stateLayers: number;
  /** Layers with attention KV; the rest of `layers` have neither (Nemotron-H's MLP / MoE-only layers). */
  attentionLayers: number;
  /** gdn: value heads; mamba2: mamba heads. */
  heads: number;
  /** gdn: value head dim; mamba2: mamba head dim. */
  headDim: number;
  /** gdn only: key heads and key head dim. */
  kHeads?: number;
  kHeadDim?: number;
  /** mamba2 only: B/C groups and the SSM state size. */
  nGroups?: number;
  stateSize?: number;
  convKernel: number;
  /** Bytes of one recurrent-state element: 4 where the config asks for fp32 (mamba_ssm_dtype / mamba_ssm_cache_dtype), else 2 (the model dtype). */
  ssmStateBytes: number;
}

export interface ModelArch {
  id: string;
  source: string;
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  vocab: number;
  intermediate: number;
  tiedEmbeddings: boolean;
  maxPositionEmbeddings: number;
  /** Total parameters in billions (from the model card or the safetensors index). */
  paramsB: number;
  /** Exact checkpoint bytes (the safetensors index's total_size), when known; otherwise estimated from paramsB. */
  checkpointBytes?: number;
  attention: AttentionKind;
  moe?: MoeFacts;
  quantization?: NativeQuantization;
  /** Recommended context of the seed or model card, for stacks that say maxModelLen: auto. */
  notes?: string;
  /** Every layer has a sliding window (Mistral-7B-v0.1): V0 turns automatic chunked prefill off for it. */
  slidingWindowAllLayers?: boolean;
  /** Hybrid attention + linear-attention / Mamba layers (absent: every layer has attention KV). */
  linear?: LinearAttentionFacts;
  /** Layers with a dense MLP, where not every non-MoE layer has one (Nemotron-H); default layers - moeLayers. */
  mlpLayers?: number;
  /** The dense MLP has no gate (Nemotron-H's relu2: up and down, 2 matrices instead of 3). */
  mlpUngated?: boolean;
  /** Attention's query projection also yields an output gate (Qwen3-Next/3.5 attn_output_gate): q_proj is twice as wide. */
  attnOutputGate?: boolean;
}

const full: AttentionKind = { kind: "full" };

const qwen72: Omit<ModelArch, "id" | "source"> = {
  layers: 80, hidden: 8192, heads: 64, kvHeads: 8, headDim: 128, vocab: 152064, intermediate: 29568,
  tiedEmbeddings: false, maxPositionEmbeddings: 32768, paramsB: 72.7, attention: full,
};
const llama70: Omit<ModelArch, "id" | "source"> = {
  layers: 80, hidden: 8192, heads: 64, kvHeads: 8, headDim: 128, vocab: 128256, intermediate: 28672,
  tiedEmbeddings: false, maxPositionEmbeddings: 131072, paramsB: 70.6, attention: full,
};
const gptOss = (layers: number, experts: number, paramsB: number): Omit<ModelArch, "id" | "source"> => ({
  layers, hidden: 2880, heads: 64, kvHeads: 8, headDim: 64, vocab: 201088, intermediate: 2880,
  tiedEmbeddings: false, maxPositionEmbeddings: 131072, paramsB,
  attention: { kind: "hybrid-sliding", window: 128, slidingLayers: layers / 2 },
  moe: { experts, expertsPerToken: 4, expertIntermediate: 2880 },
  quantization: { method: "mxfp4", bits: 4, groupSize: 32, expertsOnly: true },
});
const hf = (id: string) => `https://huggingface.co/${id}/blob/main/config.json`;

const entries: ModelArch[] = [
  { id: "Qwen/Qwen2.5-72B-Instruct", source: hf("Qwen/Qwen2.5-72B-Instruct"), ...qwen72 },
  {
    id: "Qwen/Qwen2.5-72B-Instruct-GPTQ-Int8", source: hf("Qwen/Qwen2.5-72B-Instruct-GPTQ-Int8"), ...qwen72,
    quantization: { method: "gptq", bits: 8, groupSize: 128 },
  },
  {
    id: "Qwen/Qwen2.5-72B-Instruct-AWQ", source: hf("Qwen/Qwen2.5-72B-Instruct-AWQ"), ...qwen72,
    quantization: { method: "awq", bits: 4, groupSize: 128 },
  },
  {
    id: "Qwen/Qwen2.5-14B-Instruct", source: hf("Qwen/Qwen2.5-14B-Instruct"),
    layers: 48, hidden: 5120, heads: 40, kvHeads: 8, headDim: 128, vocab: 152064, intermediate: 13824,
    tiedEmbeddings: false, maxPositionEmbeddings: 32768, paramsB: 14.7, attention: full,
  },
  {
    id: "Qwen/Qwen2.5-7B-Instruct", source: hf("Qwen/Qwen2.5-7B-Instruct"),
    layers: 28, hidden: 3584, heads: 28, kvHeads: 4, headDim: 128, vocab: 152064, intermediate: 18944,
    tiedEmbeddings: false, maxPositionEmbeddings: 32768, paramsB: 7.62, attention: full,
  },
  {
    id: "meta-llama/Llama-3.1-8B-Instruct", source: hf("meta-llama/Llama-3.1-8B-Instruct"),
    layers: 32, hidden: 4096, heads: 32, kvHeads: 8, headDim: 128, vocab: 128256, intermediate: 14336,
    tiedEmbeddings: false, maxPositionEmbeddings: 131072, paramsB: 8.03, attention: full,
  },
  { id: "meta-llama/Llama-3.1-70B-Instruct", source: hf("meta-llama/Llama-3.1-70B-Instruct"), ...llama70 },
  { id: "meta-llama/Llama-3.3-70B-Instruct", source: hf("meta-llama/Llama-3.3-70B-Instruct"), ...llama70 },
  {
    id: "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", source: hf("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4"),
    ...llama70, quantization: { method: "awq", bits: 4, groupSize: 128 },
  },
  { id: "openai/gpt-oss-20b", source: hf("openai/gpt-oss-20b"), ...gptOss(24, 32, 20.9) },
  { id: "openai/gpt-oss-120b", source: hf("openai/gpt-oss-120b"), ...gptOss(36, 128, 116.8) },
  // Seed 004's cluster table. Text-model facts only (the vision towers are small next to the LM).
  {
    id: "meta-llama/Llama-4-Scout-17B-16E-Instruct", source: hf("meta-llama/Llama-4-Scout-17B-16E-Instruct"),
    layers: 48, hidden: 5120, heads: 40, kvHeads: 8, headDim: 128, vocab: 202048, intermediate: 16384,
    tiedEmbeddings: false, maxPositionEmbeddings: 10485760, paramsB: 109,
    attention: full, moe: { experts: 16, expertsPerToken: 1, expertIntermediate: 8192 },
  },
  {
    id: "meta-llama/Llama-4-Maverick-17B-128E-Instruct", source: hf("meta-llama/Llama-4-Maverick-17B-128E-Instruct"),
    layers: 48, hidden: 5120, heads: 40, kvHeads: 8, headDim: 128, vocab: 202048, intermediate: 16384,
    tiedEmbeddings: false, maxPositionEmbeddings: 1048576, paramsB: 400,
    attention: full, moe: { experts: 128, expertsPerToken: 1, expertIntermediate: 8192, moeLayers: 24 },
  },
  {
    id: "meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8", source: hf("meta-llama/Llama-4-Maverick-17B-128E-Instruct-FP8"),
    layers: 48, hidden: 5120, heads: 40, kvHeads: 8, headDim: 128, vocab: 202048, intermediate: 16384,
    tiedEmbeddings: false, maxPositionEmbeddings: 1048576, paramsB: 400,
    attention: full, moe: { experts: 128, expertsPerToken: 1, expertIntermediate: 8192, moeLayers: 24 },
    quantization: { method: "fp8", bits: 8 },
  },
  {
    id: "Qwen/Qwen3-VL-235B-A22B-Instruct", source: hf("Qwen/Qwen3-VL-235B-A22B-Instruct"),
    layers: 94, hidden: 4096, heads: 64, kvHeads: 4, headDim: 128, vocab: 151936, intermediate: 12288,
    tiedEmbeddings: false, maxPositionEmbeddings: 262144, paramsB: 236,
    attention: full, moe: { experts: 128, expertsPerToken: 8, expertIntermediate: 1536 },
  },
  {
    id: "zai-org/GLM-4.7", source: hf("zai-org/GLM-4.7"),
    layers: 92, hidden: 5120, heads: 96, kvHeads: 8, headDim: 128, vocab: 151552, intermediate: 12288,
    tiedEmbeddings: false, maxPositionEmbeddings: 202752, paramsB: 358,
    attention: full, moe: { experts: 160, expertsPerToken: 8, expertIntermediate: 1536, moeLayers: 89 },
  },
  {
    id: "deepseek-ai/DeepSeek-V3", source: hf("deepseek-ai/DeepSeek-V3"),
    layers: 61, hidden: 7168, heads: 128, kvHeads: 128, headDim: 192, vocab: 129280, intermediate: 18432,
    tiedEmbeddings: false, maxPositionEmbeddings: 163840, paramsB: 671,
    // kv_lora_rank 512 + qk_rope_head_dim 64 (VLLM-FACTS.md, MLA)
    attention: { kind: "mla", latentDim: 576, kvLoraRank: 512, qLoraRank: 1536, qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128 },
    moe: { experts: 256, expertsPerToken: 8, expertIntermediate: 2048, moeLayers: 58, sharedIntermediate: 2048 },
    quantization: { method: "fp8", bits: 8 },
  },
];

export const CATALOG: ReadonlyMap<string, ModelArch> = new Map(entries.map((e) => [e.id.toLowerCase(), e]));

export function catalogIds(): string[] {
  return entries.map((e) => e.id);
}

export class UnknownModelError extends Error {}

/** Parse a Hugging Face config.json into ModelArch. Throws with the missing field named. */
export function archFromConfigJson(id: string, json: Record<string, unknown>, paramsB?: number, source = "local config.json"): ModelArch {
  // Multimodal configs nest the language model under text_config.
  const c = (typeof json.text_config === "object" && json.text_config ? { ...json, ...(json.text_config as object) } : json) as Record<string, unknown>;
  const num = (k: string, fallback?: number): number => {
    const v = c[k];
    if (typeof v === "number") return v;
    if (fallback !== undefined) return fallback;
    throw new UnknownModelError(`${source} of ${id} has no numeric "${k}" -> pass a config.json of a decoder LM (num_hidden_layers, hidden_size, num_attention_heads, vocab_size)`);
  };
  const layers = num("num_hidden_layers");
  const hidden = num("hidden_size");
  const heads = num("num_attention_heads");
  const kvHeads = num("num_key_value_heads", heads);
  const headDim = num("head_dim", hidden / heads);
  const vocab = num("vocab_size");
  const experts = num("num_local_experts", num("num_experts", num("n_routed_experts", 0)));
  const intermediate = num("intermediate_size", 4 * hidden);
  let moe: MoeFacts | undefined;
  if (experts) {
    const expertIntermediate = num("moe_intermediate_size", intermediate);
    // Dense layers before the MoE ones (DeepSeek/GLM first_k_dense_replace), Llama-4's interleave
    // step, Qwen's decoder_sparse_step / mlp_only_layers.
    const firstDense = num("first_k_dense_replace", 0);
    const step = num("interleave_moe_layer_step", num("decoder_sparse_step", 1)) || 1;
    const mlpOnly = Array.isArray(c.mlp_only_layers) ? (c.mlp_only_layers as unknown[]).length : 0;
    const moeLayers = Math.floor((layers - firstDense - mlpOnly) / step);
    // Shared experts: DeepSeek n_shared_experts x moe_intermediate_size, Qwen2-MoE shared_expert_intermediate_size,
    // Granite-4.0-H's always-on shared MLP (shared_intermediate_size).
    const shared = num("n_shared_experts", 0) * expertIntermediate || num("shared_expert_intermediate_size", 0) || num("shared_intermediate_size", 0);
    moe = {
      experts,
      expertsPerToken: num("num_experts_per_tok", num("moe_topk", 2)),
      expertIntermediate,
      moeLayers: moeLayers < layers ? moeLayers : undefined,
      sharedIntermediate: shared || undefined,
    };
  }
  let attention: AttentionKind = full;
  let slidingWindowAllLayers = false;
  if (typeof c.kv_lora_rank === "number") {
    const kvLoraRank = c.kv_lora_rank as number;
    const qkRopeHeadDim = num("qk_rope_head_dim", 64);
    attention = {
      kind: "mla", latentDim: kvLoraRank + qkRopeHeadDim, kvLoraRank, qkRopeHeadDim,
      qLoraRank: typeof c.q_lora_rank === "number" ? (c.q_lora_rank as number) : null,
      qkNopeHeadDim: num("qk_nope_head_dim", 128), vHeadDim: num("v_head_dim", 128),
    };
  } else if (Array.isArray(c.layer_types) && typeof c.sliding_window === "number") {
    const sliding = (c.layer_types as string[]).filter((t) => t === "sliding_attention").length;
    if (sliding > 0) attention = { kind: "hybrid-sliding", window: c.sliding_window as number, slidingLayers: sliding };
  } else if (typeof c.sliding_window === "number" && typeof c.sliding_window_pattern === "number" && (c.sliding_window_pattern as number) > 1) {
    // Gemma-3: every sliding_window_pattern-th layer is global, the others slide.
    const pattern = c.sliding_window_pattern as number;
    attention = { kind: "hybrid-sliding", window: c.sliding_window as number, slidingLayers: layers - Math.floor(layers / pattern) };
  } else if (typeof c.sliding_window === "number" && c.use_sliding_window !== false) {
    slidingWindowAllLayers = true;
  }
  const { moeLayers: hybridMoeLayers, ...hybrid } = linearLayersOf(c, layers, id, source);
  const q = c.quantization_config as Record<string, unknown> | undefined;
  let quantization: NativeQuantization | undefined;
  if (q && typeof q.quant_method === "string") {
    const method = q.quant_method as NativeQuantization["method"];
    if (!["gptq", "awq", "fp8", "mxfp4", "compressed-tensors", "bitsandbytes"].includes(method)) {
      throw new UnknownModelError(`${source} of ${id}: quantization method "${method}" is not modelled -> use a gptq, awq, fp8, mxfp4 or bitsandbytes checkpoint`);
    }
    // bitsandbytes checkpoints say load_in_4bit / load_in_8bit rather than bits.
    const bits = typeof q.bits === "number" ? q.bits : method === "bitsandbytes" ? (q.load_in_8bit === true ? 8 : 4) : method === "mxfp4" ? 4 : 8;
    quantization = { method, bits, groupSize: typeof q.group_size === "number" ? q.group_size : undefined, expertsOnly: method === "mxfp4" };
  }
  const arch: ModelArch = {
    id, source, layers, hidden, heads, kvHeads, headDim, vocab, intermediate,
    tiedEmbeddings: c.tie_word_embeddings === true,
    maxPositionEmbeddings: num("max_position_embeddings", 4096),
    paramsB: 0, attention, moe, quantization,
    ...(slidingWindowAllLayers ? { slidingWindowAllLayers } : {}),
    ...hybrid,
  };
  // Nemotron-H says which layers are MoE in its pattern, not by first_k_dense_replace.
  if (hybridMoeLayers !== undefined && moe) moe.moeLayers = hybridMoeLayers < layers ? hybridMoeLayers : undefined;
  arch.paramsB = paramsB ?? estimateParamsB(arch);
  return arch;
}

/**
 * The linear-attention / Mamba layers of a hybrid config.json, as vLLM's model files read them:
 * - Qwen3-Next / Qwen3.5 / Qwen3.6 (qwen3_next.py, qwen3_5.py; vLLM 0.10.2+ / 0.17+): gated delta net
 *   layers, `layer_types` ("linear_attention" / "full_attention") or every `full_attention_interval`-th
 *   layer full (default 4); linear_num_key_heads / linear_num_value_heads / linear_key_head_dim /
 *   linear_value_head_dim / linear_conv_kernel_dim; attention has an output gate (attn_output_gate,
 *   default true); `mamba_ssm_dtype: float32` keeps the recurrent state in fp32.
 * - Nemotron-H (nemotron_h.py, 0.9+): `hybrid_override_pattern`, one character a layer: M Mamba-2,
 *   * attention, - MLP (relu2, no gate), E MoE; mamba_num_heads / mamba_head_dim / ssm_state_size /
 *   n_groups / conv_kernel; `mamba_ssm_cache_dtype`.
 * - Granite-4.0-H / Bamba (granitemoehybrid.py, bamba.py): `layer_types` "mamba" / "attention" or
 *   `attn_layer_indices`, every layer with its MLP; mamba_n_heads / mamba_d_head / mamba_d_state /
 *   mamba_n_groups / mamba_d_conv.
 * Returns nothing for a model without such layers.
 */
function linearLayersOf(c: Record<string, unknown>, layers: number, id: string, source: string): Partial<ModelArch> & { moeLayers?: number } {
  const n = (k: string): number | undefined => (typeof c[k] === "number" ? (c[k] as number) : undefined);
  const need = (k: string, fallback?: number): number => {
    const v = n(k) ?? fallback;
    if (v === undefined) throw new UnknownModelError(`${source} of ${id} is a hybrid linear-attention model without a numeric "${k}" -> pass the model's own config.json`);
    return v;
  };
  const fp32 = [c.mamba_ssm_dtype, c.mamba_ssm_cache_dtype].some((v) => v === "float32");
  const ssmStateBytes = fp32 ? 4 : 2;
  const types = Array.isArray(c.layer_types) ? (c.layer_types as unknown[]).map(String) : undefined;
  if (n("linear_num_value_heads") !== undefined) {
    const interval = n("full_attention_interval") ?? 4;
    const full = types ? types.filter((t) => t === "full_attention").length : Math.floor(layers / interval);
    return {
      linear: {
        kind: "gdn", stateLayers: layers - full, attentionLayers: full,
        heads: need("linear_num_value_heads"), headDim: need("linear_value_head_dim", 128),
        kHeads: need("linear_num_key_heads"), kHeadDim: need("linear_key_head_dim", 128),
        convKernel: need("linear_conv_kernel_dim", 4), ssmStateBytes,
      },
      attnOutputGate: c.attn_output_gate !== false,
    };
  }
  if (typeof c.hybrid_override_pattern === "string") {
    const pattern = c.hybrid_override_pattern as string;
    const count = (ch: string) => pattern.split("").filter((x) => x === ch).length;
    return {
      linear: {
        kind: "mamba2", stateLayers: count("M"), attentionLayers: count("*"),
        heads: need("mamba_num_heads"), headDim: need("mamba_head_dim"), nGroups: need("n_groups", 1), stateSize: need("ssm_state_size"),
        convKernel: need("conv_kernel", 4), ssmStateBytes,
      },
      mlpLayers: count("-"), mlpUngated: true, moeLayers: count("E"),
    };
  }
  const mambaTypes = types?.filter((t) => t === "mamba").length;
  const attnIdx = Array.isArray(c.attn_layer_indices) ? (c.attn_layer_indices as unknown[]).length : undefined;
  if (mambaTypes || (attnIdx !== undefined && n("mamba_n_heads") !== undefined)) {
    const attention = mambaTypes ? layers - mambaTypes : (attnIdx as number);
    return {
      linear: {
        kind: "mamba2", stateLayers: layers - attention, attentionLayers: attention,
        heads: need("mamba_n_heads"), headDim: need("mamba_d_head"), nGroups: need("mamba_n_groups", 1), stateSize: need("mamba_d_state"),
        convKernel: need("mamba_d_conv", 4), ssmStateBytes,
      },
    };
  }
  // Other state-space layouts (Falcon-H1's attention and Mamba in every layer, Jamba's Mamba-1
  // periods, MiniMax's lightning attention, Kimi-Linear's KDA): counting them as attention layers
  // would leave their parameters out of the weights, so they are an error, never a guess.
  const stateKey = Object.keys(c).find((k) => /^(mamba_|ssm_|linear_attn|linear_num|attn_layer_period|kda_)/.test(k));
  if (stateKey) {
    throw new UnknownModelError(
      `${source} of ${id}: its state-space / linear-attention layers ("${stateKey}", model_type ${String(c.model_type ?? "?")}) are not modelled -> plan a model of a modelled family (Qwen3-Next/3.5/3.6, Nemotron-H, Granite-4.0-H, Bamba, or a transformer)`,
    );
  }
  return {};
}

/** Parameters of one linear-attention / Mamba-2 layer (the projections vLLM builds; norms and per-head scalars included). */
export function linearLayerParams(a: ModelArch): number {
  const l = a.linear;
  if (!l) return 0;
  const H = a.hidden;
  if (l.kind === "gdn") {
    const keyDim = (l.kHeads ?? l.heads) * (l.kHeadDim ?? l.headDim);
    const valueDim = l.heads * l.headDim;
    const convDim = 2 * keyDim + valueDim;
    // in_proj_qkvz, in_proj_ba, conv1d, out_proj; dt_bias, A_log and the gated norm
    return H * (2 * keyDim + 2 * valueDim) + H * 2 * l.heads + convDim * l.convKernel + valueDim * H + 2 * l.heads + l.headDim;
  }
  const dInner = l.heads * l.headDim;
  const bc = 2 * (l.nGroups ?? 1) * (l.stateSize ?? 128);
  // in_proj (z, x, B, C, dt), conv1d (+bias), out_proj; A, D, dt_bias and the gated norm
  return H * (2 * dInner + bc + l.heads) + (dInner + bc) * (l.convKernel + 1) + dInner * H + 3 * l.heads + dInner;
}

/**
 * Parameter count from the architecture, for config.json models whose size
 * the config does not give: embeddings (+ LM head unless tied), attention
 * (standard q/k/v/o, or MLA's q (LoRA) / kv_a / kv_b / o projections), dense
 * MLPs (gate, up, down) in the dense layers, and in the MoE layers the routed
 * experts, the shared experts and the router; in hybrids attention only in the attention
 * layers and the linear-attention / Mamba-2 projections in the others (linearLayerParams),
 * and the query's output gate where the model has one. Norms and biases are left out
 * (< 0.1 %). DeepSeek-V3's config gives 671.0B this way, its model card 671B; Qwen3-Next-80B-A3B
 * 79.7B (card: 80B); Nemotron-H-8B 8.1B (card: 8B).
 */
export function estimateParamsB(a: ModelArch): number {
  const embed = a.vocab * a.hidden * (a.tiedEmbeddings ? 1 : 2);
  let attn: number;
  if (a.attention.kind === "mla") {
    const m = a.attention;
    const nope = m.qkNopeHeadDim ?? 128;
    const rope = m.qkRopeHeadDim ?? 64;
    const v = m.vHeadDim ?? 128;
    const kvLora = m.kvLoraRank ?? m.latentDim - rope;
    const q = m.qLoraRank ? a.hidden * m.qLoraRank + m.qLoraRank * a.heads * (nope + rope) : a.hidden * a.heads * (nope + rope);
    attn = q + a.hidden * (kvLora + rope) + kvLora * a.heads * (nope + v) + a.heads * v * a.hidden;
  } else {
    attn = a.hidden * a.heads * a.headDim * (a.attnOutputGate ? 3 : 2) + a.hidden * a.kvHeads * a.headDim * 2;
  }
  const dense = (a.mlpUngated ? 2 : 3) * a.hidden * a.intermediate;
  const moeLayers = a.moe ? a.moe.moeLayers ?? a.layers : 0;
  const expert = a.moe ? a.moe.experts * 3 * a.hidden * a.moe.expertIntermediate + a.hidden * a.moe.experts + 3 * a.hidden * (a.moe.sharedIntermediate ?? 0) : 0;
  // Hybrids: attention only in the attention layers, a state layer in the others.
  const attnLayers = a.linear ? a.linear.attentionLayers : a.layers;
  const stateLayers = a.linear ? a.linear.stateLayers * linearLayerParams(a) : 0;
  const total = embed + attnLayers * attn + stateLayers + (a.mlpLayers ?? a.layers - moeLayers) * dense + moeLayers * expert;
  return total / 1e9;
}

/** Find the model: the catalog first, then the local config.json. */
export function resolveModel(id: string, configPath?: string, paramsB?: number, checkpointBytes?: number): ModelArch {
  if (configPath) {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(fs.readFileSync(configPath, "utf8"));
    } catch (e) {
      throw new UnknownModelError(`model.configPath: cannot read ${configPath} (${(e as Error).message}) -> point it at the model's config.json`);
    }
    const arch = archFromConfigJson(id, json, paramsB, configPath);
    return checkpointBytes ? { ...arch, checkpointBytes } : arch;
  }
  const hit = CATALOG.get(id.toLowerCase());
  if (hit) return { ...hit, ...(paramsB ? { paramsB } : {}), ...(checkpointBytes ? { checkpointBytes } : {}) };
  throw new UnknownModelError(
    `model.id: ${id} is not in the catalog and was not fetched from the Hub -> plan it with pulumi-vllm plan or the stack program (they fetch config.json from the Hub), await withHubModel() before new VllmServer, or set model.configPath (--model-config) to its config.json; catalog: ${catalogIds().join(", ")}`,
  );
}
