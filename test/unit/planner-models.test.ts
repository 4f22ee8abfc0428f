// Any model from its config.json: parameter counts for MLA, MoE (shared experts,
// dense first layers) and sliding-window families, pre-quantized bitsandbytes
// checkpoints, and the per-release KV layouts that depend on the architecture.
import { archFromConfigJson, CATALOG, estimateParamsB } from "../../components/plan/catalog";
import { kvBytesPerTokenPerLayer, weightBytes, GiB, schedulerDefaults, engineOf, planGpu } from "../../components/plan/memory";

// config.json values as published on Hugging Face (the model's own file)
const deepseekV3 = {
  architectures: ["DeepseekV3ForCausalLM"], hidden_size: 7168, intermediate_size: 18432, moe_intermediate_size: 2048, num_hidden_layers: 61,
  num_attention_heads: 128, num_key_value_heads: 128, n_routed_experts: 256, n_shared_experts: 1, num_experts_per_tok: 8, first_k_dense_replace: 3,
  q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128, vocab_size: 129280, max_position_embeddings: 163840,
  tie_word_embeddings: false, quantization_config: { quant_method: "fp8", weight_block_size: [128, 128] },
};
const deepseekV2Lite = {
  architectures: ["DeepseekV2ForCausalLM"], hidden_size: 2048, intermediate_size: 10944, moe_intermediate_size: 1408, num_hidden_layers: 27,
  num_attention_heads: 16, num_key_value_heads: 16, n_routed_experts: 64, n_shared_experts: 2, num_experts_per_tok: 6, first_k_dense_replace: 1,
  q_lora_rank: null, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128, vocab_size: 102400, max_position_embeddings: 163840,
  tie_word_embeddings: false,
};
const qwen3Moe = {
  architectures: ["Qwen3MoeForCausalLM"], hidden_size: 2048, intermediate_size: 6144, moe_intermediate_size: 768, num_hidden_layers: 48,
  num_attention_heads: 32, num_key_value_heads: 4, head_dim: 128, num_experts: 128, num_experts_per_tok: 8, decoder_sparse_step: 1, mlp_only_layers: [],
  vocab_size: 151936, max_position_embeddings: 40960, tie_word_embeddings: false,
};
const qwen25bnb = {
  architectures: ["Qwen2ForCausalLM"], hidden_size: 3584, intermediate_size: 18944, num_hidden_layers: 28, num_attention_heads: 28, num_key_value_heads: 4,
  vocab_size: 152064, max_position_embeddings: 32768, tie_word_embeddings: false, sliding_window: 131072, use_sliding_window: false,
  quantization_config: { quant_method: "bitsandbytes", load_in_4bit: true, bnb_4bit_quant_type: "nf4", bnb_4bit_use_double_quant: true },
};

describe("parameter counts from config.json, no model.paramsB needed", () => {
  test("DeepSeek-V3 (MLA with q LoRA, 1 shared + 256 routed experts, 3 dense layers): 671B", () => {
    const a = archFromConfigJson("deepseek-ai/DeepSeek-V3", deepseekV3);
    expect(a.attention).toMatchObject({ kind: "mla", latentDim: 576 });
    expect(a.moe).toMatchObject({ moeLayers: 58, sharedIntermediate: 2048 });
    expect(a.paramsB).toBeGreaterThan(669);
    expect(a.paramsB).toBeLessThan(673);
  });
  test("DeepSeek-V2-Lite (MLA without q LoRA, 2 shared experts, 1 dense layer): 15.7B", () => {
    const a = archFromConfigJson("deepseek-ai/DeepSeek-V2-Lite", deepseekV2Lite);
    expect(a.paramsB).toBeGreaterThan(15.4);
    expect(a.paramsB).toBeLessThan(16.0);
  });
  test("Qwen3-30B-A3B (128 experts, all layers MoE): 30.5B", () => {
    const a = archFromConfigJson("Qwen/Qwen3-30B-A3B", qwen3Moe);
    expect(a.paramsB).toBeGreaterThan(30.0);
    expect(a.paramsB).toBeLessThan(31.0);
  });
  test("the catalog's DeepSeek-V3 and the formula agree", () => {
    expect(estimateParamsB(CATALOG.get("deepseek-ai/deepseek-v3")!)).toBeCloseTo(671, -1);
  });
});

describe("pre-quantized bitsandbytes checkpoints", () => {
  test("are read as bnb 4-bit, with 16-bit embeddings and LM head (vllm#13882: 5.20 GiB for Qwen2.5-7B)", () => {
    const a = archFromConfigJson("unsloth/Qwen2.5-7B-Instruct-bnb-4bit", qwen25bnb);
    expect(a.quantization).toMatchObject({ method: "bitsandbytes", bits: 4 });
    const w = weightBytes({ ...a, paramsB: 7.62 }, "none", 1, 1).perRankBytes / GiB;
    expect(Math.abs(w - 5.2) / 5.2).toBeLessThan(0.06);
  });
  test("Qwen2's use_sliding_window: false is not a sliding-window model (V0 chunked prefill stays automatic)", () => {
    expect(archFromConfigJson("x/y", qwen25bnb).slidingWindowAllLayers).toBeUndefined();
  });
});

describe("per-release rules that depend on the architecture", () => {
  const v3 = CATALOG.get("deepseek-ai/deepseek-v3")!;
  test("MLA KV: full K/V heads of 256 before 0.7.0, 192 in 0.7.0, one 576 latent from 0.7.1", () => {
    expect(kvBytesPerTokenPerLayer(v3, 8, "auto", "0.6.6")).toBe(2 * 16 * 256 * 2);
    expect(kvBytesPerTokenPerLayer(v3, 8, "auto", "0.7.0")).toBe(2 * 16 * 192 * 2);
    expect(kvBytesPerTokenPerLayer(v3, 8, "auto", "0.7.1")).toBe(576 * 2);
  });
  test("V0 profiles an unchunked max(len, 2048) prefill unless the context is over 32K; MLA turns that off from 0.7.1", () => {
    const llama = CATALOG.get("meta-llama/llama-3.1-8b-instruct")!;
    expect(schedulerDefaults(24, "RTX 3090", "0.6.4", { maxModelLen: 20000, arch: llama })).toMatchObject({ maxNumSeqs: 256, maxNumBatchedTokens: 20000, chunkedPrefill: false });
    expect(schedulerDefaults(24, "RTX 3090", "0.6.4", { maxModelLen: 65536, arch: llama }).maxNumBatchedTokens).toBe(512);
    expect(schedulerDefaults(24, "RTX 3090", "0.7.2", { maxModelLen: 65536, arch: llama }).maxNumBatchedTokens).toBe(2048);
    expect(schedulerDefaults(80, "H100", "0.7.2", { maxModelLen: 65536, arch: v3 }).maxNumBatchedTokens).toBe(65536);
  });
  test("V1 defaults by release and GPU", () => {
    expect(schedulerDefaults(80, "NVIDIA A100-SXM4-80GB", "0.8.5")).toMatchObject({ maxNumSeqs: 1024, maxNumBatchedTokens: 8192 });
    expect(schedulerDefaults(80, "NVIDIA A100-SXM4-80GB", "0.9.0")).toMatchObject({ maxNumSeqs: 256, maxNumBatchedTokens: 2048 });
    expect(schedulerDefaults(80, "NVIDIA H100", "0.8.3")).toMatchObject({ maxNumSeqs: 1024, maxNumBatchedTokens: 8192 });
    expect(schedulerDefaults(24, "RTX 4090", "0.8.3")).toMatchObject({ maxNumSeqs: 1024, maxNumBatchedTokens: 2048 });
    expect(schedulerDefaults(180, "NVIDIA B200", "0.28.0")).toMatchObject({ maxNumSeqs: 1024, maxNumBatchedTokens: 16384 });
    expect(schedulerDefaults(180, "NVIDIA B200", "0.27.1")).toMatchObject({ maxNumSeqs: 1024, maxNumBatchedTokens: 8192 });
  });
  test("engines: V0 before 0.8, V1 after, V0 fallback on pre-Ampere until 0.11", () => {
    expect(engineOf("0.7.3")).toBe("V0");
    expect(engineOf("0.7.3", { useV1Env: true })).toBe("V1");
    expect(engineOf("0.8.5.post1")).toBe("V1");
    expect(engineOf("0.10.1.1", { gpuName: "Tesla V100-SXM2-32GB" })).toBe("V0");
    expect(engineOf("0.11.0", { gpuName: "Tesla T4" })).toBe("V1");
  });
  test("CUDA graphs enter the budget at 0.20.0, and the default utilization moves to 0.92 there", () => {
    const llama = CATALOG.get("meta-llama/llama-3.1-8b-instruct")!;
    const base = { arch: llama, quantization: "none" as const, kvCacheDtype: "auto" as const, tp: 1, pp: 1, gpuMemoryGiB: 79.19, gpuMemoryInUseGiB: 0, utilization: 0.9, maxModelLen: 8192, maxNumSeqs: 1024, maxNumBatchedTokens: 8192, enforceEager: false, p2p: false };
    expect(planGpu({ ...base, vllmVersion: "0.19.1" }).cudaGraphGiB).toBe(0);
    const g = planGpu({ ...base, vllmVersion: "0.20.0" }).cudaGraphGiB;
    expect(g).toBeGreaterThan(0.5);
    expect(g).toBeLessThan(1.2); // the 0.19 logs print 0.84 GiB for this model
    expect(planGpu({ ...base, vllmVersion: "0.20.0", enforceEager: true }).cudaGraphGiB).toBe(0);
  });
});
