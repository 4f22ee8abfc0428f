// Host-side plan: RAM (+ swap) while vLLM loads, and disk.
//
// What holds host RAM during a start (vLLM issues #322, #759, #4786, #44430,
// #54237 are the long history of hosts that froze here):
// - the API server and engine-core processes (python + torch imports);
// - one worker process per local GPU rank (mp executor), each with the CUDA
//   runtime and torch mapped, all loading at the same time;
// - the tensors a worker has read but not yet copied to its GPU: with the
//   default lazy safetensors strategy that is about one tensor shard at a
//   time, with `eager` (or a network filesystem) whole checkpoint files;
// - torch.compile / Triton JIT workers, one per CPU core at most.
// Page cache of the mmapped checkpoint is reclaimable and not counted.
// Seed 001 measured this on its 16 GB rig (8 ranks): 7.5-13 GB RAM plus
// 11-15 GB swap in use, i.e. a ~20-28 GB peak; the constants below give
// ~23 GiB for that rig.
import { GiB } from "./memory";

export const API_SERVER_GIB = 1.5;
export const WORKER_BASE_GIB = 2.0;
export const COMPILE_WORKER_GIB = 0.4;
export const OS_RESERVE_GIB = 1.0;
/** A checkpoint shard file, for the eager strategy (HF shards are ~4-5 GB). */
export const SHARD_FILE_GIB = 4.7;
/** vLLM + torch + CUDA wheels in the venv. */
export const VENV_GIB = 12;
/** Swap is sized with this factor over the estimated shortfall: the estimate is not a measurement. */
export const SWAP_SAFETY = 1.5;

export interface HostPlanInput {
  localRanks: number;
  /** Weight bytes of one rank (the busiest). */
  weightsPerRankGiB: number;
  checkpointGiB: number;
  hostRamGiB: number;
  cpuCores: number;
  eagerLoad: boolean;
  freeDiskGiB: number;
  /** Swap policy: auto (from this plan), a fixed size, or off. */
  swap: { mode: "auto" } | { mode: "size"; sizeGiB: number } | { mode: "off" };
  /** Whether the model cache is on this host's disk (false on SLURM: shared filesystem). */
  cacheOnHostDisk: boolean;
}

export interface HostPlan {
  peakRamGiB: number;
  breakdown: Record<string, number>;
  swapNeededGiB: number;
  swapGiB: number;
  ramPlusSwapGiB: number;
  ramFits: boolean;
  diskNeededGiB: number;
  diskFits: boolean;
}

export function planHost(i: HostPlanInput): HostPlan {
  const inFlightPerRank = i.eagerLoad ? Math.min(SHARD_FILE_GIB, i.weightsPerRankGiB) : Math.min(0.5, i.weightsPerRankGiB / 4);
  const breakdown = {
    apiServerAndEngine: API_SERVER_GIB,
    workers: i.localRanks * WORKER_BASE_GIB,
    tensorsInFlight: i.localRanks * inFlightPerRank,
    // torch inductor runs at most 32 compile workers (torch._inductor.config.compile_threads)
    compileWorkers: Math.min(i.cpuCores, 32) * COMPILE_WORKER_GIB,
    os: OS_RESERVE_GIB,
  };
  const peak = Object.values(breakdown).reduce((a, b) => a + b, 0);
  const shortfall = Math.max(0, peak * SWAP_SAFETY - i.hostRamGiB);
  // Round to whole 4 GiB so a small change of the estimate does not resize the swapfile.
  const swapNeeded = shortfall > 0 ? Math.ceil(shortfall / 4) * 4 : 0;
  const swap = i.swap.mode === "auto" ? swapNeeded : i.swap.mode === "size" ? i.swap.sizeGiB : 0;
  const disk = (i.cacheOnHostDisk ? i.checkpointGiB * 1.05 + VENV_GIB : 0) + swap;
  return {
    peakRamGiB: round(peak),
    breakdown: Object.fromEntries(Object.entries(breakdown).map(([k, v]) => [k, round(v)])),
    swapNeededGiB: swapNeeded,
    swapGiB: swap,
    ramPlusSwapGiB: i.hostRamGiB + swap,
    ramFits: i.hostRamGiB + swap >= peak,
    diskNeededGiB: round(disk),
    diskFits: disk <= i.freeDiskGiB,
  };
}

export const round = (x: number, digits = 2): number => Math.round(x * 10 ** digits) / 10 ** digits;
export const toMiB = (gib: number): number => Math.round((gib * GiB) / 1024 ** 2);
