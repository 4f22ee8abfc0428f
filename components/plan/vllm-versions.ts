// Which `vllm serve` flags and VLLM_* variables exist in which vLLM release.
// A pinned version that lacks a flag must fail preview, not minute 40 of a
// start: vLLM's argparse exits on an unknown flag, and newer releases warn
// about (and ignore) unknown VLLM_ variables such as VLLM_USE_V1, which is
// worse: the setting silently does nothing.
//
// Versions are the first PyPI release with the change. Sources are vLLM PRs
// and files (see ../shared/VLLM-FACTS.md); where a release number is derived
// from a PR merge date the entry says so.

export interface VersionRule {
  name: string;
  /** first release that has it (undefined: older than any release we support) */
  introduced?: string;
  /** first release that refuses it */
  removed?: string;
  replacement?: string;
  source: string;
}

export const MIN_SUPPORTED = "0.6.0";

export const FLAG_RULES: VersionRule[] = [
  {
    name: "--swap-space",
    removed: "0.19.0",
    replacement: "nothing: the V1 engine has no CPU swap space; lower --max-num-seqs instead",
    source: "vllm PR #36216 (2026-03), deprecated in 0.18",
  },
  {
    name: "--disable-log-requests",
    removed: "0.12.0",
    replacement: "nothing (request logging is off by default; --enable-log-requests turns it on)",
    source: "vllm PR #21739 added --enable-log-requests, PR #29402 removed the old flag",
  },
  { name: "--enable-log-requests", introduced: "0.10.2", source: "vllm PR #21739" },
  {
    name: "--max-seq-len-to-capture",
    removed: "0.11.1",
    replacement: "--max-cudagraph-capture-size",
    source: "vllm/engine/arg_utils.py (VLLM-FACTS.md: now --max-cudagraph-capture-size)",
  },
  { name: "--max-cudagraph-capture-size", introduced: "0.11.1", source: "vllm/config/compilation.py" },
  { name: "--num-scheduler-steps", removed: "0.11.0", replacement: "nothing (V0 multi-step scheduling is gone)", source: "V0 engine removal, vLLM 0.11.0" },
  { name: "--use-v2-block-manager", removed: "0.7.0", replacement: "nothing (v2 is the only block manager)", source: "vllm/engine/arg_utils.py" },
  { name: "--speculative-model", removed: "0.8.5", replacement: "--speculative-config '{\"model\": ...}'", source: "vllm/engine/arg_utils.py" },
  { name: "--speculative-config", introduced: "0.8.0", source: "vllm/engine/arg_utils.py" },
  {
    name: "--guided-decoding-backend",
    removed: "0.11.0",
    replacement: "--structured-outputs-config '{\"backend\": ...}'",
    source: "vllm structured outputs rename, 0.11.0",
  },
  { name: "--kv-cache-memory-bytes", introduced: "0.11.0", source: "vllm/config/cache.py" },
  { name: "--safetensors-load-strategy", introduced: "0.11.0", source: "vllm/config/load.py" },
  { name: "--nnodes", introduced: "0.11.1", source: "vllm native multi-node (VLLM-FACTS.md, Multi-node)" },
  { name: "--node-rank", introduced: "0.11.1", source: "vllm native multi-node (VLLM-FACTS.md, Multi-node)" },
  { name: "--master-addr", introduced: "0.11.1", source: "vllm native multi-node (VLLM-FACTS.md, Multi-node)" },
];

export const ENV_RULES: VersionRule[] = [
  {
    name: "VLLM_USE_V1",
    removed: "0.11.0",
    replacement: "nothing: V1 is the only engine (remove it; newer releases warn and ignore it)",
    source: "V0 engine removal, vLLM 0.11.0 (VLLM-FACTS.md)",
  },
  { name: "VLLM_ATTENTION_BACKEND", removed: "0.14.0", replacement: "--attention-backend", source: "vllm/envs.py" },
];

/** Compare x.y.z versions. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split(".").map(Number);
  const pb = b.split(".").map(Number);
  for (let i = 0; i < 3; i++) {
    if ((pa[i] ?? 0) !== (pb[i] ?? 0)) return (pa[i] ?? 0) - (pb[i] ?? 0);
  }
  return 0;
}

function check(rule: VersionRule, version: string, where: string): string | undefined {
  if (rule.removed && compareVersions(version, rule.removed) >= 0) {
    return `${where}: ${rule.name} was removed in vLLM ${rule.removed} and vllm.version is ${version} -> ${
      rule.replacement ? `use ${rule.replacement}` : "drop it"
    } (or pin vLLM below ${rule.removed}) [${rule.source}]`;
  }
  if (rule.introduced && compareVersions(version, rule.introduced) < 0) {
    return `${where}: ${rule.name} needs vLLM ${rule.introduced} or newer and vllm.version is ${version} -> pin vllm.version ${rule.introduced}+ or drop it [${rule.source}]`;
  }
  return undefined;
}

/** Problems with argv flags and env names for the pinned version. */
export function checkForVersion(version: string, argv: { flag: string; where: string }[], envNames: { name: string; where: string }[]): string[] {
  const out: string[] = [];
  if (compareVersions(version, MIN_SUPPORTED) < 0) {
    out.push(`vllm.version: ${version} is older than ${MIN_SUPPORTED}, the oldest release this planner models -> pin a newer release`);
  }
  for (const { flag, where } of argv) {
    const name = flag.split("=")[0];
    const rule = FLAG_RULES.find((r) => r.name === name);
    const p = rule && check(rule, version, where);
    if (p) out.push(p);
  }
  for (const { name, where } of envNames) {
    const rule = ENV_RULES.find((r) => r.name === name);
    const p = rule && check(rule, version, where);
    if (p) out.push(p);
  }
  return out;
}
