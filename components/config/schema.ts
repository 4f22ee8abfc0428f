// The stack config: one zod schema, the single source of truth for what a
// stack may say. index.ts and the `plan` command both read config through
// `parseStackConfig`, so a bad config fails `pulumi preview` and `plan` the
// same way, before any host is touched.
//
// Secrets (SSH private key, HF token, API key) are NOT in this object: they
// are separate secret config keys read as Pulumi secrets (see
// components/config/load.ts), so this object can be validated synchronously
// and printed without leaking anything.
import { z } from "zod";
import { isVllmVersion } from "../plan/version";

const positiveInt = (what: string) =>
  z.number({ error: `${what} must be a number` }).int(`${what} must be a whole number`).positive(`${what} must be at least 1`);

const port = z
  .number({ error: "must be a TCP port number" })
  .int("must be a whole number")
  .min(1, "must be between 1 and 65535")
  .max(65535, "must be between 1 and 65535");

const hostKeyLine = z
  .string()
  .regex(
    /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+={0,3}( .*)?$/,
    "must be a public host key line such as `ssh-ed25519 AAAA...` (ssh-keyscan -t ed25519 HOST prints it)",
  );

/** Where to reach a host over SSH. The private key is secret config `sshPrivateKey` or a local file. */
export const JumpHost = z.strictObject({
  host: z.string().min(1, "must name the jump host"),
  port: port.default(22),
  user: z.string().min(1).default("root"),
  /** Local path of the jump host's private key; defaults to the main key. */
  privateKeyPath: z.string().optional(),
  hostKey: hostKeyLine.optional(),
});

export const Connection = z
  .strictObject({
    host: z.string().min(1, "must name the host (IP or DNS name)"),
    port: port.default(22),
    user: z.string().min(1).default("root"),
    /** Local path of the private key; alternative to the secret config key `sshPrivateKey`. */
    privateKeyPath: z.string().optional(),
    /** The host's public key line, pinned: the connection fails if the host presents another. */
    hostKey: hostKeyLine.optional(),
    /** Local file holding the host key line (for hosts whose key is made at boot, like the dev sandbox). */
    hostKeyPath: z.string().optional(),
    /** Explicitly accept any host key. Off by default: an unpinned key lets anyone on the path impersonate the host. */
    insecureSkipHostKeyCheck: z.boolean().default(false),
    /** Run host steps through `sudo -n` (default: when user is not root). */
    sudo: z.boolean().optional(),
    jump: JumpHost.optional(),
    /** Seconds per SSH dial attempt, and how many failed dials end the step. */
    dialTimeoutSeconds: positiveInt("dialTimeoutSeconds").default(15),
    dialErrorLimit: positiveInt("dialErrorLimit").default(10),
  })
  .superRefine((c, ctx) => {
    if (!c.hostKey && !c.hostKeyPath && !c.insecureSkipHostKeyCheck) {
      ctx.addIssue({
        code: "custom",
        path: ["hostKey"],
        message:
          "no host key is pinned -> set connection.hostKey to the line `ssh-keyscan -t ed25519 <host>` prints (or connection.hostKeyPath), or insecureSkipHostKeyCheck: true if you accept the risk",
      });
    }
    if (c.hostKey && c.hostKeyPath) {
      ctx.addIssue({ code: "custom", path: ["hostKeyPath"], message: "both hostKey and hostKeyPath are set -> keep one" });
    }
  });

export const Interconnect = z.enum(["pcie-x1-riser", "pcie", "nvlink"]);

export const Hardware = z.strictObject({
  gpuCount: positiveInt("gpuCount"),
  /** Total memory of ONE GPU in GiB as nvidia-smi reports it (e.g. 24 for an RTX 3090, 80 for an H100). */
  gpuMemoryGiB: z.number().positive("gpuMemoryGiB must be above 0"),
  gpuName: z.string().default("unknown GPU"),
  interconnect: Interconnect.default("pcie"),
  /** Host RAM in GiB (per node for slurm). */
  hostRamGiB: z.number().positive("hostRamGiB must be above 0"),
  /** Free disk in GiB where the model cache, venv and swapfile go. */
  freeDiskGiB: z.number().nonnegative(),
  /** CPU cores: sizes the compile worker estimate of the host RAM plan. */
  cpuCores: positiveInt("cpuCores").default(4),
  /** Memory other processes (a desktop, Xorg) hold on each GPU, in GiB. */
  gpuMemoryInUseGiB: z.number().nonnegative().default(0),
});

export const Quantization = z.enum([
  "none",
  "gptq",
  "gptq_marlin",
  "awq",
  "awq_marlin",
  "fp8",
  "bitsandbytes",
  "mxfp4",
  "compressed-tensors",
]);
export const Dtype = z.enum(["auto", "float16", "bfloat16", "half"]);
export const KvCacheDtype = z.enum(["auto", "float16", "bfloat16", "fp8", "fp8_e4m3", "fp8_e5m2"]);

export const Model = z.strictObject({
  /** Hugging Face id, e.g. Qwen/Qwen2.5-72B-Instruct-GPTQ-Int8. */
  id: z.string().min(1, "must be a Hugging Face model id like Qwen/Qwen2.5-14B-Instruct"),
  revision: z.string().optional(),
  /** `none` means: whatever the checkpoint is (a GPTQ checkpoint stays GPTQ). */
  quantization: Quantization.default("none"),
  dtype: Dtype.default("auto"),
  kvCacheDtype: KvCacheDtype.default("auto"),
  /** Local path of the model's config.json, for a model not in the catalog. */
  configPath: z.string().optional(),
  /** Parameter count in billions, for a model given by configPath when its config cannot tell. */
  paramsB: z.number().positive().optional(),
  trustRemoteCode: z.boolean().default(false),
});

const maxModelLen = z.union([
  positiveInt("maxModelLen"),
  z.string().regex(/^(\d+[kK]?|auto)$/, "must be a number of tokens (4096, 32k) or `auto`"),
]);

export const ApiKeyPolicy = z.enum(["generate", "config", "none"]);

export const Serving = z
  .strictObject({
    tensorParallel: positiveInt("tensorParallel").default(1),
    pipelineParallel: positiveInt("pipelineParallel").default(1),
    gpuMemoryUtilization: z
      .number()
      .gt(0, "must be above 0")
      .max(1, "is a fraction of total GPU memory: at most 1 (0.85 means 85 %)")
      .default(0.9),
    maxModelLen: maxModelLen.default("auto"),
    maxNumSeqs: positiveInt("maxNumSeqs").optional(),
    maxNumBatchedTokens: positiveInt("maxNumBatchedTokens").optional(),
    /** Bind address. 127.0.0.1 (the default) keeps the API off the network; reach it with `ssh -L`. */
    bindHost: z.string().default("127.0.0.1"),
    port: port.default(8000),
    servedModelName: z.string().optional(),
    toolCallParser: z.string().optional(),
    enableAutoToolChoice: z.boolean().default(false),
    /** generate: a random key kept as a Pulumi secret; config: the secret key `apiKey`; none: no auth. */
    apiKey: ApiKeyPolicy.default("generate"),
    enforceEager: z.boolean().default(false),
    /** Extra `vllm serve` arguments, checked against the pinned version's removed flags. */
    extraArgs: z.array(z.string()).default([]),
  })
  .superRefine((s, ctx) => {
    if (s.enableAutoToolChoice && !s.toolCallParser) {
      ctx.addIssue({
        code: "custom",
        path: ["toolCallParser"],
        message: "enableAutoToolChoice needs a parser -> set serving.toolCallParser (hermes for Qwen, llama3_json for Llama 3.1, openai for gpt-oss)",
      });
    }
    if (s.apiKey === "none" && s.bindHost !== "127.0.0.1" && s.bindHost !== "localhost" && s.bindHost !== "::1") {
      ctx.addIssue({
        code: "custom",
        path: ["apiKey"],
        message: `an unauthenticated server bound to ${s.bindHost} is open to the network -> use apiKey: generate, or bindHost: 127.0.0.1 and an SSH tunnel`,
      });
    }
  });

export const Vllm = z.strictObject({
  /** The pinned vLLM release. Flags are checked against it. */
  version: z.string().refine(isVllmVersion, "must be a vLLM release as PyPI numbers it, like 0.11.0, 0.10.1.1 or 0.8.5.post1"),
  /** Python of the venv (uv finds or installs it). */
  python: z.string().regex(/^3\.\d+$/, "must be a Python minor version like 3.12").default("3.12"),
  /** uv release used to make the venv. */
  uvVersion: z.string().regex(/^\d+\.\d+\.\d+$/, "must be an exact uv release like 0.13.9").default("0.13.9"),
  /** Pip requirement to install; `{version}` is replaced by `version`. Default vllm=={version}. */
  package: z.string().default("vllm=={version}"),
  /** Distribution and module that must report `version` after install (differ only for a stand-in). */
  distName: z.string().default("vllm"),
  importName: z.string().default("vllm"),
  /** A directory of wheels on the host (offline installs, the test stand-in). */
  findLinks: z.string().optional(),
  /** Install from findLinks only, never from an index. */
  noIndex: z.boolean().default(false),
  /** Package index (a site mirror on HPC). */
  indexUrl: z.string().url().default("https://pypi.org/simple"),
});

export const Swap = z.discriminatedUnion("mode", [
  z.strictObject({ mode: z.literal("auto"), path: z.string().default("/swapfile") }),
  z.strictObject({ mode: z.literal("size"), sizeGiB: z.number().positive(), path: z.string().default("/swapfile") }),
  z.strictObject({ mode: z.literal("off") }),
]);

// /etc/default/earlyoom is also read by /bin/sh: the earlyoom step refuses
// what the shell would expand, so preview refuses it first.
const earlyoomRegex = z
  .string()
  .regex(/^[\][A-Za-z0-9_.|()^$*+?{}:/,=!<>@#&;~-]*$/, "may not hold quotes, backslashes, backticks, % or whitespace (/bin/sh reads it) -> use . for a literal dot")
  .refine((r) => !/[$][^)|]/.test(r), "may have `$` only at the end or before `)` or `|` -> move it");

export const EarlyOom = z.strictObject({
  enabled: z.boolean().default(true),
  /** Kill when available RAM drops below this percent (earlyoom -m), seed 000 used 5. */
  memPercent: z.number().min(1).max(50).default(5),
  /** ... and free swap below this percent (earlyoom -s). */
  swapPercent: z.number().min(1).max(100).default(10),
  /** Process names (/proc/PID/comm, 15 characters) EarlyOOM spares. */
  avoid: earlyoomRegex.default("^(sshd|ssh|bash|zsh|systemd|systemd-journal|dbus-daemon)$"),
  /** Process names it kills first: vLLM's server, its workers (VLLM::Worker...), Python, Ray. */
  prefer: earlyoomRegex.default("^(vllm|python3?(.[0-9]+)?|VLLM.*|ray.*)$"),
});

export const Host = z.strictObject({
  swap: Swap.default({ mode: "auto", path: "/swapfile" }),
  earlyoom: EarlyOom.default(EarlyOom.parse({})),
  /** apt packages beyond the JIT toolchain (build-essential python3-dev libnuma-dev pkg-config). */
  extraPackages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, "is not a Debian package name")).default([]),
  aptLockTimeoutSeconds: positiveInt("aptLockTimeoutSeconds").default(600),
  venvPath: z.string().default("/opt/pulumi-vllm/venv"),
  /** HF_HOME on the host: model weights land here and are kept on destroy unless removeModelCache. */
  cacheDir: z.string().default("/var/cache/pulumi-vllm/huggingface"),
  removeModelCache: z.boolean().default(false),
  unitName: z.string().regex(/^[a-zA-Z0-9_.@-]+\.service$/, "must be a systemd unit name ending in .service").default("vllm.service"),
  /** Minutes `pulumi up` waits for /health and /v1/models. Seed 001's rig needed ~45. */
  readinessTimeoutMinutes: z.number().positive().default(60),
  /** Non-secret environment for the server, merged over the rendered one. */
  env: z.record(z.string().regex(/^[A-Z_][A-Z0-9_]*$/, "is not an environment variable name"), z.string()).default({}),
});

export const Nccl = z.strictObject({
  /** Defaults follow the interconnect: P2P and IB off on PCIe x1 risers (seed 001). */
  p2pDisable: z.boolean().optional(),
  ibDisable: z.boolean().optional(),
  socketIfname: z.string().optional(),
  ibTimeout: z.number().int().min(1).max(31).optional(),
  debug: z.enum(["VERSION", "WARN", "INFO", "TRACE"]).optional(),
  blockingWait: z.boolean().default(false),
});

// Shared paths end up inside the batch script and srun command lines: plain absolute paths only.
const sharedPath = z.string().regex(/^\/[A-Za-z0-9_.\/-]+$/, "must be an absolute path of letters, digits, _ . / - (it goes into the batch script)");

export const Slurm = z.strictObject({
  partition: z.string().min(1, "must name a partition (sinfo lists them)"),
  account: z.string().optional(),
  qos: z.string().optional(),
  /** sbatch --time, e.g. 12:00:00 or 1-00:00:00. */
  timeLimit: z.string().regex(/^(\d+-)?\d{1,2}:\d{2}:\d{2}$|^\d+$/, "must be HH:MM:SS, D-HH:MM:SS or minutes").default("12:00:00"),
  nodes: positiveInt("nodes").default(1),
  gpusPerNode: positiveInt("gpusPerNode"),
  cpusPerTask: positiveInt("cpusPerTask").default(16),
  memPerGpu: z.string().regex(/^\d+[KMGT]?$/, "must be like 64G").optional(),
  /** `module load` lines run before the launch, e.g. ["CUDA/12.4"]. */
  modules: z.array(z.string()).default([]),
  /** Paths on the shared filesystem (seen by login and compute nodes). */
  sharedVenvPath: sharedPath,
  sharedCacheDir: sharedPath,
  logDir: sharedPath,
  /** Where the 0600 secrets file goes on the shared filesystem. */
  secretsDir: sharedPath.optional(),
  jobName: z.string().regex(/^[A-Za-z0-9_.-]+$/).default("pulumi-vllm"),
  /** Multi-node launch: ray (works on every pinned version) or native (vllm --nnodes, newer releases). */
  launcher: z.enum(["ray", "native"]).default("ray"),
  rayPort: port.default(6379),
  /** Minutes a job may pend before `pulumi up` gives up (and cancels it). */
  pendingTimeoutMinutes: z.number().positive().default(30),
  extraSbatch: z.array(z.string().regex(/^--[a-z-]+(=.*)?$/, "must be an sbatch option like --constraint=a100")).default([]),
});

const common = {
  connection: Connection,
  hardware: Hardware,
  model: Model,
  serving: Serving.default(Serving.parse({})),
  vllm: Vllm,
  host: Host.default(Host.parse({})),
  nccl: Nccl.default(Nccl.parse({})),
};

export const SingleStack = z.strictObject({ topology: z.literal("single"), ...common });
export const SlurmStack = z.strictObject({ topology: z.literal("slurm"), ...common, slurm: Slurm });

export const StackConfig = z
  .discriminatedUnion("topology", [SingleStack, SlurmStack], {
    error: "must be `single` (one host: a rig, a workstation) or `slurm` (a cluster through its login node)",
  })
  .superRefine((c, ctx) => {
    const s = c.serving;
    const gpusAvailable = c.topology === "slurm" ? c.slurm.nodes * c.slurm.gpusPerNode : c.hardware.gpuCount;
    const gpusUsed = s.tensorParallel * s.pipelineParallel;
    if (gpusUsed > gpusAvailable) {
      ctx.addIssue({
        code: "custom",
        path: ["serving", "tensorParallel"],
        message: `tensorParallel x pipelineParallel = ${gpusUsed} GPUs but only ${gpusAvailable} are there -> lower them so their product is at most ${gpusAvailable}`,
      });
    }
    if (c.topology === "slurm" && c.slurm.gpusPerNode !== c.hardware.gpuCount) {
      ctx.addIssue({
        code: "custom",
        path: ["hardware", "gpuCount"],
        message: `hardware.gpuCount (${c.hardware.gpuCount}) describes one node and must equal slurm.gpusPerNode (${c.slurm.gpusPerNode}) -> make them equal`,
      });
    }
    if (c.topology === "slurm" && c.slurm.nodes > 1 && gpusUsed !== gpusAvailable) {
      ctx.addIssue({
        code: "custom",
        path: ["serving", "pipelineParallel"],
        message: `a ${c.slurm.nodes}-node job must use all ${gpusAvailable} GPUs (tensorParallel x pipelineParallel is ${gpusUsed}) -> set tensorParallel ${c.slurm.gpusPerNode} and pipelineParallel ${c.slurm.nodes}, or fewer nodes`,
      });
    }
    if (c.serving.apiKey === "none" && c.topology === "slurm") {
      ctx.addIssue({
        code: "custom",
        path: ["serving", "apiKey"],
        message: "a server on a shared cluster node is reachable by every cluster user -> use apiKey: generate",
      });
    }
  });

export type StackConfig = z.infer<typeof StackConfig>;
export type SingleStackConfig = z.infer<typeof SingleStack>;
export type SlurmStackConfig = z.infer<typeof SlurmStack>;
export type ModelConfig = z.infer<typeof Model>;
export type ServingConfig = z.infer<typeof Serving>;
export type HardwareConfig = z.infer<typeof Hardware>;

/** Secret config keys, read as Pulumi secrets, never part of StackConfig. */
export const SECRET_KEYS = ["sshPrivateKey", "hfToken", "apiKey"] as const;
/** The top-level keys a stack may set under the project namespace. */
export const TOP_LEVEL_KEYS = ["topology", ...Object.keys(common), "slurm", ...SECRET_KEYS] as const;
