// The Hugging Face Hub as the planner's source for models outside the catalog:
// config.json (the architecture) and the checkpoint's exact size, for the
// pinned revision, kept in an on-disk cache so a plan is the same every time.
//
// A Pulumi program must plan the same in preview and up, so this runs while
// the config is loaded (before any resource), and every failure is a config
// error `key: what is wrong -> what to do`.
//
// Where from:  HF_ENDPOINT (what huggingface_hub reads), default https://huggingface.co
// Offline:     HF_HUB_OFFLINE=1 (huggingface_hub's switch) or the caller's flag: the cache only
// Cache:       PULUMI_VLLM_HUB_CACHE, default ~/.cache/pulumi-vllm/hub, as
//              <org>/<name>/<commit>/{config.json,checkpoint.json} and <org>/<name>/refs/<revision> (-> commit)
//              A pinned commit (40 hex digits) in the cache is never fetched again; a branch or tag is
//              looked up online each time (it may have moved) and falls back to the cache only offline.
// Endpoints:   /api/models/<repo>/revision/<rev> (the commit and file list), /<repo>/resolve/<commit>/<file>,
//              /api/models/<repo>/tree/<commit> (file sizes, for a checkpoint without a safetensors index).
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { PINNED_REVISION } from "../config/schema";

export const DEFAULT_HUB = "https://huggingface.co";
export const DEFAULT_HUB_TIMEOUT_MS = 20_000;

export class HubError extends Error {}

export interface HubModel {
  /** The model's config.json, in the cache. */
  configPath: string;
  /** The commit the files came from. */
  commit: string;
  /**
   * Exact bytes of the checkpoint's weights: `metadata.total_size` of model.safetensors.index.json,
   * or the summed sizes of the *.safetensors files (one-file checkpoints have no index).
   * Undefined when the repository holds neither (then the planner estimates from config.json).
   */
  checkpointBytes?: number;
  /** "hub" when fetched now, "cache" when read from the cache. */
  from: "hub" | "cache";
}

export interface HubOptions {
  repo: string;
  /** Branch, tag or commit; default main. */
  revision?: string;
  /** HF token for gated or private repositories (never written anywhere). */
  token?: string;
  endpoint?: string;
  cacheDir?: string;
  offline?: boolean;
  timeoutMs?: number;
}

/** The Hub settings from the environment, as huggingface_hub reads them (plus our cache location). */
export function hubSettings(env: NodeJS.ProcessEnv = process.env): { endpoint: string; offline: boolean; cacheDir: string } {
  const truthy = (v?: string) => !!v && /^(1|true|yes|on)$/i.test(v.trim());
  return {
    endpoint: (env.HF_ENDPOINT || DEFAULT_HUB).replace(/\/+$/, ""),
    offline: truthy(env.HF_HUB_OFFLINE),
    cacheDir: env.PULUMI_VLLM_HUB_CACHE || path.join(os.homedir(), ".cache", "pulumi-vllm", "hub"),
  };
}

/** True when `id` names a Hub repository (org/name), not a local checkpoint path. */
export function isHubRepo(id: string): boolean {
  return /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/.test(id) && !id.includes("..");
}

/** The checkpoint's bytes as a safetensors index states them (`metadata.total_size`), or undefined. */
export function indexTotalSize(index: unknown): number | undefined {
  const size = (index as { metadata?: { total_size?: unknown } } | null)?.metadata?.total_size;
  return typeof size === "number" && Number.isFinite(size) && size > 0 ? size : undefined;
}

/** Summed bytes of the *.safetensors files in a Hub tree listing, or undefined when there are none. */
export function safetensorsBytes(tree: unknown): number | undefined {
  if (!Array.isArray(tree)) return undefined;
  const sizes = tree
    .filter((e) => e && typeof e.path === "string" && e.path.endsWith(".safetensors") && !e.path.includes("/"))
    .map((e) => Number(e.lfs?.size ?? e.size));
  return sizes.length && sizes.every(Number.isFinite) ? sizes.reduce((a, b) => a + b, 0) : undefined;
}

interface CachedMeta {
  checkpointBytes?: number;
}

function repoCache(cacheDir: string, repo: string): string {
  return path.join(cacheDir, ...repo.split("/"));
}

function readCached(cacheDir: string, repo: string, commit: string): HubModel | undefined {
  const dir = path.join(repoCache(cacheDir, repo), commit);
  const configPath = path.join(dir, "config.json");
  const metaPath = path.join(dir, "checkpoint.json");
  if (!fs.existsSync(configPath) || !fs.existsSync(metaPath)) return undefined;
  const meta = JSON.parse(fs.readFileSync(metaPath, "utf8")) as CachedMeta;
  return { configPath, commit, checkpointBytes: meta.checkpointBytes, from: "cache" };
}

// Written to a temporary name and renamed, so a killed run never leaves a half file the next
// run would trust (checkpoint.json, written last, marks a complete entry).
function writeAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

const refFile = (cacheDir: string, repo: string, rev: string) => path.join(repoCache(cacheDir, repo), "refs", encodeURIComponent(rev));

/**
 * config.json and the checkpoint size of a Hub model at a revision, from the cache or the Hub.
 * Throws HubError with `model.id:` / `model.revision:` / `hfToken:` problems and their fixes.
 */
export async function fetchHubModel(o: HubOptions): Promise<HubModel> {
  const env = hubSettings();
  const endpoint = (o.endpoint ?? env.endpoint).replace(/\/+$/, "");
  const cacheDir = o.cacheDir ?? env.cacheDir;
  const offline = o.offline ?? env.offline;
  const timeoutMs = o.timeoutMs ?? DEFAULT_HUB_TIMEOUT_MS;
  const rev = o.revision ?? "main";
  const { repo } = o;
  if (!isHubRepo(repo)) throw new HubError(`model.id: ${repo} is not a Hugging Face repository id (org/name) -> set model.configPath to the model's config.json`);

  if (PINNED_REVISION.test(rev)) {
    const hit = readCached(cacheDir, repo, rev);
    if (hit) return hit;
  }
  if (offline) {
    const ref = refFile(cacheDir, repo, rev);
    const commit = PINNED_REVISION.test(rev) ? rev : fs.existsSync(ref) ? fs.readFileSync(ref, "utf8").trim() : undefined;
    const hit = commit ? readCached(cacheDir, repo, commit) : undefined;
    if (hit) return hit;
    throw new HubError(
      `model.id: ${repo}${o.revision ? `@${rev}` : ""} is not in the catalog nor in the Hub cache (${cacheDir}), and the Hub is off (offline mode) -> plan once online to fill the cache, or set model.configPath (--model-config) to the model's config.json`,
    );
  }

  const get = async (url: string, what: string): Promise<Response> => {
    let res: Response;
    try {
      res = await fetch(url, {
        headers: { ...(o.token ? { Authorization: `Bearer ${o.token}` } : {}), "User-Agent": "pulumi-vllm-planner" },
        signal: AbortSignal.timeout(timeoutMs),
        redirect: "follow",
      });
    } catch (e) {
      const err = e as Error & { cause?: { code?: string; message?: string; errors?: { code?: string }[] } };
      // undici wraps the socket error: fetch failed <- ECONNREFUSED (or an AggregateError of them)
      const why = err.cause?.code ?? err.cause?.errors?.find((x) => x.code)?.code ?? err.cause?.message ?? err.message;
      const slow = err.name === "TimeoutError" || err.name === "AbortError";
      throw new HubError(
        `model.id: the Hub at ${endpoint} ${slow ? `did not answer within ${timeoutMs / 1000} s` : `cannot be reached (${why})`} while fetching ${what} of ${repo} -> set model.configPath to the model's config.json, or plan offline (HF_HUB_OFFLINE=1) from the cache, or check HF_ENDPOINT`,
      );
    }
    if (res.ok) return res;
    const code = res.headers.get("x-error-code") ?? "";
    if (res.status === 401 || res.status === 403 || code === "GatedRepo") {
      throw new HubError(
        o.token
          ? `hfToken: the Hub refused the token for ${repo} (${res.status}${code ? ` ${code}` : ""}) -> accept the model's licence on its Hub page with the account the token belongs to, or set a token that has access: pulumi config set --secret hfToken <token>`
          : `hfToken: ${repo} is gated or private on the Hub (${res.status}${code ? ` ${code}` : ""}) and no token was given -> accept its licence on the Hub, then pulumi config set --secret hfToken <token> (for pulumi-vllm plan: export HF_TOKEN)`,
      );
    }
    if (res.status === 404 && code === "RevisionNotFound") {
      throw new HubError(`model.revision: ${rev} is not a branch, tag or commit of ${repo} on ${endpoint} -> set model.revision to one that exists (or leave it out for main)`);
    }
    if (res.status === 404 && (code === "RepoNotFound" || what === "the file list")) {
      throw new HubError(`model.id: ${repo} is not a model repository on ${endpoint} (404) -> check the id's spelling (org/name, as on its Hub page), or set model.configPath for a local model`);
    }
    throw new HubError(`model.id: the Hub at ${endpoint} answered ${res.status}${code ? ` ${code}` : ""} for ${what} of ${repo} -> try again later, or set model.configPath to the model's config.json`);
  };
  const json = async (res: Response, what: string): Promise<unknown> => {
    try {
      return await res.json();
    } catch {
      throw new HubError(`model.id: ${what} of ${repo} from ${endpoint} is not JSON -> check HF_ENDPOINT, or set model.configPath`);
    }
  };

  const api = `${endpoint}/api/models/${repo}`;
  const info = (await json(await get(`${api}/revision/${encodeURIComponent(rev)}`, "the file list"), "the file list")) as {
    sha?: string;
    siblings?: { rfilename?: string }[];
  };
  const commit = typeof info.sha === "string" && PINNED_REVISION.test(info.sha) ? info.sha : undefined;
  if (!commit) throw new HubError(`model.id: the Hub at ${endpoint} gave no commit for ${repo}@${rev} -> check HF_ENDPOINT, or set model.configPath`);
  const names = new Set((info.siblings ?? []).map((s) => s.rfilename));
  if (!names.has("config.json")) {
    throw new HubError(`model.id: ${repo}@${commit.slice(0, 12)} has no config.json (a GGUF or adapter repository?) -> use a repository vLLM loads, or set model.configPath`);
  }
  const cached = readCached(cacheDir, repo, commit);
  if (cached) {
    writeAtomic(refFile(cacheDir, repo, rev), commit);
    return cached;
  }
  const resolve = (file: string) => `${endpoint}/${repo}/resolve/${commit}/${file}`;
  const configText = await (await get(resolve("config.json"), "config.json")).text();
  try {
    JSON.parse(configText);
  } catch {
    throw new HubError(`model.id: config.json of ${repo}@${commit.slice(0, 12)} is not JSON -> set model.configPath to a valid config.json`);
  }
  let checkpointBytes: number | undefined;
  if (names.has("model.safetensors.index.json")) {
    checkpointBytes = indexTotalSize(await json(await get(resolve("model.safetensors.index.json"), "model.safetensors.index.json"), "model.safetensors.index.json"));
  }
  if (checkpointBytes === undefined && [...names].some((n) => n?.endsWith(".safetensors"))) {
    checkpointBytes = safetensorsBytes(await json(await get(`${api}/tree/${commit}`, "the file sizes"), "the file sizes"));
  }
  const dir = path.join(repoCache(cacheDir, repo), commit);
  writeAtomic(path.join(dir, "config.json"), configText);
  writeAtomic(path.join(dir, "checkpoint.json"), JSON.stringify({ repo, commit, checkpointBytes, endpoint } satisfies CachedMeta & Record<string, unknown>) + "\n");
  writeAtomic(refFile(cacheDir, repo, rev), commit);
  return { configPath: path.join(dir, "config.json"), commit, checkpointBytes, from: "hub" };
}

/** What a model section needs from the Hub: nothing for catalog models, local paths or a given configPath. */
export function needsHub(model: { id: string; configPath?: string }, inCatalog: (id: string) => boolean): boolean {
  return !model.configPath && !inCatalog(model.id) && isHubRepo(model.id);
}

/**
 * A model section with configPath and checkpointBytes filled from the Hub (or its cache) when the
 * model is outside the catalog; unchanged otherwise. For programs and the CLI, before planning.
 */
export async function withHubModel<M extends { id: string; revision?: string; configPath?: string; checkpointBytes?: number }>(
  model: M,
  inCatalog: (id: string) => boolean,
  o: Omit<HubOptions, "repo" | "revision"> = {},
): Promise<M> {
  if (!needsHub(model, inCatalog)) return model;
  const hub = await fetchHubModel({ ...o, repo: model.id, revision: model.revision });
  return { ...model, configPath: hub.configPath, ...(hub.checkpointBytes !== undefined && model.checkpointBytes === undefined ? { checkpointBytes: hub.checkpointBytes } : {}) };
}
