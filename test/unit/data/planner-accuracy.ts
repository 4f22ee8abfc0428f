// Scores the whole planner against public vLLM startups
// (vllm-startup-cases.json): the verdict (the planner's LOW end of the KV
// range must say "does not fit" exactly where vLLM refused), and the central
// KV estimate against vLLM's "Available KV cache memory". Used by
// test/unit/planner-accuracy.test.ts (thresholds) and
// scripts/planner-accuracy.ts (the README table).
import { CATALOG, LinearAttentionFacts, ModelArch } from "../../../components/plan/catalog";
import { defaultUtilization, engineOf, GpuPlan, GpuPlanInput, kvBytesForRequest, planGpu, QuantMethod, schedulerDefaults } from "../../../components/plan/memory";
import { atLeast } from "../../../components/plan/version";
import casesFile from "./vllm-startup-cases.json";
import archs from "./model-architectures.json";

export type Case = (typeof casesFile.cases)[number];
export const CASES: Case[] = casesFile.cases;

export type ArchJson = {
  layers: number; hiddenSize: number; heads: number; kvHeads: number; headDim: number; vocabSize: number; intermediateSize: number;
  tieWordEmbeddings: boolean; paramsB: number; slidingWindow?: number | null; maxPositionEmbeddings?: number;
  moe?: { experts: number; activeExperts: number; expertIntermediateSize: number; moeLayers?: number; sharedIntermediateSize?: number };
  /** MLA (DeepSeek V2/V3): the config's kv_lora_rank, qk_rope_head_dim, qk_nope_head_dim, v_head_dim, q_lora_rank. */
  mla?: { kvLoraRank: number; qkRopeHeadDim: number; qkNopeHeadDim: number; vHeadDim: number; qLoraRank: number | null };
  /** Hybrid state layers (gated delta net / Mamba-2), as catalog.ts's LinearAttentionFacts. */
  linear?: LinearAttentionFacts;
  attnOutputGate?: boolean;
};

/** The optional facts of a model-architectures.json entry (MLA, state layers, MoE layout) as ModelArch fields; the catalog's where it has the model. */
export function archExtrasOf(a: ArchJson, cat?: ModelArch): Pick<ModelArch, "attention" | "moe" | "linear" | "attnOutputGate"> {
  const m = a.mla;
  const mla = m ? { kind: "mla" as const, latentDim: m.kvLoraRank + m.qkRopeHeadDim, kvLoraRank: m.kvLoraRank, qLoraRank: m.qLoraRank, qkNopeHeadDim: m.qkNopeHeadDim, qkRopeHeadDim: m.qkRopeHeadDim, vHeadDim: m.vHeadDim } : undefined;
  const moe = a.moe
    ? { experts: a.moe.experts, expertsPerToken: a.moe.activeExperts, expertIntermediate: a.moe.expertIntermediateSize, moeLayers: a.moe.moeLayers, sharedIntermediate: a.moe.sharedIntermediateSize }
    : undefined;
  return {
    attention: cat?.attention ?? mla ?? { kind: "full" },
    moe: cat?.moe ?? moe,
    ...(a.linear ? { linear: a.linear } : {}),
    ...(a.attnOutputGate ? { attnOutputGate: true } : {}),
  };
}

/** Context lengths of the test models (config.json max_position_embeddings), where the catalog does not have them. */
const CONTEXT: Record<string, number> = {
  "meta-llama/meta-llama-3-8b": 8192, "qwen/qwen2-7b-instruct": 32768, "qwen/qwen3-235b-a22b-fp8": 40960, "qwen/qwen3-32b": 40960, "qwen/qwen3-0.6b": 40960,
  "deepseek-ai/deepseek-r1-distill-qwen-14b": 131072, "redhatai/qwen2.5-7b-instruct-quantized.w8a8": 32768,
  "redhatai/llama-3.3-70b-instruct-fp8-dynamic": 131072,
};

export function archOf(model: string): ModelArch {
  const cat = CATALOG.get(model.toLowerCase());
  const key = Object.keys(archs).find((k) => k.toLowerCase() === model.toLowerCase());
  if (!key) {
    if (!cat) throw new Error(`no architecture for ${model} in the catalog or model-architectures.json`);
    return cat;
  }
  const a = (archs as unknown as Record<string, ArchJson>)[key];
  const slidingHalf = a.slidingWindow && /gpt-oss/i.test(key) ? { kind: "hybrid-sliding" as const, window: a.slidingWindow, slidingLayers: a.layers / 2 } : undefined;
  return {
    id: key, source: "test data", layers: a.layers, hidden: a.hiddenSize, heads: a.heads, kvHeads: a.kvHeads, headDim: a.headDim,
    vocab: a.vocabSize, intermediate: a.intermediateSize, tiedEmbeddings: a.tieWordEmbeddings,
    maxPositionEmbeddings: cat?.maxPositionEmbeddings ?? CONTEXT[key.toLowerCase()] ?? a.maxPositionEmbeddings ?? 131072,
    paramsB: a.paramsB, ...archExtrasOf(a, cat), ...(slidingHalf && !cat ? { attention: slidingHalf } : {}),
    quantization: cat?.quantization,
  };
}

/** The planner's input for a case: what the log says, vLLM's own defaults for the rest. */
export function inputOf(c: Case): GpuPlanInput {
  const arch = archOf(c.model);
  const engine = engineOf(c.vllmVersion, { gpuName: c.gpuName, kvCacheDtype: c.kvCacheDtype as never });
  const len = c.maxModelLen ?? arch.maxPositionEmbeddings;
  const sched = schedulerDefaults(c.gpuTotalGiB, c.gpuName, c.vllmVersion, { engine, maxModelLen: len, arch });
  return {
    arch, quantization: c.quantization as QuantMethod, kvCacheDtype: c.kvCacheDtype as never, tp: c.tp, pp: c.pp,
    gpuMemoryGiB: c.gpuTotalGiB, gpuMemoryInUseGiB: 0, utilization: c.utilization ?? defaultUtilization(c.vllmVersion),
    maxModelLen: len, maxNumSeqs: c.maxNumSeqs ?? sched.maxNumSeqs, maxNumBatchedTokens: c.maxNumBatchedTokens ?? sched.maxNumBatchedTokens,
    enforceEager: c.enforceEager, p2p: c.p2p, vllmVersion: c.vllmVersion, gpuName: c.gpuName, flashinfer: c.flashinfer ?? undefined,
  };
}

export interface Scored {
  id: string;
  version: string;
  outcome: "started" | "refused";
  predictedFits: boolean;
  verdictRight: boolean;
  loggedKvGiB: number | null;
  kvGiB: number;
  kvLowGiB: number;
  kvHighGiB: number;
  /** (central - logged) / logged; null where vLLM printed no positive figure. */
  relError: number | null;
}

/** Whether the plan says it fits, as makePlan decides it: the LOW end of KV holds one request of max-model-len. */
export function planFits(i: GpuPlanInput, p: GpuPlan): boolean {
  const low = (p.kvCacheGiBLow ?? p.kvCacheGiB) * 1024 ** 3;
  if (low <= 0) return false;
  const need = kvBytesForRequest(i.arch, i.tp, i.pp, i.kvCacheDtype, i.maxModelLen ?? i.arch.maxPositionEmbeddings, i.maxNumBatchedTokens, i.vllmVersion, p.engine ?? "V1");
  if (p.stateBlocksLow !== undefined && p.stateBlocksLow < (p.stateBlocksNeeded ?? 0)) return false;
  return need <= low;
}

export function score(c: Case): Scored {
  const i = inputOf(c);
  const p = planGpu(i);
  const fits = planFits(i, p);
  const logged = c.observed.availableKvGiB;
  return {
    id: c.id, version: c.vllmVersion, outcome: c.outcome as Scored["outcome"], predictedFits: fits, verdictRight: fits === (c.outcome === "started"),
    loggedKvGiB: logged, kvGiB: p.kvCacheGiB, kvLowGiB: p.kvCacheGiBLow ?? p.kvCacheGiB, kvHighGiB: p.kvCacheGiBHigh ?? p.kvCacheGiB,
    relError: logged !== null && logged > 0.5 ? (p.kvCacheGiB - logged) / logged : null,
  };
}

export const RANGES: { name: string; from: string; to?: string }[] = [
  { name: "0.6-0.7 (V0)", from: "0.6.0", to: "0.8.0" },
  { name: "0.8-0.10", from: "0.8.0", to: "0.11.0" },
  { name: "0.11-0.19", from: "0.11.0", to: "0.20.0" },
  { name: "0.20-0.33", from: "0.20.0" },
];

export interface Summary {
  name: string;
  cases: number;
  verdictsRight: number;
  withFigure: number;
  within10: number;
  medianAbsError: number | null;
  /** Median of (likely KV - low end) in GiB: what the pessimistic verdict holds back. */
  medianMarginGiB: number | null;
}

const median = (xs: number[]) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

export function summarize(name: string, rows: Scored[]): Summary {
  const errs = rows.filter((r) => r.relError !== null).map((r) => Math.abs(r.relError as number));
  return {
    name, cases: rows.length, verdictsRight: rows.filter((r) => r.verdictRight).length,
    withFigure: errs.length, within10: errs.filter((e) => e <= 0.1).length, medianAbsError: median(errs),
    medianMarginGiB: median(rows.filter((r) => r.kvGiB > 0).map((r) => r.kvGiB - r.kvLowGiB)),
  };
}

export function accuracy(): { rows: Scored[]; byRange: Summary[]; all: Summary } {
  const rows = CASES.map(score);
  const inRange = (v: string, r: { from: string; to?: string }) => atLeast(v, r.from) && (!r.to || !atLeast(v, r.to));
  return {
    rows,
    byRange: RANGES.map((r) => summarize(r.name, rows.filter((x) => inRange(x.version, r)))).filter((s) => s.cases > 0),
    all: summarize("all", rows),
  };
}

/** The README table. */
export function accuracyTable(): string {
  const { byRange, all } = accuracy();
  const pct = (x: number | null) => (x === null ? "-" : `${(x * 100).toFixed(1)} %`);
  const gib = (x: number | null) => (x === null ? "-" : `${x.toFixed(2)} GiB`);
  const line = (s: Summary) =>
    `| ${s.name} | ${s.cases} | ${s.verdictsRight}/${s.cases} | ${s.within10}/${s.withFigure} | ${pct(s.medianAbsError)} | ${gib(s.medianMarginGiB)} |`;
  return [
    "| vLLM releases | cases | verdicts right | KV within ±10 % | median KV error | median margin held back |",
    "|---|---|---|---|---|---|",
    ...byRange.map(line),
    line(all).replace("| all |", "| **all** |"),
  ].join("\n");
}
