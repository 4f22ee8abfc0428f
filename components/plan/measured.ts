// What vLLM itself reported at startup, read from its log lines, and how the
// plan compares with it. The readiness gate prints the lines (`vllm: <line>`,
// components/host/scripts/readiness.sh); the server exports the figures as
// `measured` beside `plan`; `pulumi-vllm plan --stack X` shows both.
//
// Formats, from the releases' own source (logger calls):
//   weights    "Loading model weights took %.4f GB"           V0 worker/model_runner.py (0.4-0.10; GB means GiB there)
//              "model weights take %.2fGiB; ..."               V0 worker/worker.py 0.7.x
//              "Model loading took %.4f GiB and %.6f seconds"  V1 gpu_model_runner.py 0.8-0.11
//              "Model loading took %s GiB memory and ..."      V1 0.12-0.33 (format_gib)
//   KV memory  "Available KV cache memory: %.2f GiB" / "%s GiB"  V1 gpu_worker.py 0.8-0.33 (per worker)
//              "... kv_cache_size=%.2fGiB ..."                 V0 0.6.4 ("Memory profiling results")
//              "... reserved for KV Cache is %.2fGiB."         V0 0.6.5-0.10
//              "available_kv_cache_memory  %.2fGiB"            the table of vLLM PR #10511 (0.6.5 dev)
//              "... Current kv cache memory in use is %s GiB."  V1 gpu_worker.py 0.26+ (per worker, INFO; the
//                                                             only figure some ranks print: 0.28.1 TP 2 rank 1)
//   KV tokens  "GPU KV cache size: %s tokens"                  V1 kv_cache_utils.py 0.8-0.32
//              "%s KV cache size: %s tokens, Maximum concurrency for %s tokens per request: %.2fx"   0.33
//   V0 blocks  "# GPU blocks: %d, # CPU blocks: %d" (<= 0.6), "# CUDA blocks" (0.7), "# cuda blocks" (0.10)
//   concurrency "Maximum concurrency for %s tokens per request: %.2fx"   V0 0.6.1+, V1
//   CUDA graphs "Estimated CUDA graph memory: %.2f GiB total"  V1 0.18+ (in the KV budget from 0.20.0)
//              "Graph capturing finished in %.0f secs, took %.2f GiB"   V1, V0 0.6.5+ (what capture took)
// With TP/PP every worker prints its own memory lines: the KV memory is the smallest (vLLM sizes
// the cache by the minimum), weights and graphs the largest (the busiest rank, as the plan counts).

export interface MeasuredStartup {
  /** "Model loading took X GiB": weights on the busiest rank. */
  weightsGiB?: number;
  /** "Available KV cache memory": the smallest over the workers; negative when vLLM had none left. */
  availableKvGiB?: number;
  /** "GPU KV cache size: N tokens" (V1). */
  kvCacheTokens?: number;
  /** "# GPU blocks: N" (V0). */
  gpuBlocks?: number;
  /** "Maximum concurrency for L tokens per request: Xx". */
  maxConcurrency?: number;
  maxConcurrencyTokens?: number;
  /** "Estimated CUDA graph memory: X GiB total" (what 0.20+ takes out of the KV budget). */
  cudaGraphEstimateGiB?: number;
  /** "Graph capturing finished in N secs, took X GiB" (what capture really took). */
  cudaGraphGiB?: number;
}

const n = (s: string) => Number(s.replace(/,/g, ""));

const RULES: { re: RegExp; key: keyof MeasuredStartup; pick: "min" | "max" | "first"; group?: number }[] = [
  { re: /Model loading took (-?[\d.]+) GiB/, key: "weightsGiB", pick: "max" },
  { re: /Loading model weights took (-?[\d.]+) GB/, key: "weightsGiB", pick: "max" },
  { re: /model weights take\s+(-?[\d.]+)GiB/, key: "weightsGiB", pick: "max" },
  { re: /Available KV cache memory: (-?[\d.]+) GiB/, key: "availableKvGiB", pick: "min" },
  { re: /\bkv_cache_size=(-?[\d.]+)GiB/, key: "availableKvGiB", pick: "min" },
  { re: /reserved for KV Cache is (-?[\d.]+)GiB/, key: "availableKvGiB", pick: "min" },
  { re: /available_kv_cache_memory\s+(-?[\d.]+)GiB/, key: "availableKvGiB", pick: "min" },
  { re: /Current kv cache memory in use is (-?[\d.]+) GiB/, key: "availableKvGiB", pick: "min" },
  { re: /KV cache size: ([\d,]+) tokens/, key: "kvCacheTokens", pick: "min" },
  { re: /#? ?(?:GPU|CUDA|cuda) blocks: (\d+)/, key: "gpuBlocks", pick: "min" },
  { re: /Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x/, key: "maxConcurrency", pick: "min", group: 2 },
  { re: /Maximum concurrency for ([\d,]+) tokens per request: ([\d.]+)x/, key: "maxConcurrencyTokens", pick: "first", group: 1 },
  { re: /Estimated CUDA graph memory: ([\d.]+) GiB total/, key: "cudaGraphEstimateGiB", pick: "max" },
  { re: /Graph capturing finished in \d+ secs, took (-?[\d.]+) GiB/, key: "cudaGraphGiB", pick: "max" },
];

/** vLLM's startup figures from its log lines (any release 0.6-0.33); absent figures stay undefined. */
export function parseStartupLines(text: string): MeasuredStartup {
  const out: MeasuredStartup = {};
  for (const line of text.split("\n")) {
    for (const r of RULES) {
      const m = r.re.exec(line);
      if (!m) continue;
      const v = n(m[r.group ?? 1]);
      if (!Number.isFinite(v)) continue;
      const old = out[r.key];
      out[r.key] = old === undefined || r.pick === "first" ? (old ?? v) : r.pick === "min" ? Math.min(old, v) : Math.max(old, v);
    }
  }
  return out;
}

/** The figures the readiness gate printed (`vllm: <line>` on its stdout), or undefined when it printed none. */
export function measuredOfReadiness(stdout: string): MeasuredStartup | undefined {
  const lines = stdout.split("\n").filter((l) => l.startsWith("vllm: ")).map((l) => l.slice(6));
  const m = parseStartupLines(lines.join("\n"));
  return Object.keys(m).length ? m : undefined;
}

export interface PlanVsMeasured {
  what: string;
  planned: number;
  measured: number;
  /** (planned - measured) / |measured| */
  error: number;
}

/** A prediction this far off the measured figure is a warning. */
export const MEASURED_TOLERANCE = 0.1;

/**
 * The plan's figures next to the measured ones (per GPU, the busiest rank). `planned.kvCacheTokens`
 * is compared only when the measured count is a V1 "GPU KV cache size" line.
 */
export function compareWithMeasured(
  planned: { weightsGiB: number; kvCacheGiB: number; kvCacheTokens: number; cudaGraphGiB: number; maxConcurrency?: number },
  m: MeasuredStartup,
): { rows: PlanVsMeasured[]; warnings: string[] } {
  const rows: PlanVsMeasured[] = [];
  const add = (what: string, p: number, v: number | undefined) => {
    if (v === undefined || !Number.isFinite(p)) return;
    rows.push({ what, planned: p, measured: v, error: v === 0 ? (p === 0 ? 0 : Infinity) : (p - v) / Math.abs(v) });
  };
  add("weights GiB", planned.weightsGiB, m.weightsGiB);
  add("KV cache GiB", planned.kvCacheGiB, m.availableKvGiB);
  add("KV cache tokens", planned.kvCacheTokens, m.kvCacheTokens);
  if (planned.cudaGraphGiB > 0) add("CUDA graphs GiB", planned.cudaGraphGiB, m.cudaGraphEstimateGiB);
  const warnings = rows
    // the graph estimate is small and noisy: a 10 % miss of 0.3 GiB is no news
    .filter((r) => Math.abs(r.error) > MEASURED_TOLERANCE && !(r.what.startsWith("CUDA") && Math.abs(r.planned - r.measured) < 0.25))
    .map(
      (r) =>
        `measured: the plan's ${r.what} (${fmt(r.planned)}) is ${Math.abs(r.error) === Infinity ? "off" : `${Math.round(Math.abs(r.error) * 100)} % ${r.error > 0 ? "above" : "below"}`} what vLLM reported at the last start (${fmt(r.measured)}) -> trust vLLM's figure; if the setup changed since, redeploy to measure again${r.what.startsWith("KV") && r.error > 0 ? "; the plan may be optimistic for this setup, keep a margin" : ""}`,
    );
  return { rows, warnings };
}

const fmt = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
