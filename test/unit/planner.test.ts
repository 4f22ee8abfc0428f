import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { archFromConfigJson, CATALOG, resolveModel, UnknownModelError } from "../../components/plan/catalog";
import { GiB, kvBytesForRequest, kvBytesPerTokenPerLayer, largestModelLen, planGpu, weightBytes, GpuPlanInput } from "../../components/plan/memory";
import { planHost } from "../../components/plan/host-memory";
import { autoModelLen, gpuInput, makePlan, parseModelLen } from "../../components/plan/plan";
import { parseStackConfig } from "../../components/config/load";

const arch = (id: string) => CATALOG.get(id.toLowerCase())!;

function input(id: string, patch: Partial<GpuPlanInput> = {}): GpuPlanInput {
  return {
    arch: arch(id), quantization: "none", kvCacheDtype: "auto", tp: 1, pp: 1, gpuMemoryGiB: 80, gpuMemoryInUseGiB: 0,
    utilization: 0.9, maxModelLen: 8192, maxNumSeqs: 256, maxNumBatchedTokens: 2048, enforceEager: false, p2p: false, ...patch,
  };
}

describe("KV cache bytes per token (2 x kv_heads/TP x head_dim x dtype per layer)", () => {
  test("Llama-3.1-8B, bf16: 2 x 8 x 128 x 2 = 4096 bytes per layer", () => {
    expect(kvBytesPerTokenPerLayer(arch("meta-llama/Llama-3.1-8B-Instruct"), 1, "auto")).toBe(4096);
  });
  test("TP splits KV heads; beyond the KV head count they are replicated (at least 1 per rank)", () => {
    const a = arch("Qwen/Qwen2.5-72B-Instruct");
    expect(kvBytesPerTokenPerLayer(a, 8, "auto")).toBe(2 * 1 * 128 * 2);
    expect(kvBytesPerTokenPerLayer(a, 16, "auto")).toBe(2 * 1 * 128 * 2);
    expect(kvBytesPerTokenPerLayer(a, 2, "auto")).toBe(2 * 4 * 128 * 2);
  });
  test("fp8 KV halves it", () => {
    expect(kvBytesPerTokenPerLayer(arch("meta-llama/Llama-3.1-8B-Instruct"), 1, "fp8")).toBe(2048);
  });
  test("MLA (DeepSeek-V3): one 576-wide latent, no factor 2, not split by TP", () => {
    const a = arch("deepseek-ai/DeepSeek-V3");
    expect(kvBytesPerTokenPerLayer(a, 1, "auto")).toBe(576 * 2);
    expect(kvBytesPerTokenPerLayer(a, 8, "auto")).toBe(576 * 2);
  });
  test("seed 002's formula (tokens x layers x 2 x 2 bytes) undercounts gpt-oss-20b by a factor of kv_heads x head_dim", () => {
    const a = arch("openai/gpt-oss-20b");
    const real = kvBytesPerTokenPerLayer(a, 1, "auto") * a.layers;
    expect(real).toBe(2 * 8 * 64 * 2 * 24); // 49152 bytes per token, not the seed's ~100
    expect(real / (a.layers * 2 * 2)).toBe(512);
  });
  test("sliding-window layers of gpt-oss hold only window + batched tokens of a long request", () => {
    const a = arch("openai/gpt-oss-20b");
    const perLayer = kvBytesPerTokenPerLayer(a, 1, "auto");
    const len = 65536;
    expect(kvBytesForRequest(a, 1, 1, "auto", len, 2048)).toBe(perLayer * (12 * len + 12 * (128 + 2048)));
  });
});

describe("weights", () => {
  test("Llama-3.1-8B in bf16 is ~14.96 GiB (vLLM logs 'Model loading took 14.99 GiB')", () => {
    const w = weightBytes(arch("meta-llama/Llama-3.1-8B-Instruct"), "none", 1, 1).perRankBytes / GiB;
    expect(w).toBeGreaterThan(14.6);
    expect(w).toBeLessThan(15.3);
  });
  test("TP divides weights; PP puts the embedding and LM head on different ranks", () => {
    const a = arch("meta-llama/Llama-3.1-70B-Instruct");
    const one = weightBytes(a, "none", 1, 1).perRankBytes;
    expect(weightBytes(a, "none", 4, 1).perRankBytes).toBeCloseTo(one / 4, -3);
    const pp2 = weightBytes(a, "none", 1, 2).perRankBytes;
    expect(pp2).toBeLessThan(one / 2 + 1.1 * 128256 * 8192 * 2);
    expect(pp2).toBeGreaterThanOrEqual(one / 2);
  });
  test("quantized checkpoints: GPTQ-Int8 72B is ~half of bf16, 4-bit ~quarter; embeddings stay 16-bit", () => {
    const bf16 = weightBytes(arch("Qwen/Qwen2.5-72B-Instruct"), "none", 1, 1).checkpointBytes;
    const int8 = weightBytes(arch("Qwen/Qwen2.5-72B-Instruct-GPTQ-Int8"), "none", 1, 1).checkpointBytes;
    const awq = weightBytes(arch("Qwen/Qwen2.5-72B-Instruct-AWQ"), "none", 1, 1).checkpointBytes;
    expect(int8 / bf16).toBeGreaterThan(0.5);
    expect(int8 / bf16).toBeLessThan(0.56);
    expect(awq / bf16).toBeGreaterThan(0.26);
    expect(awq / bf16).toBeLessThan(0.32);
  });
  test("gpt-oss-20b: MXFP4 experts + bf16 rest is ~13 GiB (its checkpoint is 13.8 GB)", () => {
    const w = weightBytes(arch("openai/gpt-oss-20b"), "none", 1, 1).perRankBytes / GiB;
    expect(w).toBeGreaterThan(12);
    expect(w).toBeLessThan(14);
  });
});

describe("GPU plan", () => {
  test("KV = utilization x total - weights - activation - graphs - non-torch; tokens whole blocks of 16", () => {
    const p = planGpu(input("meta-llama/Llama-3.1-8B-Instruct"));
    const rest = p.weightsGiB + p.activationGiB + p.cudaGraphGiB + p.nonTorchGiB;
    // vLLM takes the fraction of what CUDA reports: 1-2 % under a card's nominal size
    expect(p.budgetGiB).toBeCloseTo(0.9 * 80 * 0.985, 6);
    expect(p.kvCacheGiB).toBeCloseTo(p.budgetGiB - rest, 6);
    expect(p.kvCacheGiBLow).toBeLessThan(p.kvCacheGiB);
    expect(p.kvCacheGiBHigh).toBeGreaterThan(p.kvCacheGiB);
    expect(p.kvCacheTokens % 16).toBe(0);
    expect(p.kvCacheTokens).toBe(Math.floor((p.kvCacheGiB * GiB) / (4096 * 32) / 16) * 16);
  });
  test("largest max-model-len is capped by the model's context, and shrinks with memory", () => {
    expect(planGpu(input("meta-llama/Llama-3.1-8B-Instruct")).maxModelLen).toBe(131072);
    const tight = planGpu(input("meta-llama/Llama-3.1-8B-Instruct", { gpuMemoryGiB: 24 }));
    expect(tight.maxModelLen).toBeLessThan(131072);
    expect(tight.maxModelLen).toBeGreaterThan(4096);
    // one request of that length fits in the LOW end of the KV range, one more block does not
    const kv = tight.kvCacheGiBLow * GiB;
    const a = arch("meta-llama/Llama-3.1-8B-Instruct");
    expect(kvBytesForRequest(a, 1, 1, "auto", tight.maxModelLen, 2048)).toBeLessThanOrEqual(kv);
    expect(kvBytesForRequest(a, 1, 1, "auto", tight.maxModelLen + 16, 2048)).toBeGreaterThan(kv);
  });
  test("enforce-eager drops CUDA graph memory", () => {
    expect(planGpu(input("meta-llama/Llama-3.1-8B-Instruct", { enforceEager: true })).cudaGraphGiB).toBe(0);
  });
});

describe("host plan", () => {
  test("swap follows from the estimated shortfall, not a constant", () => {
    const small = planHost({ localRanks: 8, weightsPerRankGiB: 9, checkpointGiB: 72, hostRamGiB: 16, cpuCores: 2, eagerLoad: false, freeDiskGiB: 500, swap: { mode: "auto" }, cacheOnHostDisk: true });
    const big = planHost({ localRanks: 8, weightsPerRankGiB: 9, checkpointGiB: 72, hostRamGiB: 128, cpuCores: 2, eagerLoad: false, freeDiskGiB: 500, swap: { mode: "auto" }, cacheOnHostDisk: true });
    expect(small.swapGiB).toBeGreaterThan(0);
    expect(big.swapGiB).toBe(0);
    expect(small.ramFits).toBe(true);
  });
  test("swap off on a small host does not fit; eager loading needs more RAM", () => {
    const off = planHost({ localRanks: 8, weightsPerRankGiB: 9, checkpointGiB: 72, hostRamGiB: 16, cpuCores: 2, eagerLoad: false, freeDiskGiB: 500, swap: { mode: "off" }, cacheOnHostDisk: true });
    expect(off.ramFits).toBe(false);
    const eager = planHost({ localRanks: 8, weightsPerRankGiB: 9, checkpointGiB: 72, hostRamGiB: 16, cpuCores: 2, eagerLoad: true, freeDiskGiB: 500, swap: { mode: "off" }, cacheOnHostDisk: true });
    expect(eager.peakRamGiB).toBeGreaterThan(off.peakRamGiB);
  });
  test("a swapfile larger than the free disk does not fit", () => {
    const p = planHost({ localRanks: 1, weightsPerRankGiB: 9, checkpointGiB: 9, hostRamGiB: 16, cpuCores: 2, eagerLoad: false, freeDiskGiB: 30, swap: { mode: "size", sizeGiB: 64 }, cacheOnHostDisk: true });
    expect(p.diskFits).toBe(false);
  });
});

describe("models outside the catalog", () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "pv-model-"));
  afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test("an unknown model without a config.json is an error that says how to give one", () => {
    expect(() => resolveModel("someone/Mystery-13B")).toThrow(UnknownModelError);
    expect(() => resolveModel("someone/Mystery-13B")).toThrow(/model.configPath \(--model-config\)/);
  });
  test("a local config.json gives the architecture and an estimated size", () => {
    const f = path.join(tmp, "config.json");
    // Mistral-7B-v0.1's config.json (huggingface.co/mistralai/Mistral-7B-v0.1)
    fs.writeFileSync(f, JSON.stringify({
      num_hidden_layers: 32, hidden_size: 4096, num_attention_heads: 32, num_key_value_heads: 8,
      vocab_size: 32000, intermediate_size: 14336, max_position_embeddings: 32768, tie_word_embeddings: false,
    }));
    const a = resolveModel("mistralai/Mistral-7B-v0.1", f);
    expect(a.headDim).toBe(128);
    expect(a.paramsB).toBeGreaterThan(7.1);
    expect(a.paramsB).toBeLessThan(7.4); // 7.24B
  });
  test("a config.json without the fields names the missing one", () => {
    expect(() => archFromConfigJson("x/y", { hidden_size: 1 })).toThrow(/num_hidden_layers/);
  });
});

describe("helpers", () => {
  test("max-model-len parsing", () => {
    expect(parseModelLen(4096)).toBe(4096);
    expect(parseModelLen("32k")).toBe(32768);
    expect(parseModelLen("auto")).toBeUndefined();
  });
  test("auto max-model-len keeps 10 % back in whole 1024s", () => {
    expect(autoModelLen(20000, 131072)).toBe(17408);
    expect(autoModelLen(200000, 131072)).toBe(131072);
  });
});

describe("every suggested fix really fits", () => {
  const base = {
    topology: "single",
    connection: { host: "h", privateKeyPath: "k", insecureSkipHostKeyCheck: true },
    hardware: { gpuCount: 2, gpuMemoryGiB: 24, hostRamGiB: 64, freeDiskGiB: 500 },
    model: { id: "meta-llama/Llama-3.1-8B-Instruct" },
    serving: { gpuMemoryUtilization: 0.8, maxModelLen: 40960 },
    vllm: { version: "0.11.0" },
  };
  test("each fix in the verdict, applied, gives a plan that fits", () => {
    const plan = makePlan(parseStackConfig(base, "t"));
    expect(plan.fits).toBe(false);
    const msg = plan.problems.join("\n");
    const len = Number(/maxModelLen to (\d+)/.exec(msg)![1]);
    const tp = Number(/tensorParallel: (\d+)/.exec(msg)![1]);
    const apply = (patch: Record<string, any>) =>
      makePlan(parseStackConfig({ ...base, ...patch, serving: { ...base.serving, ...(patch.serving ?? {}) } }, "t")).fits;
    expect(apply({ serving: { maxModelLen: len } })).toBe(true);
    expect(apply({ serving: { maxModelLen: len + 16 } })).toBe(false);
    expect(apply({ serving: { tensorParallel: tp } })).toBe(true);
    // fp8 KV is offered only where it fits at the low end of the range
    expect(apply({ model: { ...base.model, kvCacheDtype: "fp8" } })).toBe(/kvCacheDtype: fp8/.test(msg));
  });
});

describe("version-aware stack plans", () => {
  const stack = (vllm: Record<string, unknown>, serving: Record<string, unknown> = {}, hardware: Record<string, unknown> = {}) =>
    parseStackConfig(
      {
        topology: "single",
        connection: { host: "h", privateKeyPath: "k", insecureSkipHostKeyCheck: true },
        hardware: { gpuCount: 1, gpuMemoryGiB: 24, gpuName: "RTX 3090", hostRamGiB: 64, freeDiskGiB: 500, ...hardware },
        model: { id: "meta-llama/Llama-3.1-8B-Instruct" },
        serving,
        vllm,
      },
      "t",
    );
  test("V0 (0.6.4) with maxModelLen auto: the profile is one unchunked prefill of the length launched", () => {
    const p = makePlan(stack({ version: "0.6.4" }));
    expect(p.gpu.engine).toBe("V0");
    const len = p.launch.maxModelLen;
    const argv = p.launch.argv;
    const tokens = Number(argv[argv.indexOf("--max-num-batched-tokens") + 1]);
    expect(tokens).toBe(Math.max(len, 2048));
    expect(p.gpu.profileTokens).toBe(tokens);
    expect(p.fits).toBe(true);
    // the length launched fits at the low end, with the activation of that very length
    expect(p.gpu.maxModelLen).toBeGreaterThanOrEqual(len);
  });
  test("V1 (0.11.0) on the same card: 256 sequences, 2048 tokens, independent of the length", () => {
    const p = makePlan(stack({ version: "0.11.0" }, { maxModelLen: 16384 }));
    expect(p.gpu.engine).toBe("V1");
    expect(p.launch.argv).toEqual(expect.arrayContaining(["--max-num-seqs", "256", "--max-num-batched-tokens", "2048"]));
  });
  test("from 0.9.1 vLLM refuses to start when free memory is below utilization x total: that is a problem, not a warning", () => {
    const p = makePlan(stack({ version: "0.11.0" }, { gpuMemoryUtilization: 0.95, maxModelLen: 4096 }, { gpuMemoryInUseGiB: 1 }));
    expect(p.fits).toBe(false);
    expect(p.problems.join("\n")).toMatch(/gpuMemoryUtilization: 0.95 .*refuses to start \("Free memory on device/);
    // before 0.9.1 the budget charges the other processes instead: it still fits at 0.95
    expect(makePlan(stack({ version: "0.8.5" }, { gpuMemoryUtilization: 0.95, maxModelLen: 4096 }, { gpuMemoryInUseGiB: 1 })).problems.join()).not.toMatch(/refuses to start/);
  });
  test("V0 refuses maxNumBatchedTokens below maxModelLen without chunked prefill (vLLM's own check); chunked prefill or V1 do not", () => {
    const p = makePlan(stack({ version: "0.6.4" }, { maxModelLen: 8192, maxNumBatchedTokens: 4096 }));
    expect(p.fits).toBe(false);
    expect(p.problems.join("\n")).toMatch(
      /^serving.maxNumBatchedTokens: 4096 is below maxModelLen 8192, and vLLM 0.6.4 runs the V0 engine here without chunked prefill: it refuses to start \("max_num_batched_tokens \(4096\) is smaller than max_model_len \(8192\)"\) -> set serving.maxNumBatchedTokens to 8192 or more, or serving.maxModelLen to 4096 or less, or add --enable-chunked-prefill/m,
    );
    expect(makePlan(stack({ version: "0.6.4" }, { maxModelLen: 8192, maxNumBatchedTokens: 8192 })).problems).toEqual([]);
    expect(makePlan(stack({ version: "0.6.4" }, { maxModelLen: 8192, maxNumBatchedTokens: 4096, extraArgs: ["--enable-chunked-prefill"] })).problems.join()).not.toMatch(/maxNumBatchedTokens/);
    expect(makePlan(stack({ version: "0.11.0" }, { maxModelLen: 8192, maxNumBatchedTokens: 4096 })).problems.join()).not.toMatch(/maxNumBatchedTokens/);
  });
  test("the plan shows the KV range and the largest length follows its low end", () => {
    const c = stack({ version: "0.19.1" }, { maxModelLen: 8192 });
    const p = makePlan(c);
    expect(p.gpu.kvCacheGiBLow).toBeLessThan(p.gpu.kvCacheGiB);
    expect(p.gpu.kvCacheGiBHigh).toBeGreaterThan(p.gpu.kvCacheGiB);
    const i = gpuInput(c.config, CATALOG.get("meta-llama/llama-3.1-8b-instruct")!);
    expect(p.gpu.maxModelLen).toBe(largestModelLen(i, p.gpu.kvCacheGiBLow * GiB));
    expect(p.gpu.maxModelLen).toBeLessThan(largestModelLen(i, p.gpu.kvCacheGiB * GiB));
  });
});

describe("README's plan example", () => {
  test("is what `plan --stack rig` prints today (GPU memory table)", () => {
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { renderPlanText } = require("../../components/cli/render");
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    const { loadStackFile } = require("../../components/config/load");
    const root = path.join(__dirname, "..", "..");
    const loaded = loadStackFile(path.join(root, "Pulumi.rig.yaml"));
    const text: string = renderPlanText(makePlan(loaded), loaded.config, "rig");
    const readme = fs.readFileSync(path.join(root, "README.md"), "utf8");
    const block = /```\n(GPU memory, per GPU \(busiest rank\):\n[\s\S]*?)\n```/.exec(readme)![1];
    expect(text).toContain(block);
  });
});
