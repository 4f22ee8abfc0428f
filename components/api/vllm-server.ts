// VllmServer: a vLLM OpenAI-compatible server on one host over SSH.
// The constructor plans first (pure: plan-args.ts), so a server that cannot
// work fails preview with nothing registered; then it creates the host steps
// as its children, all synchronously, and registers its outputs.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { connectionArgs, sudoFor } from "../host/connection";
import { singleHostSteps } from "../topologies/single-host";
import type { StackConfig } from "../config/schema";
import type { VllmServerArgs } from "./args";
import { MeasuredStartup, measuredOfReadiness } from "../plan/measured";
import { PlannedServer, planServer, PlanSummary, planSummary, ServerArgsError, Topology } from "./plan-args";

/** The name the stack program of releases up to 0.1.0 gave its one server: its old URNs get aliases. */
export const LEGACY_NAME = "vllm";

/** Plan; invalid args or a server that does not fit throw the error Pulumi shows per property (InputPropertiesError). */
export function planOrThrow(topology: Topology, args: VllmServerArgs, where: string): PlannedServer {
  try {
    const planned = planServer(topology, args, where);
    if (!planned.plan.fits) throw new ServerArgsError(planned.plan.problems, where);
    return planned;
  } catch (e) {
    if (e instanceof ServerArgsError) throw e.toInputPropertiesError();
    throw e;
  }
}

/**
 * What the server records as its own inputs: the plain sections, validated, defaults filled in. A
 * preview's --diff then shows a changed setting by name (`serving.maxModelLen: 8192 => 4096`).
 */
export function recordedInputs(c: StackConfig): Record<string, unknown> {
  const { connection: _connection, topology: _topology, ...plain } = c;
  return plain;
}

/** The API key (generated, given or none) and the secrets for the launch step's stdin. */
export function serverSecrets(
  parent: pulumi.Resource,
  name: string,
  planned: PlannedServer,
  args: Pick<VllmServerArgs, "apiKey" | "hfToken">,
): { apiKey?: pulumi.Output<string>; secrets: Record<string, pulumi.Output<string>> } {
  const policy = planned.config.serving.apiKey;
  const apiKey =
    policy === "none"
      ? undefined
      : policy === "config"
        ? pulumi.secret(args.apiKey!)
        : new random.RandomPassword(
            `${name}-api-key`,
            { length: 40, special: false },
            // 0.1.0 made it at the top of the stack, named api-key.
            { parent, aliases: name === LEGACY_NAME ? [{ name: "api-key", parent: pulumi.rootStackResource }] : [] },
          ).result;
  const secrets: Record<string, pulumi.Output<string>> = {};
  if (apiKey) secrets.VLLM_API_KEY = apiKey;
  if (args.hfToken !== undefined) secrets.HF_TOKEN = pulumi.secret(args.hfToken);
  return { apiKey: apiKey && pulumi.secret(apiKey), secrets };
}

/** The line of a readiness gate's stdout that says what is ready (it never holds a secret). */
export function readyLine(stdout: pulumi.Output<string>, prefix: RegExp): pulumi.Output<string> {
  return pulumi.unsecret(stdout).apply((out) => {
    const lines = out.split("\n").map((l) => l.trim()).filter(Boolean);
    return lines.find((l) => prefix.test(l)) ?? lines[lines.length - 1] ?? "";
  });
}

/**
 * A vLLM server on one host (a GPU workstation, a rig) over SSH: toolchain, swap, EarlyOOM, uv + venv,
 * vLLM, a systemd unit and a readiness gate, each an idempotent step with an undo.
 *
 * Resource options reach the steps by inheritance: `provider`/`providers` (for `command` and `random`),
 * `protect` (blocks destroying every step), `retainOnDelete` (no step's undo runs: the host keeps
 * everything). `dependsOn` is forwarded to the first step.
 */
export class VllmServer extends pulumi.ComponentResource {
  /** The OpenAI-compatible base URL, e.g. `http://127.0.0.1:8000/v1` (the bind address, or the host's when bound to 0.0.0.0). */
  readonly endpoint!: pulumi.Output<string>;
  /** The API key clients send as `Authorization: Bearer` (a secret); undefined with serving.apiKey "none". */
  readonly apiKey?: pulumi.Output<string>;
  /** The model name clients ask for. */
  readonly servedModelName!: pulumi.Output<string>;
  /** The systemd unit running vLLM. */
  readonly unitName!: pulumi.Output<string>;
  /** `ssh -N -L ...` that forwards the API to this machine, when the server is bound to 127.0.0.1. */
  readonly tunnel?: pulumi.Output<string>;
  /** What the planner decided: memory per GPU, context length, the command line. */
  readonly plan!: pulumi.Output<PlanSummary>;
  /** The readiness gate's report (`ready: <url> serves <model> ...`): known once the server answered. */
  readonly ready!: pulumi.Output<string>;
  /** The commit of the model repository the weights step downloaded (undefined when it downloads nothing). */
  readonly modelCommit?: pulumi.Output<string>;
  /**
   * What vLLM itself reported at its last start (weights loaded, available KV memory, KV cache tokens,
   * maximum concurrency, CUDA graph memory), to hold next to `plan`; undefined when its log had none.
   */
  readonly measured!: pulumi.Output<MeasuredStartup | undefined>;

  constructor(name: string, args: VllmServerArgs, opts?: pulumi.ComponentResourceOptions) {
    const planned = planOrThrow("single", args, `VllmServer ${name}`);
    super(
      "pulumi-vllm:index:VllmServer",
      name,
      recordedInputs(planned.config),
      pulumi.mergeOptions(opts, { aliases: [{ type: "pulumi-vllm:topology:SingleHost" }] }),
    );
    const c = planned.config;
    if (c.topology !== "single") throw new Error("unreachable: planned as single");
    for (const w of planned.plan.warnings) pulumi.log.warn(w, this);

    const { apiKey, secrets } = serverSecrets(this, name, planned, args);
    const conn = args.connection;
    const { launch, weights } = singleHostSteps(this, name, {
      config: c,
      plan: planned.plan,
      connection: connectionArgs(conn, process.cwd()),
      sudo: sudoFor(conn),
      secrets,
      indexCredentials: args.indexCredentials,
      // A child of the server (new in 0.2: a stack made by 0.1.0 gets one on its first up).
      triggerKey: new random.RandomBytes(`${name}-trigger-key`, { length: 32 }, { parent: this }).hex,
      dependsOn: opts?.dependsOn,
    });

    const port = c.serving.port;
    const bind = c.serving.bindHost;
    const host: pulumi.Input<string> = bind === "0.0.0.0" ? conn.host : bind;
    this.endpoint = pulumi.interpolate`http://${host}:${port}/v1`;
    this.apiKey = apiKey;
    this.servedModelName = pulumi.output(planned.plan.launch.servedModelName);
    this.unitName = pulumi.output(c.host.unitName);
    if (bind === "127.0.0.1") {
      this.tunnel = pulumi.interpolate`ssh -N -L ${port}:127.0.0.1:${port} -p ${conn.port ?? 22} ${conn.user ?? "root"}@${conn.host}`;
    }
    this.plan = pulumi.output(planSummary(planned.plan));
    this.ready = readyLine(launch.readiness.command.stdout, /^ready: /);
    this.modelCommit = weights?.commit;
    this.measured = pulumi.unsecret(launch.readiness.command.stdout).apply(measuredOfReadiness);
    this.registerOutputs({
      modelCommit: this.modelCommit,
      endpoint: this.endpoint,
      apiKey: this.apiKey,
      servedModelName: this.servedModelName,
      unitName: this.unitName,
      tunnel: this.tunnel,
      plan: this.plan,
      ready: this.ready,
      measured: this.measured,
    });
  }
}
