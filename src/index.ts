// pulumi-vllm: a vLLM OpenAI-compatible server on hardware you own, as Pulumi components.
// Every export is listed by name: whatever is exported here is the API. Importing this
// module has no side effects (no config read, no resource, no file read).
export { VllmServer } from "../components/api/vllm-server";
export { VllmSlurmServer } from "../components/api/vllm-slurm-server";
export type {
  VllmServerArgs,
  VllmSlurmServerArgs,
  SshConnection,
  JumpHostArgs,
  HardwareArgs,
  ModelArgs,
  ServingArgs,
  VllmArgs,
  HostArgs,
  SwapArgs,
  EarlyOomArgs,
  NcclArgs,
  SlurmArgs,
} from "../components/api/args";
export { planVllmServer, planVllmSlurmServer, planSummary, ServerArgsError } from "../components/api/plan-args";
export type { PlanSummary, PlannedServer } from "../components/api/plan-args";
export type { Plan } from "../components/plan/plan";
export { argsOfStackConfig, stackServerArgs, stackServerArgsWithHub, orRunError, definedOutputs } from "../components/api/stack-config";
export { withHubModel, fetchHubModel, hubSettings, HubError } from "../components/plan/hub";
export type { HubModel, HubOptions } from "../components/plan/hub";
export { checkpointBytesOf } from "../components/plan/memory";
export type { MeasuredStartup } from "../components/plan/measured";
export type { StackServerArgs, StackSecrets } from "../components/api/stack-config";
