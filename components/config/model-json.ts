// The numbers the memory planner reads from a model's config.json, checked
// before planning: a config.json that is JSON null, or says 0 attention
// heads, would otherwise become a stack trace or NaN in the plan.
import * as fs from "fs";

/** Fields that must be whole numbers of at least 1, and at most this, when present. */
const POSITIVE: Record<string, number> = {
  num_hidden_layers: 10_000,
  hidden_size: 1_000_000,
  num_attention_heads: 100_000,
  num_key_value_heads: 100_000,
  head_dim: 100_000,
  vocab_size: 100_000_000,
  intermediate_size: 10_000_000,
  max_position_embeddings: 2 ** 31,
  num_experts_per_tok: 100_000,
  moe_intermediate_size: 10_000_000,
  sliding_window: 2 ** 31,
  kv_lora_rank: 1_000_000,
  qk_rope_head_dim: 100_000,
};
/** Fields that may be 0 (a dense model has no experts). */
const NON_NEGATIVE: Record<string, number> = { num_local_experts: 100_000, num_experts: 100_000, n_routed_experts: 100_000 };

/** Problems of the config.json at `file` (as `model.configPath: what -> fix`); unreadable or unparsable files are left to the catalog's reader. */
export function modelConfigProblems(file: string): string[] {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return [];
  }
  const fix = "-> point model.configPath at the model's config.json from Hugging Face";
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    const what = json === null ? "JSON null" : Array.isArray(json) ? "a JSON list" : `a JSON ${typeof json}`;
    return [`model.configPath: ${file} holds ${what}, not a config.json object ${fix}`];
  }
  const top = json as Record<string, unknown>;
  const nested = top.text_config;
  if (nested !== undefined && (typeof nested !== "object" || nested === null || Array.isArray(nested))) {
    return [`model.configPath: "text_config" in ${file} is not an object ${fix}`];
  }
  const c = { ...top, ...((nested as Record<string, unknown>) ?? {}) };
  const out: string[] = [];
  const check = (k: string, min: number, max: number) => {
    if (!(k in c) || c[k] === null) return;
    const v = c[k];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      const shown = typeof v === "number" ? String(v) : Array.isArray(v) ? "a list" : typeof v === "object" ? "an object" : `a ${typeof v}`;
      out.push(`model.configPath: "${k}" in ${file} is ${shown}, not a whole number from ${min} to ${max} ${fix}`);
    }
  };
  for (const [k, max] of Object.entries(POSITIVE)) check(k, 1, max);
  for (const [k, max] of Object.entries(NON_NEGATIVE)) check(k, 0, max);
  if (out.length === 0 && !("head_dim" in c) && typeof c.hidden_size === "number" && typeof c.num_attention_heads === "number" && c.hidden_size % c.num_attention_heads !== 0) {
    out.push(`model.configPath: hidden_size ${c.hidden_size} in ${file} is not a multiple of num_attention_heads ${c.num_attention_heads} and there is no head_dim ${fix}`);
  }
  return out;
}
