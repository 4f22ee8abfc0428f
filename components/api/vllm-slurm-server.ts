// VllmSlurmServer: vLLM as a SLURM batch job, driven over SSH through the
// cluster's login node. Same shape as VllmServer: plan first, then the
// steps as children, then the outputs.
import * as pulumi from "@pulumi/pulumi";
import { connectionArgs } from "../host/connection";
import { stdoutFacts, slurmSteps } from "../topologies/slurm-cluster";
import type { VllmSlurmServerArgs } from "./args";
import { MeasuredStartup, measuredOfReadiness } from "../plan/measured";
import { PlanSummary, planSummary } from "./plan-args";
import { planOrThrow, readyLine, recordedInputs, serverSecrets } from "./vllm-server";

/**
 * A vLLM server as a SLURM job: uv, the venv and vLLM on the shared filesystem (once), then the batch job
 * (submitted, watched until it runs, replaced when it changes, cancelled on destroy) and a readiness gate.
 * Every step runs as the login user. Resource options reach the steps as for VllmServer.
 */
export class VllmSlurmServer extends pulumi.ComponentResource {
  /** The OpenAI-compatible base URL on the head node, e.g. `http://gpu-07:8000/v1` (inside the cluster). */
  readonly endpoint!: pulumi.Output<string>;
  /** The API key clients send as `Authorization: Bearer` (a secret). */
  readonly apiKey?: pulumi.Output<string>;
  /** The model name clients ask for. */
  readonly servedModelName!: pulumi.Output<string>;
  /** The SLURM job id. */
  readonly jobId!: pulumi.Output<string>;
  /** The job's head node. */
  readonly headNode!: pulumi.Output<string>;
  /** `ssh -N -L ...` through the login node to the head node. */
  readonly tunnel!: pulumi.Output<string>;
  /** What the planner decided: memory per GPU, context length, the command line. */
  readonly plan!: pulumi.Output<PlanSummary>;
  /** The readiness gate's report (`endpoint=<url>`): known once the server answered. */
  readonly ready!: pulumi.Output<string>;
  /** The commit of the model repository the weights step downloaded into the shared cache (undefined when it downloads nothing). */
  readonly modelCommit?: pulumi.Output<string>;
  /**
   * What vLLM itself reported when the job started (weights loaded, available KV memory, KV cache tokens,
   * maximum concurrency, CUDA graph memory), read from the job's log, where every node's ranks write: the
   * smallest KV memory, the largest weights and graphs. Undefined when the log had none.
   */
  readonly measured!: pulumi.Output<MeasuredStartup | undefined>;

  constructor(name: string, args: VllmSlurmServerArgs, opts?: pulumi.ComponentResourceOptions) {
    const planned = planOrThrow("slurm", args, `VllmSlurmServer ${name}`);
    super(
      "pulumi-vllm:index:VllmSlurmServer",
      name,
      recordedInputs(planned.config),
      pulumi.mergeOptions(opts, { aliases: [{ type: "pulumi-vllm:topology:SlurmCluster" }] }),
    );
    const c = planned.config;
    if (c.topology !== "slurm") throw new Error("unreachable: planned as slurm");
    for (const w of planned.plan.warnings) pulumi.log.warn(w, this);

    const { apiKey, secrets } = serverSecrets(this, name, planned, args);
    const conn = args.connection;
    const job = slurmSteps(this, name, {
      config: c,
      plan: planned.plan,
      connection: connectionArgs(conn, process.cwd()),
      secrets,
      indexCredentials: args.indexCredentials,
      dependsOn: opts?.dependsOn,
    });
    const port = c.serving.port;
    this.jobId = job.jobId;
    this.headNode = job.headNode;
    this.endpoint = pulumi.all([job.headNode, job.gate.result]).apply(([h]) => `http://${h}:${port}/v1`);
    this.apiKey = apiKey;
    this.servedModelName = pulumi.output(planned.plan.launch.servedModelName);
    // The head node is inside the cluster: reach it through the login node.
    this.tunnel = pulumi.interpolate`ssh -N -L ${port}:${job.headNode}:${port} -p ${conn.port ?? 22} ${conn.user ?? "root"}@${conn.host}  # then http://127.0.0.1:${port}/v1`;
    this.plan = pulumi.output(planSummary(planned.plan));
    this.ready = readyLine(job.gate.command.stdout, /^endpoint=/).apply((l) => stdoutFacts(l).endpoint ?? l);
    this.modelCommit = job.weights?.commit;
    this.measured = pulumi.unsecret(job.gate.command.stdout).apply(measuredOfReadiness);
    this.registerOutputs({
      modelCommit: this.modelCommit,
      endpoint: this.endpoint,
      apiKey: this.apiKey,
      servedModelName: this.servedModelName,
      jobId: this.jobId,
      headNode: this.headNode,
      tunnel: this.tunnel,
      plan: this.plan,
      ready: this.ready,
      measured: this.measured,
    });
  }
}
