// Turns zod issues into the one error format of this project:
//   <key>: <what is wrong> -> <what to do>
// Every problem is listed at once, unknown keys get a did-you-mean, and no
// input value is echoed (a secret pasted into the wrong key must not end up
// in a CI log).
import { z } from "zod";
import { describeValue, terminalSafe } from "./strings";

export class ConfigError extends Error {
  constructor(readonly problems: string[], where: string) {
    super(`${where} has ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ConfigError";
  }
}

/** Levenshtein distance, for did-you-mean on unknown keys. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x[i - 1] === y[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[y.length];
}

export function didYouMean(unknown: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(unknown, k);
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  // Close enough to be a typo, or one is a case/prefix variant of the other.
  const threshold = Math.max(2, Math.floor(unknown.length / 3));
  if (best && (bestDistance <= threshold || best.toLowerCase().startsWith(unknown.toLowerCase()))) return best;
  return undefined;
}

type AnySchema = z.core.$ZodType;

/** Strip wrappers (default, optional, pipe, ...) down to the schema that holds keys. */
function unwrap(schema: AnySchema): AnySchema {
  let s: AnySchema = schema;
  for (let i = 0; i < 20; i++) {
    const def = s._zod.def as unknown as Record<string, unknown> & { type: string };
    if (def.innerType) s = def.innerType as AnySchema;
    else if (def.type === "pipe" && def.in) s = def.in as AnySchema;
    else return s;
  }
  return s;
}

/** The keys an object schema accepts at `path` of a value (discriminated unions resolved by the value). */
export function knownKeysAt(root: AnySchema, path: PropertyKey[], value: unknown): string[] {
  let schema = unwrap(root);
  let v: unknown = value;
  const resolve = (s: AnySchema, val: unknown): AnySchema => {
    s = unwrap(s);
    const def = s._zod.def as unknown as { type: string; options?: AnySchema[]; discriminator?: string };
    if (def.type === "union" && def.options) {
      const disc = def.discriminator;
      const chosen =
        def.options.find((o) => {
          const shape = (unwrap(o)._zod.def as unknown as { shape?: Record<string, AnySchema> }).shape;
          if (!shape || !disc || !shape[disc]) return false;
          const lit = unwrap(shape[disc])._zod.def as unknown as { values?: unknown[] };
          return lit.values?.includes((val as Record<string, unknown> | undefined)?.[disc]);
        }) ?? def.options[0];
      return unwrap(chosen);
    }
    return s;
  };
  schema = resolve(schema, v);
  for (const seg of path) {
    const shape = (schema._zod.def as unknown as { shape?: Record<string, AnySchema> }).shape;
    if (!shape || !(String(seg) in shape)) return [];
    v = (v as Record<string, unknown> | undefined)?.[String(seg)];
    schema = resolve(shape[String(seg)], v);
  }
  const shape = (schema._zod.def as unknown as { shape?: Record<string, AnySchema> }).shape;
  return shape ? Object.keys(shape) : [];
}

const withArticle = (t: string) => (/^[aeiou]/.test(t) ? `an ${t}` : `a ${t}`);

/** What to write instead, by the type expected. */
const TYPE_HINT: Record<string, string> = {
  number: " (e.g. 0.85 or 4096; a string that spells a number is read as one)",
  boolean: " (true or false)",
  string: " (quote it in YAML)",
  object: " (a map of keys, see the config reference)",
  array: " (a YAML list)",
};

/** A key as written in a message: plain names as they are, anything else quoted, escaped and cut short (a key is input too). */
export function showKey(k: PropertyKey): string {
  const s = String(k);
  if (/^[A-Za-z0-9_-]{1,64}$/.test(s)) return s;
  return terminalSafe(JSON.stringify(s.length > 40 ? `${s.slice(0, 40)}...` : s));
}

function keyOf(path: PropertyKey[]): string {
  return path.length ? path.map(showKey).join(".") : "(stack config)";
}

/** Format every issue of a failed parse; `value` is the input (for did-you-mean on unions), never echoed. */
export function formatIssues(issues: z.core.$ZodIssue[], root: AnySchema, value: unknown): string[] {
  const out: string[] = [];
  for (const issue of issues) {
    const key = keyOf(issue.path);
    switch (issue.code) {
      case "unrecognized_keys": {
        const known = knownKeysAt(root, issue.path, value);
        for (const k of issue.keys) {
          const guess = didYouMean(k, known);
          const where = issue.path.length ? `${keyOf(issue.path)}.${showKey(k)}` : showKey(k);
          out.push(
            `${where}: unknown key -> ${guess ? `did you mean \`${guess}\`? ` : ""}known keys here: ${known.join(", ")}`,
          );
        }
        break;
      }
      case "invalid_type": {
        const expected = withArticle(issue.expected);
        // Without reportInput zod drops the input, and every wrong type read as missing.
        if (issue.input === undefined) out.push(`${key}: is required -> set ${key} (${expected})`);
        else out.push(`${key}: expected ${expected}, got ${describeValue(issue.input)} -> give ${expected}${TYPE_HINT[issue.expected] ?? ""}`);
        break;
      }
      case "invalid_key": {
        const inner = (issue as unknown as { issues?: { message: string }[] }).issues?.[0]?.message ?? "is not an allowed key";
        out.push(inner.includes("->") ? `${key}: ${inner}` : `${key}: ${inner} -> rename it`);
        break;
      }
      case "invalid_element": {
        const inner = (issue as unknown as { issues?: { message: string }[] }).issues?.[0]?.message ?? "is not allowed";
        out.push(inner.includes("->") ? `${key}: ${inner}` : `${key}: ${inner} -> change it`);
        break;
      }
      case "invalid_value": {
        const values = issue.values.map((v) => JSON.stringify(v)).join(", ");
        out.push(`${key}: ${issue.message.startsWith("Invalid") ? "not an allowed value" : issue.message} -> use one of ${values}`);
        break;
      }
      case "invalid_union": {
        const msg = issue.message.startsWith("Invalid") ? "does not match any allowed form" : issue.message;
        const note = (issue as { note?: string }).note;
        if (note === "No matching discriminator" || issue.path.length === 0) {
          out.push(`${key === "(stack config)" ? "topology" : key}: ${msg}`);
        } else out.push(`${key}: ${msg}`);
        break;
      }
      default:
        out.push(issue.message.includes("->") ? `${key}: ${issue.message}` : `${key}: ${issue.message} -> change ${key}`);
    }
  }
  return out;
}
