// The real Pulumi engine for the e2e tier: built or found by
// scripts/ensure-pulumi.sh, driven through the Automation API, with a local
// file backend and passphrase secrets in a temp dir of its own.
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { EngineEvent, LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { REPO_ROOT, Sandbox } from "../host/sandbox";
import { WHEEL_DIR } from "../standin/fixtures";

export const PASSPHRASE = "pulumi-vllm-e2e-passphrase";

let engineEnv: Record<string, string> | undefined;

/** Engine on PATH + isolated backend; returns the env the CLI runs with. */
export function ensureEngine(): Record<string, string> {
  if (engineEnv) return engineEnv;
  const bin = execFileSync(path.join(REPO_ROOT, "scripts", "ensure-pulumi.sh"), { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
  const state = fs.mkdtempSync(path.join(os.tmpdir(), "pv-e2e-state-"));
  engineEnv = {
    PATH: `${bin}:${process.env.PATH}`,
    // the plugin cache ensure-pulumi.sh filled (unless the caller has a home of its own)
    PULUMI_HOME: process.env.PULUMI_HOME ?? path.join(path.dirname(bin), "home"),
    PULUMI_BACKEND_URL: `file://${state}`,
    PULUMI_CONFIG_PASSPHRASE: PASSPHRASE,
    PULUMI_SKIP_UPDATE_CHECK: "true",
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION: "true",
  };
  Object.assign(process.env, engineEnv);
  return engineEnv;
}

type Cfg = Record<string, any>;

/** The dev stack's config (Pulumi.dev.yaml), pointed at a test sandbox, with overrides per top-level key. */
export function stackConfigFor(sb: Sandbox, servePort: number, patch: (c: Cfg) => void = () => {}, opts: { relativeTo?: string } = {}): Cfg {
  const dev = yaml.load(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.dev.yaml"), "utf8")) as { config: Cfg };
  const c: Cfg = {};
  for (const [k, v] of Object.entries(dev.config)) c[k.replace(/^pulumi-vllm:/, "")] = v;
  // relativeTo: the key paths as a stack file in that project would give them (the demo's are relative)
  const rel = (p: string) => (opts.relativeTo ? path.relative(opts.relativeTo, p) : p);
  c.connection = { host: "127.0.0.1", port: sb.port, user: "root", privateKeyPath: rel(sb.privateKey), hostKeyPath: rel(sb.knownHosts) };
  c.serving = { ...c.serving, port: servePort };
  c.vllm = { ...c.vllm, findLinks: WHEEL_DIR };
  // Sandboxes share this machine's kernel, whose /proc/swaps names files by their path in
  // each sandbox: a path of its own keeps this stack's swapfile apart from the dev stack's.
  c.host = { ...c.host, swap: { mode: "size", sizeGiB: 0.0625, path: `/swapfile-${sb.name}` } };
  patch(c);
  return c;
}

export function writeStackFile(name: string, c: Cfg): string {
  const file = path.join(REPO_ROOT, `Pulumi.${name}.yaml`);
  const config = Object.fromEntries(Object.entries(c).map(([k, v]) => [`pulumi-vllm:${k}`, v]));
  // keep the secrets provider's salt the engine wrote at stack init
  const old = fs.existsSync(file) ? (yaml.load(fs.readFileSync(file, "utf8")) as Cfg) : {};
  const doc: Cfg = { ...(old.encryptionsalt ? { encryptionsalt: old.encryptionsalt } : {}), config: { ...keepSecrets(old.config ?? {}), ...config } };
  fs.writeFileSync(file, yaml.dump(doc, { lineWidth: 200 }));
  return file;
}

function keepSecrets(config: Cfg): Cfg {
  return Object.fromEntries(Object.entries(config).filter(([, v]) => v && typeof v === "object" && "secure" in v));
}

export async function openStack(name: string, c: Cfg): Promise<Stack> {
  ensureEngine();
  writeStackFile(name, c);
  return LocalWorkspace.createOrSelectStack({ stackName: name, workDir: REPO_ROOT }, { envVars: engineEnv });
}

export async function removeStack(stack: Stack): Promise<void> {
  try {
    await stack.workspace.removeStack(stack.name, { force: true });
  } finally {
    fs.rmSync(path.join(REPO_ROOT, `Pulumi.${stack.name}.yaml`), { force: true });
  }
}

/**
 * What an engine event stream changes: one "op type::name" per resource, `same`
 * left out, the steps of a replacement (create-replacement, replace,
 * delete-replaced) folded into one "replace".
 */
export function changesOf(events: EngineEvent[]): string[] {
  const byUrn = new Map<string, string>();
  for (const e of events) {
    const m = e.resourcePreEvent?.metadata;
    if (!m || m.op === "same" || m.type === "pulumi:pulumi:Stack") continue;
    const op = /replace/.test(m.op) ? "replace" : m.op;
    byUrn.set(m.urn, `${op} ${m.urn.split("::").slice(-2).join("::")}`);
  }
  return [...byUrn.values()];
}

/** Where in a (JSON) document a string holds `needle`: a secret's clear-text places (an empty list is the pass). */
export function pathsHolding(o: unknown, needle: string, at = ""): string[] {
  if (typeof o === "string") return o.includes(needle) ? [at] : [];
  if (o && typeof o === "object") return Object.entries(o).flatMap(([k, v]) => pathsHolding(v, needle, `${at}/${k}`));
  return [];
}
