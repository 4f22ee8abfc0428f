// The public argument types of VllmServer and VllmSlurmServer. They are the
// stack config's sections (components/config/schema.ts) with the same keys
// and defaults, written out as interfaces because they are the contract (a
// source-based plugin's analyzer needs named interfaces, and JSDoc becomes
// the schema's descriptions). The zod schema validates them: the checks at
// the bottom of this file fail the type check when the two drift apart.
//
// Plain fields are read by the planner before any resource exists; fields
// typed `pulumi.Input<T>` may be another resource's output.
import type * as pulumi from "@pulumi/pulumi";
import type { z } from "zod";
import type * as schema from "../config/schema";

/** A jump host (bastion) the SSH connection goes through. */
export interface JumpHostArgs {
  /** Jump host name or address; may be another resource's output. Required. */
  host: pulumi.Input<string>;
  /** SSH port of the jump host. Defaults to 22. */
  port?: pulumi.Input<number>;
  /** Login user on the jump host. Defaults to "root". */
  user?: pulumi.Input<string>;
  /** Private key for the jump host (a secret). Defaults to the main connection's key. */
  privateKey?: pulumi.Input<string>;
  /** Local path of the jump host's private key, read at run time. Defaults to the main connection's key. */
  privateKeyPath?: string;
  /** The jump host's public key line (`ssh-ed25519 AAAA...`), pinned. Defaults to no pinning of the jump host. */
  hostKey?: pulumi.Input<string>;
}

/** How to reach the host (single host) or the login node (SLURM) over SSH. */
export interface SshConnection {
  /** Host name or address; may be another resource's output, e.g. a VM's `publicIp`. Required. */
  host: pulumi.Input<string>;
  /** SSH port. Defaults to 22. */
  port?: pulumi.Input<number>;
  /** Login user: root, or a user with passwordless sudo. Defaults to "root". */
  user?: pulumi.Input<string>;
  /** The SSH private key (kept a secret: wrapped in `pulumi.secret` on entry). One of privateKey or privateKeyPath is required. */
  privateKey?: pulumi.Input<string>;
  /** Local path of the SSH private key, read at run time (relative paths: from the program's directory). Plain. */
  privateKeyPath?: string;
  /**
   * The host's public key line (`ssh-keyscan -t ed25519 HOST` prints it), pinned: the connection fails if the host
   * presents another. One of hostKey, hostKeyPath or insecureSkipHostKeyCheck is required.
   */
  hostKey?: pulumi.Input<string>;
  /** Local file holding the host key line (a .pub file or a known_hosts line). Plain. */
  hostKeyPath?: string;
  /** Accept any host key. Plain. Defaults to false (an unpinned key lets anyone on the path impersonate the host). */
  insecureSkipHostKeyCheck?: boolean;
  /** Run the host steps through `sudo -n`. Plain. Defaults to true when user is not "root". */
  sudo?: boolean;
  /** A jump host to go through. Defaults to none. */
  jump?: JumpHostArgs;
  /** Seconds per SSH dial attempt. Plain. Defaults to 15. */
  dialTimeoutSeconds?: number;
  /** Failed dials that end a step. Plain. Defaults to 10. */
  dialErrorLimit?: number;
}

/** The GPUs and the host, as the planner needs them. All plain. */
export interface HardwareArgs {
  /** GPUs per host (per node for SLURM). Required. */
  gpuCount: number;
  /** Total memory of ONE GPU in GiB as nvidia-smi reports it (24 for an RTX 3090, 80 for an H100). Required. */
  gpuMemoryGiB: number;
  /** GPU model name, for the scheduler defaults and the plan report. Defaults to "unknown GPU". */
  gpuName?: string;
  /** How the GPUs talk: "pcie-x1-riser" turns NCCL P2P and IB off. Defaults to "pcie". */
  interconnect?: "pcie-x1-riser" | "pcie" | "nvlink";
  /** Host RAM in GiB (per node for SLURM). Required. */
  hostRamGiB: number;
  /** Free disk in GiB where the model cache, venv and swapfile go. Required. */
  freeDiskGiB: number;
  /** CPU cores: sizes the compile-worker estimate of the host RAM plan. Defaults to 4. */
  cpuCores?: number;
  /** Memory other processes (a desktop, Xorg) hold on each GPU, in GiB. Defaults to 0. */
  gpuMemoryInUseGiB?: number;
  /** MB/s the host downloads from the Hugging Face Hub at, for the plan's download estimate and the weights step's time limit. Defaults to 50. */
  downloadMBps?: number;
}

/** The model to serve. All plain. */
export interface ModelArgs {
  /** Hugging Face id, e.g. "Qwen/Qwen2.5-72B-Instruct-GPTQ-Int8". Required. */
  id: string;
  /** A branch, tag or commit of the model repository. Defaults to the main branch. */
  revision?: string;
  /** Quantization method; "none" means whatever the checkpoint is (a GPTQ checkpoint stays GPTQ). Defaults to "none". */
  quantization?: "none" | "gptq" | "gptq_marlin" | "awq" | "awq_marlin" | "fp8" | "bitsandbytes" | "mxfp4" | "compressed-tensors";
  /** Weight dtype. Defaults to "auto". */
  dtype?: "auto" | "float16" | "bfloat16" | "half";
  /** KV cache dtype. Defaults to "auto". */
  kvCacheDtype?: "auto" | "float16" | "bfloat16" | "fp8" | "fp8_e4m3" | "fp8_e5m2";
  /** Local path of the model's config.json, for a model not in the catalog. Defaults to none (catalog). */
  configPath?: string;
  /** Parameter count in billions, for a model given by configPath when its config cannot tell. Defaults to an estimate. */
  paramsB?: number;
  /** Exact size of the checkpoint's weights in bytes (model.safetensors.index.json metadata.total_size); `withHubModel` fills it for models outside the catalog. Defaults to the estimate from the parameters. */
  checkpointBytes?: number;
  /** Run the Python code of the model repository (--trust-remote-code). Needs a pinned revision or acknowledgeRemoteCode. Defaults to false. */
  trustRemoteCode?: boolean;
  /** Accept running unpinned remote code: whoever can push to the model repository can then run code on the host. Defaults to false. */
  acknowledgeRemoteCode?: boolean;
  /** Download the weights in a step of their own before vLLM starts (resumable, disk checked first; vLLM then starts offline); false leaves it to vLLM's first start. Defaults to true. */
  download?: boolean;
}

/** How vLLM serves. All plain. */
export interface ServingArgs {
  /** Tensor-parallel degree. Defaults to 1. */
  tensorParallel?: number;
  /** Pipeline-parallel degree. Defaults to 1. */
  pipelineParallel?: number;
  /** Fraction of each GPU's memory vLLM may use. Defaults to 0.9. */
  gpuMemoryUtilization?: number;
  /** Context length in tokens (4096, "32k"), or "auto" for 90 % of what fits. Defaults to "auto". */
  maxModelLen?: number | string;
  /** --max-num-seqs. Defaults to vLLM's default for the GPU and version. */
  maxNumSeqs?: number;
  /** --max-num-batched-tokens. Defaults to vLLM's default for the GPU and version. */
  maxNumBatchedTokens?: number;
  /** Bind address; 127.0.0.1 keeps the API off the network (reach it with the `tunnel` line). Defaults to "127.0.0.1". */
  bindHost?: string;
  /** TCP port of the API. Defaults to 8000. */
  port?: number;
  /** The model name clients ask for. Defaults to model.id. */
  servedModelName?: string;
  /** --tool-call-parser (hermes, llama3_json, openai...). Defaults to none. */
  toolCallParser?: string;
  /** --enable-auto-tool-choice (needs toolCallParser). Defaults to false. */
  enableAutoToolChoice?: boolean;
  /**
   * API key policy: "generate" (a random key, kept secret), "config" (the `apiKey` argument), "none" (no auth).
   * Passing `apiKey` with the default policy uses it. Defaults to "generate".
   */
  apiKey?: "generate" | "config" | "none";
  /** --enforce-eager (no CUDA graphs). Defaults to false. */
  enforceEager?: boolean;
  /** Extra `vllm serve` arguments, checked against the pinned version's removed flags. Defaults to []. */
  extraArgs?: string[];
}

/** The vLLM release and where it is installed from. All plain. */
export interface VllmArgs {
  /** The pinned vLLM release, e.g. "0.11.0"; flags are checked against it. Required. */
  version: string;
  /** Python minor version of the venv. Defaults to "3.12". */
  python?: string;
  /** uv release used to make the venv. Defaults to "0.13.9". */
  uvVersion?: string;
  /** Pip requirement to install; `{version}` is replaced by version. Defaults to "vllm=={version}". */
  package?: string;
  /** Distribution that must report `version` after install. Defaults to "vllm". */
  distName?: string;
  /** Module that must import after install. Defaults to "vllm". */
  importName?: string;
  /** A directory of wheels on the host (offline installs). Defaults to none. */
  findLinks?: string;
  /** Install from findLinks only, never from an index. Defaults to false. */
  noIndex?: boolean;
  /** Package index (a site mirror on HPC): https, without credentials (a login goes in the server arg indexCredentials). Defaults to "https://pypi.org/simple". */
  indexUrl?: string;
  /** Accept an http:// indexUrl: anyone on the path can then swap the packages installed. Defaults to false. */
  allowInsecureIndex?: boolean;
  /** Single host: versioned venvs kept, counting the newest; older ones are removed, never the running one. Defaults to 2. */
  keepVenvs?: number;
}

/** Swap on the host: "auto" (the planned size), "size" (sizeGiB), "off". */
export interface SwapArgs {
  /** "auto", "size" or "off". Required. */
  mode: "auto" | "size" | "off";
  /** Size in GiB, for mode "size". */
  sizeGiB?: number;
  /** The swapfile's path (modes auto and size). Defaults to "/swapfile". */
  path?: string;
}

/** EarlyOOM: kills vLLM before the kernel OOM killer freezes the box. */
export interface EarlyOomArgs {
  /** Install and configure EarlyOOM. Defaults to true. */
  enabled?: boolean;
  /** Kill when available RAM drops below this percent (earlyoom -m). Defaults to 5. */
  memPercent?: number;
  /** ... and free swap below this percent (earlyoom -s). Defaults to 10. */
  swapPercent?: number;
  /** Process names EarlyOOM spares. Defaults to "^(sshd|ssh|bash|zsh|systemd|systemd-journal|dbus-daemon)$". */
  avoid?: string;
  /** Process names it kills first. Defaults to "^(vllm|python3?(.[0-9]+)?|VLLM.*|ray.*)$". */
  prefer?: string;
}

/** What the host steps do on the host. All plain. */
export interface HostArgs {
  /** Swap. Defaults to { mode: "auto", path: "/swapfile" }. */
  swap?: SwapArgs;
  /** EarlyOOM. Defaults to enabled with the defaults of EarlyOomArgs. */
  earlyoom?: EarlyOomArgs;
  /** apt packages beyond the JIT toolchain. Defaults to []. */
  extraPackages?: string[];
  /** Seconds apt waits for a held dpkg lock. Defaults to 600. */
  aptLockTimeoutSeconds?: number;
  /** The path the unit runs vLLM from: a link to the running release's venv. Defaults to "/opt/pulumi-vllm/venv". */
  venvPath?: string;
  /** Where each release gets its venv, `<venvsDir>/<version>-py<python>`. Defaults to "/opt/pulumi-vllm/venvs". */
  venvsDir?: string;
  /** HF_HOME on the host: model weights land here and are kept on destroy. Defaults to "/var/cache/pulumi-vllm/huggingface". */
  cacheDir?: string;
  /** Destroy (and a change of model) removes the models the weights step downloaded into cacheDir, never models that were there before. Defaults to false (destroy keeps the weights). */
  removeModelCache?: boolean;
  /** The systemd unit's name. Defaults to "vllm.service". */
  unitName?: string;
  /**
   * The system user vLLM runs as, never root (nor another system account): made by the launch step, in the video and
   * render groups when the host has them, owning cacheDir; destroy removes it if pulumi-vllm made it. Defaults to "vllm".
   */
  serviceUser?: string;
  /**
   * What may be taken over when the host already has it and pulumi-vllm did not make it: "unit" (a service named
   * unitName; destroy puts the original back), "venv" (no longer accepted on a single host: venvPath is a link), "swap" (a swap file
   * of another size at swap.path; resized, destroy leaves it), "user" (an account named serviceUser; destroy leaves
   * it, out of the GPU groups it was put in). Anything else that is there is refused. Defaults to [].
   */
  adopt?: ("unit" | "venv" | "swap" | "user")[];
  /** Minutes `pulumi up` waits for /health and /v1/models: loading and compiling (the weights step downloads before). Defaults to 60. */
  readinessTimeoutMinutes?: number;
  /** Non-secret environment for the server, merged over the rendered one. Defaults to {}. */
  env?: Record<string, string>;
}

/** NCCL settings. All plain. */
export interface NcclArgs {
  /** NCCL_P2P_DISABLE. Defaults to true on "pcie-x1-riser", else false. */
  p2pDisable?: boolean;
  /** NCCL_IB_DISABLE. Defaults to true on "pcie-x1-riser" and on a single host. */
  ibDisable?: boolean;
  /** NCCL_SOCKET_IFNAME. Defaults to NCCL's choice. */
  socketIfname?: string;
  /** NCCL_IB_TIMEOUT (1-31). Defaults to NCCL's default. */
  ibTimeout?: number;
  /** NCCL_DEBUG. Defaults to unset. */
  debug?: "VERSION" | "WARN" | "INFO" | "TRACE";
  /** TORCH_NCCL_BLOCKING_WAIT=1. Defaults to false. */
  blockingWait?: boolean;
}

/** The SLURM job. All plain. */
export interface SlurmArgs {
  /** Partition (sinfo lists them). Required. */
  partition: string;
  /** sbatch --account. Defaults to the user's default account. */
  account?: string;
  /** sbatch --qos. Defaults to the partition's. */
  qos?: string;
  /** sbatch --time (HH:MM:SS, D-HH:MM:SS or minutes). Defaults to "12:00:00". */
  timeLimit?: string;
  /** Nodes; a multi-node job must use every GPU (nodes x gpusPerNode = TP x PP). Defaults to 1. */
  nodes?: number;
  /** GPUs per node; must equal hardware.gpuCount. Required. */
  gpusPerNode: number;
  /** sbatch --cpus-per-task. Defaults to 16. */
  cpusPerTask?: number;
  /** sbatch --mem-per-gpu, e.g. "64G". Defaults to the partition's. */
  memPerGpu?: string;
  /** `module load` lines run before the launch, e.g. ["CUDA/12.4"]. Defaults to []. */
  modules?: string[];
  /** The venv on the shared filesystem. Required. */
  sharedVenvPath: string;
  /** uv, state and the model cache on the shared filesystem. Required. */
  sharedCacheDir: string;
  /** Job logs on the shared filesystem. Required. */
  logDir: string;
  /** Where the 0600 secrets file goes. Defaults to sharedCacheDir. */
  secretsDir?: string;
  /** sbatch --job-name. Defaults to "pulumi-vllm". */
  jobName?: string;
  /** Multi-node launch: "native" (vllm --nnodes, vLLM 0.11.1+) or "ray" (releases before 0.11.1). Defaults to native where the pinned version has it, else ray. */
  launcher?: "ray" | "native";
  /** Ray head port. Defaults to 6379. */
  rayPort?: number;
  /** Minutes a job may pend before `pulumi up` cancels it. Defaults to 30. */
  pendingTimeoutMinutes?: number;
  /** Extra sbatch options like "--constraint=a100". Defaults to []. */
  extraSbatch?: string[];
}

/** Arguments of VllmServer: one host over SSH. */
export interface VllmServerArgs {
  /** How to reach the host. */
  connection: SshConnection;
  /** The GPUs and the host. Plain. */
  hardware: HardwareArgs;
  /** The model. Plain. */
  model: ModelArgs;
  /** How vLLM serves. Plain. Defaults to the defaults of ServingArgs. */
  serving?: ServingArgs;
  /** The vLLM release. Plain. */
  vllm: VllmArgs;
  /** Host steps. Plain. Defaults to the defaults of HostArgs. */
  host?: HostArgs;
  /** NCCL. Plain. Defaults to the defaults of NcclArgs. */
  nccl?: NcclArgs;
  /** The API key (a secret), with serving.apiKey "config" or the default policy. Defaults to a generated key. */
  apiKey?: pulumi.Input<string>;
  /** A Hugging Face token (a secret) for gated models. Defaults to none. */
  hfToken?: pulumi.Input<string>;
  /**
   * The login to vllm.indexUrl (a secret), `user:password` as HTTP Basic auth takes it: for a private mirror. It reaches
   * the uv and vLLM install steps on stdin only; never in argv, a command or plain state. Defaults to none.
   */
  indexCredentials?: pulumi.Input<string>;
}

/** Arguments of VllmSlurmServer: a SLURM job driven through the login node. */
export interface VllmSlurmServerArgs extends VllmServerArgs {
  /** The SLURM job. Plain. */
  slurm: SlurmArgs;
}

// ---- drift checks: each interface must be accepted by the schema's input type ----
// (Input fields are checked as their plain type: the validator substitutes a placeholder for an unknown value.)
type Plain<T> = { [K in keyof T]: T[K] extends pulumi.Input<infer U> | undefined ? (U extends object ? Plain<U> : U) : T[K] };
type Accepts<Schema, Arg> = Arg extends Schema ? true : never;
const drift: {
  hardware: Accepts<z.input<typeof schema.Hardware>, HardwareArgs>;
  model: Accepts<z.input<typeof schema.Model>, ModelArgs>;
  serving: Accepts<z.input<typeof schema.Serving>, ServingArgs>;
  vllm: Accepts<z.input<typeof schema.Vllm>, VllmArgs>;
  earlyoom: Accepts<z.input<typeof schema.EarlyOom>, EarlyOomArgs>;
  nccl: Accepts<z.input<typeof schema.Nccl>, NcclArgs>;
  slurm: Accepts<z.input<typeof schema.Slurm>, SlurmArgs>;
  connection: Accepts<z.input<typeof schema.Connection>, Omit<Plain<SshConnection>, "privateKey" | "jump"> & { jump?: Omit<Plain<JumpHostArgs>, "privateKey"> }>;
} = { hardware: true, model: true, serving: true, vllm: true, earlyoom: true, nccl: true, slurm: true, connection: true };
void drift;

// ... and every key the schema knows must be an argument (a new schema field needs its documented argument).
type Covers<Schema, Arg> = Exclude<keyof Schema, keyof Arg> extends never ? true : never;
const coverage: {
  hardware: Covers<z.input<typeof schema.Hardware>, HardwareArgs>;
  model: Covers<z.input<typeof schema.Model>, ModelArgs>;
  serving: Covers<z.input<typeof schema.Serving>, ServingArgs>;
  vllm: Covers<z.input<typeof schema.Vllm>, VllmArgs>;
  host: Covers<z.input<typeof schema.Host>, HostArgs>;
  earlyoom: Covers<z.input<typeof schema.EarlyOom>, EarlyOomArgs>;
  nccl: Covers<z.input<typeof schema.Nccl>, NcclArgs>;
  slurm: Covers<z.input<typeof schema.Slurm>, SlurmArgs>;
  connection: Covers<z.input<typeof schema.Connection>, SshConnection>;
  jump: Covers<z.input<typeof schema.JumpHost>, JumpHostArgs>;
} = { hardware: true, model: true, serving: true, vllm: true, host: true, earlyoom: true, nccl: true, slurm: true, connection: true, jump: true };
void coverage;
