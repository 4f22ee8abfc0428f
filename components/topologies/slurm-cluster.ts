// topology: slurm — vLLM as a SLURM job, driven over SSH through the login
// node: the shared venv and vLLM once, then the batch job (submitted,
// watched, replaced on change, cancelled on destroy) and its readiness gate.
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import type { types } from "@pulumi/command";
import type { SlurmStackConfig } from "../config/schema";
import type { Plan } from "../plan/plan";
import { secretsFileOf } from "../plan/sbatch";
import { HostStep } from "../host/host-step";
import { scriptHash } from "../host/remote-command";
import { UvVenv, VllmInstall } from "../host/steps";

export interface SlurmClusterArgs {
  config: SlurmStackConfig;
  plan: Plan;
  connection: types.input.remote.ConnectionArgs;
  secrets: pulumi.Input<Record<string, pulumi.Input<string>>>;
}

/** `key=value` lines of a step's stdout. */
export function stdoutFacts(stdout: string): Record<string, string> {
  const facts: Record<string, string> = {};
  for (const line of stdout.split("\n")) {
    const m = /^([a-z_]+)=(.*)$/.exec(line.trim());
    if (m) facts[m[1]] = m[2];
  }
  return facts;
}

export class SlurmCluster extends pulumi.ComponentResource {
  readonly jobId: pulumi.Output<string>;
  readonly headNode: pulumi.Output<string>;
  readonly endpoint: pulumi.Output<string>;

  constructor(name: string, a: SlurmClusterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("pulumi-vllm:topology:SlurmCluster", name, {}, opts);
    const c = a.config;
    const s = c.slurm;
    // Cluster users are not root: every step runs as the login user, state stays in shared paths.
    const common = { connection: a.connection, sudo: false };
    const child = (dependsOn: pulumi.Resource[]) => ({ parent: this, dependsOn });
    const uvDir = path.posix.join(s.sharedCacheDir, "uv");
    const stateDir = path.posix.join(s.sharedCacheDir, "state");

    const venv = new UvVenv(
      `${name}-uv-venv`,
      { ...common, uvVersion: c.vllm.uvVersion, indexUrl: c.vllm.indexUrl, venvPath: s.sharedVenvPath, python: c.vllm.python, uvDir, stateDir },
      child([]),
    );
    const install = new VllmInstall(
      `${name}-vllm-install`,
      {
        ...common,
        venvPath: s.sharedVenvPath,
        uvBin: venv.uvBin,
        vllm: c.vllm,
        stateDir,
      },
      child([venv]),
    );
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
      },
      child([install]),
    );
    const facts = job.command.stdout.apply(stdoutFacts);
    this.jobId = facts.apply((f) => f.job_id ?? "");
    this.headNode = facts.apply((f) => f.head_node ?? "");
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
        triggers: [this.jobId],
        secretOutput: true,
      },
      child([job]),
    );
    this.endpoint = pulumi.all([this.headNode, gate.result]).apply(([h]) => `http://${h}:${c.serving.port}/v1`);
    this.registerOutputs({ jobId: this.jobId, headNode: this.headNode, endpoint: this.endpoint });
  }
}
