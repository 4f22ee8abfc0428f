// The host steps, each a typed HostStep: what the stack config and the plan
// decide becomes the PV_* parameters of the step's script (documented at
// the top of each script in ./scripts).
import { createHmac } from "crypto";
import * as pulumi from "@pulumi/pulumi";
import { HostStep, HostStepArgs, stdoutFacts } from "./host-step";
import { renderUnit } from "./render-unit";
import type { StackConfig } from "../config/schema";
import type { Plan } from "../plan/plan";
import { GiB } from "../plan/memory";

type VllmConfig = StackConfig["vllm"];

type Common = Pick<HostStepArgs, "connection" | "sudo">;
type Opts = pulumi.ComponentResourceOptions;

export class Toolchain extends HostStep {
  constructor(name: string, a: Common & { packages: string[]; aptLockTimeoutSeconds: number }, opts?: Opts) {
    super("toolchain", name, { ...a, params: { PV_PACKAGES: a.packages.join(" "), PV_APT_LOCK_TIMEOUT: String(a.aptLockTimeoutSeconds) } }, opts, "pulumi-vllm:host:Toolchain");
  }
}

/**
 * A trigger that replaces a step when its name (host.unitName, host.venvPath) changes, so that the old
 * step's delete removes the old unit or venv (an update would only make the new one). Empty for the
 * default name: stacks made before renames were handled keep their triggers (no replacement on upgrade).
 */
export function renameTrigger(value: string, defaultValue: string): string[] {
  return value === defaultValue ? [] : [`name:${value}`];
}
/** host.unitName's and host.venvPath's defaults (schema.ts; test/unit/steps.test.ts keeps them equal). */
export const DEFAULT_UNIT_NAME = "vllm.service";
export const DEFAULT_VENV_PATH = "/opt/pulumi-vllm/venv";

/** PV_ADOPT=1 only when asked: a stack that adopts nothing keeps its step parameters as they were. */
const adoptParam = (adopt?: boolean): Record<string, string> => (adopt ? { PV_ADOPT: "1" } : {});

export class Swapfile extends HostStep {
  constructor(name: string, a: Common & { path: string; sizeMiB: number; adopt?: boolean }, opts?: Opts) {
    super("swapfile", name, { ...a, params: { PV_SWAP_PATH: a.path, PV_SWAP_SIZE_MIB: String(a.sizeMiB), ...adoptParam(a.adopt) } }, opts, "pulumi-vllm:host:Swapfile");
  }
}

export class EarlyOom extends HostStep {
  constructor(name: string, a: Common & { memPercent: number; swapPercent: number; avoid: string; prefer: string; aptLockTimeoutSeconds: number }, opts?: Opts) {
    super(
      "earlyoom",
      name,
      {
        ...a,
        params: {
          PV_EARLYOOM_MEM_PERCENT: String(a.memPercent),
          PV_EARLYOOM_SWAP_PERCENT: String(a.swapPercent),
          PV_EARLYOOM_AVOID: a.avoid,
          PV_EARLYOOM_PREFER: a.prefer,
          PV_APT_LOCK_TIMEOUT: String(a.aptLockTimeoutSeconds),
        },
      },
      opts,
      "pulumi-vllm:host:EarlyOom",
    );
  }
}

/** The login to the package index (the secret indexCredentials, `user:password`), for the steps that download. */
interface IndexLogin {
  indexCredentials?: pulumi.Input<string>;
}

/**
 * The index login on the step's stdin, and nowhere else: not a parameter (the command is plain state, and argv on the
 * host), not a trigger. A new or rotated login changes stdin only: an update re-runs create, which finds uv and vLLM in
 * place and installs nothing; the venv is not replaced. Without a login the step keeps no stdin (an existing stack's
 * steps see no change). The output is secret too, though the scripts redact it.
 */
export function indexLoginStdin(credentials: pulumi.Input<string> | undefined): Pick<HostStepArgs, "secrets" | "secretOutput"> {
  return credentials === undefined ? {} : { secrets: { INDEX_CREDENTIALS: pulumi.secret(credentials) }, secretOutput: true };
}

/** The venv of a release: made by uv-venv at venvPath (SLURM), or by vllm-install itself (versioned venvs). */
type VenvOf = { venvPath: string; python: string } | { uvOnly: true };

export class UvVenv extends HostStep {
  readonly uvBin: string;
  constructor(
    name: string,
    a: Common & VenvOf & IndexLogin & { uvVersion: string; indexUrl: string; uvDir?: string; stateDir?: string; adopt?: boolean },
    opts?: Opts,
  ) {
    const uvDir = a.uvDir ?? "/opt/pulumi-vllm/uv";
    super(
      "uv-venv",
      name,
      {
        ...a,
        params: {
          PV_UV_VERSION: a.uvVersion,
          PV_UV_INDEX_URL: a.indexUrl,
          ...("uvOnly" in a ? { PV_UV_ONLY: "1" } : { PV_VENV_PATH: a.venvPath, PV_PYTHON: a.python }),
          PV_UV_DIR: uvDir,
          ...(a.stateDir ? { PV_STATE_DIR: a.stateDir } : {}),
          ...adoptParam(a.adopt),
        },
        // (versioned venvs: uv alone, no venv here to rename)
        triggers: "uvOnly" in a ? [] : renameTrigger(a.venvPath, DEFAULT_VENV_PATH),
        ...indexLoginStdin(a.indexCredentials),
      },
      opts,
      "pulumi-vllm:host:UvVenv",
    );
    this.uvBin = `${uvDir}/${a.uvVersion}/uv`;
  }
}


/**
 * Versioned venvs: each release in a venv of its own under `dir`, the last `keep` kept, never the one `activeLink`
 * (host.venvPath) points at.
 */
export interface VersionedVenvs {
  dir: string;
  keep: number;
  activeLink: string;
}

/** The versioned venv of a release: `<venvsDir>/<version>-py<python>`. */
export function versionedVenv(venvsDir: string, v: Pick<VllmConfig, "version" | "python">): string {
  return `${venvsDir}/${v.version}-py${v.python}`;
}

/**
 * The pinned vLLM (or the package the stack names): into the venv of a UvVenv step, or, with `versioned`, into a
 * venv of its own that this step makes, verifies (import, `vllm --version`) and later prunes.
 */
export class VllmInstall extends HostStep {
  constructor(name: string, a: Common & IndexLogin & { vllm: VllmConfig; venvPath: string; uvBin: string; stateDir?: string; versioned?: VersionedVenvs }, opts?: Opts) {
    const v = a.vllm;
    const versioned: Record<string, string> = a.versioned
      ? { PV_VENVS_DIR: a.versioned.dir, PV_KEEP_VENVS: String(a.versioned.keep), PV_ACTIVE_LINK: a.versioned.activeLink, PV_PYTHON: v.python }
      : {};
    super(
      "vllm-install",
      name,
      {
        ...a,
        params: {
          ...versioned,
          PV_VENV_PATH: a.venvPath,
          PV_UV_BIN: a.uvBin,
          PV_PACKAGE: v.package.replace(/\{version\}/g, v.version),
          PV_DIST_NAME: v.distName,
          PV_DIST_VERSION: v.version,
          PV_IMPORT_NAME: v.importName,
          PV_FIND_LINKS: v.findLinks ?? "",
          PV_INDEX_URL: v.indexUrl,
          PV_NO_INDEX: v.noIndex ? "1" : "0",
          ...(a.stateDir ? { PV_STATE_DIR: a.stateDir } : {}),
        },
        // A new Python means a new, empty venv: the install must run again. (A versioned venv's name has the
        // Python, so a parameter would do; the trigger stays as it was, or every stack of an earlier release would
        // replace this step, whose old delete empties the venv the server runs. The versioned delete a Python change
        // now runs keeps the venv the server runs.) A renamed venv is a new venv (the old one's delete runs first),
        // except for versioned venvs, whose name changes with every release by design: a version change is an
        // update that keeps the previous venv to roll back to (host.venvPath, their link, is the launch step's).
        triggers: [v.python, ...(a.versioned ? [] : renameTrigger(a.venvPath, DEFAULT_VENV_PATH))],
        ...indexLoginStdin(a.indexCredentials),
      },
      opts,
      "pulumi-vllm:host:VllmInstall",
    );
  }
}

export interface WeightsArgs extends Common {
  modelId: string;
  revision?: string;
  /** HF_HOME of the server: where vLLM looks for the files. */
  cacheDir: string;
  venvPath: string;
  /** HF_ENDPOINT (a mirror) the server's environment names, if any. */
  hfEndpoint?: string;
  /** The planner's checkpoint size, for the disk check when the Hub reports no sizes. */
  checkpointBytes: number;
  /** The user vLLM runs as, when not the step's user: owns the cache (it must read it; remote code writes modules there). */
  cacheOwner?: string;
  removeModelCache: boolean;
  timeLimitSeconds: number;
  /** Only HF_TOKEN is read; it goes to the CLI's environment, never argv. */
  secrets?: pulumi.Input<Record<string, pulumi.Input<string>>>;
  stateDir?: string;
}

/** What the config and the plan decide of the weights step (the topology adds the venv, the state and the owner). */
export function weightsOfPlan(c: StackConfig, plan: Plan): Pick<WeightsArgs, "modelId" | "revision" | "cacheDir" | "hfEndpoint" | "checkpointBytes" | "removeModelCache" | "timeLimitSeconds"> {
  return {
    modelId: c.model.id,
    revision: c.model.revision,
    // The server's HF_HOME (host.env may name another): vLLM looks for the files where they were put.
    cacheDir: plan.launch.env.HF_HOME,
    hfEndpoint: plan.launch.env.HF_ENDPOINT,
    checkpointBytes: Math.round(plan.gpu.checkpointGiB * GiB),
    removeModelCache: c.host.removeModelCache,
    timeLimitSeconds: plan.times.downloadTimeLimitMinutes * 60,
  };
}

/**
 * The model's weights, downloaded into the Hugging Face cache (HF_HOME = cacheDir) with the venv's `hf`
 * before the unit starts, which then runs with HF_HUB_OFFLINE=1. `commit` is the revision's commit.
 */
export class Weights extends HostStep {
  readonly commit: pulumi.Output<string>;
  constructor(name: string, a: WeightsArgs, opts?: Opts) {
    super(
      "weights",
      name,
      {
        ...a,
        params: {
          PV_MODEL_ID: a.modelId,
          ...(a.revision ? { PV_REVISION: a.revision } : {}),
          PV_CACHE_DIR: a.cacheDir,
          PV_VENV_PATH: a.venvPath,
          ...(a.hfEndpoint ? { PV_HF_ENDPOINT: a.hfEndpoint } : {}),
          PV_CHECKPOINT_BYTES: String(a.checkpointBytes),
          ...(a.cacheOwner ? { PV_CACHE_OWNER: a.cacheOwner } : {}),
          PV_REMOVE_CACHE: a.removeModelCache ? "1" : "0",
          PV_STEP_TIMEOUT: String(a.timeLimitSeconds),
          PV_PROGRESS_SECONDS: "15",
          ...(a.stateDir ? { PV_STATE_DIR: a.stateDir } : {}),
        },
        secrets: a.secrets && pulumi.output(a.secrets).apply((s): Record<string, string> => (s.HF_TOKEN !== undefined ? { HF_TOKEN: s.HF_TOKEN } : {})),
        // delete removes (removeModelCache) what the step recorded for that cache: it needs no model or token.
        deleteParams: ["PV_MODEL_ID", "PV_CACHE_DIR", "PV_REMOVE_CACHE", "PV_STATE_DIR"],
      },
      opts,
      "pulumi-vllm:host:Weights",
    );
    this.commit = this.command.stdout.apply((out) => stdoutFacts(out).commit ?? "");
  }
}

export interface LaunchUnitArgs extends Common {
  /** Take over a unit of this name that pulumi-vllm did not make (host.adopt: unit). */
  adopt?: boolean;
  unitName: string;
  /** The system user the server runs as (host.serviceUser); made by the step unless it exists. */
  serviceUser: string;
  /** Take over an account of that name that pulumi-vllm did not make (host.adopt: user). */
  adoptUser?: boolean;
  /** HF_HOME (host.cacheDir): the one writable path besides the server's home. */
  cacheDir: string;
  /** The key of the HMAC by which the secrets are a trigger (a per-stack random secret). */
  triggerKey: pulumi.Input<string>;
  description: string;
  argv: string[];
  env: Record<string, string>;
  secrets: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** Secret names the unit cannot start without (VLLM_API_KEY unless the API is open). */
  requiredSecrets: string[];
  bindHost: string;
  port: number;
  readinessTimeoutSeconds: number;
  servedModelName: string;
  /** Versioned venvs: the unit's venv path (host.venvPath) becomes a link to `target`; a switch is gated and rolled back. */
  venv?: { link: string; target: string };
}

/**
 * The systemd unit running `vllm serve`, and its readiness gate as a child:
 * the gate re-runs whenever the unit or its secrets change, so every `up`
 * that restarts vLLM also waits for it.
 */
export class LaunchUnit extends pulumi.ComponentResource {
  readonly unit: HostStep;
  readonly readiness: HostStep;
  readonly unitText: string;
  readonly envFile: string;
  /** The server's home: its only writable path besides the model cache. */
  readonly home: string;

  constructor(name: string, a: LaunchUnitArgs, opts?: Opts) {
    // The command line, one flag and its value per entry, recorded as this component's inputs: a
    // preview's --diff then names the flag that changed (the unit text inside the step's command is one long line).
    super("pulumi-vllm:host:LaunchUnit", name, { unitName: a.unitName, command: flagLines(a.argv), environment: a.env }, opts);
    this.envFile = `/etc/pulumi-vllm/${a.unitName.replace(/\.service$/, "")}.env`;
    this.home = serverHome(a.unitName);
    this.unitText = renderUnit({
      unitName: a.unitName,
      description: a.description,
      execArgv: a.argv,
      environment: { ...homeEnv(this.home), ...a.env },
      environmentFile: this.envFile,
      user: a.serviceUser,
      group: a.serviceUser,
      readWritePaths: [this.home, a.cacheDir],
      // Seed 001: a 28 min load plus 15-20 min of silent init. Type=exec returns at exec; this only bounds a hung start.
      timeoutStartSec: 45 * 60 + 15 * 60,
      restartSec: 30,
      startLimitBurst: 3,
      startLimitIntervalSec: 3 * 3600,
      oomScoreAdjust: 900,
    });
    const common = { connection: a.connection, sudo: a.sudo };
    const probeHost = a.bindHost === "0.0.0.0" || a.bindHost === "::" ? "127.0.0.1" : a.bindHost;
    const baseUrl = `http://${probeHost.includes(":") ? `[${probeHost}]` : probeHost}:${a.port}`;
    const venv: Record<string, string> = a.venv
      ? {
          PV_VENV_LINK: a.venv.link,
          PV_VENV_TARGET: a.venv.target,
          PV_HEALTH_URL: baseUrl,
          PV_SERVED_MODEL: a.servedModelName,
          PV_SWITCH_TIMEOUT: String(a.readinessTimeoutSeconds),
        }
      : {};
    this.unit = new HostStep(
      "launch-unit",
      `${name}-unit`,
      {
        ...common,
        params: {
          PV_UNIT_NAME: a.unitName,
          PV_UNIT_CONTENT: this.unitText,
          PV_ENV_FILE: this.envFile,
          PV_PORT: String(a.port),
          PV_BIND_HOST: a.bindHost,
          PV_REQUIRED_SECRETS: a.requiredSecrets.join(","),
          PV_SERVICE_USER: a.serviceUser,
          PV_SERVICE_HOME: this.home,
          PV_CACHE_DIR: a.cacheDir,
          ...adoptParam(a.adopt),
          ...venv,
          ...(a.adoptUser ? { PV_ADOPT_USER: "1" } : {}),
        },
        secrets: a.secrets,
        secretOutput: true,
        // A new name is a new unit: the old one's delete runs first (deleteBeforeReplace: the port is free).
        triggers: renameTrigger(a.unitName, DEFAULT_UNIT_NAME),
        // delete stops the unit and removes its files (and the venv link it recorded): it needs their names, not the unit's content.
        deleteParams: ["PV_UNIT_NAME", "PV_ENV_FILE"],
      },
      { parent: this, dependsOn: opts?.dependsOn },
    );
    this.readiness = new HostStep(
      "readiness",
      `${name}-readiness`,
      {
        ...common,
        params: {
          PV_UNIT_NAME: a.unitName,
          PV_ENV_FILE: this.envFile,
          PV_BASE_URL: baseUrl,
          PV_SERVED_MODEL: a.servedModelName,
          PV_TIMEOUT_SECONDS: String(a.readinessTimeoutSeconds),
          PV_POLL_SECONDS: "5",
        },
        // Re-run the gate after every restart of the unit: its command, or its secrets, as a keyed
        // digest (plain, so the gate's diff stays readable): it changes with a secret, and without the
        // stack's own random key it cannot be checked against a guess (a plain sha256 of a short
        // or reused key could).
        triggers: [this.unit.command.create, secretsDigest(a.triggerKey, this.unit.command.stdin)],
        secretOutput: true,
        // delete does nothing.
        deleteParams: [],
      },
      { parent: this, dependsOn: [this.unit] },
    );
    this.registerOutputs({});
  }
}

/** HMAC-SHA256 of the secrets (the step's stdin) under `key`, as a plain value for a trigger. */
export function secretsDigest(key: pulumi.Input<string>, stdin: pulumi.Input<string | undefined>): pulumi.Output<string> {
  return pulumi.unsecret(pulumi.all([key, stdin]).apply(([k, x]) => createHmac("sha256", k).update(x ?? "").digest("hex")));
}

/** The server's home (HOME, its caches): its own, below the steps' state, removed with the unit. */
export function serverHome(unitName: string): string {
  return `/var/lib/pulumi-vllm/home/${unitName.replace(/\.service$/, "")}`;
}

/**
 * Where vLLM and its libraries write besides HF_HOME: vLLM's cache (torch.compile, usage stats),
 * Triton's and FlashInfer's kernels, CUDA's compute cache all follow HOME / XDG_*; ProtectSystem=strict
 * leaves them nowhere else to write.
 */
export function homeEnv(home: string): Record<string, string> {
  return { HOME: home, XDG_CACHE_HOME: `${home}/.cache`, XDG_CONFIG_HOME: `${home}/.config` };
}

/** argv as display lines: the program and its positional words, then each flag with its value. */
export function flagLines(argv: string[]): string[] {
  const lines: string[] = [];
  for (const a of argv) {
    const last = lines[lines.length - 1];
    const takesValue = lines.length === 1 || (last !== undefined && /^--[^ =]+$/.test(last));
    if (last === undefined || a.startsWith("--") || !takesValue) lines.push(a);
    else lines[lines.length - 1] = `${last} ${a}`;
  }
  return lines;
}
