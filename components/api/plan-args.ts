// The pure front of the components: component args -> the validated stack
// config -> the plan, with no resource and no engine. VllmServer and
// VllmSlurmServer call it before super(), so a server that cannot work fails
// `pulumi preview` with nothing registered; the `plan` CLI and tests call it
// directly. The same zod schema as the stack config validates the args; the
// planner's problems come out in the same `key: problem -> fix` form.
import * as pulumi from "@pulumi/pulumi";
import { didYouMean, formatIssues } from "../config/errors";
import { indexCredentialsChecks, indexCredentialsProblem, type SecretKey } from "../config/load";
import { StackConfig } from "../config/schema";
import { makePlan, Plan, PlanError } from "../plan/plan";
import { round } from "../plan/host-memory";
import { shellQuote } from "../plan/launch";
import type { SshConnection, VllmServerArgs, VllmSlurmServerArgs } from "./args";

export type Topology = "single" | "slurm";

/** What the planner decided, as a server's `plan` output shows it. */
export interface PlanSummary {
  model: string;
  weightFormat: string;
  weightsGiBPerGpu: number;
  kvCacheGiBPerGpu: number;
  kvCacheTokens: number;
  maxModelLen: number;
  maxConcurrency: number;
  swapGiB: number;
  /** Estimated minutes of the weights step's download (0 when it downloads nothing). */
  downloadMinutes: number;
  /** Estimated minutes vLLM loads and compiles, what the readiness wait covers. */
  loadAndCompileMinutes: number;
  /** The `vllm serve` command line (secrets are never in it). */
  command: string;
  warnings: string[];
}

export interface PlannedServer {
  /** The validated config. Connection fields given as Outputs hold placeholders here: use the args for them. */
  config: StackConfig;
  plan: Plan;
  secretsPresent: Set<SecretKey>;
}

/** One problem of the args; `message` lists them all. */
export class ServerArgsError extends Error {
  constructor(
    readonly problems: string[],
    where: string,
  ) {
    super(`${where} has ${problems.length} problem${problems.length === 1 ? "" : "s"}:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
    this.name = "ServerArgsError";
  }

  /** The error Pulumi renders per property (a plugin host shows `errors`; in-process the message is all). */
  toInputPropertiesError(): pulumi.InputPropertiesError {
    return new pulumi.InputPropertiesError({
      message: this.message,
      errors: this.problems.map((p) => ({ propertyPath: propertyPathOf(p), reason: p.slice(p.indexOf(":") + 1).trim() })),
    });
  }
}

function propertyPathOf(problem: string): string {
  const key = problem.slice(0, problem.indexOf(":"));
  return /^[A-Za-z0-9_.[\]]+$/.test(key) ? key : "";
}

const SECTIONS_SINGLE = ["connection", "hardware", "model", "serving", "vllm", "host", "nccl", "apiKey", "hfToken", "indexCredentials"] as const;
const PLAIN_SECTIONS = ["hardware", "model", "serving", "vllm", "host", "nccl", "slurm"] as const;

/** A value the planner cannot read now (an Output or a Promise). */
function isUnknown(v: unknown): boolean {
  return pulumi.Output.isInstance(v) || (typeof v === "object" && v !== null && typeof (v as { then?: unknown }).then === "function");
}

/** Where an Output sits inside a section that must be plain (JS callers and `as any` get past the types). */
function outputsIn(v: unknown, at: string): string[] {
  if (isUnknown(v)) return [at];
  if (Array.isArray(v)) return v.flatMap((x, i) => outputsIn(x, `${at}[${i}]`));
  if (v && typeof v === "object") return Object.entries(v).flatMap(([k, x]) => outputsIn(x, `${at}.${k}`));
  return [];
}

// Placeholders the schema accepts where a connection field is an Output: its checks apply to plain values only.
const PLACEHOLDER = { host: "unknown-until-deployed", port: 22, user: "root", hostKey: "ssh-ed25519 AAAAunknownUntilDeployed" };

function plainConnection(c: SshConnection): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(c)) {
    if (v === undefined || k === "privateKey") continue;
    if (k === "jump" && v && typeof v === "object") {
      const j: Record<string, unknown> = {};
      for (const [jk, jv] of Object.entries(v)) {
        if (jv === undefined || jk === "privateKey") continue;
        j[jk] = isUnknown(jv) ? PLACEHOLDER[jk as keyof typeof PLACEHOLDER] : jv;
      }
      out.jump = j;
      continue;
    }
    out[k] = isUnknown(v) ? PLACEHOLDER[k as keyof typeof PLACEHOLDER] : v;
  }
  return out;
}

/**
 * Validate a server's args and plan it. Pure: no resource, no engine, no host.
 * Throws ServerArgsError listing every problem (`key: problem -> fix`) of args
 * that are invalid; a valid server that does not fit comes back with
 * `plan.fits` false and `plan.problems` saying what to change.
 */
export function planServer(topology: Topology, args: VllmServerArgs | VllmSlurmServerArgs, where: string): PlannedServer {
  const problems: string[] = [];
  if (!args || typeof args !== "object") throw new ServerArgsError(["(args): missing -> pass { connection, hardware, model, vllm, ... }"], where);
  const known: readonly string[] = topology === "slurm" ? [...SECTIONS_SINGLE, "slurm"] : SECTIONS_SINGLE;
  for (const key of Object.keys(args)) {
    if (!known.includes(key)) {
      const guess = didYouMean(key, known);
      problems.push(`${key}: unknown argument -> ${guess ? `did you mean \`${guess}\`? ` : ""}known arguments: ${known.join(", ")}`);
    }
  }
  for (const section of PLAIN_SECTIONS) {
    for (const at of outputsIn((args as unknown as Record<string, unknown>)[section], section)) {
      problems.push(`${at}: must be a plain value, not an Output (the planner reads it before any resource exists) -> pass the value itself`);
    }
  }
  if (problems.length) throw new ServerArgsError(problems, where);

  const secretsPresent = new Set<SecretKey>();
  const conn = args.connection ?? ({} as SshConnection);
  if (conn.privateKey !== undefined) secretsPresent.add("sshPrivateKey");
  if (args.hfToken !== undefined) secretsPresent.add("hfToken");
  if (args.apiKey !== undefined) secretsPresent.add("apiKey");
  if (args.indexCredentials !== undefined) secretsPresent.add("indexCredentials");

  const values: Record<string, unknown> = { topology };
  for (const key of known) {
    if (key === "apiKey" || key === "hfToken" || key === "indexCredentials") continue;
    const v = (args as unknown as Record<string, unknown>)[key];
    if (v === undefined) continue;
    values[key] = key === "connection" && v && typeof v === "object" ? plainConnection(v as SshConnection) : v;
  }
  // An apiKey given with the default policy is used (the component's "config").
  const serving = values.serving as Record<string, unknown> | undefined;
  if (args.apiKey !== undefined && (serving?.apiKey ?? "generate") === "generate") values.serving = { ...serving, apiKey: "config" };

  const parsed = StackConfig.safeParse(values);
  if (!parsed.success) throw new ServerArgsError(formatIssues(parsed.error.issues, StackConfig, values), where);
  const config = parsed.data;
  if (conn.privateKey === undefined && !config.connection.privateKeyPath) {
    problems.push("connection.privateKey: no SSH key -> pass connection.privateKey (a secret) or connection.privateKeyPath (a local file)");
  }
  if (config.serving.apiKey === "config" && args.apiKey === undefined) {
    problems.push("apiKey: serving.apiKey is `config` but no apiKey was given -> pass apiKey (a secret), or use serving.apiKey: generate");
  }
  if (config.serving.apiKey === "none" && args.apiKey !== undefined) {
    problems.push("apiKey: given, but serving.apiKey is `none` (no auth) -> drop apiKey, or drop serving.apiKey: none");
  }
  if (args.indexCredentials !== undefined) {
    problems.push(...indexCredentialsChecks(config));
    // An Output's value is not known yet: the step scripts check it on the host (without showing it).
    const p = typeof args.indexCredentials === "string" ? indexCredentialsProblem(args.indexCredentials) : undefined;
    if (p) problems.push(p);
  }
  if (problems.length) throw new ServerArgsError(problems, where);

  let plan: Plan;
  try {
    plan = makePlan({ config, secretsPresent });
  } catch (e) {
    if (e instanceof PlanError) throw new ServerArgsError(e.problems, where);
    throw e;
  }
  return { config, plan, secretsPresent };
}

/** Plan a single-host server from its args (what `new VllmServer` runs first). Throws ServerArgsError on invalid args. */
export function planVllmServer(args: VllmServerArgs, name = "VllmServer"): PlannedServer {
  return planServer("single", args, name);
}

/** Plan a SLURM server from its args (what `new VllmSlurmServer` runs first). Throws ServerArgsError on invalid args. */
export function planVllmSlurmServer(args: VllmSlurmServerArgs, name = "VllmSlurmServer"): PlannedServer {
  return planServer("slurm", args, name);
}

/** The plan as the `plan` output shows it. */
export function planSummary(p: Plan): PlanSummary {
  return {
    model: p.model.id,
    weightFormat: p.model.weightFormat,
    weightsGiBPerGpu: round(p.gpu.weightsGiB),
    kvCacheGiBPerGpu: round(p.gpu.kvCacheGiB),
    kvCacheTokens: p.gpu.kvCacheTokens,
    maxModelLen: p.launch.maxModelLen,
    maxConcurrency: p.gpu.maxConcurrency,
    swapGiB: p.host.swapGiB,
    downloadMinutes: p.times.download === "step" ? p.times.downloadMinutes : 0,
    loadAndCompileMinutes: round(p.times.loadMinutes + p.times.compileMinutes, 1),
    command: p.launch.argv.map(shellQuote).join(" "),
    warnings: p.warnings,
  };
}
