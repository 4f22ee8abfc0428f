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
  /** Multi-head latent attention (DeepSeek V2/V3): one latent of `latentDim` per token per layer, not split by TP. */
  | { kind: "mla"; latentDim: number };

export interface NativeQuantization {
  method: "gptq" | "awq" | "fp8" | "mxfp4" | "compressed-tensors";
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
  attention: AttentionKind;
  moe?: MoeFacts;
  quantization?: NativeQuantization;
  /** Recommended context of the seed or model card, for stacks that say maxModelLen: auto. */
  notes?: string;
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
    attention: { kind: "mla", latentDim: 576 },
    moe: { experts: 256, expertsPerToken: 8, expertIntermediate: 2048, moeLayers: 58 },
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
  const moe: MoeFacts | undefined = experts
    ? { experts, expertsPerToken: num("num_experts_per_tok", 2), expertIntermediate: num("moe_intermediate_size", intermediate) }
    : undefined;
  let attention: AttentionKind = full;
  if (typeof c.kv_lora_rank === "number") {
    attention = { kind: "mla", latentDim: (c.kv_lora_rank as number) + num("qk_rope_head_dim", 64) };
  } else if (Array.isArray(c.layer_types) && typeof c.sliding_window === "number") {
    const sliding = (c.layer_types as string[]).filter((t) => t === "sliding_attention").length;
    if (sliding > 0) attention = { kind: "hybrid-sliding", window: c.sliding_window as number, slidingLayers: sliding };
  }
  const q = c.quantization_config as Record<string, unknown> | undefined;
  let quantization: NativeQuantization | undefined;
  if (q && typeof q.quant_method === "string") {
    const method = q.quant_method as NativeQuantization["method"];
    if (!["gptq", "awq", "fp8", "mxfp4", "compressed-tensors"].includes(method)) {
      throw new UnknownModelError(`${source} of ${id}: quantization method "${method}" is not modelled -> use a gptq, awq, fp8 or mxfp4 checkpoint`);
    }
    const bits = typeof q.bits === "number" ? q.bits : method === "mxfp4" ? 4 : 8;
    quantization = { method, bits, groupSize: typeof q.group_size === "number" ? q.group_size : undefined, expertsOnly: method === "mxfp4" };
  }
  const arch: ModelArch = {
    id, source, layers, hidden, heads, kvHeads, headDim, vocab, intermediate,
    tiedEmbeddings: c.tie_word_embeddings === true,
    maxPositionEmbeddings: num("max_position_embeddings", 4096),
    paramsB: 0, attention, moe, quantization,
  };
  arch.paramsB = paramsB ?? estimateParamsB(arch);
  return arch;
}

/** Parameter count from the architecture, for config.json models whose size the config does not give. */
export function estimateParamsB(a: ModelArch): number {
  if (a.attention.kind === "mla") {
    throw new UnknownModelError(`${a.id}: an MLA model's parameter count cannot be derived from config.json here -> set model.paramsB`);
  }
  const embed = a.vocab * a.hidden * (a.tiedEmbeddings ? 1 : 2);
  const attn = a.hidden * a.heads * a.headDim * 2 + a.hidden * a.kvHeads * a.headDim * 2;
  const dense = 3 * a.hidden * a.intermediate;
  const moeLayers = a.moe ? a.moe.moeLayers ?? a.layers : 0;
  const expert = a.moe ? a.moe.experts * 3 * a.hidden * a.moe.expertIntermediate + a.hidden * a.moe.experts : 0;
  const total = embed + a.layers * attn + (a.layers - moeLayers) * dense + moeLayers * expert;
  return total / 1e9;
}

/** Find the model: the catalog first, then the local config.json. */
export function resolveModel(id: string, configPath?: string, paramsB?: number): ModelArch {
  if (configPath) {
    let json: Record<string, unknown>;
    try {
      json = JSON.parse(fs.readFileSync(configPath, "utf8"));
    } catch (e) {
      throw new UnknownModelError(`model.configPath: cannot read ${configPath} (${(e as Error).message}) -> point it at the model's config.json`);
    }
    return archFromConfigJson(id, json, paramsB, configPath);
  }
  const hit = CATALOG.get(id.toLowerCase());
  if (hit) return paramsB ? { ...hit, paramsB } : hit;
  throw new UnknownModelError(
    `model.id: ${id} is not in the catalog -> download its config.json (huggingface.co/${id}/blob/main/config.json) and set model.configPath (or --model-config); catalog: ${catalogIds().join(", ")}`,
  );
}
