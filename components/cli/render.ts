// How a plan is shown: a text report for people and JSON for scripts.
// Secrets are named, never shown: the plan holds no secret values at all.
import type { StackConfig } from "../config/schema";
import { round } from "../plan/host-memory";
import { shellQuote } from "../plan/launch";
import type { Plan } from "../plan/plan";
import type { MeasuredStartup, PlanVsMeasured } from "../plan/measured";

/** The stack's last measured startup figures next to the plan (`plan --stack X`), when there are any. */
export interface MeasuredView {
  measured?: MeasuredStartup;
  rows?: PlanVsMeasured[];
  warnings?: string[];
}

export function planJson(p: Plan, stack?: string, vs?: MeasuredView) {
  return {
    stack: stack ?? null,
    topology: p.topology,
    fits: p.fits,
    problems: p.problems,
    warnings: [...p.warnings, ...(vs?.warnings ?? [])],
    model: p.model,
    // per GPU rank (the busiest one)
    weightsGiB: round(p.gpu.weightsGiB, 3),
    kvCacheGiB: round(p.gpu.kvCacheGiB, 3),
    kvCacheTokens: p.gpu.kvCacheTokens,
    // the range of the KV estimate; fits and maxModelLen follow its low end
    kvCacheGiBRange: [round(p.gpu.kvCacheGiBLow, 3), round(p.gpu.kvCacheGiBHigh, 3)],
    kvCacheTokensRange: [p.gpu.kvCacheTokensLow, p.gpu.kvCacheTokensHigh],
    maxModelLen: p.gpu.maxModelLen,
    maxConcurrency: p.gpu.maxConcurrency,
    gpu: Object.fromEntries(Object.entries(p.gpu).map(([k, v]) => [k, typeof v === "number" ? round(v, 3) : v])),
    host: p.host,
    launch: {
      argv: p.launch.argv,
      env: p.launch.env,
      secretEnv: p.launch.secretEnv,
      commandLine: p.launch.argv.map(shellQuote).join(" "),
      maxModelLen: p.launch.maxModelLen,
    },
    times: p.times,
    steps: p.steps,
    batchScript: p.batchScript ?? null,
    // vLLM's own figures at the stack's last start, and the plan's error against each
    measured: vs?.measured ?? null,
    planVsMeasured: vs?.rows?.map((r) => ({ ...r, error: Number.isFinite(r.error) ? round(r.error, 4) : null })) ?? null,
  };
}

function table(rows: [string, string][]): string {
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join("\n");
}

export function renderPlanText(p: Plan, c: StackConfig, stack?: string, vs?: MeasuredView): string {
  const g = p.gpu;
  const h = p.host;
  const gib = (x: number) => `${round(x).toFixed(2)} GiB`;
  const lines: string[] = [];
  lines.push(`pulumi-vllm plan${stack ? ` for stack ${stack}` : ""}: ${p.model.id} (${p.model.weightFormat}, ${p.model.paramsB}B params)`);
  lines.push(
    `topology ${p.topology}, ${c.hardware.gpuCount} x ${c.hardware.gpuName} ${c.hardware.gpuMemoryGiB} GiB${
      c.topology === "slurm" ? ` per node x ${c.slurm.nodes} nodes` : ""
    }, TP ${c.serving.tensorParallel} x PP ${c.serving.pipelineParallel}, vLLM ${c.vllm.version}`,
  );
  // a model outside the catalog: which config.json was planned (the Hub cache's, or model.configPath)
  if (!/^https?:\/\//.test(p.model.source)) lines.push(`model config: ${p.model.source}`);
  lines.push("", "GPU memory, per GPU (busiest rank):");
  lines.push(
    table([
      ["budget", `${gib(g.budgetGiB)}  (${c.serving.gpuMemoryUtilization} x ${round(g.gpuTotalGiB).toFixed(2)} GiB as CUDA reports a ${c.hardware.gpuMemoryGiB} GiB card; vLLM ${g.rulesOf}, ${g.engine} engine)`],
      ["weights", gib(g.weightsGiB)],
      ["activation peak", `${gib(g.activationGiB)}  (profile run: ${g.profileTokens} tokens, ${g.profileRows} sampler rows; sampler ${gib(g.samplerGiB)})`],
      ["CUDA graphs", g.cudaGraphGiB > 0 ? `${gib(g.cudaGraphGiB)}  (in the budget from vLLM 0.20.0)` : "0.00 GiB in the budget"],
      ["non-torch", gib(g.nonTorchGiB)],
      ["KV cache", `${round(g.kvCacheGiBLow).toFixed(2)}-${round(g.kvCacheGiBHigh).toFixed(2)} GiB (likely ${gib(g.kvCacheGiB)})  = ${g.kvCacheTokensLow}-${g.kvCacheTokensHigh} tokens (${g.kvBytesPerToken} bytes/token); the verdict counts the low end`],
      ["max model len", `${p.launch.maxModelLen}${g.maxModelLenAsked === undefined ? " (auto)" : ""}; largest that fits: ${g.maxModelLen}`],
      ["concurrency", `${g.maxConcurrency} requests of ${p.launch.maxModelLen} tokens`],
      ["outside budget", `${gib(g.headroomGiB)} (needs ~${gib(g.headroomNeededGiB)})`],
    ]),
  );
  if (vs?.rows?.length) {
    const pct = (e: number) => (Number.isFinite(e) ? `${e >= 0 ? "+" : ""}${(e * 100).toFixed(1)} %` : "-");
    const f = (x: number) => (Number.isInteger(x) ? String(x) : x.toFixed(2));
    lines.push("", "Plan vs measured (vLLM's own figures at the stack's last start, busiest rank):");
    lines.push(table(vs.rows.map((r) => [r.what, `plan ${f(r.planned)}  measured ${f(r.measured)}  (${pct(r.error)})`])));
  }
  lines.push("", "Host:");
  lines.push(
    table([
      ["RAM peak (load)", `${gib(h.peakRamGiB)}  (${Object.entries(h.breakdown).map(([k, v]) => `${k} ${v}`).join(", ")})`],
      ["RAM + swap", `${c.hardware.hostRamGiB} + ${h.swapGiB} GiB${h.swapNeededGiB ? ` (swap needed: ${h.swapNeededGiB} GiB)` : ""}`],
      ["disk", `${gib(h.diskNeededGiB)} needed of ${c.hardware.freeDiskGiB} GiB free`],
    ]),
  );
  const t = p.times;
  lines.push("", "Time (estimates):");
  lines.push(
    table([
      [
        "download",
        t.download === "local"
          ? "none: model.id is a path on the host"
          : `~${t.downloadMinutes} min  (${round(p.gpu.checkpointGiB).toFixed(2)} GiB at ${t.downloadMBps} MB/s, hardware.downloadMBps; ${
              t.download === "step" ? `the weights step, time limit ${t.downloadTimeLimitMinutes} min` : "by vLLM inside the readiness wait: model.download is false"
            })`,
      ],
      ["load + compile", `~${round(t.loadMinutes + t.compileMinutes, 1)} min  (load ~${t.loadMinutes}, compile ~${t.compileMinutes})`],
      ["readiness wait", `up to ${c.host.readinessTimeoutMinutes} min (host.readinessTimeoutMinutes) for ~${t.readinessMinutes} min`],
    ]),
  );
  lines.push("", "Command:", "  " + p.launch.argv.map(shellQuote).join(" "));
  lines.push("Environment:");
  for (const [k, v] of Object.entries(p.launch.env)) lines.push(`  ${k}=${shellQuote(v)}`);
  for (const k of p.launch.secretEnv) lines.push(`  ${k}=[secret, from the 0600 environment file]`);
  if (p.batchScript) lines.push("", "Batch script (sbatch):", ...p.batchScript.trimEnd().split("\n").map((l) => "  " + l));
  lines.push("", "Host steps, in order:");
  p.steps.forEach((s, i) => lines.push(`  ${i + 1}. ${s.name}: ${s.what}`));
  const warnings = [...p.warnings, ...(vs?.warnings ?? [])];
  if (warnings.length) lines.push("", "Warnings:", ...warnings.map((w) => `  ! ${w}`));
  lines.push("", p.fits ? "Verdict: fits." : "Verdict: DOES NOT FIT.");
  if (p.problems.length) lines.push(...p.problems.map((x) => `  - ${x}`));
  return lines.join("\n") + "\n";
}
