// A stack's config as server args: the thin layer between `Pulumi.<stack>.yaml`
// and VllmServer / VllmSlurmServer. The stack config's sections are the args'
// sections; its secret keys (sshPrivateKey, apiKey, hfToken) become the
// args' secret inputs. Nothing here runs on import.
import * as pulumi from "@pulumi/pulumi";
import { ConfigError } from "../config/errors";
import { decodeEngineConfig, LoadedConfig, parseStackConfig, PROJECT } from "../config/load";
import type { StackConfig } from "../config/schema";
import type { SshConnection, VllmServerArgs, VllmSlurmServerArgs } from "./args";

export type StackServerArgs = { topology: "single"; args: VllmServerArgs } | { topology: "slurm"; args: VllmSlurmServerArgs };

/** Secret values (or stand-ins, for a plan) of the keys the stack sets. */
export interface StackSecrets {
  sshPrivateKey?: pulumi.Input<string>;
  apiKey?: pulumi.Input<string>;
  hfToken?: pulumi.Input<string>;
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
  };
  return c.topology === "slurm" ? { topology: "slurm", args: { ...args, slurm: c.slurm } } : { topology: "single", args };
}

/** Stand-ins for the secrets a stack file says it holds: enough to plan, never a value. */
export function secretStandIns(loaded: LoadedConfig): StackSecrets {
  const out: StackSecrets = {};
  for (const k of loaded.secretsPresent) out[k] = `(secret ${k})`;
  return out;
}

/**
 * The running stack's config as server args (inside a Pulumi program only). A bad config throws
 * pulumi.RunError with every problem as `key: problem -> fix` (Pulumi prints it without a stack trace).
 */
export function stackServerArgs(): StackServerArgs {
  let loaded: LoadedConfig;
  try {
    const { values, secretsPresent } = decodeEngineConfig(pulumi.runtime.allConfig());
    loaded = parseStackConfig(values, `stack ${pulumi.getStack()}`, secretsPresent);
  } catch (e) {
    if (e instanceof ConfigError) throw new pulumi.RunError(e.message);
    throw e;
  }
  const cfg = new pulumi.Config(PROJECT);
  const secret = (k: "sshPrivateKey" | "apiKey" | "hfToken") => (loaded.secretsPresent.has(k) ? cfg.requireSecret(k) : undefined);
  return argsOfStackConfig(loaded.config, { sshPrivateKey: secret("sshPrivateKey"), apiKey: secret("apiKey"), hfToken: secret("hfToken") });
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
