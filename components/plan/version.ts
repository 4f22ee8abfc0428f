// vLLM versions as vLLM numbers them: PEP 440 (`0.10.1.1`, `0.8.5.post1`,
// `0.20.0rc1`, `0.15.2rc1.dev93+g11a4c9d30` from a source build), parsed and
// ordered by @renovatebot/pep440 (Renovate's own PEP 440 implementation)
// rather than by splitting on dots, which mis-orders or refuses all of those.
import { parse, compare, valid } from "@renovatebot/pep440";

/**
 * The newest release whose source the memory rules and the flag table were
 * read from (../shared/VLLM-MEMORY.md §0). A newer pin is planned with the
 * newest rules and a warning, since a release can move any of them.
 */
export const NEWEST_CHECKED = "0.33.0";
/** The oldest release the planner models (VLLM-MEMORY.md covers 0.4.3 on, the tests 0.6 on). */
export const OLDEST_MODELLED = "0.6.0";

/** True for a version string pip would accept after `vllm==` (no leading "v"). */
export function isVllmVersion(v: string): boolean {
  // pip's spelling only: digits first, PEP 440's own characters, nothing for the shell or a log line
  return /^[0-9][0-9A-Za-z.+!_-]{0,63}$/.test(v) && valid(v) !== null;
}

function parsed(v: string) {
  const p = parse(v);
  if (!p) throw new Error(`vllm.version: ${JSON.stringify(v)} is not a version as PyPI numbers vLLM -> use a release like 0.11.0, 0.10.1.1 or 0.8.5.post1`);
  return p;
}

/** PEP 440 order: 0.8.5 < 0.8.5.post1 < 0.9.0rc1 < 0.9.0 < 0.10.1 < 0.10.1.1. */
export function compareVersions(a: string, b: string): number {
  parsed(a);
  parsed(b);
  return compare(a, b);
}

/**
 * The release segment alone ("0.20.0rc1" -> "0.20.0", "0.8.5.post1" ->
 * "0.8.5"). Behaviour gates compare this: vLLM cuts its release candidates
 * from the release branch and a post release only repackages, so an rc or
 * a post release of X behaves as X does; a dev build of X.Y.Zrc1.devN is main
 * on its way to X.Y.Z and gets X.Y.Z's rules too (the closer guess).
 */
export function releaseOf(v: string): string {
  const r = parsed(v).release.slice();
  while (r.length < 3) r.push(0);
  return r.join(".");
}

/** Whether `v` has the behaviour vLLM introduced in release `gate` (see releaseOf). */
export function atLeast(v: string, gate: string): boolean {
  return compare(releaseOf(v), gate) >= 0;
}

/** Whether `v` falls in [from, to) by release (to exclusive, undefined = open). */
export function inRange(v: string, from: string, to?: string): boolean {
  return atLeast(v, from) && (to === undefined || !atLeast(v, to));
}

/** Warnings about the pin itself (never problems: a newer vLLM still starts). */
export function versionWarnings(v: string): string[] {
  if (!isVllmVersion(v)) return [];
  const out: string[] = [];
  if (compare(releaseOf(v), NEWEST_CHECKED) > 0) {
    out.push(
      `vllm.version: ${v} is newer than ${NEWEST_CHECKED}, the newest release the memory rules and the flag table were checked against -> the plan uses ${NEWEST_CHECKED}'s rules; check its figures against the first start's log`,
    );
  }
  const p = parsed(v);
  if (p.dev || p.local) {
    out.push(`vllm.version: ${v} is a development build -> the plan uses the rules of release ${releaseOf(v)}`);
  }
  return out;
}
