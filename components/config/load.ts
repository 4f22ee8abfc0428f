// Reading a stack's config from wherever it lives (the Pulumi engine at run
// time, or Pulumi.<stack>.yaml for the `plan` command) into one validated
// StackConfig. Secrets are kept apart: their presence is known, their values
// are never part of the returned object.
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { ConfigError, didYouMean, formatIssues, showKey } from "./errors";
import { INDEX_CREDENTIALS_FIX, SECRET_KEYS, StackConfig, TOP_LEVEL_KEYS } from "./schema";

export const PROJECT = "pulumi-vllm";

export type SecretKey = (typeof SECRET_KEYS)[number];

export interface LoadedConfig {
  config: StackConfig;
  /** Which secret keys the stack sets (values are not read here). */
  secretsPresent: Set<SecretKey>;
}

/**
 * Validate the project's config values (keys without the `pulumi-vllm:`
 * prefix; values already decoded from JSON/YAML). `secretsPresent` names the
 * secret keys the stack holds.
 */
export function parseStackConfig(
  values: Record<string, unknown>,
  where: string,
  secretsPresent: Set<SecretKey> = new Set(),
): LoadedConfig {
  const problems: string[] = [];
  const plain: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(values)) {
    if ((SECRET_KEYS as readonly string[]).includes(key)) continue;
    if (!(TOP_LEVEL_KEYS as readonly string[]).includes(key)) {
      const guess = didYouMean(key, TOP_LEVEL_KEYS);
      problems.push(`${PROJECT}:${showKey(key)}: unknown key -> ${guess ? `did you mean \`${PROJECT}:${guess}\`? ` : ""}known keys: ${TOP_LEVEL_KEYS.join(", ")}`);
      continue;
    }
    plain[key] = value;
  }
  const parsed = StackConfig.safeParse(plain, { reportInput: true });
  if (!parsed.success) problems.push(...formatIssues(parsed.error.issues, StackConfig, plain));
  if (parsed.success) problems.push(...crossChecks(parsed.data, secretsPresent));
  if (problems.length) throw new ConfigError(problems, where);
  return { config: parsed.data!, secretsPresent };
}

/** Checks that need both the plain config and which secrets exist. */
function crossChecks(c: StackConfig, secrets: Set<SecretKey>): string[] {
  const out: string[] = [];
  if (!c.connection.privateKeyPath && !secrets.has("sshPrivateKey")) {
    out.push(
      "connection.privateKeyPath: no SSH key -> set connection.privateKeyPath to a local key file, or `pulumi config set --secret sshPrivateKey < ~/.ssh/id_ed25519`",
    );
  }
  if (c.serving.apiKey === "config" && !secrets.has("apiKey")) {
    out.push("serving.apiKey: policy `config` but no key is set -> `pulumi config set --secret apiKey <key>`, or use apiKey: generate");
  }
  if (secrets.has("indexCredentials")) out.push(...indexCredentialsChecks(c));
  return out;
}

/** Where the index login may go: to the mirror named by vllm.indexUrl, over https only. */
export function indexCredentialsChecks(c: StackConfig): string[] {
  const url = c.vllm.indexUrl;
  if (url.startsWith("http://")) return ["indexCredentials: would be sent in clear to the http:// vllm.indexUrl -> use the index's https:// URL"];
  if (new URL(url).hostname === "pypi.org") {
    return [`indexCredentials: set, but vllm.indexUrl is ${url}: the credentials would be sent to PyPI -> set vllm.indexUrl to your mirror, or \`pulumi config rm indexCredentials\``];
  }
  return [];
}

/**
 * The index login's value (`user:password`, as HTTP Basic auth takes it): the problem, never quoting the value.
 * Checked where the value is known before any host is touched (the stack program, a plain library arg).
 */
export function indexCredentialsProblem(value: string): string | undefined {
  if (/[\s\x00-\x1f\x7f]/.test(value)) return `indexCredentials: holds whitespace or a control character -> set it again without them: ${INDEX_CREDENTIALS_FIX}`;
  const colon = value.indexOf(":");
  if (colon <= 0 || colon === value.length - 1) {
    return `indexCredentials: is not user:password -> give both (a token alone: with the user name your mirror documents, e.g. __token__): ${INDEX_CREDENTIALS_FIX}`;
  }
  return undefined;
}

interface StackFile {
  config?: Record<string, unknown>;
}

function isSecure(v: unknown): boolean {
  return typeof v === "object" && v !== null && "secure" in (v as object);
}

/** Read Pulumi.<stack>.yaml directly (no engine): for the `plan` command. */
export function loadStackFile(file: string): LoadedConfig {
  if (!fs.existsSync(file)) {
    throw new ConfigError([`${file}: no such stack file -> pass --stack <name> for an existing Pulumi.<name>.yaml, or the ad-hoc flags`], file);
  }
  let doc: StackFile;
  try {
    doc = (yaml.load(fs.readFileSync(file, "utf8")) ?? {}) as StackFile;
  } catch (e) {
    throw new ConfigError([`${file}: not valid YAML (${(e as Error).message.split("\n")[0]}) -> fix the syntax`], file);
  }
  const values: Record<string, unknown> = {};
  const secrets = new Set<SecretKey>();
  const problems: string[] = [];
  for (const [fullKey, value] of Object.entries(doc.config ?? {})) {
    const [ns, key] = fullKey.includes(":") ? fullKey.split(/:(.*)/s, 2) : [PROJECT, fullKey];
    if (ns !== PROJECT) continue;
    if ((SECRET_KEYS as readonly string[]).includes(key)) {
      if (!isSecure(value)) {
        problems.push(`${PROJECT}:${key}: stored in clear text in ${path.basename(file)} -> remove it and run \`pulumi config set --secret ${key}\``);
      }
      secrets.add(key as SecretKey);
      continue;
    }
    values[key] = value;
  }
  if (problems.length) throw new ConfigError(problems, file);
  return parseStackConfig(values, path.basename(file), secrets);
}

/**
 * Decode raw engine config (`pulumi.runtime.allConfig()`: "project:key" ->
 * string, objects as JSON) into values for parseStackConfig.
 */
export function decodeEngineConfig(all: Record<string, string>): { values: Record<string, unknown>; secretsPresent: Set<SecretKey> } {
  const values: Record<string, unknown> = {};
  const secretsPresent = new Set<SecretKey>();
  for (const [fullKey, raw] of Object.entries(all)) {
    const idx = fullKey.indexOf(":");
    if (fullKey.slice(0, idx) !== PROJECT) continue;
    const key = fullKey.slice(idx + 1);
    if ((SECRET_KEYS as readonly string[]).includes(key)) {
      secretsPresent.add(key as SecretKey);
      continue; // read through pulumi.Config#getSecret, never here
    }
    try {
      values[key] = JSON.parse(raw);
    } catch {
      values[key] = raw;
    }
  }
  return { values, secretsPresent };
}

/** Expand `~/` and make a config path absolute relative to the project directory. */
export function resolveLocalPath(p: string, projectDir: string): string {
  if (p === "~" || p.startsWith("~/")) return path.join(os.homedir(), p.slice(1));
  return path.resolve(projectDir, p);
}
