// topology: slurm — vLLM as a SLURM job, driven over SSH through the login
// node: the shared venv and vLLM once, then the batch job (submitted,
// watched, replaced on change, cancelled on destroy) and its readiness gate.
// The steps are children of the server component that calls this (VllmSlurmServer).
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { types } from "@pulumi/command";
import type { SlurmStackConfig } from "../config/schema";
import type { Plan } from "../plan/plan";
import { secretsFileOf } from "../plan/sbatch";
import { HostStep, stdoutFacts } from "../host/host-step";
import { scriptHash } from "../host/remote-command";
import { UvVenv, VllmInstall, Weights, weightsOfPlan } from "../host/steps";
import { downloadsWeights } from "../plan/times";

export interface SlurmSteps {
  config: SlurmStackConfig;
  plan: Plan;
  connection: types.input.remote.ConnectionArgs;
  secrets: pulumi.Input<Record<string, pulumi.Input<string>>>;
  /** The login to vllm.indexUrl (secret indexCredentials), for the uv and vLLM install steps only. */
  indexCredentials?: pulumi.Input<string>;
  /** What the first step waits for (the server's own dependsOn: children do not inherit it). */
  dependsOn?: pulumi.Input<pulumi.Input<pulumi.Resource>[]> | pulumi.Input<pulumi.Resource>;
}

export { stdoutFacts };

export interface SlurmJob {
  jobId: pulumi.Output<string>;
  headNode: pulumi.Output<string>;
  /** The readiness gate (its stdout holds `endpoint=`). */
  gate: HostStep;
  /** The weights step on the login node, when it downloads. */
  weights?: Weights;
}

/** The steps of a SLURM server, as children of `parent`. */
export function slurmSteps(parent: pulumi.Resource, name: string, a: SlurmSteps): SlurmJob {
  const c = a.config;
  const s = c.slurm;
  // Cluster users are not root: every step runs as the login user, state stays in shared paths.
  const common = { connection: a.connection, sudo: false };
  const child = (dependsOn: pulumi.Resource[]) => ({ parent, dependsOn });
  const uvDir = path.posix.join(s.sharedCacheDir, "uv");
  const stateDir = path.posix.join(s.sharedCacheDir, "state");

  const venv = new UvVenv(
    `${name}-uv-venv`,
    { ...common, uvVersion: c.vllm.uvVersion, indexUrl: c.vllm.indexUrl, indexCredentials: a.indexCredentials, venvPath: s.sharedVenvPath, python: c.vllm.python, uvDir, stateDir },
    { parent, dependsOn: a.dependsOn },
  );
  const install = new VllmInstall(
    `${name}-vllm-install`,
    {
      ...common,
      venvPath: s.sharedVenvPath,
      uvBin: venv.uvBin,
      vllm: c.vllm,
      indexCredentials: a.indexCredentials,
      stateDir,
    },
    child([venv]),
  );
  // The weights into the shared cache, from the login node (compute nodes often have no way out), before
  // the job is submitted: the job runs with HF_HUB_OFFLINE=1.
  const weights = downloadsWeights(c)
    ? new Weights(
        `${name}-weights`,
        { ...common, ...weightsOfPlan(c, a.plan), venvPath: s.sharedVenvPath, secrets: a.secrets, stateDir },
        child([install]),
      )
    : undefined;
  const batch = a.plan.batchScript!;
  const secretsFile = secretsFileOf(c);
  const job = new HostStep(
    "slurm-job",
    `${name}-job`,
    {
      ...common,
      params: {
        PV_JOB_NAME: s.jobName,
        PV_BATCH_SCRIPT: batch,
        PV_SCRIPT_DIR: path.posix.join(s.sharedCacheDir, "jobs"),
        PV_LOG_DIR: s.logDir,
        PV_SECRETS_FILE: secretsFile,
        PV_STATE_DIR: stateDir,
        PV_PENDING_TIMEOUT: String(Math.round(s.pendingTimeoutMinutes * 60)),
        PV_POLL_SECONDS: "5",
      },
      secrets: a.secrets,
      // A changed batch script is a new job: cancel the old one (delete), submit the new one (create).
      triggers: [scriptHash(batch)],
      // delete cancels the job recorded on the cluster: it needs where the record is, not the batch script.
      deleteParams: ["PV_JOB_NAME", "PV_SECRETS_FILE", "PV_STATE_DIR", "PV_SCRIPT_DIR", "PV_POLL_SECONDS"],
    },
    child(weights ? [install, weights] : [install]),
  );
  const facts = job.command.stdout.apply(stdoutFacts);
  const jobId = facts.apply((f) => f.job_id ?? "");
  const headNode = facts.apply((f) => f.head_node ?? "");
  const gate = new HostStep(
    "slurm-readiness",
    `${name}-readiness`,
    {
      ...common,
      params: {
        PV_JOB_NAME: s.jobName,
        PV_STATE_DIR: stateDir,
        PV_LOG_DIR: s.logDir,
        PV_SECRETS_FILE: secretsFile,
        PV_PORT: String(c.serving.port),
        PV_SERVED_MODEL: a.plan.launch.servedModelName,
        PV_TIMEOUT_SECONDS: String(Math.round(c.host.readinessTimeoutMinutes * 60)),
        PV_POLL_SECONDS: "5",
      },
      // Wait again whenever a new job was submitted.
      triggers: [jobId],
      secretOutput: true,
      // delete does nothing.
      deleteParams: ["PV_JOB_NAME"],
    },
    child([job]),
  );
  return { jobId, headNode, gate, weights };
}
