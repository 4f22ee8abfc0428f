// A stack's config as server args: the thin layer between `Pulumi.<stack>.yaml`
// and VllmServer / VllmSlurmServer. The stack config's sections are the args'
// sections; its secret keys (sshPrivateKey, apiKey, hfToken, indexCredentials) become the
// args' secret inputs. Nothing here runs on import.
import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "../config/errors";
import { decodeEngineConfig, indexCredentialsProblem, LoadedConfig, parseStackConfig, PROJECT, SecretKey } from "../config/load";
import type { StackConfig } from "../config/schema";
import type { SshConnection, VllmServerArgs, VllmSlurmServerArgs } from "./args";
import { CATALOG } from "../plan/catalog";
import { HubError, withHubModel } from "../plan/hub";

export type StackServerArgs = { topology: "single"; args: VllmServerArgs } | { topology: "slurm"; args: VllmSlurmServerArgs };

/** Secret values (or stand-ins, for a plan) of the keys the stack sets. */
export interface StackSecrets {
  sshPrivateKey?: pulumi.Input<string>;
  apiKey?: pulumi.Input<string>;
  hfToken?: pulumi.Input<string>;
  indexCredentials?: pulumi.Input<string>;
}

/** A validated stack config and its secrets as server args. */
export function argsOfStackConfig(c: StackConfig, secrets: StackSecrets): StackServerArgs {
  const connection: SshConnection = { ...c.connection, ...(secrets.sshPrivateKey !== undefined ? { privateKey: secrets.sshPrivateKey } : {}) };
  const args: VllmServerArgs = {
    connection,
    hardware: c.hardware,
    model: c.model,
    serving: c.serving,
    vllm: c.vllm,
    host: c.host,
    nccl: c.nccl,
    ...(c.serving.apiKey === "config" && secrets.apiKey !== undefined ? { apiKey: secrets.apiKey } : {}),
    ...(secrets.hfToken !== undefined ? { hfToken: secrets.hfToken } : {}),
    ...(secrets.indexCredentials !== undefined ? { indexCredentials: secrets.indexCredentials } : {}),
  };
  return c.topology === "slurm" ? { topology: "slurm", args: { ...args, slurm: c.slurm } } : { topology: "single", args };
}

/** Stand-ins for the secrets a stack file says it holds: enough to plan, never a value. */
export function secretStandIns(loaded: LoadedConfig): StackSecrets {
  const out: StackSecrets = {};
  // (the login's stand-in has its form, user:password: the planner checks that much of a plain value)
  for (const k of loaded.secretsPresent) out[k] = k === "indexCredentials" ? "(secret):(indexCredentials)" : `(secret ${k})`;
  return out;
}

/**
 * The running stack's config as server args (inside a Pulumi program only). A bad config throws
 * pulumi.RunError with every problem as `key: problem -> fix` (Pulumi prints it without a stack trace).
 */
export function stackServerArgs(): StackServerArgs {
  return argsOfLoaded(loadStack());
}

function loadStack(): LoadedConfig {
  try {
    const all = pulumi.runtime.allConfig();
    const { values, secretsPresent } = decodeEngineConfig(all);
    const loaded = parseStackConfig(values, `stack ${pulumi.getStack()}`, secretsPresent);
    // The engine hands the program its secrets decrypted: the login's form is checked before any host is touched.
    const credentials = secretsPresent.has("indexCredentials") ? indexCredentialsProblem(all[`${PROJECT}:indexCredentials`] ?? "") : undefined;
    if (credentials) throw new ConfigError([credentials], `stack ${pulumi.getStack()}`);
    return loaded;
  } catch (e) {
    if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
    throw e;
  }
}

/**
 * stackServerArgs, with a model outside the catalog fetched from the Hugging Face Hub first
 * (config.json and the checkpoint size for the pinned revision, cached on disk: plan/hub.ts), so
 * preview plans it like the catalog's. The stack's hfToken reaches only the Hub request. A Hub
 * problem fails the program with `key: problem -> fix`, before any resource exists.
 */
export async function stackServerArgsWithHub(): Promise<StackServerArgs> {
  const loaded = loadStack();
  // The engine hands the program its config decrypted; the token is used for the request only.
  const token = loaded.secretsPresent.has("hfToken") ? pulumi.runtime.allConfig()[`${PROJECT}:hfToken`] : undefined;
  try {
    const model = await withHubModel(loaded.config.model, (id) => CATALOG.has(id.toLowerCase()), { token });
    return argsOfLoaded(model === loaded.config.model ? loaded : { ...loaded, config: { ...loaded.config, model } });
  } catch (e) {
    if (e instanceof HubError) throw new pulumi.RunError(`stack ${pulumi.getStack()}: ${e.message}`);
    throw e;
  }
}

function argsOfLoaded(loaded: LoadedConfig): StackServerArgs {
  const cfg = new pulumi.Config(PROJECT);
  const secret = (k: SecretKey) => (loaded.secretsPresent.has(k) ? cfg.requireSecret(k) : undefined);
  return argsOfStackConfig(loaded.config, {
    sshPrivateKey: secret("sshPrivateKey"),
    apiKey: secret("apiKey"),
    hfToken: secret("hfToken"),
    indexCredentials: secret("indexCredentials"),
  });
}

/** Run a server's constructor; its InputPropertiesError becomes a RunError (the message alone, no stack trace). */
export function orRunError<T>(make: () => T): T {
  try {
    return make();
  } catch (e) {
    if (pulumi.InputPropertiesError.isInstance(e)) throw new pulumi.RunError(e.message);
    throw e;
  }
}

/** Stack outputs without the undefined ones (an undefined export makes Pulumi warn on every run). */
export function definedOutputs(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
}
