// Pulumi projects other than the repository's own stack program, for the e2e
// tier: the examples installed from the packed tarball, and the previous
// release's program. Same engine and backend as engine.ts (ensureEngine).
import { execFileSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as yaml from "js-yaml";
import { EngineEvent, LocalWorkspace, Stack } from "@pulumi/pulumi/automation";
import { REPO_ROOT } from "../host/sandbox";
import { ensureEngine } from "./engine";

/** The project name a Pulumi.yaml declares. */
export function projectName(dir: string): string {
  return (yaml.load(fs.readFileSync(path.join(dir, "Pulumi.yaml"), "utf8")) as { name: string }).name;
}

/** Write Pulumi.<stack>.yaml of a project (keys without the project prefix), keeping the engine's salt. */
export function writeProjectStackFile(dir: string, stack: string, config: Record<string, unknown>): void {
  const file = path.join(dir, `Pulumi.${stack}.yaml`);
  const project = projectName(dir);
  const old = fs.existsSync(file) ? ((yaml.load(fs.readFileSync(file, "utf8")) ?? {}) as Record<string, any>) : {};
  const secrets = Object.fromEntries(Object.entries(old.config ?? {}).filter(([, v]) => v && typeof v === "object" && "secure" in (v as object)));
  const doc = {
    ...(old.encryptionsalt ? { encryptionsalt: old.encryptionsalt } : {}),
    config: { ...secrets, ...Object.fromEntries(Object.entries(config).map(([k, v]) => [k.includes(":") ? k : `${project}:${k}`, v])) },
  };
  fs.writeFileSync(file, yaml.dump(doc, { lineWidth: 200 }));
}

export async function openProjectStack(dir: string, stack: string, config: Record<string, unknown>, secrets: Record<string, string> = {}): Promise<Stack> {
  const env = ensureEngine();
  writeProjectStackFile(dir, stack, config);
  const s = await LocalWorkspace.createOrSelectStack({ stackName: stack, workDir: dir }, { envVars: env });
  for (const [k, v] of Object.entries(secrets)) await s.setConfig(k, { value: v, secret: true });
  return s;
}

/** `npm pack` of this repository (runs prepack: a fresh build) into a temp dir; the tarball's path. */
export function packLibrary(): string {
  const out = fs.mkdtempSync(path.join(os.tmpdir(), "pv-pack-"));
  const name = execFileSync("npm", ["pack", "--pack-destination", out], { cwd: REPO_ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").pop()!;
  return path.join(out, name);
}

/** Copy an example into a directory of its own and install it as a user would, with the package from the tarball. */
export function installExample(example: string, tarball: string | undefined): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pv-example-${example.replace(/\//g, "-")}-`));
  fs.cpSync(path.join(REPO_ROOT, "examples", example), dir, { recursive: true });
  const pkgFile = path.join(dir, "package.json");
  const pkg = JSON.parse(fs.readFileSync(pkgFile, "utf8"));
  if (pkg.dependencies["pulumi-vllm"]) {
    if (!tarball) throw new Error(`${example} needs the packed library`);
    pkg.dependencies["pulumi-vllm"] = `file:${tarball}`;
  }
  fs.writeFileSync(pkgFile, JSON.stringify(pkg, null, 2));
  execFileSync("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"], { cwd: dir, stdio: ["ignore", "ignore", "inherit"] });
  return dir;
}

/** Operations other than `same`, per resource: "op type::name" (replacement steps folded into "replace"). */
export function opsOf(events: EngineEvent[]): string[] {
  const byUrn = new Map<string, string>();
  for (const e of events) {
    const m = e.resourcePreEvent?.metadata;
    if (!m || m.op === "same") continue;
    const op = /replace/.test(m.op) ? "replace" : m.op;
    byUrn.set(m.urn, `${op} ${m.urn.split("::").slice(-2).join("::")}`);
  }
  return [...byUrn.values()];
}
