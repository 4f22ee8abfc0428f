// Which `vllm serve` flags and VLLM_* variables exist in which vLLM release.
// A pinned version that lacks a flag must fail preview, not minute 40 of a
// start: vLLM's argparse exits on an unknown flag, and newer releases warn
// about (and ignore) unknown VLLM_ variables such as VLLM_USE_V1, which is
// worse: the setting silently does nothing.
//
// Versions are the first PyPI release with the change, checked in each
// release's code (data/vllm-flag-history.json; it also lists where
// ../shared/VLLM-FACTS.md was wrong: --swap-space is gone in 0.18.0,
// --disable-log-requests in 0.17.0). A removed flag can come back
// (--disable-log-requests parses again from 0.33.0): "acceptedAgainFrom".
// test/vllm checks every entry against the real parsers of the releases in
// test/vllm/releases.json.

export interface VersionRule {
  name: string;
  /** first release that has it (undefined: older than any release we support) */
  introduced?: string;
  /** first release that refuses it */
  removed?: string;
  /** first release that accepts it again after `removed` */
  acceptedAgainFrom?: string;
  replacement?: string;
  source: string;
  /** values of the flag that exist only in some releases (e.g. --kv-cache-dtype bfloat16 from 0.11.0) */
  values?: Record<string, { introduced?: string; removed?: string }>;
}

export const MIN_SUPPORTED = "0.6.0";

import { compareVersions as comparePep440 } from "./version";

// The history itself lives in data/vllm-flag-history.json: every version was
// read from the release's own arg_utils.py / envs.py (sources per entry).
import history from "./data/vllm-flag-history.json";

interface HistoryEntry {
  introduced: string | null;
  deprecated: string | null;
  removed: string | null;
  acceptedAgainFrom?: string | null;
  replacement: string | null;
  sources: string[];
  values?: Record<string, unknown>;
}

/** A value's range: null (always), "0.11.0" (introduced), or {introduced, removed}; other shapes are notes. */
function valuesOf(e: HistoryEntry): VersionRule["values"] {
  const out: NonNullable<VersionRule["values"]> = {};
  for (const [value, v] of Object.entries(e.values ?? {})) {
    if (typeof v === "string") out[value] = { introduced: v };
    else if (v && typeof v === "object" && ("introduced" in v || "removed" in v)) {
      const r = v as { introduced?: string | null; removed?: string | null };
      out[value] = { introduced: r.introduced ?? undefined, removed: r.removed ?? undefined };
    }
  }
  return Object.keys(out).length ? out : undefined;
}

/** Why a removed name matters, where the data's replacement alone is not enough. */
const ADVICE: Record<string, string> = {
  "--swap-space": "nothing: the V1 engine has no CPU swap space; lower --max-num-seqs instead",
  "--disable-log-requests": "nothing (request logging is off by default; --enable-log-requests turns it on)",
  "--num-scheduler-steps": "nothing (V0 multi-step scheduling is gone)",
  "--use-v2-block-manager": "nothing (v2 is the only block manager)",
  VLLM_USE_V1: "nothing: V1 is the only engine (remove it; newer releases warn and ignore it)",
};

function rulesOf(entries: Record<string, HistoryEntry>): VersionRule[] {
  return Object.entries(entries)
    .filter(([, e]) => e.introduced || e.removed || valuesOf(e))
    .map(([name, e]) => ({
      name,
      introduced: e.introduced ?? undefined,
      removed: e.removed ?? undefined,
      acceptedAgainFrom: e.acceptedAgainFrom ?? undefined,
      replacement: ADVICE[name] ?? e.replacement ?? undefined,
      source: e.sources[0] ?? "components/plan/data/vllm-flag-history.json",
      values: valuesOf(e),
    }));
}

export const FLAG_RULES: VersionRule[] = rulesOf(history.flags as Record<string, HistoryEntry>);
export const ENV_RULES: VersionRule[] = rulesOf(history.env as Record<string, HistoryEntry>);

/** Compare versions in PEP 440 order (0.10.1 < 0.10.1.1, 0.8.5 < 0.8.5.post1, 0.20.0rc1 < 0.20.0); see ./version.ts. */
export function compareVersions(a: string, b: string): number {
  return comparePep440(a, b);
}

function check(rule: VersionRule, version: string, where: string): string | undefined {
  const back = rule.acceptedAgainFrom;
  if (rule.removed && compareVersions(version, rule.removed) >= 0 && !(back && compareVersions(version, back) >= 0)) {
    return `${where}: ${rule.name} was removed in vLLM ${rule.removed}${back ? ` (accepted again from ${back})` : ""} and vllm.version is ${version} -> ${
      rule.replacement ? `use ${rule.replacement}` : "drop it"
    } (or pin vLLM below ${rule.removed}${back ? ` or ${back}+` : ""}) [${rule.source}]`;
  }
  if (rule.introduced && compareVersions(version, rule.introduced) < 0) {
    return `${where}: ${rule.name} needs vLLM ${rule.introduced} or newer and vllm.version is ${version} -> pin vllm.version ${rule.introduced}+ or drop it [${rule.source}]`;
  }
  return undefined;
}

/** Problems with argv flags (and their values, where given) and env names for the pinned version. */
export function checkForVersion(version: string, argv: { flag: string; value?: string; where: string }[], envNames: { name: string; where: string }[]): string[] {
  const out: string[] = [];
  if (compareVersions(version, MIN_SUPPORTED) < 0) {
    out.push(`vllm.version: ${version} is older than ${MIN_SUPPORTED}, the oldest release this planner models -> pin a newer release`);
  }
  for (const { flag, value, where } of argv) {
    const [name, inline] = flag.split(/=(.*)/s);
    const rule = FLAG_RULES.find((r) => r.name === name);
    const p = rule && check(rule, version, where);
    if (p) out.push(p);
    const v = value ?? inline;
    const range = v !== undefined ? rule?.values?.[v] : undefined;
    const q = !p && range && check({ ...rule!, ...range, acceptedAgainFrom: undefined, replacement: undefined, name: `${name} ${v}` }, version, where);
    if (q) out.push(q);
  }
  for (const { name, where } of envNames) {
    const rule = ENV_RULES.find((r) => r.name === name);
    const p = rule && check(rule, version, where);
    if (p) out.push(p);
  }
  return out;
}
