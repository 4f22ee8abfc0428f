// How long a start takes, in two parts the user waits for separately: the
// weights step's download (checkpoint size over the host's bandwidth to the
// Hub) and vLLM's load + compile inside the readiness wait. Rough on purpose:
// the plan shows them so a timeout can be set with the right order of
// magnitude, and warns when the readiness wait is shorter than the estimate.
import type { StackConfig } from "../config/schema";
import { GiB } from "./memory";

/** GiB/s a checkpoint reaches the GPUs at: seed 001's x1 risers loaded ~77 GB in 28 min; a PCIe box reads an NVMe at several times this. */
export const LOAD_GIB_PER_S: Record<StackConfig["hardware"]["interconnect"], number> = { "pcie-x1-riser": 0.05, pcie: 0.5, nvlink: 0.5 };
/** Minutes of torch.compile + CUDA graph capture on an 8-core host (eager mode skips most of it); seed 001's Pentium took 15-20. */
export const COMPILE_MINUTES = 2;
export const EAGER_COMPILE_MINUTES = 0.5;

export interface TimePlan {
  /** Who fetches the weights: the weights step, vLLM at its start (model.download: false), or nobody (a path on the host). */
  download: "step" | "vllm" | "local";
  downloadMBps: number;
  downloadMinutes: number;
  /** The weights step's own time limit: three times the estimate plus half an hour, at least an hour. */
  downloadTimeLimitMinutes: number;
  loadMinutes: number;
  compileMinutes: number;
  /** What the readiness wait must cover: load + compile (+ the download when vLLM fetches). */
  readinessMinutes: number;
}

/** Does the weights step download this model (a Hub id, model.download on)? */
export function downloadsWeights(c: StackConfig): boolean {
  return c.model.download && !c.model.id.startsWith("/");
}

const minutes = (x: number) => Math.round(x * 10) / 10;

export function planTimes(c: StackConfig, checkpointGiB: number): TimePlan {
  const download = c.model.id.startsWith("/") ? "local" : c.model.download ? "step" : "vllm";
  const downloadMinutes = download === "local" ? 0 : (checkpointGiB * GiB) / (c.hardware.downloadMBps * 1e6) / 60;
  const loadMinutes = checkpointGiB / LOAD_GIB_PER_S[c.hardware.interconnect] / 60;
  // Compile workers scale with cores up to ~8; risers slow the graph capture across ranks (seed 001).
  const base = c.serving.enforceEager ? EAGER_COMPILE_MINUTES : COMPILE_MINUTES;
  const compileMinutes = base * Math.max(1, 8 / c.hardware.cpuCores) * (c.hardware.interconnect === "pcie-x1-riser" ? 2.5 : 1);
  return {
    download,
    downloadMBps: c.hardware.downloadMBps,
    downloadMinutes: minutes(downloadMinutes),
    downloadTimeLimitMinutes: Math.ceil(Math.max(60, downloadMinutes * 3 + 30)),
    loadMinutes: minutes(loadMinutes),
    compileMinutes: minutes(compileMinutes),
    readinessMinutes: minutes(loadMinutes + compileMinutes + (download === "vllm" ? downloadMinutes : 0)),
  };
}
