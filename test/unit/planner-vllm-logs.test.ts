// The planner against figures vLLM itself printed in public logs
// (test/unit/data/vllm-log-figures.json, each entry with its source link;
// architectures in model-architectures.json, each from a config.json copy).
//
// 1. KV arithmetic: "Available KV cache memory: X GiB" -> "GPU KV cache size:
//    N tokens" must follow from kvBytesPerTokenPerLayer exactly (to the
//    rounding of X to 0.01 GiB).
// 2. Weights: "Model loading took X GiB" against weightBytes.
// 3. The budget: predicted available KV against the logged one, where the
//    log gives the whole setup.
import { ModelArch, CATALOG } from "../../components/plan/catalog";
import { BLOCK_SIZE, GiB, kvBytesPerTokenPerLayer, planGpu, QuantMethod, weightBytes } from "../../components/plan/memory";
import { isVllmVersion } from "../../components/plan/version";
import figures from "./data/vllm-log-figures.json";
import archs from "./data/model-architectures.json";
import { archExtrasOf, ArchJson } from "./data/planner-accuracy";

type Fig = (typeof figures)[number];

function archOf(model: string): ModelArch | undefined {
  const key = Object.keys(archs).find((k) => k.toLowerCase() === model.toLowerCase());
  if (!key) return CATALOG.get(model.toLowerCase());
  const a = (archs as unknown as Record<string, ArchJson>)[key];
  const cat = CATALOG.get(model.toLowerCase());
  return {
    id: key, source: "test data", layers: a.layers, hidden: a.hiddenSize, heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim,
    vocab: a.vocabSize, intermediate: a.intermediateSize, tiedEmbeddings: a.tieWordEmbeddings, maxPositionEmbeddings: cat?.maxPositionEmbeddings ?? 1 << 20,
    paramsB: a.paramsB, ...archExtrasOf(a, cat),
    quantization: cat?.quantization,
  };
}

function quantOf(f: Fig): QuantMethod {
  const q = (f.quantization ?? "none").toLowerCase();
  if (q.startsWith("mxfp4")) return "mxfp4";
  if (q.includes("fp8")) return "fp8";
  if (q.startsWith("compressed-tensors") || q.includes("w8a8")) return "fp8"; // 8-bit weights + scales: same bytes as fp8
  if (q.startsWith("bitsandbytes")) return "bitsandbytes";
  if (q.startsWith("awq")) return "awq";
  return "none";
}

// Entries whose notes explain why the logged pair does not follow the formula
// (the KV size was taken from another worker's free memory, or the figure is
// a summary rather than a log line, or with PP the count comes from another stage than the smallest
// figure). Kept in the data, not asserted.
const KNOWN_MISMATCH = new Set(["vllm21348-qwen3-235b-a22b-fp8-h100-tp4", "vllm13061-r1-distill-qwen14b-rtx4090-tp2", "spark396-minimax-m27-awq-tp2-gmu085", "vllm20665-dsv2lite-l4-tp2pp2-1k"]);

const withTokens = figures.filter((f) => f.observed.availableKvGiB !== null && f.observed.kvCacheTokens && archOf(f.model));

describe("KV tokens follow from available KV memory (2 x kv_heads/TP x head_dim x bytes x layers)", () => {
  test("there are enough logged pairs to mean something", () => {
    expect(withTokens.length).toBeGreaterThanOrEqual(10);
  });
  test.each(withTokens.filter((f) => !KNOWN_MISMATCH.has(f.id)).map((f) => [f.id, f] as const))("%s", (_id, f) => {
    const a = archOf(f.model)!;
    const perToken = kvBytesPerTokenPerLayer(a, f.tp ?? 1, (f.kvCacheDtype ?? "auto") as never) * Math.ceil(a.layers / (f.pp ?? 1));
    const predicted = Math.floor(((f.observed.availableKvGiB as number) * GiB) / perToken / BLOCK_SIZE) * BLOCK_SIZE;
    // availableKvGiB is printed with 2 decimals: +-0.005 GiB of slack
    const slack = (0.005 * GiB) / perToken + BLOCK_SIZE;
    expect(Math.abs(predicted - (f.observed.kvCacheTokens as number))).toBeLessThanOrEqual(slack);
  });
});

const withWeights = figures.filter((f) => f.observed.modelLoadingGiB && archOf(f.model) && (f.pp ?? 1) === 1);

describe("weights per GPU against 'Model loading took X GiB'", () => {
  test.each(withWeights.map((f) => [f.id, f] as const))("%s", (_id, f) => {
    const a = archOf(f.model)!;
    const w = weightBytes(a, quantOf(f), f.tp ?? 1, 1).perRankBytes / GiB;
    const logged = f.observed.modelLoadingGiB as number;
    if (Math.abs(w - logged) / logged >= 0.08) console.log(`${f.id}: predicted ${w.toFixed(2)} GiB, logged ${logged}`);
    expect(Math.abs(w - logged) / logged).toBeLessThan(0.08);
  });
});

const full = figures.filter(
  (f) => f.gpuTotalGiB && f.gpuMemoryUtilization && f.maxNumBatchedTokens && f.maxNumSeqs && f.observed.availableKvGiB && archOf(f.model) && (f.observed.availableKvGiB as number) > 0,
);

describe("the whole budget: predicted available KV against the logged one", () => {
  const rows = full.map((f) => {
    const a = archOf(f.model)!;
    const p = planGpu({
      arch: a, quantization: quantOf(f), kvCacheDtype: "auto", tp: f.tp ?? 1, pp: f.pp ?? 1, gpuMemoryGiB: f.gpuTotalGiB as number, gpuMemoryInUseGiB: 0,
      utilization: f.gpuMemoryUtilization as number, maxModelLen: f.maxModelLen ?? undefined, maxNumSeqs: f.maxNumSeqs as number,
      maxNumBatchedTokens: f.maxNumBatchedTokens as number, enforceEager: false, p2p: true, // the llm-d runs are on H100 SXM (NVLink)
      vllmVersion: f.vllmVersion && isVllmVersion(f.vllmVersion) ? f.vllmVersion : undefined, gpuName: f.gpu ?? undefined,
    });
    return { id: f.id, logged: f.observed.availableKvGiB as number, predicted: p.kvCacheGiB, budget: (f.gpuTotalGiB as number) * (f.gpuMemoryUtilization as number) };
  });
  test("prints the comparison", () => {
    // eslint-disable-next-line no-console
    console.log(rows.map((r) => `${r.id.padEnd(42)} logged ${r.logged.toFixed(2)} GiB  predicted ${r.predicted.toFixed(2)} GiB  (${(((r.predicted - r.logged) / r.budget) * 100).toFixed(1)} % of budget)`).join("\n"));
    expect(rows.length).toBeGreaterThanOrEqual(4);
  });
  test.each(rows.map((r) => [r.id, r] as const))("%s: within 3 % of the budget, and never more than 1 GiB optimistic", (_id, r) => {
    expect(Math.abs(r.predicted - r.logged)).toBeLessThan(0.03 * r.budget);
    expect(r.predicted - r.logged).toBeLessThan(1);
  });
});
