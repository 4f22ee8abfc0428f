// Any model from its config.json: parameter counts for MLA, MoE (shared experts,
// dense first layers) and sliding-window families, pre-quantized bitsandbytes
// checkpoints, and the per-release KV layouts that depend on the architecture.
import { archFromConfigJson, CATALOG, estimateParamsB } from "../../components/plan/catalog";
import {
  kvBytesPerTokenPerLayer, weightBytes, GiB, schedulerDefaults, engineOf, planGpu, hybridLayout, hybridReportedTokens, kvBytesForRequest, kvLayersOnRank, linearStateBytes, v0StateEst,
} from "../../components/plan/memory";

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

// Kimi-K2-Thinking (DeepseekV3ForCausalLM geometry, as its config.json gives it; the test data's
// model-architectures.json entry has the sources): native int4 (compressed-tensors, group 32) on the
// routed experts only, the ignore list keeping attention and the shared experts in bf16.
const kimiK2Thinking = {
  architectures: ["DeepseekV3ForCausalLM"], hidden_size: 7168, intermediate_size: 18432, moe_intermediate_size: 2048, num_hidden_layers: 61,
  num_attention_heads: 64, num_key_value_heads: 64, n_routed_experts: 384, n_shared_experts: 1, num_experts_per_tok: 8, first_k_dense_replace: 1,
  q_lora_rank: 1536, kv_lora_rank: 512, qk_nope_head_dim: 128, qk_rope_head_dim: 64, v_head_dim: 128, vocab_size: 163840, max_position_embeddings: 262144,
  tie_word_embeddings: false,
};

describe("weights of big MoE / MLA checkpoints on many GPUs", () => {
  const kimi = { ...archFromConfigJson("moonshotai/Kimi-K2-Thinking", kimiK2Thinking), quantization: { method: "compressed-tensors" as const, bits: 4, groupSize: 32, expertsOnly: true } };
  const experts = 60 * 384 * 3 * 7168 * 2048;
  const embeddings = 2 * 163840 * 7168;
  test("int4 on the routed experts only: the other linear layers load in 16 bits (compressed-tensors ignore list)", () => {
    expect(kimi.paramsB).toBeGreaterThan(1020);
    expect(kimi.paramsB).toBeLessThan(1032);
    const rest = kimi.paramsB * 1e9 - experts - embeddings;
    const expected = experts * (0.5 + 2 / 32) + rest * 2 + embeddings * 2;
    expect(weightBytes(kimi, "compressed-tensors", 1, 1).checkpointBytes / expected).toBeCloseTo(1, 3);
  });
  test("the MoE router and MLA's q_a / kv_a down-projections sit whole on every TP rank", () => {
    const router = 60 * 384 * 7168; // ReplicatedLinear, unquantized
    const down = 61 * 7168 * (1536 + 576); // fused_qkv_a_proj, disable_tp
    const replicated = (router + down) * 2;
    const one = weightBytes(kimi, "compressed-tensors", 1, 1).perRankBytes;
    const eight = weightBytes(kimi, "compressed-tensors", 8, 1).perRankBytes;
    expect((eight - one / 8) / (replicated * (7 / 8))).toBeCloseTo(1, 2);
    // DeepSeek-V3 (fp8 block-wise): the down-projections in fp8, the router in bf16
    const v3 = archFromConfigJson("deepseek-ai/DeepSeek-V3", deepseekV3);
    const v3one = weightBytes(v3, "none", 1, 1).perRankBytes;
    const v3eight = weightBytes(v3, "none", 8, 1).perRankBytes;
    const v3replicated = 58 * 256 * 7168 * 2 + 61 * 7168 * (1536 + 576) * (1 + 4 / 128 / 128);
    expect((v3eight - v3one / 8) / (v3replicated * (7 / 8))).toBeCloseTo(1, 2);
  });
});

// Hybrid attention + linear-attention / Mamba-2 models, config.json values as published (sources at each).
// Qwen3-Next-80B-A3B: llama.cpp's print-out of the GGUF in lmstudio-ai/lmstudio-bug-tracker#1266
// (n_embd 2048, n_layer 48, n_head 16, n_head_kv 2, head 256, n_ff 5120, n_expert 512, n_expert_used 10,
// ssm_d_inner 4096 = 32 value heads x 128, ssm_n_group 16 key heads) and the model card (80B total).
const qwen3Next = {
  architectures: ["Qwen3NextForCausalLM"], hidden_size: 2048, intermediate_size: 5120, num_hidden_layers: 48, num_attention_heads: 16, num_key_value_heads: 2,
  head_dim: 256, full_attention_interval: 4, linear_num_key_heads: 16, linear_num_value_heads: 32, linear_key_head_dim: 128, linear_value_head_dim: 128,
  linear_conv_kernel_dim: 4, num_experts: 512, num_experts_per_tok: 10, moe_intermediate_size: 512, shared_expert_intermediate_size: 512, decoder_sparse_step: 1,
  mlp_only_layers: [], vocab_size: 151936, max_position_embeddings: 262144, tie_word_embeddings: false,
};
// Qwen3.5/3.6-27B text_config (THUDM/slime scripts/models/qwen3.5-27B.sh and the published Qwen3.5 text_config).
const qwen35_27b = {
  architectures: ["Qwen3_5ForConditionalGeneration"], tie_word_embeddings: false,
  text_config: {
    hidden_size: 5120, intermediate_size: 17408, num_hidden_layers: 64, num_attention_heads: 24, num_key_value_heads: 4, head_dim: 256, attn_output_gate: true,
    layer_types: Array.from({ length: 64 }, (_, i) => ((i + 1) % 4 === 0 ? "full_attention" : "linear_attention")),
    linear_num_key_heads: 16, linear_num_value_heads: 48, linear_key_head_dim: 128, linear_value_head_dim: 128, linear_conv_kernel_dim: 4,
    mamba_ssm_dtype: "float32", vocab_size: 248320, max_position_embeddings: 262144,
  },
};
// Qwen3.5/3.6-35B-A3B text_config (as quoted by public Qwen3.5 tooling: 40 layers, 256 experts, 8 active).
const qwen35_35b = {
  architectures: ["Qwen3_5MoeForConditionalGeneration"], tie_word_embeddings: false,
  text_config: {
    hidden_size: 2048, num_hidden_layers: 40, num_attention_heads: 16, num_key_value_heads: 2, head_dim: 256, attn_output_gate: true,
    layer_types: Array.from({ length: 40 }, (_, i) => ((i + 1) % 4 === 0 ? "full_attention" : "linear_attention")),
    linear_num_key_heads: 16, linear_num_value_heads: 32, linear_key_head_dim: 128, linear_value_head_dim: 128, linear_conv_kernel_dim: 4,
    mamba_ssm_dtype: "float32", num_experts: 256, num_experts_per_tok: 8, moe_intermediate_size: 512, shared_expert_intermediate_size: 512,
    vocab_size: 248320, max_position_embeddings: 262144,
  },
};
// NVIDIA-Nemotron-Nano-9B-v2 (the config as quoted in public NemotronH tooling; model card 8.89B).
const nemotronNano9b = {
  architectures: ["NemotronHForCausalLM"], hidden_size: 4480, intermediate_size: 15680, num_hidden_layers: 56, num_attention_heads: 40, num_key_value_heads: 8,
  head_dim: 128, vocab_size: 131072, max_position_embeddings: 131072, tie_word_embeddings: false,
  hybrid_override_pattern: "M-M-M-MM-M-M-M*-M-M-M*-M-M-M-M*-M-M-M-M*-M-MM-M-M-M-M-M-", ssm_state_size: 128, conv_kernel: 4, n_groups: 8, mamba_num_heads: 128, mamba_head_dim: 80,
};

describe("hybrid linear-attention / Mamba models from config.json", () => {
  test("Qwen3-Next-80B-A3B: 36 gated-delta-net + 12 attention layers, 512 experts: 80B", () => {
    const a = archFromConfigJson("Qwen/Qwen3-Next-80B-A3B-Instruct", qwen3Next);
    expect(a.linear).toMatchObject({ kind: "gdn", stateLayers: 36, attentionLayers: 12, heads: 32, kHeads: 16, ssmStateBytes: 2 });
    expect(a.paramsB).toBeGreaterThan(79);
    expect(a.paramsB).toBeLessThan(81);
  });
  test("Qwen3.5-27B (dense) and Qwen3.5-35B-A3B (MoE): the text models of the 27B / 35B cards (the vision tower is ~0.4-0.5B more)", () => {
    const dense = archFromConfigJson("Qwen/Qwen3.6-27B", qwen35_27b);
    expect(dense.linear).toMatchObject({ stateLayers: 48, attentionLayers: 16, ssmStateBytes: 4 });
    expect(dense.attnOutputGate).toBe(true);
    expect(dense.paramsB).toBeGreaterThan(26.5);
    expect(dense.paramsB).toBeLessThan(27.5);
    const moe = archFromConfigJson("Qwen/Qwen3.6-35B-A3B", qwen35_35b);
    expect(moe.paramsB).toBeGreaterThan(34.2);
    expect(moe.paramsB).toBeLessThan(35.5);
  });
  test("Nemotron-Nano-9B-v2: 27 Mamba-2 + 4 attention + 25 MLP layers: 8.89B; its state ~70 MiB a sequence", () => {
    const a = archFromConfigJson("nvidia/NVIDIA-Nemotron-Nano-9B-v2", nemotronNano9b);
    expect(a.linear).toMatchObject({ kind: "mamba2", stateLayers: 27, attentionLayers: 4 });
    expect(a.mlpLayers).toBe(25);
    expect(a.paramsB).toBeGreaterThan(8.8);
    expect(a.paramsB).toBeLessThan(9.0);
    // "~16 KiB/token, plus ~70 MiB of constant Mamba state per sequence" (NVIDIA-AI-Blueprints/video-search-and-summarization#1649)
    expect(kvBytesPerTokenPerLayer(a, 1, "auto") * kvLayersOnRank(a, 1)).toBe(16 * 1024);
    expect((linearStateBytes(a, 1) * 27) / 1024 ** 2).toBeCloseTo(69.4, 0);
  });
  test("a state-space layout the planner does not model (Falcon-H1: attention and Mamba in every layer) is an error that names the key, not a guess", () => {
    const falconH1 = { architectures: ["FalconH1ForCausalLM"], model_type: "falcon_h1", hidden_size: 2048, intermediate_size: 4608, num_hidden_layers: 24, num_attention_heads: 8, num_key_value_heads: 2, vocab_size: 65537, mamba_d_ssm: 3072, mamba_n_heads: 48, mamba_d_head: 64, mamba_d_state: 256 };
    expect(() => archFromConfigJson("tiiuae/Falcon-H1-1.5B-Instruct", falconH1)).toThrow(/"mamba_d_ssm", model_type falcon_h1\) are not modelled -> plan a model of a modelled family/);
  });
  test("vLLM's attention block size for hybrids, as its logs print it", () => {
    const q27 = archFromConfigJson("Qwen/Qwen3.6-27B", qwen35_27b);
    // LMCache/LMCache#5079 and vllm#36010: 784 tokens for the 27B (bf16 KV); mitchross/talos-argocd-proxmox#1995: 1568 with fp8 KV
    expect(hybridLayout(q27, 1, 1, "auto", "0.22.0")!.blockSize).toBe(784);
    expect(hybridLayout(q27, 1, 1, "fp8", "0.22.0")!.blockSize).toBe(1568);
    // vllm#42966: Qwen3.6-35B-A3B at TP 4 -> "Setting attention block size to 528 tokens"
    expect(hybridLayout(archFromConfigJson("Qwen/Qwen3.6-35B-A3B", qwen35_35b), 4, 1, "auto", "0.22.0")!.blockSize).toBe(528);
    expect(hybridLayout(q27, 1, 1, "auto", "0.22.0")).toMatchObject({ groupSize: 16, attentionGroups: 1, stateGroups: 3 });
    // no layout before hybrids ran on V1, nor for a model without state layers
    expect(hybridLayout(q27, 1, 1, "auto", "0.9.2")).toBeUndefined();
    expect(hybridLayout(CATALOG.get("meta-llama/llama-3.1-8b-instruct")!, 1, 1, "auto")).toBeUndefined();
  });
  test("blocks, reported tokens and the state-block refusal match vllm#49064 (27B geometry, TP 2, 3.86 GiB at 122,633 tokens, 0.23.1)", () => {
    const q27 = archFromConfigJson("Qwen/Qwen3.6-27B", qwen35_27b);
    const h = hybridLayout(q27, 2, 1, "auto", "0.23.1")!;
    expect(h.blockSize).toBe(784);
    const kv = 3.86 * GiB;
    // "max_num_seqs (256) exceeds available Mamba cache blocks (161)" and "3.86 GiB, 123 399 tokens"
    expect(Math.floor(kv / (h.pageBytes * h.groupSize))).toBe(161);
    expect(hybridReportedTokens(h, kv, 122633, "0.23.1")).toBe(123399);
    // one request of max-model-len: cdiv(122633, 784) attention blocks + one block in each of 3 state groups
    expect(kvBytesForRequest(q27, 2, 1, "auto", 122633, 8192, "0.23.1")).toBe((157 + 3) * h.pageBytes * h.groupSize);
  });
  test("a hybrid plan: KV counts only attention layers per token, and max-num-seqs above the state blocks is a refusal", () => {
    const q27 = { ...archFromConfigJson("Qwen/Qwen3.6-27B", qwen35_27b), paramsB: 27.8 };
    const base = { arch: q27, quantization: "fp8" as const, kvCacheDtype: "auto" as const, tp: 1, pp: 1, gpuMemoryGiB: 79.19, gpuMemoryInUseGiB: 0, utilization: 0.95, maxModelLen: 262144, maxNumBatchedTokens: 8192, enforceEager: false, p2p: false, vllmVersion: "0.22.0" };
    const at1024 = planGpu({ ...base, maxNumSeqs: 1024 });
    expect(at1024.kvBytesPerToken).toBe(16 * 4096);
    expect(at1024.stateBlocksNeeded).toBe(1024);
    expect(at1024.stateBlocksLow!).toBeLessThan(1024); // vllm/recipes#551: 856 blocks
    const at512 = planGpu({ ...base, maxNumSeqs: 512 });
    expect(at512.stateBlocksLow!).toBeGreaterThanOrEqual(512);
    // before the check existed vLLM capped its CUDA-graph sizes instead
    expect(planGpu({ ...base, maxNumSeqs: 1024, vllmVersion: "0.19.1" }).stateBlocksNeeded).toBeUndefined();
  });
  test("V0-era releases keep the states outside the KV cache: max-num-seqs of them come off the budget", () => {
    const n = archFromConfigJson("nvidia/NVIDIA-Nemotron-Nano-9B-v2", nemotronNano9b);
    const e = v0StateEst(n, 1, 1, "0.9.2", "V1", 256);
    expect(e.mid).toBe(linearStateBytes(n, 1) * 27 * 256);
    expect(v0StateEst(n, 1, 1, "0.10.0", "V1", 256).mid).toBe(0);
  });
});
