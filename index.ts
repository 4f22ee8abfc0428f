// The Pulumi program: read the stack config -> plan -> topology -> outputs.
// Everything that can be known before a host is touched is checked here, so
// a config that cannot work fails `pulumi preview` with what to change.
import * as pulumi from "@pulumi/pulumi";
import * as random from "@pulumi/random";
import { ConfigError } from "./components/config/errors";
import { decodeEngineConfig, parseStackConfig, PROJECT } from "./components/config/load";
import { makePlan, Plan, PlanError } from "./components/plan/plan";
import { shellQuote } from "./components/plan/launch";
import { round } from "./components/plan/host-memory";
import { sshConnection, useSudo } from "./components/host/connection";
import { SingleHost } from "./components/topologies/single-host";
import { SlurmCluster } from "./components/topologies/slurm-cluster";

function planOrFail() {
  try {
    const { values, secretsPresent } = decodeEngineConfig(pulumi.runtime.allConfig());
    const loaded = parseStackConfig(values, `stack ${pulumi.getStack()}`, secretsPresent);
    const plan = makePlan(loaded);
    if (!plan.fits) throw new PlanError(plan.problems);
    return { loaded, plan };
  } catch (e) {
    // RunError: Pulumi prints the message alone, without a stack trace.
    if (e instanceof ConfigError || e instanceof PlanError) throw new pulumi.RunError(e.message);
    throw e;
  }
}

const { loaded, plan } = planOrFail();
const config = loaded.config;
for (const w of plan.warnings) pulumi.log.warn(w);

const cfg = new pulumi.Config(PROJECT);
const apiKey: pulumi.Output<string> | undefined =
  config.serving.apiKey === "none"
    ? undefined
    : config.serving.apiKey === "config"
      ? cfg.requireSecret("apiKey")
      : new random.RandomPassword("api-key", { length: 40, special: false }).result;
const secrets: Record<string, pulumi.Output<string>> = {};
if (apiKey) secrets.VLLM_API_KEY = apiKey;
if (loaded.secretsPresent.has("hfToken")) secrets.HF_TOKEN = cfg.requireSecret("hfToken");

const connection = sshConnection(config.connection, {
  projectDir: process.cwd(),
  secretKey: loaded.secretsPresent.has("sshPrivateKey") ? cfg.requireSecret("sshPrivateKey") : undefined,
});

function planSummary(p: Plan) {
  return {
    model: p.model.id,
    weightFormat: p.model.weightFormat,
    weightsGiBPerGpu: round(p.gpu.weightsGiB),
    kvCacheGiBPerGpu: round(p.gpu.kvCacheGiB),
    kvCacheTokens: p.gpu.kvCacheTokens,
    maxModelLen: p.launch.maxModelLen,
    maxConcurrency: p.gpu.maxConcurrency,
    swapGiB: p.host.swapGiB,
    command: p.launch.argv.map(shellQuote).join(" "),
    warnings: p.warnings,
  };
}

const port = config.serving.port;
const login = `-p ${config.connection.port} ${config.connection.user}@${config.connection.host}`;

// Stack outputs. Built as one object so that a topology exports only what it has
// (an undefined export makes Pulumi warn on every run).
const outputs: Record<string, unknown> = {
  servedModelName: plan.launch.servedModelName,
  plan: planSummary(plan),
};
if (apiKey) outputs.apiKey = pulumi.secret(apiKey);
if (config.topology === "single") {
  const host = new SingleHost("vllm", { config, plan, connection, sudo: useSudo(config.connection), secrets });
  outputs.endpoint = host.endpoint;
  outputs.unitName = host.unitName;
  if (config.serving.bindHost === "127.0.0.1") outputs.tunnel = `ssh -N -L ${port}:127.0.0.1:${port} ${login}`;
} else {
  const cluster = new SlurmCluster("vllm", { config, plan, connection, secrets });
  outputs.endpoint = cluster.endpoint;
  outputs.jobId = cluster.jobId;
  outputs.headNode = cluster.headNode;
  // The head node is inside the cluster: reach it through the login node.
  outputs.tunnel = cluster.headNode.apply((h) => `ssh -N -L ${port}:${h}:${port} ${login}  # then http://127.0.0.1:${port}/v1`);
}

export = outputs;
